// @vitest-environment jsdom
// @tradewire/react hooks with React Testing Library against the real gateway
// (dev mode, started by tests/frontend/vitest.setup.mjs). Run against React
// 19 (the workspace) and React 18 (TRADEWIRE_REACT_DIR, see vitest.config.mjs).
import { act, cleanup, render, screen, waitFor } from "@testing-library/react";
import { version as reactVersion, useState } from "react";
import { afterEach, expect, inject, test } from "vitest";
import {
  TradewireProvider,
  useConnectionState,
  useMarketStatus,
  useNotifications,
  usePortfolio,
  useQuote,
  useTrades,
  useTradewire,
} from "@tradewire/react";
// @ts-ignore: plain ESM helper shared with the browser tests
import * as gw from "../../../tests/frontend/gateway.mjs";

const url = inject("gatewayUrl" as never) as string;
afterEach(() => cleanup());

let n = 0;
async function login(extra = {}) {
  return gw.devLogin(url, `react${reactVersion.split(".")[0]}-${process.pid}-${++n}`, extra);
}

function Quote({ symbol, id }: { symbol: string; id: string }) {
  const { quote, error } = useQuote(symbol);
  return (
    <span data-testid={id}>
      {error ? "error:" + error.code : quote ? String(quote.price) : "none"}
    </span>
  );
}

function Status() {
  const { state, client } = useTradewire();
  const same = useConnectionState();
  return (
    <span data-testid="state">
      {state}/{same.state}/{client ? "client" : "none"}
    </span>
  );
}

test(`useQuote subscribes on mount, is reference counted, unsubscribes on unmount (React ${reactVersion})`, async () => {
  const s = await login();
  function Two() {
    const [a, setA] = useState(true);
    const [b, setB] = useState(true);
    return (
      <>
        {a && <Quote symbol="amd" id="qa" />}
        {b && <Quote symbol="AMD" id="qb" />}
        <button onClick={() => setA(false)}>drop-a</button>
        <button onClick={() => setB(false)}>drop-b</button>
      </>
    );
  }
  render(
    <TradewireProvider url={url} options={{ sessionID: s.sessionID }}>
      <Status />
      <Two />
    </TradewireProvider>,
  );
  await waitFor(() => expect(screen.getByTestId("state").textContent).toBe("connected/connected/client"));
  await gw.waitFor(async () => (await gw.roomSockets(url, "watchlist:AMD")).length === 1, { what: "watchlist:AMD joined" });
  await gw.publish(url, { type: "quote.update", symbol: "AMD", quote: { price: 158.25 } });
  await waitFor(() => {
    expect(screen.getByTestId("qa").textContent).toBe("158.25");
    expect(screen.getByTestId("qb").textContent).toBe("158.25");
  });
  // one component leaves: the symbol stays watched for the other
  act(() => screen.getByText("drop-a").click());
  await gw.publish(url, { type: "quote.update", symbol: "AMD", quote: { price: 159 } });
  await waitFor(() => expect(screen.getByTestId("qb").textContent).toBe("159"));
  expect((await gw.roomSockets(url, "watchlist:AMD")).length).toBe(1);
  // the last one leaves: unsubscribed
  act(() => screen.getByText("drop-b").click());
  await gw.waitFor(async () => (await gw.roomSockets(url, "watchlist:AMD")).length === 0, { what: "watchlist:AMD left" });
});

test("useQuote reports a refused subscription", async () => {
  const s = await login();
  render(
    <TradewireProvider url={url} options={{ sessionID: s.sessionID }}>
      <Quote symbol="NOT VALID!" id="bad" />
    </TradewireProvider>,
  );
  await waitFor(() => expect(screen.getByTestId("bad").textContent).toBe("error:INVALID_PAYLOAD"));
});

test("usePortfolio, useTrades({limit}), useNotifications, useMarketStatus follow the published events", async () => {
  const s = await login();
  const u = s.userId;
  function Panel() {
    const { portfolio, positionsClosed } = usePortfolio();
    const { trades } = useTrades({ limit: 2 });
    const { notifications } = useNotifications();
    const market = useMarketStatus();
    return (
      <>
        <span data-testid="pf">{portfolio ? String(portfolio.portfolio.totalValue) : "none"}</span>
        <span data-testid="closed">{positionsClosed.map((p) => p.position.symbol).join(",")}</span>
        <span data-testid="trades">{trades.map((t) => (t.kind === "executed" ? t.trade.symbol : "failed")).join(",")}</span>
        <span data-testid="notes">{notifications.map((x) => x.notification.title).join(",")}</span>
        <span data-testid="market">{market ? String(market.status) : "none"}</span>
      </>
    );
  }
  render(
    <TradewireProvider url={url} options={{ sessionID: s.sessionID }}>
      <Panel />
    </TradewireProvider>,
  );
  await gw.waitFor(async () => (await gw.roomSockets(url, "trades:" + u)).length === 1 && (await gw.roomSockets(url, "portfolio:" + u)).length === 1, {
    what: "portfolio and trades subscribed",
  });
  const trade = (symbol: string) => ({ type: "trade.executed", userId: u, trade: { symbol, side: "buy", quantity: 1, price: 1 } });
  const res = await gw.publish(url, [
    { type: "portfolio.updated", userId: u, portfolio: { totalValue: 12345 } },
    { type: "position.closed", userId: u, position: { symbol: "TSLA" } },
    trade("AAPL"),
    trade("MSFT"),
    { type: "trade.failed", userId: u, error: { message: "no" } },
    { type: "notification", userId: u, notification: { title: "Deposit", message: "arrived" } },
    { type: "market.status", status: { status: "closed" } },
  ]);
  expect(res.status).toBe(202);
  await waitFor(() => {
    expect(screen.getByTestId("pf").textContent).toBe("12345");
    expect(screen.getByTestId("closed").textContent).toBe("TSLA");
    expect(screen.getByTestId("trades").textContent).toBe("failed,MSFT"); // newest first, limit 2
    expect(screen.getByTestId("notes").textContent).toBe("Deposit");
    expect(screen.getByTestId("market").textContent).toBe("closed");
  });
});

test("useConnectionState reports offline with the auth error", async () => {
  function S() {
    const { state, error } = useConnectionState();
    return <span data-testid="s">{state + ":" + (error?.code ?? "")}</span>;
  }
  render(
    <TradewireProvider url={url} options={{ sessionID: "s:nope.nope" }}>
      <S />
    </TradewireProvider>,
  );
  await waitFor(() => expect(screen.getByTestId("s").textContent).toBe("offline:UNAUTHORIZED"));
});

test("hooks outside the provider fail loudly", () => {
  const orig = console.error;
  console.error = () => {};
  try {
    expect(() => render(<Status />)).toThrow(/TradewireProvider/);
  } finally {
    console.error = orig;
  }
});
