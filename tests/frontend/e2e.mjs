// End-to-end tests of the dashboard in Debian's Chromium (playwright-core
// with executablePath; no browser download), against the built gateway.
// Run by frontend_test.go (go test ./tests/frontend/), or directly:
//   TRADEWIRE_BIN=<binary> node tests/frontend/e2e.mjs
// Screenshots of every step go to tests/frontend/artifacts/ (gitignored).
import assert from "node:assert/strict";
import { mkdirSync, rmSync } from "node:fs";
import { createServer, connect as netConnect } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import * as gw from "./gateway.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const artifacts = process.env.TRADEWIRE_ARTIFACTS || join(here, "artifacts");
rmSync(artifacts, { recursive: true, force: true });
mkdirSync(artifacts, { recursive: true });
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

const cleanups = [];
const results = [];
let shot = 0;

async function step(page, name, fn) {
  const t0 = Date.now();
  try {
    await fn();
  } finally {
    const file = join(artifacts, `${String(++shot).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
  }
  results.push(`${name} (${Date.now() - t0} ms)`);
  console.log(`ok ${shot} ${name} (${Date.now() - t0} ms)`);
}

const status = (page) => page.getByTestId("connection-status");
const price = async (page, sym) => Number(await page.getByTestId("quote-row-" + sym).getAttribute("data-price"));

/** Waits until the data-price of each symbol changed from its first value. */
async function pricesMove(page, symbols, timeout = 12000) {
  const first = {};
  for (const s of symbols) {
    await page.waitForFunction((s) => document.querySelector(`[data-testid="quote-row-${s}"]`)?.dataset.price, s, { timeout });
    first[s] = await price(page, s);
  }
  await page.waitForFunction(
    ([symbols, first]) =>
      symbols.every((s) => {
        const p = document.querySelector(`[data-testid="quote-row-${s}"]`)?.dataset.price;
        return p && Number(p) !== first[s];
      }),
    [symbols, first],
    { timeout },
  );
}

/**
 * A quote feed as a backend would publish it (the demo feed runs in dev mode
 * only): a random walk per symbol, every 250 ms, to the gateway at urlFn().
 */
function startFeeder(urlFn, symbols) {
  const prices = Object.fromEntries(symbols.map((s, i) => [s, 100 + i * 10]));
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const batch = symbols.map((s) => {
        prices[s] = Math.round(prices[s] * (1 + (Math.random() - 0.5) / 100) * 100) / 100;
        return { type: "quote.update", symbol: s, quote: { price: prices[s], source: "e2e" } };
      });
      await gw.publish(urlFn(), batch).catch(() => {}); // the gateway may be down on purpose
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  cleanups.push(async () => {
    stopped = true;
    await loop;
  });
}

/** Counts quote:update events per symbol seen by the page's client. */
async function countQuotes(page) {
  await page.evaluate(() => {
    window.__quotes = {};
    window.tradewire.on("quote:update", (q) => (window.__quotes[q.symbol] = (window.__quotes[q.symbol] || 0) + 1));
  });
}

/** A TCP proxy spreading connections round-robin over ports; can refuse websocket upgrades. */
function startProxy(ports, { blockWebsocket = false } = {}) {
  let next = 0;
  const sockets = new Set();
  const server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => {});
    client.once("data", (first) => {
      if (blockWebsocket && /\r\nupgrade:\s*websocket/i.test(first.toString("latin1"))) {
        client.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
      }
      const port = ports[next++ % ports.length];
      const up = netConnect(port, "127.0.0.1", () => {
        up.write(first);
        client.pipe(up);
        up.pipe(client);
      });
      sockets.add(up);
      up.on("close", () => {
        sockets.delete(up);
        client.destroy();
      });
      up.on("error", () => client.destroy());
      client.on("close", () => up.destroy());
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        url: "http://127.0.0.1:" + server.address().port,
        close: () => {
          for (const s of sockets) s.destroy();
          return new Promise((r) => server.close(r));
        },
      }),
    ),
  );
}

async function newPage(browser, { cookie, url } = {}) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  cleanups.push(() => context.close());
  if (cookie) {
    const [name, value] = cookie.split("=");
    await context.addCookies([{ name, value, url }]);
  }
  const page = await context.newPage();
  page.on("pageerror", (e) => console.log("page error:", e.message));
  return page;
}

/** Opens the dashboard with an existing session (the Express cookie) and its watchlist. */
async function openWithSession(page, url, watchlist, query = "") {
  await page.goto(url + "/" + query);
  await page.evaluate((w) => {
    localStorage.setItem("tradewire:user", JSON.stringify({ userId: "", role: "user" }));
    localStorage.setItem("tradewire:watchlist", JSON.stringify(w));
  }, watchlist);
  await page.reload();
  await status(page).filter({ hasText: /^connected$/ }).waitFor({ timeout: 10000 });
}

async function devModeFlow(browser) {
  const g = await gw.startGateway({ env: { TRADEWIRE_DEMO_FEED: "true" } });
  cleanups.push(() => g.stop());
  const page = await newPage(browser);

  await step(page, "login", async () => {
    await page.goto(g.url + "/");
    await page.getByTestId("login-user").fill("e2e-user");
    await page.getByTestId("login-submit").click();
    await status(page).filter({ hasText: /^connected$/ }).waitFor({ timeout: 10000 });
  });

  await step(page, "add-three-symbols-prices-move", async () => {
    for (const s of ["META", "NFLX", "AMD"]) {
      await page.getByTestId("watch-input").fill(s.toLowerCase());
      await page.getByTestId("watch-add").click();
      await page.getByTestId("quote-row-" + s).waitFor();
    }
    await pricesMove(page, ["META", "NFLX", "AMD"]);
    // AAPL and MSFT (default list) + 3 symbols + portfolio + trades
    assert.equal(await page.getByTestId("subscription-count").textContent(), "7/50");
  });

  await step(page, "trade-toast-within-1s", async () => {
    const t0 = Date.now();
    const r = await gw.publish(g.url, { type: "trade.executed", id: "e2e-t1", userId: "e2e-user", trade: { symbol: "META", side: "buy", quantity: 5, price: 505.2 } });
    assert.equal(r.status, 202);
    await page.getByTestId("toast").filter({ hasText: "BUY 5 META @ $505.2" }).waitFor({ timeout: 1000 });
    console.log(`  toast visible ${Date.now() - t0} ms after the publish`);
    await gw.publish(g.url, { type: "trade.failed", userId: "e2e-user", error: { message: "insufficient buying power" } });
    await page.getByTestId("toast").filter({ hasText: "insufficient buying power" }).waitFor({ timeout: 1000 });
  });

  await step(page, "portfolio-notification-market-status", async () => {
    await gw.publish(g.url, [
      { type: "portfolio.updated", userId: "e2e-user", portfolio: { totalValue: 10234.5, cash: 100 } },
      { type: "notification", userId: "e2e-user", notification: { title: "Deposit", message: "Funds arrived", type: "success" } },
      { type: "market.status", status: { status: "closed" } },
    ]);
    await page.getByTestId("portfolio-value").filter({ hasText: "10,234.50" }).waitFor({ timeout: 2000 });
    await page.getByTestId("notification").filter({ hasText: "Funds arrived" }).waitFor({ timeout: 2000 });
    await page.getByTestId("market-status").filter({ hasText: "closed" }).waitFor({ timeout: 2000 });
  });

  await step(page, "remove-symbol-no-more-updates", async () => {
    await page.getByTestId("unwatch-AMD").click();
    await page.getByTestId("quote-row-AMD").waitFor({ state: "detached" });
    await gw.waitFor(async () => (await gw.roomSockets(g.url, "watchlist:AMD")).length === 0, { what: "watchlist:AMD left" });
    await countQuotes(page);
    await page.waitForTimeout(2200); // two demo ticks
    const counts = await page.evaluate(() => window.__quotes);
    assert.equal(counts.AMD, undefined, "AMD quotes after unwatch: " + JSON.stringify(counts));
    assert.ok(counts.META >= 1, "META still live: " + JSON.stringify(counts));
    assert.equal(await page.getByTestId("subscription-count").textContent(), "6/50");
  });

  await step(page, "inline-subscription-error", async () => {
    await page.getByTestId("watch-input").fill("BAD!SYM");
    await page.getByTestId("watch-add").click();
    await page.getByText("invalid symbol BAD!SYM").waitFor({ timeout: 2000 });
  });

  const admin = await newPage(browser);
  await step(admin, "admin-stats", async () => {
    await admin.goto(g.url + "/");
    await admin.getByTestId("login-user").fill("e2e-admin");
    await admin.getByRole("combobox").selectOption("admin");
    await admin.getByTestId("login-submit").click();
    await admin.getByTestId("admin-stats").filter({ hasText: "connections" }).waitFor({ timeout: 8000 });
  });
}

async function restartFlow(browser, redis) {
  const port = await gw.freePort();
  const env = gw.redisNodeEnv(redis);
  let g = await gw.startGateway({ port, env });
  cleanups.push(() => g.stop());
  startFeeder(() => g.url, ["TSLA", "NVDA"]);
  const sid = gw.redisSession(redis, "e2e-restart");
  const page = await newPage(browser, { cookie: "connect.sid=" + encodeURIComponent(sid), url: g.url });
  await step(page, "session-cookie-login", async () => {
    await openWithSession(page, g.url, ["TSLA", "NVDA"]);
    await pricesMove(page, ["TSLA", "NVDA"]);
  });
  await step(page, "gateway-killed-reconnecting", async () => {
    await g.kill();
    await status(page).filter({ hasText: /^(reconnecting|offline)$/ }).waitFor({ timeout: 5000 });
    await page.getByTestId("degraded").waitFor({ timeout: 3000 });
  });
  await step(page, "gateway-restarted-connected-watchlist-live", async () => {
    g = await gw.startGateway({ port, env });
    await status(page).filter({ hasText: /^connected$/ }).waitFor({ timeout: 15000 });
    await pricesMove(page, ["TSLA", "NVDA"]);
    await page.getByTestId("degraded").waitFor({ state: "detached" });
  });
}

async function clusterFlow(browser, redis, { blockWebsocket }) {
  const ports = [await gw.freePort(), await gw.freePort()];
  const nodes = [];
  for (const port of ports) {
    const g = await gw.startGateway({ port, env: gw.redisNodeEnv(redis, { TRADEWIRE_ADVERTISE_URL: "http://127.0.0.1:" + port }) });
    cleanups.push(() => g.stop());
    nodes.push(g);
  }
  const proxy = await startProxy(ports, { blockWebsocket });
  startFeeder(() => nodes[0].url, ["GOOGL", "AMZN"]);
  cleanups.push(() => proxy.close());
  const user = blockWebsocket ? "e2e-polling" : "e2e-cluster";
  const sid = gw.redisSession(redis, user);
  const page = await newPage(browser, { cookie: "connect.sid=" + encodeURIComponent(sid), url: proxy.url });
  const name = blockWebsocket ? "websockets-blocked-polling-only" : "two-nodes-round-robin";
  await step(page, name, async () => {
    await openWithSession(page, proxy.url, ["GOOGL", "AMZN"]);
    const transport = () => page.evaluate(() => window.tradewire.socket.io.engine.transport.name);
    if (blockWebsocket) {
      await pricesMove(page, ["GOOGL", "AMZN"]);
      assert.equal(await transport(), "polling");
    } else {
      await page.waitForFunction(() => window.tradewire.socket.io.engine.transport.name === "websocket", null, { timeout: 10000 });
      await pricesMove(page, ["GOOGL", "AMZN"]);
    }
    // a trade published on each node reaches the page
    for (const [i, g] of nodes.entries()) {
      const r = await gw.publish(g.url, { type: "trade.executed", userId: user, trade: { symbol: "GOOGL", side: "sell", quantity: i + 1, price: 171 } });
      assert.equal(r.status, 202);
      await page.getByTestId("toast").filter({ hasText: `SELL ${i + 1} GOOGL` }).waitFor({ timeout: 3000 });
    }
    assert.equal(await status(page).textContent(), "connected");
  });
}

const started = Date.now();
let failed = null;
const browser = await chromium.launch({
  executablePath,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ], // playwright gives each launch a fresh temporary --user-data-dir

});
try {
  await devModeFlow(browser);
  const redis = await gw.startRedis();
  cleanups.push(() => redis.stop());
  await restartFlow(browser, redis);
  await clusterFlow(browser, redis, { blockWebsocket: false });
  await clusterFlow(browser, redis, { blockWebsocket: true });
} catch (err) {
  failed = err;
} finally {
  for (const f of cleanups.reverse()) await f().catch(() => {});
  await browser.close();
}
console.log(`${results.length} steps in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${artifacts}`);
if (failed) {
  console.error("FAIL:", failed);
  process.exit(1);
}
