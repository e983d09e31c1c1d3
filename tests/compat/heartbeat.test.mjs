// Heartbeat: the server pings, and closes a connection whose pongs stop.
import assert from "node:assert/strict";
import { test } from "node:test";
import WebSocket from "ws";
import { PING_INTERVAL, PING_TIMEOUT, URL, connected, observer, once } from "./helpers.mjs";

// Makes a socket.io-client engine stop answering pings.
function suppressPongs(engine) {
  const send = engine._sendPacket.bind(engine);
  engine._sendPacket = (type, ...rest) => (type === "pong" ? undefined : send(type, ...rest));
}

for (const transports of [["websocket"], ["polling"]]) {
  test(`a socket.io-client whose pongs are suppressed is closed with "ping timeout" (${transports})`, async (t) => {
    const obs = await observer(t);
    const socket = await connected(t, "/", { transports });
    const id = socket.id;
    suppressPongs(socket.io.engine);
    const start = Date.now();
    const [reason] = await once(socket, "disconnect", { ms: 5 * (PING_INTERVAL + PING_TIMEOUT) });
    const took = Date.now() - start;
    assert.match(reason, /^transport (close|error)$/);
    assert.equal(await obs.disconnectOf(id), "ping timeout");
    assert.ok(took >= PING_TIMEOUT, `closed after ${took}ms, before the ping timeout could pass`);
  });
}

// A raw websocket client speaking the protocol by hand.
function rawSocketIO(t) {
  const ws = new WebSocket(`${URL.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`);
  t.after(() => ws.terminate());
  const frames = [];
  const waiters = [];
  ws.on("message", (data, binary) => {
    frames.push({ at: Date.now(), data: binary ? data : data.toString() });
    waiters.splice(0).forEach((w) => w());
  });
  const closed = new Promise((resolve) => ws.on("close", (code) => resolve({ at: Date.now(), code })));
  async function next(ms = 3000) {
    const end = Date.now() + ms;
    while (frames.length === 0) {
      if (Date.now() > end) throw new Error(`no frame within ${ms}ms`);
      await new Promise((r) => {
        waiters.push(r);
        setTimeout(r, 50);
      });
    }
    return frames.shift();
  }
  return { ws, next, closed, frames };
}

test("a raw websocket client that never answers pings is closed pingTimeout after the ping", async (t) => {
  const raw = rawSocketIO(t);
  const open = await raw.next();
  assert.match(open.data, /^0\{"sid":"[A-Za-z0-9_-]{20}","upgrades":\[\],/);
  const { pingInterval, pingTimeout, maxPayload } = JSON.parse(open.data.slice(1));
  assert.deepEqual({ pingInterval, pingTimeout, maxPayload }, { pingInterval: PING_INTERVAL, pingTimeout: PING_TIMEOUT, maxPayload: 1000000 });
  raw.ws.send("40");
  assert.match((await raw.next()).data, /^40\{"sid":"[A-Za-z0-9_-]{20}","pid":"[A-Za-z0-9_-]{20}\.[A-Za-z0-9_-]{20}"\}$/);
  const ping = await raw.next();
  assert.equal(ping.data, "2");
  assert.ok(ping.at - open.at >= PING_INTERVAL - 50, `first ping after ${ping.at - open.at}ms`);
  const closed = await raw.closed;
  const after = closed.at - ping.at;
  assert.ok(after >= PING_TIMEOUT - 50 && after < PING_TIMEOUT + 1500, `closed ${after}ms after the ping`);
  assert.deepEqual(raw.frames, [], "nothing but the close after the unanswered ping");
});

test("a raw websocket client that answers pings stays connected", async (t) => {
  const raw = rawSocketIO(t);
  await raw.next(); // open
  let pings = 0;
  raw.ws.on("message", (data) => {
    if (data.toString() === "2") {
      pings++;
      raw.ws.send("3");
    }
  });
  raw.ws.send("40");
  let closed = false;
  raw.closed.then(() => (closed = true));
  await new Promise((r) => setTimeout(r, PING_INTERVAL * 4));
  assert.equal(closed, false);
  assert.ok(pings >= 3, `answered ${pings} pings`);
});
