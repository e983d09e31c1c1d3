// Origin policy: with an explicit list, a foreign Origin is refused on every
// transport (polling, preflight, websocket, and requests on an existing
// session), while listed, same-origin and Origin-less requests work.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { client, onceConnected, spawnServer } from "./helpers.mjs";

const ALLOWED = "http://allowed.example";
const EVIL = "http://evil.example";

/** A raw HTTP request; resolves with {status, headers, body}. */
function httpRequest(url, { method = "GET", headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Opens a websocket; resolves with the HTTP status it was refused with, or 101 and its first frame. */
function wsAttempt(url, origin) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, origin ? { origin } : {});
    ws.on("unexpected-response", (_req, res) => {
      resolve({ status: res.statusCode });
      ws.terminate();
    });
    ws.on("message", (data) => {
      resolve({ status: 101, first: data.toString() });
      ws.terminate();
    });
    ws.on("error", (err) => (err.message.startsWith("Unexpected server response") ? null : reject(err)));
  });
}

describe(`origin policy -origins ${ALLOWED}`, () => {
  let server;
  let polling;
  let websocket;
  const cleanups = [];
  after(() => cleanups.forEach((f) => f()));
  before(async () => {
    server = await spawnServer({ after: (f) => cleanups.push(f) }, ["-origins", ALLOWED]);
    polling = `${server.url}/socket.io/?EIO=4&transport=polling`;
    websocket = `${server.url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`;
  });

  test("polling handshake: a foreign Origin gets 403 Forbidden", async () => {
    const res = await httpRequest(polling, { headers: { Origin: EVIL } });
    assert.equal(res.status, 403);
    assert.deepEqual(JSON.parse(res.body), { code: 4, message: "Forbidden" });
    assert.equal(res.headers["access-control-allow-origin"], undefined);
  });

  test("polling handshake: the listed Origin gets the open packet and CORS headers", async () => {
    const res = await httpRequest(polling, { headers: { Origin: ALLOWED } });
    assert.equal(res.status, 200);
    assert.match(res.body, /^0\{"sid":"[A-Za-z0-9_-]{20}","upgrades":\["websocket"\]/);
    assert.equal(res.headers["access-control-allow-origin"], ALLOWED);
    assert.equal(res.headers["access-control-allow-credentials"], "true");
  });

  test("polling handshake: same-origin and Origin-less (non-browser) requests are allowed", async () => {
    for (const headers of [{ Origin: server.url }, {}]) {
      const res = await httpRequest(polling, { headers });
      assert.equal(res.status, 200, JSON.stringify(headers));
      assert.match(res.body, /^0\{"sid"/);
    }
  });

  test("preflight: 403 for a foreign Origin, 204 with CORS headers for the listed one", async () => {
    const headers = { "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type" };
    const evil = await httpRequest(polling, { method: "OPTIONS", headers: { ...headers, Origin: EVIL } });
    assert.equal(evil.status, 403);
    const ok = await httpRequest(polling, { method: "OPTIONS", headers: { ...headers, Origin: ALLOWED } });
    assert.equal(ok.status, 204);
    assert.equal(ok.headers["access-control-allow-origin"], ALLOWED);
    assert.match(ok.headers["access-control-allow-methods"], /POST/);
  });

  test("an existing polling session refuses requests from a foreign Origin", async () => {
    const open = await httpRequest(polling, { headers: { Origin: ALLOWED } });
    const sid = JSON.parse(open.body.slice(1)).sid;
    const session = `${polling}&sid=${sid}`;
    const post = await httpRequest(session, { method: "POST", headers: { Origin: EVIL, "Content-Type": "text/plain" }, body: "40" });
    assert.equal(post.status, 403);
    const get = await httpRequest(session, { headers: { Origin: EVIL } });
    assert.equal(get.status, 403);
    const upgrade = await wsAttempt(`${websocket}&sid=${sid}`, EVIL);
    assert.equal(upgrade.status, 403);
    // The session itself is still usable from its own origin.
    const ok = await httpRequest(session, { method: "POST", headers: { Origin: ALLOWED, "Content-Type": "text/plain" }, body: "40" });
    assert.equal(ok.status, 200);
    const reply = await httpRequest(session, { headers: { Origin: ALLOWED } });
    assert.match(reply.body, /^40\{"sid"/);
  });

  test("websocket handshake: 403 for a foreign Origin, open packet for the listed one and without Origin", async () => {
    assert.equal((await wsAttempt(websocket, EVIL)).status, 403);
    for (const origin of [ALLOWED, undefined]) {
      const res = await wsAttempt(websocket, origin);
      assert.equal(res.status, 101, `origin ${origin}`);
      assert.match(res.first, /^0\{"sid":"[A-Za-z0-9_-]{20}","upgrades":\[\]/);
    }
  });

  for (const transports of [["polling"], ["websocket"]]) {
    test(`socket.io-client over ${transports}: refused with a foreign Origin, connected with the listed one`, async (t) => {
      const evil = client(t, "/", { url: server.url, transports, extraHeaders: { Origin: EVIL } });
      await assert.rejects(onceConnected(evil), (err) => {
        assert.equal(evil.connected, false);
        assert.match(err.message, /error/);
        return true;
      });
      const ok = client(t, "/", { url: server.url, transports, extraHeaders: { Origin: ALLOWED } });
      await onceConnected(ok);
      assert.equal(await ok.timeout(3000).emitWithAck("echo", "hi"), "hi");
    });
  }
});
