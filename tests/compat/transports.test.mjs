// Transport selection, the polling → websocket upgrade, and a healthy
// heartbeat on each transport.
import assert from "node:assert/strict";
import { test } from "node:test";
import { PING_INTERVAL, client, connected, onceConnected, once, range, record, request, sleep, until } from "./helpers.mjs";

test("websocket only: connects on websocket and stays there", async (t) => {
  const socket = await connected(t, "/", { transports: ["websocket"] });
  assert.equal(socket.io.engine.transport.name, "websocket");
  assert.match(socket.id, /^[A-Za-z0-9_-]{20}$/);
  assert.notEqual(socket.id, socket.io.engine.id, "the socket id is not the Engine.IO session id");
  const me = await request(socket, "whoami");
  assert.equal(me.id, socket.id);
  assert.equal(me.transport, "websocket");
});

test("polling only: stays on polling and survives several heartbeats", async (t) => {
  const socket = await connected(t, "/", { transports: ["polling"] });
  let pings = 0;
  socket.io.engine.on("ping", () => pings++);
  let disconnected = null;
  socket.on("disconnect", (reason) => (disconnected = reason));
  await sleep(PING_INTERVAL * 3 + 100);
  assert.equal(disconnected, null);
  assert.ok(pings >= 2, `expected at least 2 pings, got ${pings}`);
  assert.equal(socket.io.engine.transport.name, "polling");
  assert.equal((await request(socket, "whoami")).transport, "polling");
});

test("websocket: survives several heartbeats", async (t) => {
  const socket = await connected(t, "/", { transports: ["websocket"] });
  let pings = 0;
  socket.io.engine.on("ping", () => pings++);
  let disconnected = null;
  socket.on("disconnect", (reason) => (disconnected = reason));
  await sleep(PING_INTERVAL * 3 + 100);
  assert.equal(disconnected, null);
  assert.ok(pings >= 2, `expected at least 2 pings, got ${pings}`);
});

test("default transports: opens on polling, then upgrades to websocket", async (t) => {
  const socket = client(t, "/"); // transports default to ["polling", "websocket"]
  assert.equal(socket.io.engine.transport.name, "polling");
  const upgraded = once(socket.io.engine, "upgrade");
  await onceConnected(socket);
  const [transport] = await upgraded;
  assert.equal(transport.name, "websocket");
  assert.equal(socket.io.engine.transport.name, "websocket");
  assert.equal((await request(socket, "whoami")).transport, "websocket");
});

// Holds back the websocket probe of an engine until gate resolves, so the
// upgrade happens while traffic is flowing on polling.
function holdUpgrade(engine, gate) {
  const create = engine.createTransport.bind(engine);
  engine.createTransport = (name) => {
    const transport = create(name);
    if (name === "websocket") {
      const open = transport.open.bind(transport);
      transport.open = () => {
        gate.then(open);
        return transport;
      };
    }
    return transport;
  };
}

test("upgrade loses and reorders nothing: a stream and acks that span the upgrade", async (t) => {
  const socket = client(t, "/");
  const ticks = record(socket, "tick");
  holdUpgrade(socket.io.engine, until(() => ticks.length >= 10, 5000, "10 ticks").catch(() => {}));
  let upgradedAt = null;
  socket.io.engine.on("upgrade", () => (upgradedAt = ticks.length));
  await onceConnected(socket);
  assert.equal(socket.io.engine.transport.name, "polling", "the upgrade had not happened yet at connect");
  const streamed = request(socket, "stream", { from: 1, to: 60, intervalMs: 5 });
  const echoes = [];
  for (let i = 0; i < 30; i++) {
    echoes.push(socket.timeout(3000).emitWithAck("echo", i));
    await sleep(6);
  }
  assert.deepEqual(await Promise.all(echoes), range(0, 29));
  assert.deepEqual(await streamed, { sent: 60 });
  await until(() => ticks.length >= 60, 3000, "60 ticks");
  assert.deepEqual(ticks, range(1, 60));
  assert.ok(upgradedAt >= 10 && upgradedAt < 60, `the upgrade happened mid-stream (after tick ${upgradedAt})`);
  assert.equal(socket.io.engine.transport.name, "websocket");
});
