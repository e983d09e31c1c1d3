'use strict';
// Drives real socket.io-client sockets for tradewire's Go interop test
// (tests/interop/gateway_test.go). Commands arrive on stdin and reports leave
// on stdout, one JSON object per line; every report carries the socket's
// test-chosen id and t, Date.now() when it happened.
//
// Commands:
//   {op:"connect", id, url, cookie?, auth?, transports?}
//       cookie goes out as the Cookie header of every handshake request
//       (extraHeaders, which Node's client supports on polling and
//       websocket); auth is the CONNECT payload. Reconnection is off.
//   {op:"emit", id, seq, event, args, timeoutMs?}   emit with an ack
//   {op:"close", id}
// Reports:
//   {type:"connect", socketId, transport, firstTransport}   transport now and
//       the one the connection opened with
//   {type:"connect_error", message, data}      data is err.data (e.g. {code})
//   {type:"event", event, args, offset?, transport}   every server event
//       (onAny); offset is the recovery offset the server appended
//   {type:"ack", seq, err?, args}
//   {type:"disconnect", reason}
//   {type:"upgrade", transport}
//   {type:"closed"}
//   {type:"fatal", message}                    a bad command
// It prints "ready" first and exits when stdin closes.

const readline = require('readline');
const { io } = require('socket.io-client');

const sockets = new Map();

function report(id, msg) {
  process.stdout.write(`${JSON.stringify({ id, t: Date.now(), ...msg })}\n`);
}

function transportOf(socket) {
  const engine = socket.io.engine;
  return engine && engine.transport ? engine.transport.name : '';
}

function connect(cmd) {
  const opts = {
    forceNew: true,
    reconnection: false,
    timeout: 15000,
  };
  if (cmd.transports) opts.transports = cmd.transports;
  if (cmd.cookie) opts.extraHeaders = { Cookie: cmd.cookie };
  if (cmd.auth) opts.auth = cmd.auth;
  const socket = io(cmd.url, opts);
  sockets.set(cmd.id, socket);
  let firstTransport = '';
  socket.io.on('open', () => {
    firstTransport = transportOf(socket);
    socket.io.engine.on('upgrade', (t) => report(cmd.id, { type: 'upgrade', transport: t.name }));
  });
  socket.on('connect', () => {
    report(cmd.id, { type: 'connect', socketId: socket.id, transport: transportOf(socket), firstTransport });
  });
  socket.on('connect_error', (err) => {
    report(cmd.id, { type: 'connect_error', message: err.message, data: err.data === undefined ? null : err.data });
  });
  socket.on('disconnect', (reason) => report(cmd.id, { type: 'disconnect', reason }));
  socket.onAny((event, ...args) => {
    // With connection state recovery on (tradewire's default, as in
    // socket.io), the server appends the packet's offset as a last string
    // argument and the client passes it to listeners too (it keeps it for
    // the next reconnection). Report it apart from the application's args.
    // socket._pid is socket.io-client's own "recovery enabled" marker.
    let offset;
    if (socket._pid && args.length && typeof args[args.length - 1] === 'string') offset = args.pop();
    report(cmd.id, { type: 'event', event, args, offset, transport: transportOf(socket) });
  });
}

function handle(cmd) {
  switch (cmd.op) {
    case 'connect':
      connect(cmd);
      return;
    case 'emit': {
      const socket = sockets.get(cmd.id);
      if (!socket) throw new Error(`no socket ${cmd.id}`);
      socket.timeout(cmd.timeoutMs || 5000).emit(cmd.event, ...(cmd.args || []), (err, ...args) => {
        report(cmd.id, { type: 'ack', seq: cmd.seq, err: err ? err.message : undefined, args });
      });
      return;
    }
    case 'close': {
      const socket = sockets.get(cmd.id);
      if (socket) socket.disconnect();
      sockets.delete(cmd.id);
      report(cmd.id, { type: 'closed' });
      return;
    }
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
    handle(cmd);
  } catch (err) {
    report(cmd && cmd.id, { type: 'fatal', message: String(err && err.message) });
  }
});
rl.on('close', () => {
  for (const s of sockets.values()) s.disconnect();
  process.exit(0);
});
process.stdout.write('ready\n');
