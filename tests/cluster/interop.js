// Node side of the redisadapter interop tests.
//
// Starts a socket.io 4.8 server with @socket.io/redis-adapter (classic, or
// sharded when MODE=sharded) on REDIS_URL, connects one socket.io-client to
// it (socket "node-client", joined to room "noderoom"), then reads one JSON
// command per line on stdin and writes one JSON line per result or event on
// stdout. Binary values travel as {"$bin": "<hex>"}.
"use strict";

const http = require("http");
const readline = require("readline");
const { Server } = require("socket.io");
const { io: ioc } = require("socket.io-client");
const { createClient } = require("redis");
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
const { Emitter } = require("@socket.io/redis-emitter");

const REDIS_URL = process.env.REDIS_URL;
const MODE = process.env.MODE || "classic";

function toJSON(v) {
  if (Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
    return { $bin: Buffer.from(v.buffer ? v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) : v).toString("hex") };
  }
  if (Array.isArray(v)) return v.map(toJSON);
  if (v && typeof v === "object" && !(v instanceof Date)) {
    const out = {};
    for (const k of Object.keys(v)) out[k] = toJSON(v[k]);
    return out;
  }
  return v;
}

function fromJSON(v) {
  if (Array.isArray(v)) return v.map(fromJSON);
  if (v && typeof v === "object") {
    if (typeof v.$bin === "string") return Buffer.from(v.$bin, "hex");
    const out = {};
    for (const k of Object.keys(v)) out[k] = fromJSON(v[k]);
    return out;
  }
  return v;
}

function send(obj) {
  process.stdout.write(JSON.stringify(toJSON(obj)) + "\n");
}

async function main() {
  const pub = createClient({ url: REDIS_URL });
  const sub = pub.duplicate();
  const emitterClient = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect(), emitterClient.connect()]);

  const httpServer = http.createServer();
  const io = new Server(httpServer);
  io.adapter(MODE === "sharded"
    ? createShardedAdapter(pub, sub, { subscriptionMode: process.env.SUBSCRIPTION_MODE || "dynamic" })
    : createAdapter(pub, sub, { requestsTimeout: 3000 }));
  const emitter = new Emitter(emitterClient);

  io.on("connection", (socket) => {
    socket.data = { user: "node-user" };
    socket.join("noderoom");
  });
  io.on("ping", (...args) => {
    const cb = args[args.length - 1];
    send({ type: "serverSideEmit", args: args.slice(0, -1).concat(typeof cb === "function" ? [] : [cb]) });
    if (typeof cb === "function") cb("node-pong");
  });
  io.on("hello", (...args) => send({ type: "serverSideEmit", args }));

  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  const port = httpServer.address().port;
  const client = ioc(`http://127.0.0.1:${port}`, { transports: ["websocket"] });
  client.onAny((event, ...args) => {
    const last = args[args.length - 1];
    if (typeof last === "function") {
      last("node-ack");
      args = args.slice(0, -1);
    }
    send({ type: "clientEvent", event, args });
  });
  await new Promise((resolve) => client.on("connect", resolve));
  // wait until the server-side socket joined its room
  while (!io.of("/").adapter.rooms.has("noderoom")) {
    await new Promise((r) => setTimeout(r, 10));
  }
  send({ type: "ready", clientId: client.id, mode: MODE });

  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const cmd = JSON.parse(line);
    const args = fromJSON(cmd.args || []);
    try {
      let result = null;
      switch (cmd.cmd) {
        case "emit":
          (cmd.room ? io.to(cmd.room) : io).emit(...args);
          break;
        case "exceptEmit":
          io.except(cmd.room).emit(...args);
          break;
        case "fetchSockets": {
          const sockets = await (cmd.room ? io.in(cmd.room) : io).fetchSockets();
          result = sockets.map((s) => ({ id: s.id, rooms: [...s.rooms].sort(), data: s.data, address: s.handshake.address }));
          break;
        }
        case "serverSideEmitWithAck":
          result = await io.serverSideEmitWithAck(...args);
          break;
        case "serverSideEmit":
          io.serverSideEmit(...args);
          break;
        case "serverCount":
          result = await io.of("/").adapter.serverCount();
          break;
        case "allRooms":
          result = [...(await io.of("/").adapter.allRooms())].sort();
          break;
        case "emitWithAck":
          result = await io.timeout(3000).to(cmd.room).emitWithAck(...args);
          break;
        case "socketsJoin":
          io.in(cmd.room).socketsJoin(args[0]);
          break;
        case "emitterEmit":
          (cmd.room ? emitter.to(cmd.room) : emitter).emit(...args);
          break;
        case "emitterJoin":
          emitter.in(cmd.room).socketsJoin(args[0]);
          break;
        case "emitterLeave":
          emitter.in(cmd.room).socketsLeave(args[0]);
          break;
        case "emitterDisconnect":
          emitter.in(cmd.room).disconnectSockets(true);
          break;
        case "emitterServerSideEmit":
          emitter.serverSideEmit(...args);
          break;
        case "exit":
          client.close();
          io.close();
          await Promise.allSettled([pub.quit(), sub.quit(), emitterClient.quit()]);
          send({ type: "result", id: cmd.id, result: "bye" });
          process.exit(0);
      }
      // give fire-and-forget publishes time to leave before acknowledging
      await new Promise((r) => setTimeout(r, 20));
      send({ type: "result", id: cmd.id, result });
    } catch (err) {
      send({ type: "result", id: cmd.id, error: String(err && err.message || err) });
    }
  }
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack || err) + "\n");
  process.exit(1);
});
