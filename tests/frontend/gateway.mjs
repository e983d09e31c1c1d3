// Starts the tradewire binary (TRADEWIRE_BIN, built by frontend_test.go or
// by this helper with `go build`) for the browser and hook tests.
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:net";
import { mkdtempSync } from "node:fs";
import { createHmac, randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export const API_KEY = "frontend-test-key-0123456789";

/** The gateway binary: $TRADEWIRE_BIN, or built once into a temp dir. */
export function gatewayBin() {
  if (process.env.TRADEWIRE_BIN) return process.env.TRADEWIRE_BIN;
  const out = join(mkdtempSync(join(tmpdir(), "tradewire-bin-")), "tradewire");
  execFileSync("go", ["build", "-o", out, "./cmd/tradewire"], { cwd: repo, stdio: "inherit" });
  process.env.TRADEWIRE_BIN = out;
  return out;
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

/**
 * Starts a gateway on 127.0.0.1:port (a free one when not given) with env on
 * top of the test defaults (dev mode, generous connection rate, a known API
 * key), waits until it listens and returns {url, port, proc, stop(), kill(), logs}.
 */
export async function startGateway({ port, env = {}, quiet = true } = {}) {
  port ??= await freePort();
  const logs = [];
  const proc = spawn(gatewayBin(), ["-addr", "127.0.0.1:" + port], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TRADEWIRE_DEV_MODE: "true",
      TRADEWIRE_API_KEYS: API_KEY,
      TRADEWIRE_RATE_CONNECTIONS_PER_MINUTE: "10000",
      TRADEWIRE_RATE_EVENTS_PER_MINUTE: "10000",
      TRADEWIRE_DRAIN_WINDOW: "0s",
      TRADEWIRE_LOG_LEVEL: "info",
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let buf = "";
  let raceSeen = false;
  const listening = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("gateway did not listen within 15 s:\n" + logs.join("\n"))), 15000);
    proc.stderr.on("data", (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        logs.push(line);
        if (!quiet || raceSeen || line.includes("DATA RACE")) {
          raceSeen ||= line.includes("DATA RACE"); // the race report follows: print it whole
          process.stderr.write("gateway: " + line + "\n");
        }
        if (line.includes('"msg":"listening"')) {
          clearTimeout(timer);
          resolve();
        }
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error("gateway exited with " + code + ":\n" + logs.join("\n")));
    });
  });
  await listening;
  const exited = new Promise((r) => proc.on("exit", r));
  return {
    url: "http://127.0.0.1:" + port,
    port,
    proc,
    logs,
    /** Graceful stop (SIGTERM), resolves on exit. */
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      await exited;
    },
    /** Hard kill (SIGKILL), resolves on exit. */
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await exited;
    },
  };
}

/** Dev login: {userId, role, tier, sessionID, cookie}. */
export async function devLogin(url, userId, extra = {}) {
  const r = await fetch(url + "/dev/login", { method: "POST", body: JSON.stringify({ userId, ...extra }) });
  if (!r.ok) throw new Error("dev login: " + r.status + " " + (await r.text()));
  return r.json();
}

/** POST /api/v1/events with the test key; returns {status, body}. */
export async function publish(url, events) {
  const r = await fetch(url + "/api/v1/events", {
    method: "POST",
    headers: { Authorization: "Bearer " + API_KEY, "Content-Type": "application/json" },
    body: JSON.stringify(events),
  });
  return { status: r.status, body: await r.json() };
}

/** POST /dev/logout. */
export async function devLogout(url, sessionID) {
  const r = await fetch(url + "/dev/logout", { method: "POST", body: JSON.stringify({ sessionID }) });
  return r.json();
}

/** Sockets in a room, cluster-wide (GET /api/v1/rooms/{room}/sockets). */
export async function roomSockets(url, room) {
  const r = await fetch(url + "/api/v1/rooms/" + encodeURIComponent(room) + "/sockets", {
    headers: { Authorization: "Bearer " + API_KEY },
  });
  return (await r.json()).sockets;
}

/** Polls fn until it returns a truthy value or the timeout passes. */
export async function waitFor(fn, { timeout = 5000, interval = 50, what = "condition" } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Starts a private redis-server on a free port; returns {url, port, stop()}. */
export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "tradewire-redis-"));
  const proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], {
    stdio: "ignore",
  });
  await waitFor(async () => {
    try {
      return execFileSync("redis-cli", ["-p", String(port), "PING"], { stdio: ["ignore", "pipe", "ignore"] }).toString().includes("PONG");
    } catch {
      return false;
    }
  }, { timeout: 10000, what: "redis-server" });
  const exited = new Promise((r) => proc.on("exit", r));
  return {
    url: "redis://127.0.0.1:" + port,
    port,
    cli: (...args) => execFileSync("redis-cli", ["-p", String(port), ...args]).toString(),
    async stop() {
      proc.kill("SIGKILL");
      await exited;
    },
  };
}

export const SESSION_SECRET = "frontend-test-secret";

/**
 * Writes an express-session (connect-redis format) for userId into Redis, as
 * the Express app does after a Passport login, and returns its signed id
 * (s:<sid>.<signature>, cookie-signature).
 */
export function redisSession(redis, userId, { secret = SESSION_SECRET, prefix = "sess:", ttl = 3600 } = {}) {
  const sid = randomBytes(18).toString("base64url");
  const sess = { cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: "/" }, passport: { user: userId } };
  redis.cli("SET", prefix + sid, JSON.stringify(sess), "EX", String(ttl));
  const sig = createHmac("sha256", secret).update(sid).digest("base64").replace(/=+$/, "");
  return "s:" + sid + "." + sig;
}

/** Gateway settings of a Redis-backed, non-dev node (sessions survive a restart). */
export function redisNodeEnv(redis, extra = {}) {
  return {
    TRADEWIRE_DEV_MODE: "false",
    TRADEWIRE_REDIS_URL: redis.url,
    TRADEWIRE_CLUSTER_SECRET: "frontend-e2e-cluster-secret-0123456789",
    TRADEWIRE_SESSION_STORE: "redis",
    TRADEWIRE_SESSION_SECRETS: SESSION_SECRET,
    TRADEWIRE_DEMO_FEED: "true",
    TRADEWIRE_DASHBOARD: "true",
    ...extra,
  };
}
