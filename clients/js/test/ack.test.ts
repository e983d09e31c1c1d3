// Acknowledged trade events (issue 15, opt-in with subscribeTrades({ack:
// true})): the gateway's side is not merged yet, so the client's half is
// tested against a real Socket.IO server from npm that emits trade events
// with an acknowledgement request, as the gateway will.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
import { afterEach, expect, test } from "vitest";
import { connect, type TradewireClient } from "@tradewire/client";

const closers: (() => void)[] = [];
afterEach(() => closers.splice(0).forEach((f) => f()));

async function server(onConnection: (socket: any) => void): Promise<string> {
  const http = createServer();
  const io = new Server(http);
  io.on("connection", onConnection);
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  closers.push(() => io.close());
  return "http://127.0.0.1:" + (http.address() as AddressInfo).port;
}

test("trade events sent with an ack request are acknowledged after the handlers ran", async () => {
  const order: string[] = [];
  let subscribedWith: unknown;
  const acked = new Promise<unknown[]>((resolve, reject) => {
    void server((socket) => {
      socket.on("subscribe:trades", (payload: unknown, ack: (a: unknown) => void) => {
        subscribedWith = payload;
        ack({ success: true });
        const trade = { userId: "u1", trade: { symbol: "AAPL", side: "buy", quantity: 1, price: 1 }, timestamp: "2024-05-02T14:03:07.125Z", notification: { title: "t", message: "m", type: "success" } };
        socket.timeout(3000).emit("trade:executed", trade, "1714658587125-0", (err: Error | null, ...args: unknown[]) => {
          if (err) return reject(err);
          order.push("acked");
          resolve(args);
        });
      });
    }).then((url) => {
      const c: TradewireClient = connect(url);
      closers.push(() => c.close());
      c.on("trade:executed", (p) => order.push("handler:" + p.trade.symbol));
      void c.subscribeTrades({ ack: true });
    });
  });
  await expect(acked).resolves.toEqual([]);
  expect(subscribedWith).toEqual({ ack: true });
  expect(order).toEqual(["handler:AAPL", "acked"]);
});

test("without ack: true nothing is sent with subscribe:trades and events need no ack", async () => {
  let got: unknown = "unset";
  const url = await server((socket) => {
    socket.on("subscribe:trades", (...args: unknown[]) => {
      got = args.length === 1 ? "no payload" : args[0];
      (args[args.length - 1] as (a: unknown) => void)({ success: true });
      socket.emit("trade:failed", { userId: "u1", error: {}, timestamp: "x", notification: { title: "Trade Failed", message: "m", type: "error" } });
    });
  });
  const c = connect(url);
  closers.push(() => c.close());
  const seen = new Promise((r) => c.on("trade:failed", r));
  await c.subscribeTrades();
  await expect(seen).resolves.toMatchObject({ notification: { title: "Trade Failed" } });
  expect(got).toBe("no payload");
});
