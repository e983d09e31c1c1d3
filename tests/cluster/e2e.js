// Node side of the mixed-cluster end-to-end test (tests/cluster/e2e_test.go).
//
// The test runs it twice, so that one can be paused (SIGSTOP) without the
// other:
//   - ROLE=server: a socket.io 4.8 server with @socket.io/redis-adapter on
//     REDIS_URL (createAdapter), or on the Redis Cluster REDIS_CLUSTER
//     (comma-separated host:port, createShardedAdapter) when MODE=sharded.
//     Its namespaces "/" and "/chat" handle the same client events as the Go
//     node (tests/cluster/server/main.go): join, broadcast, socketsJoin,
//     fetchSockets, ask, serverSideEmit; and answer the server-side emits
//     "who" and "relay" the same way. Also an @socket.io/redis-emitter
//     (classic mode only);
//   - ROLE=clients: a pool of socket.io-client sockets, connected on command
//     to any node; each answers an event sent with an ack by
//     {client: <name>, args}.
//
// Protocol: one JSON command per line on stdin, {id, cmd, ...}; one JSON
// line per result ({type:"result", id, result|error}) or client event
// ({type:"event", client, event, args}) on stdout. The first line is
// {type:"ready", url} (url: the server's, null for the clients). Binary
// values travel as {"$bin": "<hex>"}. The process ends when stdin closes.
"use strict";

const http = require("http");
const readline = require("readline");
const { Server } = require("socket.io");
const { io: ioc } = require("socket.io-client");
const { createClient, createCluster } = require("redis");
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
const { Emitter } = require("@socket.io/redis-emitter");

const MODE = process.env.MODE || "classic";
const ROLE = process.env.ROLE || "server";
const NAME = process.env.NODE_NAME || "node";

function isBinary(v) {
  return Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v);
}

function toHex(v) {
  if (v instanceof ArrayBuffer) return Buffer.from(v).toString("hex");
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex");
}

function toJSON(v) {
  if (isBinary(v)) return { $bin: toHex(v) };
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

async function redisClients() {
  if (MODE === "sharded") {
    const rootNodes = process.env.REDIS_CLUSTER.split(",").map((a) => ({ url: `redis://${a}` }));
    const pub = createCluster({ rootNodes });
    const sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    return { pub, sub };
  }
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  const emitterClient = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect(), emitterClient.connect()]);
  return { pub, sub, emitterClient };
}

function sortedRooms(socket) {
  return [...socket.rooms].sort();
}

// NAMESPACES are the namespaces served, with the same events on each.
const NAMESPACES = ["/", "/chat"];

// select applies a broadcast spec {rooms, except} to a namespace or an
// emitter.
function select(target, spec) {
  let op = target;
  if (spec.rooms && spec.rooms.length) op = op.to(spec.rooms);
  if (spec.except && spec.except.length) op = op.except(spec.except);
  return op;
}

// namespaceOf returns the namespace a broadcast spec names (default: dflt).
function namespaceOf(io, spec, dflt) {
  if (spec.nsp === undefined) return dflt;
  if (!NAMESPACES.includes(spec.nsp)) throw new Error(`unknown namespace ${spec.nsp}`);
  return io.of(spec.nsp);
}

function serverEvents(io, nsp) {
  nsp.on("who", (...args) => {
    const cb = args.pop();
    if (typeof cb === "function") cb({ server: NAME, args });
  });
  nsp.on("relay", (...args) => {
    nsp.local.emit("relayed", { server: NAME, args });
  });

  nsp.on("connection", (socket) => {
    socket.data = { server: NAME, name: (socket.handshake.auth || {}).name };

    socket.on("join", (room, ack) => {
      if (typeof room !== "string" || room === "") return ack({ error: "join: a room name is required" });
      socket.join(room);
      ack(sortedRooms(socket));
    });
    socket.on("broadcast", (...args) => {
      const ack = args.pop();
      try {
        const ops = args.map((spec) => [select(namespaceOf(io, spec, nsp), spec), spec]);
        for (const [op, spec] of ops) op.emit(spec.event, ...(spec.args || []));
        ack(true);
      } catch (err) {
        ack({ error: String(err && err.message || err) });
      }
    });
    socket.on("socketsJoin", (req, ack) => {
      nsp.in(req.in || []).socketsJoin(req.rooms);
      ack(true);
    });
    socket.on("fetchSockets", async (req, ack) => {
      try {
        const sockets = await nsp.in((req && req.in) || []).fetchSockets();
        ack(sockets.map((s) => ({ id: s.id, rooms: [...s.rooms].sort(), data: s.data })));
      } catch (err) {
        ack({ error: String(err && err.message || err) });
      }
    });
    socket.on("ask", async (req, ack) => {
      try {
        ack({ answers: await nsp.timeout(req.timeoutMs).to(req.rooms || []).emitWithAck("question", req.question) });
      } catch (err) {
        ack({ answers: err.responses || [], error: String(err && err.message || err) });
      }
    });
    socket.on("serverSideEmit", async (...args) => {
      const ack = args.pop();
      try {
        ack({ replies: await nsp.serverSideEmitWithAck(...args) });
      } catch (err) {
        ack({ replies: [], error: String(err && err.message || err) });
      }
    });
  });
}

