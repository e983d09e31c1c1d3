// Connection state recovery: a client that comes back gets exactly what it
// missed, in order, once; one that cannot be recovered gets a fresh session
// and nothing of the past.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";
import {
  PING_INTERVAL,
  PING_TIMEOUT,
  TRANSPORTS,
  connected,
  observer,
  onceConnected,
  once,
  range,
  record,
  request,
  sleep,
  spawnServer,
  until,
} from "./helpers.mjs";

// Server-side reasons after which a session is kept for recovery.
const RECOVERABLE = ["transport close", "transport error", "ping timeout", "forced close"];

// Drops the client's connection the way a network does: the websocket is
// destroyed without a close frame; polling closes its engine.
function dropConnection(socket) {
  const transport = socket.io.engine.transport;
  if (transport.name === "websocket") transport.ws.terminate();
  else socket.io.engine.close();
}

// A round trip: anything the server wrote to the socket before has arrived.
const settle = (socket) => request(socket, "echo", "settle");

/**
 * Connects a client and a controller on nsp (and an observer on "/"), and
 * gives the client a room and data. The controller makes the server emit
 * while the client is away; ticks and roomTicks record what the client got.
 */
async function setup(t, nsp, opts = {}) {
  const obs = await observer(t);
  const auth = nsp === "/admin" ? { token: "secret" } : undefined;
  const ctl = await connected(t, nsp, { transports: ["websocket"], auth });
  const socket = await connected(t, nsp, { auth, ...opts });
  const room = `room-${randomUUID()}`;
  await request(socket, "room:join", room);
  await request(socket, "data:set", { nick: "alice" });
  const ticks = record(socket, "tick");
  const roomTicks = record(socket, "room-tick");
  return { obs, ctl, socket, room, ticks, roomTicks, id: socket.id };
}

/** Drops the client and waits until the server has seen it go. */
async function drop(s) {
  const gone = once(s.socket, "disconnect");
  dropConnection(s.socket);
  await gone;
  const reason = await s.obs.disconnectOf(s.id);
  assert.ok(RECOVERABLE.includes(reason), `server-side reason ${reason} should be recoverable`);
}

const stream = (socket, req) => request(socket, "stream", req);

for (const [name, transports] of Object.entries(TRANSPORTS)) {
  test(`recovery over ${name}: exactly the missed events, in order, with rooms and data restored`, async (t) => {
    const s = await setup(t, "/", { transports });
    assert.deepEqual(await stream(s.socket, { from: 1, to: 5 }), { sent: 5 });
    assert.deepEqual(s.ticks, range(1, 5));
    await drop(s);

    // While it is away: events to its id and to its room are kept for it;
    // events to a room it is not in are not.
    assert.deepEqual(await stream(s.ctl, { target: s.id, from: 6, to: 10 }), { sent: 5 });
    assert.deepEqual(await stream(s.ctl, { target: s.room, event: "room-tick", from: 1, to: 2 }), { sent: 2 });
    assert.deepEqual(await stream(s.ctl, { target: `room-${randomUUID()}`, event: "room-tick", from: 100, to: 101 }), { sent: 2 });
    assert.deepEqual(await stream(s.ctl, { target: s.id, from: 11, to: 12 }), { sent: 2 });

    s.socket.connect();
    await onceConnected(s.socket);
    assert.equal(s.socket.recovered, true);
    assert.equal(s.socket.id, s.id, "the socket id is restored");
    assert.deepEqual(s.ticks, range(1, 12), "missed events exactly once, in order");
    assert.deepEqual(s.roomTicks, [1, 2]);

    const me = await request(s.socket, "whoami");
    assert.equal(me.recovered, true);
    assert.deepEqual(me.rooms, [s.id, s.room].sort());
    assert.deepEqual(me.data, { nick: "alice" });

    // Live again, on the same offsets.
    assert.deepEqual(await stream(s.socket, { from: 13, to: 14 }), { sent: 2 });
    assert.deepEqual(await stream(s.ctl, { target: s.room, event: "room-tick", from: 3, to: 3 }), { sent: 1 });
    await settle(s.socket);
    assert.deepEqual(s.ticks, range(1, 14));
    assert.deepEqual(s.roomTicks, [1, 2, 3]);
  });
}

