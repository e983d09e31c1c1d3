// Rooms and broadcast operators: s.To (sender excluded), nsp.To (sender
// included), Leave, FetchSockets, SocketsJoin, DisconnectSockets and
// broadcast emitWithAck.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { TRANSPORTS, connected, observer, once, record, request } from "./helpers.mjs";

// Files run in parallel against one server: every test uses its own rooms.
const roomName = () => `room-${randomUUID()}`;

// A round trip on each socket: anything the server wrote to it before has
// arrived once this resolves (one connection is FIFO).
const settle = (...sockets) => Promise.all(sockets.map((s) => request(s, "echo", "settle")));

// Three clients, one per transport setup; a and b join room.
async function trio(t, room) {
  const [a, b, c] = await Promise.all(Object.values(TRANSPORTS).map((transports) => connected(t, "/", { transports })));
  const rooms = await Promise.all([request(a, "room:join", room), request(b, "room:join", room)]);
  assert.deepEqual(rooms[0], [a.id, room].sort());
  assert.deepEqual(rooms[1], [b.id, room].sort());
  return { a, b, c };
}

test("s.To(room) reaches the other members only, not the sender nor outsiders", async (t) => {
  const room = roomName();
  const { a, b, c } = await trio(t, room);
  const got = { a: record(a, "room:message"), b: [], c: record(c, "room:message") };
  const atB = once(b, "room:message");
  assert.equal(await request(a, "room:broadcast", { room, payload: { hello: "room", bin: Buffer.from([7]) } }), true);
  const [payload, from, offset] = await atB;
  assert.deepEqual(payload, { hello: "room", bin: Buffer.from([7]) });
  assert.equal(from, a.id);
  assert.equal(typeof offset, "string");
  await settle(a, c);
  assert.deepEqual(got.a, [], "the sender is excluded");
  assert.deepEqual(got.c, [], "a socket outside the room gets nothing");
});

test("nsp.To(room) reaches every member, the sender included", async (t) => {
  const room = roomName();
  const { a, b, c } = await trio(t, room);
  const [ga, gb, gc] = [record(a, "room:message"), record(b, "room:message"), record(c, "room:message")];
  assert.equal(await request(c, "room:announce", { room, payload: "news" }), true);
  await settle(a, b, c);
  assert.deepEqual(ga, ["news"]);
  assert.deepEqual(gb, ["news"]);
  assert.deepEqual(gc, [], "the announcer is not in the room");
});

test("a socket that left the room gets nothing more", async (t) => {
  const room = roomName();
  const { a, b } = await trio(t, room);
  const gb = record(b, "room:message");
  assert.deepEqual(await request(b, "room:leave", room), [b.id]);
  await request(a, "room:broadcast", { room, payload: 1 });
  await request(a, "room:announce", { room, payload: 2 });
  await settle(b);
  assert.deepEqual(gb, []);
});

test("FetchSockets lists the members with their rooms and data", async (t) => {
  const room = roomName();
  const { a, b, c } = await trio(t, room);
  await request(a, "data:set", { nick: "alice" });
  const members = await request(c, "room:members", room);
  members.sort((x, y) => (x.id === a.id ? -1 : y.id === a.id ? 1 : 0));
  assert.deepEqual(members, [
    { id: a.id, rooms: [a.id, room].sort(), data: { nick: "alice" } },
    { id: b.id, rooms: [b.id, room].sort(), data: null },
  ]);
  assert.deepEqual(await request(c, "room:members", roomName()), []);
});

test("SocketsJoin moves a room's members into another room", async (t) => {
  const room = roomName();
  const other = roomName();
  const { a, b, c } = await trio(t, room);
  assert.equal(await request(c, "room:move", { from: room, to: other }), true);
  for (const s of [a, b]) {
    assert.deepEqual((await request(s, "whoami")).rooms, [s.id, room, other].sort());
  }
  assert.deepEqual((await request(c, "whoami")).rooms, [c.id]);
  const gb = record(b, "room:message");
  await request(a, "room:broadcast", { room: other, payload: "moved" });
  await settle(b);
  assert.deepEqual(gb, ["moved"]);
});

// The client side of a server disconnect, per transport, is checked in
// namespaces.test.mjs; here: who goes, and what the server reports.
for (const close of [false, true]) {
  test(`DisconnectSockets(close=${close}) disconnects the room's members only`, async (t) => {
    const room = roomName();
    const obs = await observer(t);
    const { a, b, c } = await trio(t, room);
    const ids = [a.id, b.id]; // the client forgets its id at disconnect
    const gone = Promise.all([once(a, "disconnect"), once(b, "disconnect")]);
    let cGone = false;
    c.on("disconnect", () => (cGone = true));
    assert.equal(await request(c, "room:kick", { room, close }), true);
    await gone;
    assert.equal(a.connected || b.connected, false);
    for (const id of ids) assert.equal(await obs.disconnectOf(id), "server namespace disconnect");
    await settle(c);
    assert.equal(cGone, false);
  });
}

test("broadcast emitWithAck collects one ack per member", async (t) => {
  const room = roomName();
  const { a, b, c } = await trio(t, room);
  a.on("question", (q, cb) => cb(`a:${q}`));
  b.on("question", (q, cb) => cb(`b:${q}`));
  const res = await request(c, "room:ask", { room, question: "q1", timeoutMs: 2000 });
  assert.equal(res.error, undefined);
  assert.deepEqual(res.answers.map((args) => args[0]).sort(), ["a:q1", "b:q1"]);
});

test("broadcast emitWithAck reports a timeout with the acks it got", async (t) => {
  const room = roomName();
  const { a, b, c } = await trio(t, room);
  a.on("question", (q, cb) => cb("only a"));
  b.on("question", () => {}); // never answers
  const res = await request(c, "room:ask", { room, question: "q2", timeoutMs: 200 });
  assert.match(res.error, /timed out|timeout/);
  assert.deepEqual(res.answers, [["only a"]]);
});
