// Typed maps of every event of docs/API.md (sections 3 and 4). They are the
// one source of truth for the client and the React hooks; a test checks them
// against the payloads the gateway really sends (see clients/js/test).

/** A notification object built by the gateway or sent by a backend. */
export interface Notification {
  title: string;
  message: string;
  type: "success" | "error" | "info" | "warning";
}

/** A trade as the backend sent it; the four fields are validated by the gateway. */
export interface Trade {
  symbol: string;
  side: string;
  quantity: number;
  price: number;
  id?: string;
  [field: string]: unknown;
}

export interface PortfolioUpdatedEvent {
  userId: string;
  portfolio: Record<string, unknown>;
  timestamp: string;
  eventId?: string;
}

export interface TradeExecutedEvent {
  userId: string;
  trade: Trade;
  timestamp: string;
  notification: Notification;
  eventId?: string;
}

export interface TradeFailedEvent {
  userId: string;
  error: { message?: string; [field: string]: unknown };
  timestamp: string;
  notification: Notification;
  eventId?: string;
}

export interface PositionClosedEvent {
  userId: string;
  position: { symbol: string; [field: string]: unknown };
  timestamp: string;
  notification: Notification;
  eventId?: string;
}

export interface NotificationEvent {
  userId: string;
  notification: Notification;
  timestamp: string;
  eventId?: string;
}

/** A quote: the backend's fields plus the normalised symbol and a timestamp. */
export interface QuoteUpdateEvent {
  symbol: string;
  timestamp: string;
  price?: number;
  eventId?: string;
  [field: string]: unknown;
}

/** Market status: the backend's fields plus a timestamp. */
export interface MarketStatusEvent {
  timestamp: string;
  status?: string;
  eventId?: string;
  [field: string]: unknown;
}

export interface StatsUpdateEvent {
  nodeId: string;
  uptimeSeconds: number;
  connections: number;
  users: number;
  rooms: number;
  namespaces: Record<string, number>;
  goroutines: number;
  draining: boolean;
  limiterMode: "redis" | "memory";
}

export interface ServerShutdownEvent {
  reconnectInMs: number;
}

/** Error codes of docs/API.md (client events, connect_error) plus the client's own. */
export type ErrorCode =
  | "INVALID_PAYLOAD"
  | "RATE_LIMIT"
  | "SUBSCRIPTION_LIMIT"
  | "FORBIDDEN"
  | "UNAUTHORIZED"
  | "SESSION_EXPIRED"
  | "SESSION_NOT_FOUND"
  | "USER_MISMATCH"
  | "STORE_UNAVAILABLE"
  // raised by this client, never sent by the gateway:
  | "TIMEOUT"
  | "OFFLINE"
  | "CLOSED"
  | "CONNECTION_ERROR";

export interface ErrorEvent {
  code: ErrorCode;
  message: string;
  retryAfterMs?: number;
}

/** Every server event and its payload (docs/API.md section 4). */
export interface ServerEvents {
  "portfolio:updated": PortfolioUpdatedEvent;
  "trade:executed": TradeExecutedEvent;
  "trade:failed": TradeFailedEvent;
  "position:closed": PositionClosedEvent;
  notification: NotificationEvent;
  "quote:update": QuoteUpdateEvent;
  "market:status": MarketStatusEvent;
  "stats:update": StatsUpdateEvent;
  "server:shutdown": ServerShutdownEvent;
  error: ErrorEvent;
}

export type ServerEventName = keyof ServerEvents;

/** The names of ServerEvents, at run time. */
export const SERVER_EVENTS: readonly ServerEventName[] = [
  "portfolio:updated",
  "trade:executed",
  "trade:failed",
  "position:closed",
  "notification",
  "quote:update",
  "market:status",
  "stats:update",
  "server:shutdown",
  "error",
];

export interface SuccessAck {
  success: true;
}
export interface SymbolsAck {
  success: true;
  symbols: string[];
}
export interface PongAck {
  timestamp: number;
}
export interface FailureAck {
  success: false;
  code: ErrorCode;
  message: string;
  retryAfterMs?: number;
}

/** Every client event: its payload and its successful ack (docs/API.md section 3). */
export interface ClientEvents {
  "subscribe:portfolio": { payload: void; ack: SuccessAck };
  "subscribe:trades": { payload: { ack?: boolean } | void; ack: SuccessAck };
  "subscribe:watchlist": { payload: { symbols: string[] }; ack: SymbolsAck };
  "unsubscribe:portfolio": { payload: void; ack: SuccessAck };
  "unsubscribe:trades": { payload: void; ack: SuccessAck };
  "unsubscribe:watchlist": { payload: { symbols: string[] }; ack: SymbolsAck };
  "subscribe:admin": { payload: void; ack: SuccessAck };
  ping: { payload: void; ack: PongAck };
}

export type ClientEventName = keyof ClientEvents;

/** Confirmation events the gateway emits besides the ack (not dispatched to handlers). */
export const CONFIRMATION_EVENTS = [
  "subscribed:portfolio",
  "subscribed:trades",
  "subscribed:watchlist",
  "unsubscribed:portfolio",
  "unsubscribed:trades",
  "unsubscribed:watchlist",
  "subscribed:admin",
  "pong",
] as const;