// Describes how got differs from 1..n: missing, duplicated, out of order.
function sequenceReport(got, n) {
  const seen = new Map();
  got.forEach((v) => seen.set(v, (seen.get(v) ?? 0) + 1));
  const missing = range(1, n).filter((v) => !seen.has(v));
  const duplicated = [...seen].filter(([, c]) => c > 1).map(([v]) => v);
  const outOfOrder = got.filter((v, i) => i > 0 && v < got[i - 1]);
  return { missing, duplicated, outOfOrder };
}

// The server streams bursts of events back to back to several clients
// while each drops its connection again and again and reconnects by itself:
// each recovery must replay exactly the events missed, before any live one,
// so every client sees 1..total once each, in order.
test("recovery while the server keeps streaming: no gap, no duplicate, no reorder", async (t) => {
  const total = 9000;
  const drops = 20;
  const run = async () => {
    const s = await setup(t, "/", { transports: ["websocket"], reconnection: true, reconnectionDelay: 20, randomizationFactor: 0 });
    const streamed = s.ctl.timeout(30_000).emitWithAck("stream", { target: s.id, from: 1, to: total, burst: 30, intervalMs: 1 });
    const recovered = [];
    for (let drop = 1; drop <= drops; drop++) {
      const at = drop * Math.floor(total / (drops + 1));
      await until(() => s.ticks.length >= at, 10_000, () =>
        `${at} ticks: have ${s.ticks.length} (last ${s.ticks.at(-1)}), drop ${drop}, connected ${s.socket.connected}, ` +
        `transport ${s.socket.io.engine?.transport?.name} ${s.socket.io.engine?.readyState}, recovered ${s.socket.recovered}`);
      const gone = once(s.socket, "disconnect");
      dropConnection(s.socket);
      await gone;
      await onceConnected(s.socket); // reconnects by itself
      recovered.push(s.socket.recovered);
    }
    assert.deepEqual(await streamed, { sent: total });
    await settle(s.socket);
    return { recovered, ticks: s.ticks };
  };
  const results = await Promise.all(Array.from({ length: 5 }, run));
  const brief = (list) => (list.length > 10 ? [...list.slice(0, 10), `… ${list.length} in all`] : list);
  for (const { recovered, ticks } of results) {
    assert.deepEqual(recovered, Array(drops).fill(true));
    const report = sequenceReport(ticks, total);
    assert.deepEqual(
      { received: ticks.length, missing: brief(report.missing), duplicated: brief(report.duplicated), outOfOrder: brief(report.outOfOrder) },
      { received: total, missing: [], duplicated: [], outOfOrder: [] },
    );
  }
});

test("recovery after a ping timeout", async (t) => {
  const s = await setup(t, "/", { transports: ["websocket"], reconnection: true, reconnectionDelay: 100 });
  await stream(s.socket, { from: 1, to: 2 });
  const gone = once(s.socket, "disconnect", { ms: 5 * (PING_INTERVAL + PING_TIMEOUT) });
  const engine = s.socket.io.engine;
  const send = engine._sendPacket.bind(engine);
  engine._sendPacket = (type, ...rest) => (type === "pong" ? undefined : send(type, ...rest));
  assert.equal(await s.obs.disconnectOf(s.id, 5 * (PING_INTERVAL + PING_TIMEOUT)), "ping timeout");
  const back = onceConnected(s.socket); // reconnects by itself
  await gone;
  await stream(s.ctl, { target: s.id, from: 3, to: 4 });
  await back;
  assert.equal(s.socket.recovered, true);
  await settle(s.socket);
  assert.deepEqual(s.ticks, range(1, 4));
});

test("recovery skips middlewares: /admin restores even though the auth changed", async (t) => {
  const s = await setup(t, "/admin", { transports: ["polling"] });
  await stream(s.socket, { from: 1, to: 1 });
  await drop(s);
  await stream(s.ctl, { target: s.id, from: 2, to: 3 });
  s.socket.auth = { token: "wrong" };
  s.socket.connect();
  await onceConnected(s.socket);
  assert.equal(s.socket.recovered, true);
  assert.deepEqual(s.ticks, range(1, 3));
  assert.deepEqual((await request(s.socket, "whoami")).data, { nick: "alice" });
});

