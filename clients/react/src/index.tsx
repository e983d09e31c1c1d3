// @tradewire/react: the provider (a WebSocketContext) and hooks over
// @tradewire/client. Works with React 18 and 19 (useSyncExternalStore).
import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from "react";
import {
  connect,
  TradewireClient,
  TradewireError,
  type ConnectionState,
  type MarketStatusEvent,
  type NotificationEvent,
  type PortfolioUpdatedEvent,
  type PositionClosedEvent,
  type QuoteUpdateEvent,
  type StatsUpdateEvent,
  type TradeExecutedEvent,
  type TradeFailedEvent,
  type TradewireOptions,
} from "@tradewire/client";

/** A value with subscribers, read with useSyncExternalStore. */
class Store<T> {
  private listeners = new Set<() => void>();
  constructor(private value: T) {}
  get = () => this.value;
  set(v: T) {
    this.value = v;
    for (const l of [...this.listeners]) l();
  }
  subscribe = (l: () => void) => {
    this.listeners.add(l);
    return () => {
      this.listeners.delete(l);
    };
  };
}

export type TradeEvent =
  | ({ kind: "executed" } & TradeExecutedEvent)
  | ({ kind: "failed" } & TradeFailedEvent);

export interface ConnectionInfo {
  state: ConnectionState;
  error: TradewireError | null;
  retryAt: number | null;
  recovered: boolean;
}

const MAX_KEPT = 200;

/**
 * Hub holds everything the hooks share: the client, reference counts of the
 * subscriptions (a symbol is watched once however many components use it),
 * and the latest data per stream.
 */
class Hub {
  readonly connection: Store<ConnectionInfo>;
  readonly quotes = new Map<string, Store<QuoteUpdateEvent | null>>();
  readonly portfolio = new Store<PortfolioUpdatedEvent | null>(null);
  readonly positions = new Store<PositionClosedEvent[]>([]);
  readonly trades = new Store<TradeEvent[]>([]);
  readonly notifications = new Store<NotificationEvent[]>([]);
  readonly market = new Store<MarketStatusEvent | null>(null);
  readonly stats = new Store<Record<string, StatsUpdateEvent>>({});
  private counts = new Map<string, number>();
  private offs: (() => void)[] = [];

  constructor(readonly client: TradewireClient) {
    this.connection = new Store<ConnectionInfo>(this.info());
    const on = <A,>(event: any, fn: (p: A) => void) => {
      client.on(event, fn as any);
      this.offs.push(() => client.off(event, fn as any));
    };
    on("state", () => this.connection.set(this.info()));
    on<QuoteUpdateEvent>("quote:update", (q) => this.quote(q.symbol).set(q));
    on<PortfolioUpdatedEvent>("portfolio:updated", (p) => this.portfolio.set(p));
    on<PositionClosedEvent>("position:closed", (p) => this.positions.set([p, ...this.positions.get()].slice(0, MAX_KEPT)));
    on<TradeExecutedEvent>("trade:executed", (t) =>
      this.trades.set([{ kind: "executed" as const, ...t }, ...this.trades.get()].slice(0, MAX_KEPT)),
    );
    on<TradeFailedEvent>("trade:failed", (t) =>
      this.trades.set([{ kind: "failed" as const, ...t }, ...this.trades.get()].slice(0, MAX_KEPT)),
    );
    on<NotificationEvent>("notification", (n) => this.notifications.set([n, ...this.notifications.get()].slice(0, MAX_KEPT)));
    on<MarketStatusEvent>("market:status", (m) => this.market.set(m));
    on<StatsUpdateEvent>("stats:update", (s) => this.stats.set({ ...this.stats.get(), [s.nodeId]: s }));
  }

  private info(): ConnectionInfo {
    const c = this.client;
    return { state: c.state, error: c.error, retryAt: c.retryAt, recovered: c.recovered };
  }

  quote(symbol: string): Store<QuoteUpdateEvent | null> {
    let s = this.quotes.get(symbol);
    if (!s) this.quotes.set(symbol, (s = new Store<QuoteUpdateEvent | null>(this.client.quotes.get(symbol) ?? null)));
    return s;
  }

  /**
   * acquire counts a user of a subscription key and subscribes on the first;
   * the returned release unsubscribes after the last. Errors of the
   * subscribe go to onError.
   */
  acquire(key: string, subscribe: () => Promise<unknown>, unsubscribe: () => Promise<unknown>, onError: (e: TradewireError) => void) {
    const n = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, n);
    if (n === 1) subscribe().catch(onError);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.counts.get(key) ?? 1) - 1;
      if (left > 0) {
        this.counts.set(key, left);
        return;
      }
      this.counts.delete(key);
      unsubscribe().catch(() => {
        /* the socket may be gone; the wanted set is already updated */
      });
    };
  }

  /** References held on a key (for tests and debugging). */
  count(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  dispose() {
    for (const off of this.offs) off();
    this.offs = [];
  }
}

const HubContext = createContext<Hub | null>(null);

