// Protocol edges a well-behaved client never shows, checked with a raw
// websocket: the connect timeout and invalid packets close the connection,
// and the server keeps serving others.
import assert from "node:assert/strict";
import { test } from "node:test";
import WebSocket from "ws";
import { URL, connected, request } from "./helpers.mjs";

const WS_URL = `${URL.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`;

/** A raw Engine.IO websocket that answers pings; resolves once open. */
async function raw(t) {
  const ws = new WebSocket(WS_URL);
  t.after(() => ws.terminate());
  const frames = [];
  ws.on("message", (data, binary) => {
    const text = binary ? null : data.toString();
    if (text === "2") ws.send("3");
    else frames.push(binary ? data : text);
  });
  const closed = new Promise((resolve) => ws.on("close", () => resolve(Date.now())));
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return { ws, frames, closed };
}

const within = (promise, ms, what) =>
  Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} within ${ms}ms`)), ms))]);

test("a connection that joins no namespace is closed after the connect timeout (1s)", async (t) => {
  const start = Date.now();
  const c = await raw(t);
  const closedAt = await within(c.closed, 4000, "closed");
  const after = closedAt - start;
  assert.ok(after >= 900 && after < 3000, `closed after ${after}ms`);
  assert.equal(c.frames.length, 1, "only the open packet");
  assert.match(c.frames[0], /^0\{"sid"/);
});

for (const [what, packet] of [
  ["an unknown Socket.IO packet type", "4garbage"],
  ["an event with an empty array", "42[]"],
  ["an event with a reserved name", '42["connect"]'],
  ["an event for a namespace not joined", '42/admin,["x"]'],
  ["a CONNECT for a namespace already joined", "40"],
  ["an unknown Engine.IO packet type", "9"],
  ["a ping from the client", "2"],
]) {
  test(`${what} closes the connection`, async (t) => {
    const c = await raw(t);
    c.ws.send("40");
    await within(
      new Promise((resolve) => {
        const check = () => (c.frames.some((f) => typeof f === "string" && f.startsWith("40{")) ? resolve() : setTimeout(check, 5));
        check();
      }),
      3000,
      "CONNECT reply",
    );
    c.ws.send(packet);
    await within(c.closed, 3000, `closed after ${JSON.stringify(packet)}`);
  });
}

test("the server keeps serving others after bad input", async (t) => {
  const c = await raw(t);
  c.ws.send("4garbage");
  await within(c.closed, 3000, "closed");
  const socket = await connected(t, "/", { transports: ["websocket"] });
  assert.equal(await request(socket, "echo", "alive"), "alive");
});

// Raw long-polling: packets the server queued before closing a session must
// still reach the client, like engine.io does (it drains its buffer first).
test("polling: a disconnect(true) queued while no GET is pending still reaches the next GET", async () => {
  const base = `${URL}/socket.io/?EIO=4&transport=polling`;
  const open = await fetch(base).then((r) => r.text());
  const url = `${base}&sid=${JSON.parse(open.slice(1)).sid}`;
  assert.equal(await fetch(url, { method: "POST", body: "40" }).then((r) => r.text()), "ok");
  assert.match(await fetch(url).then((r) => r.text()), /^40\{"sid"/);
  // No GET is pending now: the server queues "41" and closes the session.
  assert.equal(await fetch(url, { method: "POST", body: '42["disconnect-me",{"close":true}]' }).then((r) => r.text()), "ok");
  await new Promise((r) => setTimeout(r, 50));
  const res = await fetch(url);
  const body = await res.text();
  assert.equal(res.status, 200, `next GET: ${res.status} ${body}`);
  assert.equal(body.split("\x1e")[0], "41", "the DISCONNECT packet comes first");
});
