import { io, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";
import type {
  ClientEventName,
  ClientEvents,
  ErrorCode,
  ErrorEvent,
  FailureAck,
  QuoteUpdateEvent,
  ServerEventName,
  ServerEvents,
} from "./events.js";

/** Connection state, reported by `client.state` and the `state` event. */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "offline";

/** The error every promise of the client rejects with. */
export class TradewireError extends Error {
  readonly code: ErrorCode;
  readonly retryAfterMs?: number;
  constructor(code: ErrorCode, message: string, retryAfterMs?: number) {
    super(message);
    this.name = "TradewireError";
    this.code = code;
    if (retryAfterMs !== undefined) this.retryAfterMs = retryAfterMs;
  }
}

/** connect_error codes after which retrying cannot help: the user must sign in. */
export const AUTH_ERROR_CODES: readonly string[] = [
  "UNAUTHORIZED",
  "SESSION_NOT_FOUND",
  "SESSION_EXPIRED",
  "USER_MISMATCH",
  "FORBIDDEN",
];

export interface TradewireOptions {
  /** Signed express-session id (`s:<sid>.<sig>`), for clients without the cookie. */
  sessionID?: string;
  /** Optional user id checked by the gateway against the session. */
  userId?: string;
  /** Send the session cookie cross-origin (default true). */
  withCredentials?: boolean;
  /** Socket.IO path (default `/socket.io/`). */
  path?: string;
  /** Transports (default: polling then upgrade to websocket). */
  transports?: ("polling" | "websocket")[];
  /** First reconnection delay in ms (default 500). */
  reconnectDelayMs?: number;
  /** Largest reconnection delay in ms (default 10000): the backoff is bounded. */
  reconnectDelayMaxMs?: number;
  /** Random share added to each delay, 0..1 (default 0.3). */
  jitter?: number;
  /** Failed attempts in a row after which the state is `offline` (default 3); retrying continues. */
  offlineAfterAttempts?: number;
  /** Timeout of each request in ms (default 10000). */
  requestTimeoutMs?: number;
  /** Do not connect until `client.open()` (default false). */
  lazy?: boolean;
  /** Extra socket.io-client options, passed through. */
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
}

export interface StateInfo {
  state: ConnectionState;
  /** The last connection error, cleared on connect. */
  error: TradewireError | null;
  /** When the next connection attempt is due (epoch ms), while waiting for it. */
  retryAt: number | null;
  /** Whether the last connect restored the previous session (connection state recovery). */
  recovered: boolean;
}

type Handler<E extends ServerEventName> = (payload: ServerEvents[E]) => void;
type StateHandler = (info: StateInfo) => void;

interface Pending {
  run: () => void;
  fail: (err: TradewireError) => void;
}

/** Normalises a symbol as the gateway does (trimmed, upper-cased). */
export function normalizeSymbol(s: string): string {
  return String(s).trim().toUpperCase();
}

/**
 * TradewireClient wraps one socket.io-client socket. It dispatches server
 * events (payload only), keeps the wanted subscriptions and restores them
 * after a reconnect that was not recovered, and runs its own bounded
 * reconnection (so it can honour server:shutdown, RATE_LIMIT and auth
 * failures).
 */
export class TradewireClient {
  /** The underlying socket.io-client socket. */
  readonly socket: Socket;
  private readonly opts: Required<
    Pick<
      TradewireOptions,
      "reconnectDelayMs" | "reconnectDelayMaxMs" | "jitter" | "offlineAfterAttempts" | "requestTimeoutMs"
    >
  >;
  private handlers = new Map<string, Set<(payload: any) => void>>();
  private stateHandlers = new Set<StateHandler>();
  private _state: ConnectionState = "connecting";
  private _error: TradewireError | null = null;
  private _retryAt: number | null = null;
  private _recovered = false;
  private stopped = false;
  private attempts = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private shutdownAt: number | null = null;
  private queue: Pending[] = [];
  private wantPortfolio = false;
  private wantTrades: { ack: boolean } | null = null;
  private wantAdmin = false;
  private wantSymbols = new Set<string>();
  private lastQuotes = new Map<string, QuoteUpdateEvent>();

  constructor(url: string, options: TradewireOptions = {}) {
    this.opts = {
      reconnectDelayMs: options.reconnectDelayMs ?? 500,
      reconnectDelayMaxMs: options.reconnectDelayMaxMs ?? 10_000,
      jitter: options.jitter ?? 0.3,
      offlineAfterAttempts: options.offlineAfterAttempts ?? 3,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    };
    const auth: Record<string, string> = {};
    if (options.sessionID) auth.sessionID = options.sessionID;
    if (options.userId) auth.userId = options.userId;
    this.socket = io(url, {
      path: options.path,
      transports: options.transports,
      withCredentials: options.withCredentials ?? true,
      auth,
      reconnection: false, // this client reconnects itself (see scheduleReconnect)
      autoConnect: false,
      ...options.socketOptions,
    });
    this.socket.on("connect", () => this.onConnect());
    this.socket.on("connect_error", (err: Error & { data?: any }) => this.onConnectError(err));
    this.socket.on("disconnect", (reason: string) => this.onDisconnect(reason));
    this.socket.onAny((event: string, ...args: unknown[]) => this.dispatch(event, args));
    if (!options.lazy) this.open();
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this._state;
  }
  /** The last connection error (null once connected). */
  get error(): TradewireError | null {
    return this._error;
  }
  /** When the next connection attempt is due (epoch ms), or null. */
  get retryAt(): number | null {
    return this._retryAt;
  }
  /** Whether the last connect was a connection state recovery. */
  get recovered(): boolean {
    return this._recovered;
  }
  /** The watched symbols (normalised). */
  get watched(): string[] {
    return [...this.wantSymbols];
  }
  /** The last quote received per symbol (kept for graceful degradation). */
  get quotes(): ReadonlyMap<string, QuoteUpdateEvent> {
    return this.lastQuotes;
  }

  /** Registers a handler of a server event (payload only) or of `state`. */
  on<E extends ServerEventName>(event: E, handler: Handler<E>): this;
  on(event: "state", handler: StateHandler): this;
  on(event: string, handler: (arg: any) => void): this {
    if (event === "state") {
      this.stateHandlers.add(handler);
      return this;
    }
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler);
    return this;
  }

  /** Removes a handler registered with on. */
  off<E extends ServerEventName>(event: E, handler: Handler<E>): this;
  off(event: "state", handler: StateHandler): this;
  off(event: string, handler: (arg: any) => void): this {
    if (event === "state") this.stateHandlers.delete(handler);
    else this.handlers.get(event)?.delete(handler);
    return this;
  }

  /** Starts connecting (again), e.g. after an auth failure was fixed. */
  open(): void {
    this.stopped = false;
    this.clearTimer();
    this.attempts = 0;
    this.setState(this.socket.connected ? "connected" : "connecting");
    if (!this.socket.connected) this.socket.connect();
  }

  /** Closes the connection for good; pending requests reject with CLOSED. */
  close(): void {
    this.stop(new TradewireError("CLOSED", "client closed"), false);
    this.socket.disconnect();
  }

  subscribePortfolio() {
    return this.request("subscribe:portfolio", undefined).then((ack) => {
      this.wantPortfolio = true;
      return ack;
    });
  }
  unsubscribePortfolio() {
    this.wantPortfolio = false;
    return this.request("unsubscribe:portfolio", undefined);
  }
  /**
   * Subscribes to the user's trades. With `{ack: true}` the gateway sends
   * each trade event with an acknowledgement request, answered by this
   * client after the handlers ran.
   */
  subscribeTrades(options: { ack?: boolean } = {}) {
    const ack = !!options.ack;
    return this.request("subscribe:trades", ack ? { ack: true } : undefined).then((res) => {
      this.wantTrades = { ack };
      return res;
    });
  }
  unsubscribeTrades() {
    this.wantTrades = null;
    return this.request("unsubscribe:trades", undefined);
  }
  /** Subscribes to the admin statistics (role admin). */
  subscribeAdmin() {
    return this.request("subscribe:admin", undefined).then((ack) => {
      this.wantAdmin = true;
      return ack;
    });
  }
  /** Watches symbols (quote:update); resolves with the normalised symbols. */
  watch(symbols: string[]) {
    return this.request("subscribe:watchlist", { symbols: symbols.map(normalizeSymbol) }).then((ack) => {
      for (const s of ack.symbols) this.wantSymbols.add(s);
      return ack;
    });
  }
  /** Stops watching symbols; they are forgotten at once, even if the request fails. */
  unwatch(symbols: string[]) {
    const norm = symbols.map(normalizeSymbol);
    for (const s of norm) {
      this.wantSymbols.delete(s);
      this.lastQuotes.delete(s);
    }
    return this.request("unsubscribe:watchlist", { symbols: norm });
  }
  /** Round trip to the gateway; resolves with the server time. */
  ping() {
    return this.request("ping", undefined);
  }

  /**
   * Sends a client event and resolves with its ack, or rejects with a
   * TradewireError. While not connected the request waits for the
   * connection (rejects with OFFLINE if the client stops retrying).
   */
  request<E extends ClientEventName>(event: E, payload: ClientEvents[E]["payload"]): Promise<ClientEvents[E]["ack"]> {
    return new Promise((resolve, reject) => {
      const run = () => {
        const args: unknown[] = payload === undefined ? [] : [payload];
        this.socket
          .timeout(this.opts.requestTimeoutMs)
          .emit(event, ...args, (err: Error | null, ack: any) => {
            if (err) return reject(new TradewireError("TIMEOUT", `${event}: no answer in ${this.opts.requestTimeoutMs} ms`));
            if (ack && ack.success === false) {
              const f = ack as FailureAck;
              return reject(new TradewireError(f.code, f.message, f.retryAfterMs));
            }
            resolve(ack);
          });
      };
      if (this.socket.connected) run();
      else if (this.stopped) reject(this._error ?? new TradewireError("OFFLINE", "not connected"));
      else this.queue.push({ run, fail: reject });
    });
  }

  private dispatch(event: string, args: unknown[]): void {
    let ackFn: ((...a: unknown[]) => void) | null = null;
    if (args.length && typeof args[args.length - 1] === "function") {
      ackFn = args.pop() as (...a: unknown[]) => void;
    }
    const payload = args[0];
    if (event === "quote:update" && payload && typeof (payload as QuoteUpdateEvent).symbol === "string") {
      const q = payload as QuoteUpdateEvent;
      if (this.wantSymbols.has(q.symbol)) this.lastQuotes.set(q.symbol, q);
    }
    if (event === "server:shutdown") {
      const ms = Number((payload as { reconnectInMs?: number })?.reconnectInMs);
      // the advice counts from the notice; the connection closes a bit later
      if (Number.isFinite(ms) && ms >= 0) this.shutdownAt = Date.now() + ms;
    }
    if (event === "error") {
      const e = payload as ErrorEvent;
      if (e?.code === "SESSION_EXPIRED") {
        this.stop(new TradewireError("SESSION_EXPIRED", e.message || "session expired"), true);
      }
    }
    const set = this.handlers.get(event);
    if (set) {
      for (const h of [...set]) {
        try {
          h(payload);
        } catch (err) {
          // a failing handler must not stop the others nor the ack
          setTimeout(() => {
            throw err;
          });
        }
      }
    }
    // Acknowledged trade events (subscribeTrades({ack: true})): answer after
    // the handlers had the payload.
    // (the gateway asks only for trade:executed / trade:failed; any other
    // event that asks is answered the same way)
    if (ackFn) ackFn();
  }

  private onConnect(): void {
    this.clearTimer();
    this.attempts = 0;
    this.shutdownAt = null;
    this._recovered = !!this.socket.recovered;
    this._error = null;
    this.setState("connected");
    const resubscribe = this._recovered ? Promise.resolve() : this.resubscribe();
    // queued requests go after the subscriptions are restored
    void resubscribe.then(() => {
      const q = this.queue;
      this.queue = [];
      for (const p of q) {
        if (this.socket.connected) p.run();
        else this.queue.push(p);
      }
    });
  }

  /** Sends every wanted subscription again (after a reconnect that was not recovered). */
  private async resubscribe(): Promise<void> {
    const jobs: Promise<unknown>[] = [];
    const send = <E extends ClientEventName>(event: E, payload: ClientEvents[E]["payload"]) =>
      this.sendWithRetry(event, payload).catch((err: TradewireError) => {
        // a subscription that no longer fits is dropped and reported
        this._error = err;
        this.emitState();
      });
    if (this.wantPortfolio) jobs.push(send("subscribe:portfolio", undefined));
    if (this.wantTrades) jobs.push(send("subscribe:trades", this.wantTrades.ack ? { ack: true } : undefined));
    if (this.wantAdmin) jobs.push(send("subscribe:admin", undefined));
    const symbols = [...this.wantSymbols];
    for (let i = 0; i < symbols.length; i += 50) {
      jobs.push(send("subscribe:watchlist", { symbols: symbols.slice(i, i + 50) }));
    }
    await Promise.all(jobs);
  }

  /** Sends a request directly (connected), waiting retryAfterMs on RATE_LIMIT (3 tries). */
  private async sendWithRetry<E extends ClientEventName>(event: E, payload: ClientEvents[E]["payload"]) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.request(event, payload);
      } catch (err) {
        const e = err as TradewireError;
        if (e.code !== "RATE_LIMIT" || attempt >= 2 || this.stopped) throw e;
        await new Promise((r) => setTimeout(r, e.retryAfterMs ?? 1000));
      }
    }
  }

  private onConnectError(err: Error & { data?: { code?: string; retryAfterMs?: number } }): void {
    const code = err.data?.code;
    if (code && AUTH_ERROR_CODES.includes(code)) {
      this.stop(new TradewireError(code as ErrorCode, err.message), false);
      return;
    }
    const error = new TradewireError((code as ErrorCode) || "CONNECTION_ERROR", err.message, err.data?.retryAfterMs);
    this._error = error;
    this.attempts++;
    const delay = code === "RATE_LIMIT" && err.data?.retryAfterMs != null ? err.data.retryAfterMs : this.backoff();
    this.scheduleReconnect(delay);
  }

  private onDisconnect(reason: string): void {
    if (this.stopped || reason === "io client disconnect") {
      this.setState("offline");
      return;
    }
    let delay: number;
    if (this.shutdownAt != null) {
      delay = Math.max(0, this.shutdownAt - Date.now());
      this.shutdownAt = null;
    } else {
      delay = this.attempts === 0 ? 0 : this.backoff();
    }
    this.scheduleReconnect(delay);
  }

  private backoff(): number {
    const base = this.opts.reconnectDelayMs * 2 ** Math.max(0, this.attempts - 1);
    return Math.min(base, this.opts.reconnectDelayMaxMs);
  }

  private scheduleReconnect(delay: number): void {
    if (this.stopped) return;
    this.clearTimer();
    const wait = Math.round(delay + Math.random() * this.opts.jitter * Math.max(delay, this.opts.reconnectDelayMs));
    this._retryAt = Date.now() + wait;
    this.setState(this.attempts >= this.opts.offlineAfterAttempts ? "offline" : "reconnecting");
    this.timer = setTimeout(() => {
      this.timer = null;
      this._retryAt = null;
      if (this.stopped || this.socket.connected) return;
      this.emitState();
      this.socket.connect();
    }, wait);
  }

  /** Stops retrying: auth failures and close(). Queued requests reject. */
  private stop(error: TradewireError, disconnect: boolean): void {
    this.stopped = true;
    this.clearTimer();
    this._error = error;
    const q = this.queue;
    this.queue = [];
    for (const p of q) p.fail(error);
    if (disconnect) this.socket.disconnect();
    this.setState("offline");
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this._retryAt = null;
  }

  private setState(s: ConnectionState): void {
    if (s === this._state && s !== "offline" && s !== "reconnecting") return;
    this._state = s;
    this.emitState();
  }

  private emitState(): void {
    const info: StateInfo = { state: this._state, error: this._error, retryAt: this._retryAt, recovered: this._recovered };
    for (const h of [...this.stateHandlers]) {
      try {
        h(info);
      } catch (err) {
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}

/** Connects to a tradewire gateway (see TradewireOptions). */
export function connect(url: string, options?: TradewireOptions): TradewireClient {
  return new TradewireClient(url, options);
}
