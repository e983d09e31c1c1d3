// Shared helpers of the compatibility tests. The Go test (compat_test.go)
// starts the fixture server and passes its URL and binary path in the
// environment; see README.md to run the files by hand.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

export const URL = process.env.TRADEWIRE_COMPAT_URL;
export const SERVER_BIN = process.env.TRADEWIRE_COMPAT_SERVER_BIN;
if (!URL) {
  throw new Error("TRADEWIRE_COMPAT_URL is not set: run `go test ./tests/compat/` (or see tests/compat/README.md)");
}

// The fixture's heartbeat (defaults of the server flags -ping-interval and
// -ping-timeout).
export const PING_INTERVAL = 300;
export const PING_TIMEOUT = 1000;

// Transport setups every feature test runs on: the two transports alone
// and the default (polling, then upgrade to websocket).
export const TRANSPORTS = {
  websocket: ["websocket"],
  polling: ["polling"],
  upgrade: ["polling", "websocket"],
};

/**
 * A socket.io-client socket on its own Manager (forceNew), without
 * automatic reconnection unless opts says so, to opts.url (default: the
 * fixture). It is disconnected when the test ends.
 */
export function client(t, nsp = "/", { url = URL, ...opts } = {}) {
  const socket = io(url + nsp, { forceNew: true, reconnection: false, ...opts });
  t.after(() => socket.disconnect());
  return socket;
}

/** Connects a client and waits for "connect"; rejects on connect_error. */
export async function connected(t, nsp = "/", opts = {}) {
  const socket = client(t, nsp, opts);
  await onceConnected(socket);
  return socket;
}

/** Resolves at the socket's next "connect", rejects at its next connect_error. */
export function onceConnected(socket, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no connect within ${ms}ms`)), ms);
    const onConnect = () => done();
    const onError = (err) => done(err);
    function done(err) {
      clearTimeout(timer);
      socket.off("connect", onConnect);
      socket.off("connect_error", onError);
      err ? reject(err) : resolve(socket);
    }
    socket.on("connect", onConnect);
    socket.on("connect_error", onError);
  });
}

/** Resolves once the socket's connection runs on websocket. */
export async function upgraded(socket, ms = 3000) {
  if (socket.io.engine.transport.name !== "websocket") await once(socket.io.engine, "upgrade", { ms });
}

/**
 * Resolves with the arguments of emitter's next event that passes filter,
 * or rejects after ms.
 */
export function once(emitter, event, { ms = 3000, filter = () => true } = {}) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`no "${event}" within ${ms}ms`));
    }, ms);
    function listener(...args) {
      if (!filter(...args)) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args);
    }
    emitter.on(event, listener);
  });
}

/** Emits with an ack and a timeout; resolves with the first ack argument. */
export function request(socket, event, ...args) {
  return socket.timeout(3000).emitWithAck(event, ...args);
}

/** Records the first argument of every event named event. */
export function record(socket, event) {
  const got = [];
  socket.on(event, (first) => got.push(first));
  return got;
}

/**
 * Waits until pred() is true, polling every 10ms; rejects after ms. what
 * names the condition; a function is called at the timeout, so the message
 * can say what the state was then.
 */
export async function until(pred, ms = 3000, what = "condition") {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === "function" ? what() : what}`);
    await sleep(10);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Numbers from..to inclusive. */
export const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * A socket on "/" that joined "observers": it sees "observed:connect" and
 * "observed:disconnect" for every socket of the server it is connected to.
 * observer.disconnectOf(id) resolves with the server-side reason.
 */
export async function observer(t, opts = {}) {
  const socket = await connected(t, "/", { transports: ["websocket"], ...opts });
  await request(socket, "observe");
  const disconnects = new Map();
  const waiters = new Map();
  socket.on("observed:disconnect", (ev) => {
    disconnects.set(ev.id, ev.reason);
    waiters.get(ev.id)?.(ev.reason);
  });
  return {
    socket,
    disconnectOf(id, ms = 3000) {
      if (disconnects.has(id)) return Promise.resolve(disconnects.get(id));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`server saw no disconnect of ${id} within ${ms}ms`)), ms);
        waiters.set(id, (reason) => {
          clearTimeout(timer);
          resolve(reason);
        });
      });
    },
  };
}

/**
 * Starts another fixture server process (compat_test.go passes its binary)
 * with extra flags; resolves with {url, addr, stop()}. It is killed when the
 * test ends.
 */
export async function spawnServer(t, args = []) {
  if (!SERVER_BIN) throw new Error("TRADEWIRE_COMPAT_SERVER_BIN is not set");
  const proc = spawn(SERVER_BIN, args, { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  t.after(() => proc.kill("SIGKILL"));
  const lines = createInterface({ input: proc.stdout });
  const addr = await Promise.race([
    new Promise((resolve) => lines.once("line", resolve)),
    exited.then((code) => Promise.reject(new Error(`server exited with ${code} before printing its address`))),
  ]);
  return {
    addr,
    url: `http://${addr}`,
    async stop(signal = "SIGTERM") {
      proc.kill(signal);
      await exited;
    },
  };
}
