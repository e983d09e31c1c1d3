// Namespaces, middleware errors, multiplexing, and disconnections from
// either side.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Manager } from "socket.io-client";
import { TRANSPORTS, URL, client, connected, observer, onceConnected, once, request, sleep, upgraded } from "./helpers.mjs";

test("an unknown namespace is refused with connect_error \"Invalid namespace\"", async (t) => {
  for (const transports of Object.values(TRANSPORTS)) {
    const socket = client(t, "/nope", { transports });
    await assert.rejects(onceConnected(socket), (err) => {
      assert.equal(err.message, "Invalid namespace");
      assert.equal(err.data, undefined);
      return true;
    });
    assert.equal(socket.connected, false);
  }
});

test("middleware refusal: connect_error carries the message and data.code", async (t) => {
  for (const auth of [undefined, {}, { token: "wrong" }, { token: 42 }]) {
    const socket = client(t, "/admin", { transports: ["websocket"], auth });
    await assert.rejects(onceConnected(socket), (err) => {
      assert.equal(err.message, "not authorized");
      assert.deepEqual(err.data, { code: "UNAUTHORIZED" });
      return true;
    }, `auth ${JSON.stringify(auth)}`);
  }
});

test("middleware refusal with a plain error: connect_error without data", async (t) => {
  const socket = client(t, "/admin", { transports: ["polling"], auth: { token: "plain-error" } });
  await assert.rejects(onceConnected(socket), (err) => {
    assert.equal(err.message, "plain error");
    assert.equal(err.data, undefined);
    return true;
  });
});

test("middleware acceptance: the socket gets the auth payload and the data the middleware set", async (t) => {
  const socket = await connected(t, "/admin", { transports: ["polling"], auth: { token: "secret", extra: [1, "é"] } });
  const me = await request(socket, "whoami");
  assert.equal(me.nsp, "/admin");
  assert.equal(me.id, socket.id);
  assert.deepEqual(me.data, { user: "admin" });
  assert.deepEqual(me.auth, { token: "secret", extra: [1, "é"] });
});

test("multiplexing: several namespaces share one Engine.IO connection", async (t) => {
  const manager = new Manager(URL, { reconnection: false, transports: ["websocket"] });
  const main = manager.socket("/");
  const admin = manager.socket("/admin", { auth: { token: "secret" } });
  t.after(() => [main, admin].forEach((s) => s.disconnect()));
  await Promise.all([onceConnected(main), onceConnected(admin)]);
  assert.notEqual(main.id, admin.id);
  const engineId = manager.engine.id;
  const [a, b] = await Promise.all([request(main, "whoami"), request(admin, "whoami")]);
  assert.equal(a.nsp, "/");
  assert.equal(b.nsp, "/admin");
  assert.equal(a.id, main.id);
  assert.equal(b.id, admin.id);

  // A refused namespace on the same connection leaves the others alone.
  const nope = manager.socket("/nope");
  t.after(() => nope.disconnect());
  await assert.rejects(onceConnected(nope), /Invalid namespace/);
  assert.equal(await request(main, "echo", "still here"), "still here");

  // Leaving one namespace keeps the connection for the other.
  admin.disconnect();
  assert.equal(await request(main, "echo", "after leave"), "after leave");
  assert.equal(manager.engine.id, engineId);
});

for (const [name, transports] of Object.entries(TRANSPORTS)) {
  for (const close of [false, true]) {
    test(`server-side disconnect(close=${close}) over ${name}: "io server disconnect", and no automatic reconnection`, async (t) => {
      const obs = await observer(t);
      const socket = await connected(t, "/", { transports, reconnection: true, reconnectionDelay: 50 });
      if (name === "upgrade") await upgraded(socket); // polling alone is the case above
      const id = socket.id;
      const reasons = [];
      socket.on("disconnect", (reason) => reasons.push(reason));
      let reconnects = 0;
      socket.io.on("reconnect_attempt", () => reconnects++);
      socket.emit("disconnect-me", { close });
      assert.equal(await obs.disconnectOf(id), "server namespace disconnect");
      await sleep(300);
      assert.deepEqual(reasons, ["io server disconnect"]);
      assert.equal(reconnects, 0, "a client the server disconnected must not reconnect by itself");
      assert.equal(socket.connected, false);
    });
  }
}

test("client-side disconnect: the server reports \"client namespace disconnect\"", async (t) => {
  const obs = await observer(t);
  for (const transports of Object.values(TRANSPORTS)) {
    const socket = await connected(t, "/", { transports });
    const id = socket.id;
    socket.disconnect();
    assert.equal(await obs.disconnectOf(id), "client namespace disconnect", transports.join("+"));
  }
});

test("closing the connection: the server reports \"transport close\"", async (t) => {
  const obs = await observer(t);
  for (const transports of Object.values(TRANSPORTS)) {
    const socket = await connected(t, "/", { transports });
    const id = socket.id;
    const gone = once(socket, "disconnect");
    socket.io.engine.close();
    const [reason] = await gone;
    assert.equal(reason, "forced close"); // the client's own word for closing its engine
    assert.equal(await obs.disconnectOf(id), "transport close", transports.join("+"));
  }
});
