// @tradewire/client against the real gateway (the Go binary in dev mode,
// started by tests/frontend/vitest.setup.mjs; some tests start their own).
import { afterEach, describe, expect, inject, test } from "vitest";
import { connect, TradewireClient, TradewireError, type StateInfo } from "@tradewire/client";
// @ts-ignore: plain ESM helper shared with the browser tests
import * as gw from "../../../tests/frontend/gateway.mjs";

const url = inject("gatewayUrl" as never) as string;
const clients: TradewireClient[] = [];
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const f of cleanups.splice(0)) await f();
});

let n = 0;
async function login(extra: Record<string, string> = {}, base = url) {
  const userId = `js-${process.pid}-${++n}`;
  return gw.devLogin(base, userId, extra);
}

function client(u: string, opts: Parameters<typeof connect>[1]) {
  const c = connect(u, { reconnectDelayMs: 100, reconnectDelayMaxMs: 400, ...opts });
  clients.push(c);
  return c;
}

function states(c: TradewireClient): string[] {
  const seen: string[] = [c.state];
  c.on("state", (s: StateInfo) => {
    if (seen[seen.length - 1] !== s.state) seen.push(s.state);
  });
  return seen;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("connection", () => {
  test("connects with the signed session id, reports the state and answers ping", async () => {
    const s = await login();
    const c = client(url, { sessionID: s.sessionID });
    const seen = states(c);
    await gw.waitFor(() => c.state === "connected", { what: "connected" });
    expect(seen).toEqual(["connecting", "connected"]);
    expect(c.error).toBeNull();
    const before = Date.now();
    const pong = await c.ping();
    expect(pong.timestamp).toBeGreaterThanOrEqual(before - 1000);
  });

  test("requests made before the connection wait for it", async () => {
    const s = await login();
    const c = client(url, { sessionID: s.sessionID, lazy: true });
    const p = c.watch(["ibm"]);
    c.open();
    await expect(p).resolves.toEqual({ success: true, symbols: ["IBM"] });
  });

  test("an auth failure stops retrying and says so; pending requests reject", async () => {
    const c = client(url, { sessionID: "s:nosuchsession.bad" });
    const attempts: string[] = [];
    c.socket.io.on("open", () => attempts.push("open"));
    const p = c.ping().catch((e) => e);
    await gw.waitFor(() => c.state === "offline", { what: "offline" });
    expect(c.error).toBeInstanceOf(TradewireError);
    expect(c.error!.code).toBe("UNAUTHORIZED");
    expect(await p).toMatchObject({ code: "UNAUTHORIZED" });
    await sleep(800); // several backoff delays: no new attempt
    expect(attempts.length).toBe(1);
    await expect(c.ping()).rejects.toMatchObject({ code: "UNAUTHORIZED" });
  });

  test("a logout ends the session: SESSION_EXPIRED, offline, no retry", async () => {
    const s = await login();
    const c = client(url, { sessionID: s.sessionID });
    await gw.waitFor(() => c.state === "connected");
    await gw.devLogout(url, s.sessionID);
    await gw.waitFor(() => c.state === "offline", { timeout: 8000, what: "offline after logout" });
    expect(c.error?.code).toBe("SESSION_EXPIRED");
  });

  test("an unreachable gateway: reconnecting, then offline, with no unhandled rejection", async () => {
    const port = await gw.freePort();
    const c = client("http://127.0.0.1:" + port, { offlineAfterAttempts: 2 });
    const seen = states(c);
    await gw.waitFor(() => c.state === "offline", { what: "offline" });
    expect(seen.slice(0, 3)).toEqual(["connecting", "reconnecting", "offline"]);
    expect(c.error?.code).toBe("CONNECTION_ERROR");
    expect(c.retryAt).not.toBeNull(); // still retrying, bounded backoff
    const p = c.ping().catch((e) => e);
    c.close();
    expect(await p).toMatchObject({ code: "CLOSED" });
  });
});

describe("subscriptions", () => {
  test("watch normalises, quotes reach handlers as the payload only, unwatch stops them", async () => {
    const s = await login();
    const c = client(url, { sessionID: s.sessionID });
    const got: unknown[][] = [];
    c.on("quote:update", (...args: unknown[]) => got.push(args));
    await expect(c.watch([" aapl", "Msft"])).resolves.toEqual({ success: true, symbols: ["AAPL", "MSFT"] });
    expect(c.watched.sort()).toEqual(["AAPL", "MSFT"]);
    await gw.publish(url, { type: "quote.update", symbol: "aapl", quote: { price: 190.5 } });
    await gw.waitFor(() => got.length === 1, { what: "quote" });
    expect(got[0]).toHaveLength(1);
    expect(got[0][0]).toMatchObject({ symbol: "AAPL", price: 190.5 });
    expect(c.quotes.get("AAPL")?.price).toBe(190.5);
    await c.unwatch(["aapl"]);
    await gw.publish(url, { type: "quote.update", symbol: "AAPL", quote: { price: 191 } });
    await gw.publish(url, { type: "quote.update", symbol: "MSFT", quote: { price: 420 } });
    await gw.waitFor(() => got.length === 2, { what: "MSFT quote" });
    expect((got[1][0] as { symbol: string }).symbol).toBe("MSFT");
    expect(c.quotes.has("AAPL")).toBe(false);
  });

  test("trade events carry no offset to handlers; off() removes a handler", async () => {
    const s = await login();
    const c = client(url, { sessionID: s.sessionID });
    const got: unknown[][] = [];
    const h = (...args: unknown[]) => got.push(args);
    c.on("trade:executed", h);
    await c.subscribeTrades(); // acknowledged trades need Redis: clients/js/test/ack.test.ts
    const trade = { id: "t-" + n, symbol: "AAPL", side: "buy", quantity: 10, price: 187.12 };
    expect((await gw.publish(url, { type: "trade.executed", id: "e-" + s.userId, userId: s.userId, trade })).status).toBe(202);
    await gw.waitFor(() => got.length === 1, { what: "trade" });
    expect(got[0]).toHaveLength(1); // the recovery offset stays inside the client
    expect(got[0][0]).toMatchObject({ userId: s.userId, trade, eventId: "e-" + s.userId });
    c.off("trade:executed", h);
    await gw.publish(url, { type: "trade.executed", userId: s.userId, trade });
    await sleep(300);
    expect(got).toHaveLength(1);
  });

  test("errors reject with TradewireError {code, message}", async () => {
    const s = await login({ tier: "free" });
    const c = client(url, { sessionID: s.sessionID });
    await expect(c.watch(["not a symbol!"])).rejects.toMatchObject({ code: "INVALID_PAYLOAD", name: "TradewireError" });
    const eleven = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K"];
    const err = await c.watch(eleven).catch((e) => e);
    expect(err).toBeInstanceOf(TradewireError);
    expect(err.code).toBe("SUBSCRIPTION_LIMIT");
    expect(err.message).toMatch(/limit/);
    expect(c.watched).toEqual([]); // all or nothing
    await expect(c.subscribeAdmin()).rejects.toMatchObject({ code: "FORBIDDEN", message: "admin role required" });
  });

  test("RATE_LIMIT rejects with retryAfterMs", async () => {
    const g = await gw.startGateway({ env: { TRADEWIRE_RATE_EVENTS_PER_MINUTE: "3", TRADEWIRE_DEMO_FEED: "false" } });
    cleanups.push(() => g.stop());
    const s = await login({}, g.url);
    const c = client(g.url, { sessionID: s.sessionID });
    const results = await Promise.allSettled([c.ping(), c.ping(), c.ping(), c.ping()]);
    const refused = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(refused[0].reason).toMatchObject({ code: "RATE_LIMIT" });
    expect(refused[0].reason.retryAfterMs).toBeGreaterThan(0);
  });
});

describe("reconnection", () => {
  test("a refused connection with RATE_LIMIT waits retryAfterMs", async () => {
    const g = await gw.startGateway({ env: { TRADEWIRE_RATE_CONNECTIONS_PER_MINUTE: "1", TRADEWIRE_DEMO_FEED: "false" } });
    cleanups.push(() => g.stop());
    const s = await login({}, g.url);
    const first = client(g.url, { sessionID: s.sessionID });
    await gw.waitFor(() => first.state === "connected");
    const second = client(g.url, { sessionID: s.sessionID, jitter: 0 });
    await gw.waitFor(() => second.error?.code === "RATE_LIMIT", { what: "RATE_LIMIT refusal" });
    expect(second.state).toBe("reconnecting");
    expect(second.error!.retryAfterMs).toBeGreaterThan(10_000); // one connection per minute
    // the next attempt is scheduled after retryAfterMs, not after the 100 ms backoff
    expect(second.retryAt! - Date.now()).toBeGreaterThan(second.error!.retryAfterMs! - 2000);
  });

  test("after a restart (not recovered) every wanted subscription is sent again", async () => {
    const redis = await gw.startRedis();
    cleanups.push(() => redis.stop());
    const port = await gw.freePort();
    const env = gw.redisNodeEnv(redis, { TRADEWIRE_DEMO_FEED: "false", TRADEWIRE_RECOVERY_WINDOW: "0" });
    let g = await gw.startGateway({ port, env });
    cleanups.push(() => g.stop());
    const sid = gw.redisSession(redis, "restart-user");
    const c = client(g.url, { sessionID: sid });
    const seen = states(c);
    await c.watch(["NVDA"]);
    await c.subscribePortfolio();
    await g.kill();
    await gw.waitFor(() => c.state === "reconnecting", { what: "reconnecting" });
    g = await gw.startGateway({ port, env });
    await gw.waitFor(() => c.state === "connected", { timeout: 8000, what: "connected again" });
    expect(c.recovered).toBe(false);
    expect(seen).toEqual(expect.arrayContaining(["connected", "reconnecting"]));
    const quotes: number[] = [];
    const portfolios: unknown[] = [];
    c.on("quote:update", (q) => quotes.push(q.price as number));
    c.on("portfolio:updated", (p) => portfolios.push(p.portfolio));
    await gw.waitFor(async () => (await gw.roomSockets(g.url, "watchlist:NVDA")).length === 1, { what: "resubscribed" });
    await gw.publish(g.url, { type: "quote.update", symbol: "NVDA", quote: { price: 122 } });
    await gw.publish(g.url, { type: "portfolio.updated", userId: "restart-user", portfolio: { totalValue: 5 } });
    await gw.waitFor(() => quotes.length === 1 && portfolios.length === 1, { what: "events after restart" });
  });

  test("server:shutdown: the next attempt is due reconnectInMs after the notice", async () => {
    const g = await gw.startGateway({ env: { TRADEWIRE_DEMO_FEED: "false", TRADEWIRE_DRAIN_WINDOW: "2s" } });
    cleanups.push(() => g.stop());
    const s = await login({}, g.url);
    const c = client(g.url, { sessionID: s.sessionID, jitter: 0 });
    let notice: { advice: number; at: number } | null = null;
    let due: number | null = null;
    c.on("server:shutdown", (p) => (notice = { advice: p.reconnectInMs, at: Date.now() }));
    const log: string[] = [];
    c.socket.on("disconnect", (r) => log.push("disconnect " + r));
    c.on("state", (info) => {
      log.push(info.state + " " + info.retryAt + " " + JSON.stringify(notice));
      // the first attempt scheduled after the notice
      if (notice && due == null && info.state !== "connected" && info.retryAt != null) due = info.retryAt;
    });
    await gw.waitFor(() => c.state === "connected");
    await c.ping();
    const stopped = g.stop();
    log.push("stop sent: pid " + g.proc.pid + " killed=" + g.proc.killed + " exit=" + g.proc.exitCode + "/" + g.proc.signalCode);
    await gw.waitFor(() => due != null, { timeout: 8000, what: "reconnect scheduled after the notice: " + log.join("; ") + "\ngateway: " + g.logs.slice(-8).join("\n") });
    const n = notice!;
    expect(due!).toBeGreaterThanOrEqual(n.at + n.advice - 50);
    expect(due!).toBeLessThanOrEqual(n.at + n.advice + 300);
    await stopped;
  });

});
