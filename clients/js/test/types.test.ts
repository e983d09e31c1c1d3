// The typed event maps (src/events.ts) checked against the payloads the
// gateway really sends: every server event is captured from a live gateway,
// written into a TypeScript file as object literals assigned to
// ServerEvents[name] (fresh literals: a missing field or an unknown one is an
// error), and compiled with tsc.
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, inject, test } from "vitest";
import { connect, SERVER_EVENTS, type TradewireClient } from "@tradewire/client";
// @ts-ignore: plain ESM helper shared with the browser tests
import * as gw from "../../../tests/frontend/gateway.mjs";

const url = inject("gatewayUrl" as never) as string;
const root = fileURLToPath(new URL("../../..", import.meta.url));
const events = join(root, "clients/js/src/events.ts");
const tsc = join(root, "node_modules/typescript/bin/tsc");
const clients: TradewireClient[] = [];
afterAll(() => clients.forEach((c) => c.close()));

/**
 * Type-checks sets of payloads (one file per set) together with the sources
 * of both packages, in one tsc run (tsc is the slow part), and returns the
 * names of the sets that failed and tsc's output.
 */
function typecheck(sets: Record<string, Record<string, unknown[]>>): { failed: string[]; out: string } {
  const dir = mkdtempSync(join(tmpdir(), "tradewire-types-"));
  const files: string[] = [];
  for (const [set, captured] of Object.entries(sets)) {
    let src = `import type { ServerEvents } from ${JSON.stringify(events)};\n`;
    let i = 0;
    for (const [name, payloads] of Object.entries(captured)) {
      for (const p of payloads) src += `export const p${i++}: ServerEvents[${JSON.stringify(name)}] = ${JSON.stringify(p)};\n`;
    }
    const file = join(dir, set + ".ts");
    writeFileSync(file, src);
    files.push(file);
  }
  let out = "";
  try {
    const sources = [join(root, "clients/js/src/index.ts"), join(root, "clients/react/src/index.tsx")];
    const opts = ["--noEmit", "--strict", "--skipLibCheck", "--allowImportingTsExtensions", "--jsx", "react-jsx", "--lib", "es2020,dom", "--target", "es2020", "--moduleResolution", "bundler", "--module", "es2020"];
    execFileSync(process.execPath, [tsc, ...opts, ...sources, ...files], {
      stdio: "pipe",
    });
  } catch (e: any) {
    out = String(e.stdout) + String(e.stderr);
  }
  return { failed: Object.keys(sets).filter((s) => out.includes(s + ".ts(")), out };
}

test("the event types match every payload the gateway sends", { timeout: 90000 }, async () => {
  const g = await gw.startGateway({ env: { TRADEWIRE_DEMO_FEED: "false", TRADEWIRE_DRAIN_WINDOW: "0s" } });
  const login = await gw.devLogin(g.url, "types-admin", { role: "admin" });
  const c = connect(g.url, { sessionID: login.sessionID });
  clients.push(c);
  const captured: Record<string, unknown[]> = {};
  for (const name of SERVER_EVENTS) {
    c.on(name, (p: unknown) => (captured[name] ??= []).push(p));
  }
  await Promise.all([c.subscribePortfolio(), c.subscribeTrades(), c.watch(["AAPL"]), c.subscribeAdmin()]);
  const u = login.userId;
  const res = await gw.publish(g.url, [
    { type: "trade.executed", id: "ty-1", userId: u, trade: { id: "t1", symbol: "AAPL", side: "buy", quantity: 10, price: 187.12, venue: "X" } },
    { type: "trade.executed", userId: u, trade: { symbol: "AAPL", side: "SELL", quantity: 1, price: 0 } },
    { type: "trade.failed", userId: u, error: { message: "insufficient funds", code: "E1" } },
    { type: "trade.failed", userId: u, error: {} },
    { type: "position.closed", userId: u, position: { symbol: "AAPL", pnl: 12.5 } },
    { type: "portfolio.updated", userId: u, portfolio: { cash: 1, totalValue: 2 } },
    { type: "notification", id: "ty-2", userId: u, notification: { title: "Hi", message: "Hello", type: "warning" } },
    { type: "notification", userId: u, notification: { title: "Hi", message: "Hello" } },
    { type: "quote.update", symbol: "aapl", quote: { price: 1.5, bid: 1.4, ask: 1.6 } },
    { type: "quote.update", symbol: "AAPL", quote: { price: 2, timestamp: "2024-05-02T14:03:07.125Z" } },
    { type: "market.status", status: { status: "closed", reason: "holiday" } },
  ]);
  expect(res.status).toBe(202);
  c.socket.emit("no:such:event"); // the error event
  await gw.waitFor(() => captured["stats:update"] && captured["error"] && captured["market:status"], {
    timeout: 8000,
    what: "stats:update (every 5 s) and error",
  });
  const stopped = g.stop(); // server:shutdown
  await gw.waitFor(() => captured["server:shutdown"], { what: "server:shutdown" });
  await stopped;
  expect(Object.keys(captured).sort()).toEqual([...SERVER_EVENTS].sort());
  expect(captured["trade:executed"]).toHaveLength(2);

  // The check can fail: a field the types do not know, or a missing one.
  const te = captured["trade:executed"][0] as Record<string, unknown>;
  const { timestamp: _t, ...noTimestamp } = captured["notification"][0] as Record<string, unknown>;
  const res2 = typecheck({
    real: captured,
    extraField: { "trade:executed": [{ ...te, extra: 1 }] },
    missingField: { notification: [noTimestamp] },
  });
  expect(res2.failed, res2.out).toEqual(["extraField", "missingField"]);
  // and nothing else failed: the real payloads and both packages' sources compile
  const errors = res2.out.split("\n").filter((l) => l.includes("error TS"));
  expect(errors.length).toBeGreaterThan(0);
  expect(errors.filter((l) => !/(extraField|missingField)\.ts\(/.test(l)), res2.out).toEqual([]);
});
