// Events, acks both ways and binary, on each transport setup.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { TRANSPORTS, connected, once, request } from "./helpers.mjs";

const values = [
  "plain",
  "é ünïcödé ✓ 🚀 \u2028",
  'quotes " and \\ backslash \n newline',
  0,
  -1.5,
  1e21,
  Number.MAX_SAFE_INTEGER,
  true,
  false,
  null,
  [],
  {},
  [1, [2, [3, { deep: ["x"] }]]],
  { a: 1, b: { c: [true, null, "s"] } },
];

// Events the server emits with socket.Emit carry one more argument when
// connection state recovery is on: the offset (a string).
function withoutOffset(args) {
  assert.equal(typeof args.at(-1), "string", `last argument ${JSON.stringify(args.at(-1))} should be the offset`);
  assert.ok(args.at(-1).length > 0);
  return args.slice(0, -1);
}

for (const [name, transports] of Object.entries(TRANSPORTS)) {
  describe(`events over ${name}`, () => {
    test("echo with an ack returns every JSON type unchanged", async (t) => {
      const socket = await connected(t, "/", { transports });
      const got = await socket.timeout(3000).emitWithAck("echo", ...values);
      assert.deepEqual(got, values[0]); // emitWithAck resolves with the first argument
      const all = await new Promise((resolve) => socket.emit("echo", ...values, (...args) => resolve(args)));
      assert.deepEqual(all, values);
    });

    test("an event without ack comes back as an event with a recovery offset", async (t) => {
      const socket = await connected(t, "/", { transports });
      const back = once(socket, "echo");
      socket.emit("echo", { n: 1 }, "two", [3]);
      assert.deepEqual(withoutOffset(await back), [{ n: 1 }, "two", [3]]);
    });

    test("concurrent acks each resolve with their own value", async (t) => {
      const socket = await connected(t, "/", { transports });
      const answers = await Promise.all(
        Array.from({ length: 50 }, (_, i) => socket.timeout(3000).emitWithAck("echo", { i }, "pad".repeat(i))),
      );
      assert.deepEqual(
        answers,
        Array.from({ length: 50 }, (_, i) => ({ i })),
      );
    });

    test("server → client emitWithAck is answered by the client's callback", async (t) => {
      const socket = await connected(t, "/", { transports });
      const questions = [];
      socket.on("question", (q, callback) => {
        questions.push(q);
        callback({ reply: `re: ${q.text}` }, 42);
      });
      const res = await request(socket, "ask", { question: { text: "hi" }, timeoutMs: 2000 });
      assert.deepEqual(questions, [{ text: "hi" }]);
      assert.deepEqual(res, { answer: [{ reply: "re: hi" }, 42] });
    });

    test("server → client emitWithAck times out when the client does not answer", async (t) => {
      const socket = await connected(t, "/", { transports });
      socket.on("question", () => {}); // never calls back
      const res = await request(socket, "ask", { question: "anyone?", timeoutMs: 150 });
      assert.match(res.error, /timeout/);
      assert.equal(res.answer, undefined);
    });

    test("binary client → server: Buffer and Uint8Array, top level and nested", async (t) => {
      const socket = await connected(t, "/", { transports });
      const buf = Buffer.from([0, 1, 2, 254, 255]);
      const u8 = new Uint8Array([9, 8, 7]);
      const nested = { name: "file", data: Buffer.from("hello"), parts: [new Uint8Array([1]), { deep: Buffer.alloc(300, 7) }] };
      const args = await new Promise((resolve) =>
        socket.emit("binary:echo", buf, "between", u8, nested, (...a) => resolve(a)),
      );
      assert.equal(args.length, 4);
      assert.ok(Buffer.isBuffer(args[0]), "binary comes back as a Buffer");
      assert.deepEqual(args[0], buf);
      assert.equal(args[1], "between");
      assert.deepEqual(args[2], Buffer.from(u8));
      assert.deepEqual(args[3], {
        name: "file",
        data: Buffer.from("hello"),
        parts: [Buffer.from([1]), { deep: Buffer.alloc(300, 7) }],
      });
    });

    test("binary event without ack comes back as a binary event", async (t) => {
      const socket = await connected(t, "/", { transports });
      const back = once(socket, "binary:echo");
      socket.emit("binary:echo", { blob: Buffer.from([1, 2, 3]) }, Buffer.from("x"));
      assert.deepEqual(withoutOffset(await back), [{ blob: Buffer.from([1, 2, 3]) }, Buffer.from("x")]);
    });

    test("binary server → client: top level, nested, and empty", async (t) => {
      const socket = await connected(t, "/", { transports });
      const made = once(socket, "binary:made");
      assert.equal(await request(socket, "binary:make", { size: 1000 }), true);
      const [top, obj] = withoutOffset(await made);
      assert.ok(Buffer.isBuffer(top));
      assert.deepEqual(top, Buffer.from(Array.from({ length: 1000 }, (_, i) => i & 0xff)));
      assert.deepEqual(obj, {
        nested: { bytes: Buffer.from([0xde, 0xad, 0xbe, 0xef]) },
        list: [Buffer.from([1, 2, 3]), "text", Buffer.alloc(0)],
      });
    });

    test("binary ack from the client reaches the server (binary both ways in acks)", async (t) => {
      const socket = await connected(t, "/", { transports });
      socket.on("question", (q, callback) => callback(Buffer.from([0xca, 0xfe]), { also: new Uint8Array([1, 2]) }));
      const res = await request(socket, "ask", { question: "send bytes", timeoutMs: 2000 });
      assert.deepEqual(res, { answer: [Buffer.from([0xca, 0xfe]), { also: Buffer.from([1, 2]) }] });
    });
  });
}