describe("recovery that cannot be served: a fresh session and no partial replay", () => {
  // After a failed recovery the client must be a new socket with nothing of
  // the old one: no rooms, no data, and none of the missed events.
  async function assertFresh(s, ticksBefore) {
    assert.equal(s.socket.recovered, false);
    assert.notEqual(s.socket.id, s.id, "a new socket id");
    await settle(s.socket);
    assert.deepEqual(s.ticks, ticksBefore, "no missed event is replayed");
    assert.deepEqual(s.roomTicks, []);
    const me = await request(s.socket, "whoami");
    assert.equal(me.recovered, false);
    assert.deepEqual(me.rooms, [s.socket.id]);
    assert.equal(me.data, null);
  }

  test("offset too old: more was missed than the server buffers (/tight keeps 10 packets)", async (t) => {
    const s = await setup(t, "/tight", { transports: ["websocket"] });
    await stream(s.socket, { from: 1, to: 3 });
    await drop(s);
    await stream(s.ctl, { target: s.id, from: 4, to: 30 });
    await stream(s.ctl, { target: s.room, event: "room-tick", from: 1, to: 2 });
    s.socket.connect();
    await onceConnected(s.socket);
    await assertFresh(s, range(1, 3));
  });

  test("control: the same namespace recovers when fewer packets were missed than it buffers", async (t) => {
    const s = await setup(t, "/tight", { transports: ["websocket"] });
    await stream(s.socket, { from: 1, to: 3 });
    await drop(s);
    await stream(s.ctl, { target: s.id, from: 4, to: 9 });
    s.socket.connect();
    await onceConnected(s.socket);
    assert.equal(s.socket.recovered, true);
    assert.deepEqual(s.ticks, range(1, 9));
  });

  test("session expired: away longer than the recovery window (/brief keeps 300ms)", async (t) => {
    const s = await setup(t, "/brief", { transports: ["websocket"] });
    await stream(s.socket, { from: 1, to: 3 });
    await drop(s);
    await stream(s.ctl, { target: s.id, from: 4, to: 5 });
    await sleep(500);
    s.socket.connect();
    await onceConnected(s.socket);
    await assertFresh(s, range(1, 3));
  });

  test("disconnected by the server: not a recoverable reason", async (t) => {
    const s = await setup(t, "/", { transports: ["websocket"] });
    await stream(s.socket, { from: 1, to: 2 });
    const gone = once(s.socket, "disconnect");
    s.socket.emit("disconnect-me", { close: false });
    await gone;
    assert.equal(await s.obs.disconnectOf(s.id), "server namespace disconnect");
    await stream(s.ctl, { target: s.id, from: 3, to: 4 });
    s.socket.connect();
    await onceConnected(s.socket);
    await assertFresh(s, range(1, 2));
  });

  test("disconnected by the client: not a recoverable reason", async (t) => {
    const s = await setup(t, "/", { transports: ["polling"] });
    await stream(s.socket, { from: 1, to: 2 });
    s.socket.disconnect();
    assert.equal(await s.obs.disconnectOf(s.id), "client namespace disconnect");
    await stream(s.ctl, { target: s.id, from: 3, to: 4 });
    s.socket.connect();
    await onceConnected(s.socket);
    await assertFresh(s, range(1, 2));
  });

  test("server restarted: the new process does not know the session", async (t) => {
    const first = await spawnServer(t);
    const opts = { url: first.url, transports: ["websocket"], reconnection: true, reconnectionDelay: 100, randomizationFactor: 0 };
    const s = await setup(t, "/", opts);
    await stream(s.socket, { from: 1, to: 3 });
    const gone = once(s.socket, "disconnect");
    await first.stop();
    await gone;
    const reconnected = once(s.socket, "connect", { ms: 5000 }); // connect_errors until the server is back
    await spawnServer(t, ["-addr", first.addr]);
    await reconnected;
    await assertFresh(s, range(1, 3));
  });
});