// serverRole runs the Node socket.io server and the emitter.
async function serverRole() {
  const { pub, sub, emitterClient } = await redisClients();
  const httpServer = http.createServer();
  const io = new Server(httpServer, { cors: { origin: "*" } });
  io.adapter(MODE === "sharded"
    ? createShardedAdapter(pub, sub)
    : createAdapter(pub, sub, { requestsTimeout: 5000 }));
  const emitter = emitterClient ? new Emitter(emitterClient) : null;
  for (const name of NAMESPACES) serverEvents(io, io.of(name));

  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${httpServer.address().port}`;

  async function handle(cmd) {
    switch (cmd.cmd) {
      case "localRooms": { // rooms of a socket of this Node server
        const s = io.of("/").sockets.get(cmd.sid);
        return s ? sortedRooms(s) : null;
      }
      case "fetchSockets": {
        const sockets = await io.of(cmd.nsp || "/").in(cmd.in || []).fetchSockets();
        return sockets.map((s) => ({ id: s.id, rooms: [...s.rooms].sort(), data: s.data }));
      }
      case "serverSideEmitWithAck":
        return io.serverSideEmitWithAck(...fromJSON(cmd.args));
      case "serverSideEmit":
        io.serverSideEmit(...fromJSON(cmd.args));
        return true;
      case "serverCount":
        return io.of("/").adapter.serverCount();
      case "emitterBroadcast": {
        if (!emitter) throw new Error("no emitter in sharded mode");
        for (const spec of fromJSON(cmd.specs)) {
          select(emitter.of(spec.nsp || "/"), spec).emit(spec.event, ...(spec.args || []));
        }
        return true;
      }
      default:
        throw new Error(`unknown server command ${cmd.cmd}`);
    }
  }
  return { url, handle };
}

// clientsRole runs the pool of socket.io-client sockets.
async function clientsRole() {
  const clients = new Map();

  async function connect(cmd) {
    const socket = ioc(cmd.url + (cmd.nsp && cmd.nsp !== "/" ? cmd.nsp : ""), {
      transports: cmd.transports || ["polling", "websocket"],
      auth: { name: cmd.name },
      reconnection: false,
      forceNew: true,
    });
    socket.onAny((event, ...args) => {
      // "question" (a broadcast with acks) is answered with the client's name
      if (typeof args[args.length - 1] === "function") {
        const ack = args.pop();
        ack({ client: cmd.name, args });
      }
      send({ type: "event", client: cmd.name, event, args });
    });
    socket.on("disconnect", (reason) => send({ type: "event", client: cmd.name, event: "$disconnect", args: [reason] }));
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    });
    clients.set(cmd.name, socket);
    return { id: socket.id, transport: socket.io.engine.transport.name };
  }

  function client(name) {
    const s = clients.get(name);
    if (!s) throw new Error(`no client ${name}`);
    return s;
  }

  async function handle(cmd) {
    switch (cmd.cmd) {
      case "connect":
        return connect(cmd);
      case "emit": // a client event with an ack
        return client(cmd.client).timeout(cmd.timeoutMs || 10000).emitWithAck(cmd.event, ...fromJSON(cmd.args || []));
      case "transport":
        return client(cmd.client).io.engine.transport.name;
      default:
        throw new Error(`unknown clients command ${cmd.cmd}`);
    }
  }
  return { url: null, handle };
}

async function main() {
  const { url, handle } = ROLE === "clients" ? await clientsRole() : await serverRole();
  send({ type: "ready", url, mode: MODE, role: ROLE });

  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    if (!line.trim()) return;
    const cmd = JSON.parse(line);
    handle(cmd).then(
      (result) => send({ type: "result", id: cmd.id, result: result === undefined ? null : result }),
      (err) => send({ type: "result", id: cmd.id, error: String(err && err.message || err) }),
    );
  });
  rl.on("close", () => process.exit(0));
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack || err) + "\n");
  process.exit(1);
});