export interface TradewireProviderProps {
  /** Gateway URL (same origin: `window.location.origin` or "/"). */
  url?: string;
  options?: TradewireOptions;
  /** An existing client instead of url/options (the provider does not close it). */
  client?: TradewireClient;
  children?: ReactNode;
}

/** Provides one TradewireClient to the hooks below it. */
export function TradewireProvider({ url, options, client, children }: TradewireProviderProps) {
  const [hub, setHub] = useState<Hub | null>(null);
  const optsKey = JSON.stringify(options ?? {});
  useEffect(() => {
    const c = client ?? connect(url ?? "/", options);
    const h = new Hub(c);
    setHub(h);
    return () => {
      h.dispose();
      if (!client) c.close();
    };
    // options are compared by value
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [url, optsKey, client]);
  if (!hub) return null;
  return <HubContext.Provider value={hub}>{children}</HubContext.Provider>;
}

function useHub(): Hub {
  const hub = useContext(HubContext);
  if (!hub) throw new Error("tradewire hooks must be used inside <TradewireProvider>");
  return hub;
}

function useStore<T>(store: Store<T>): T {
  return useSyncExternalStore(store.subscribe, store.get, store.get);
}

/** The client, its connection state and last error. */
export function useTradewire(): ConnectionInfo & { client: TradewireClient } {
  const hub = useHub();
  const info = useStore(hub.connection);
  return { client: hub.client, ...info };
}

/** The connection state, its last error and the time of the next attempt. */
export function useConnectionState(): ConnectionInfo {
  return useStore(useHub().connection);
}

/** Subscription error of a hook (SUBSCRIPTION_LIMIT, RATE_LIMIT, ...), or null. */
function useSubscription(key: string | null, subscribe: () => Promise<unknown>, unsubscribe: () => Promise<unknown>) {
  const hub = useHub();
  const [error, setError] = useState<TradewireError | null>(null);
  const sub = useRef(subscribe);
  const unsub = useRef(unsubscribe);
  sub.current = subscribe;
  unsub.current = unsubscribe;
  useEffect(() => {
    if (!key) return;
    setError(null);
    return hub.acquire(
      key,
      () => sub.current(),
      () => unsub.current(),
      (e) => setError(e),
    );
  }, [hub, key]);
  return error;
}

const noQuote = new Store<QuoteUpdateEvent | null>(null);

/**
 * The latest quote of a symbol. Watches the symbol on mount and stops on
 * unmount, reference counted across components.
 */
export function useQuote(symbol: string | null | undefined): { quote: QuoteUpdateEvent | null; error: TradewireError | null } {
  const hub = useHub();
  const sym = symbol ? symbol.trim().toUpperCase() : null;
  const error = useSubscription(
    sym ? "quote:" + sym : null,
    () => hub.client.watch([sym!]),
    () => hub.client.unwatch([sym!]),
  );
  const quote = useStore(sym ? hub.quote(sym) : noQuote);
  return { quote, error };
}

/** The latest portfolio and closed positions; subscribes while mounted. */
export function usePortfolio(): {
  portfolio: PortfolioUpdatedEvent | null;
  positionsClosed: PositionClosedEvent[];
  error: TradewireError | null;
} {
  const hub = useHub();
  const error = useSubscription(
    "portfolio",
    () => hub.client.subscribePortfolio(),
    () => hub.client.unsubscribePortfolio(),
  );
  return { portfolio: useStore(hub.portfolio), positionsClosed: useStore(hub.positions), error };
}

/** The latest trade events (executed and failed), newest first; subscribes while mounted. */
export function useTrades(options: { limit?: number; ack?: boolean } = {}): { trades: TradeEvent[]; error: TradewireError | null } {
  const hub = useHub();
  const limit = options.limit ?? 50;
  const ack = !!options.ack;
  const error = useSubscription(
    "trades",
    () => hub.client.subscribeTrades({ ack }),
    () => hub.client.unsubscribeTrades(),
  );
  const all = useStore(hub.trades);
  const trades = useMemo(() => all.slice(0, limit), [all, limit]);
  return { trades, error };
}

/** Notifications of the user (the user: room is joined on connect), newest first. */
export function useNotifications(): { notifications: NotificationEvent[]; clear: () => void } {
  const hub = useHub();
  const notifications = useStore(hub.notifications);
  const clear = useCallback(() => hub.notifications.set([]), [hub]);
  return { notifications, clear };
}

/** The latest market:status, or null before the first. */
export function useMarketStatus(): MarketStatusEvent | null {
  return useStore(useHub().market);
}

/** Live statistics per node (admins only); subscribes while mounted. */
export function useAdminStats(enabled = true): { stats: Record<string, StatsUpdateEvent>; error: TradewireError | null } {
  const hub = useHub();
  const error = useSubscription(
    enabled ? "admin" : null,
    () => hub.client.subscribeAdmin(),
    async () => undefined, // the gateway has no unsubscribe:admin
  );
  return { stats: useStore(hub.stats), error };
}

/** Reference count of a subscription key ("quote:AAPL", "portfolio", "trades"), for tests. */
export function useSubscriptionCount(key: string): number {
  const hub = useHub();
  return hub.count(key);
}
