package trading

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Broadcaster delivers an event to rooms (all sockets when rooms is empty).
type Broadcaster interface {
	Broadcast(ctx context.Context, rooms, except []string, event string, data any) error
}

// OnceBroadcaster is a Broadcaster that also delivers an event at most
// once per event id, cluster-wide: a second broadcast with the same id
// returns an error wrapping ErrDuplicate and delivers nothing.
type OnceBroadcaster interface {
	Broadcaster
	BroadcastOnce(ctx context.Context, id string, rooms, except []string, event string, data any) error
}

// ErrDuplicate is wrapped by the error of a broadcast whose event id was
// already delivered.
var ErrDuplicate = errors.New("duplicate event id")

// ErrInProgress is wrapped by the error of a broadcast whose event id is
// being delivered by another request right now (retry later).
var ErrInProgress = errors.New("event id in progress")

// BroadcastEvent broadcasts through b, at most once per id when id is set
// and b is a OnceBroadcaster.
func BroadcastEvent(ctx context.Context, b Broadcaster, id string, rooms, except []string, event string, data any) error {
	if ob, ok := b.(OnceBroadcaster); ok && id != "" {
		return ob.BroadcastOnce(ctx, id, rooms, except, event, data)
	}
	return b.Broadcast(ctx, rooms, except, event, data)
}

// Emitter publishes the typed server events of the seed.
type Emitter struct {
	b   Broadcaster
	now func() time.Time
}

// NewEmitter returns an Emitter on b.
func NewEmitter(b Broadcaster) *Emitter { return &Emitter{b: b, now: time.Now} }

// ErrInvalidEvent is wrapped by validation errors of domain events.
var ErrInvalidEvent = errors.New("invalid event")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidEvent}, args...)...)
}

// Domain event types accepted by the publish API.
const (
	TypePortfolioUpdated = "portfolio.updated"
	TypeTradeExecuted    = "trade.executed"
	TypeTradeFailed      = "trade.failed"
	TypePositionClosed   = "position.closed"
	TypeNotification     = "notification"
	TypeQuoteUpdate      = "quote.update"
	TypeMarketStatus     = "market.status"
)

// DomainEvent is one typed event from a backend service.
type DomainEvent struct {
	Type string `json:"type"`
	// ID identifies the event for de-duplication (optional).
	ID           string          `json:"id,omitempty"`
	UserID       string          `json:"userId,omitempty"`
	Symbol       string          `json:"symbol,omitempty"`
	Trade        json.RawMessage `json:"trade,omitempty"`
	Error        json.RawMessage `json:"error,omitempty"`
	Position     json.RawMessage `json:"position,omitempty"`
	Portfolio    json.RawMessage `json:"portfolio,omitempty"`
	Notification *Notification   `json:"notification,omitempty"`
	Quote        json.RawMessage `json:"quote,omitempty"`
	Status       json.RawMessage `json:"status,omitempty"`
}

// Routed is a validated event ready to broadcast.
type Routed struct {
	Rooms []string
	Event string
	Data  map[string]any
}

func object(raw json.RawMessage, field string) (map[string]any, error) {
	if len(raw) == 0 {
		return nil, invalidf("%s is required", field)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, invalidf("%s must be an object", field)
	}
	return m, nil
}

func validUserID(id string) error {
	if id == "" {
		return invalidf("userId is required")
	}
	if len(id) > 128 || strings.ContainsAny(id, " \t\r\n") {
		return invalidf("userId is malformed")
	}
	return nil
}

// Route validates ev and returns where it goes and with which payload.
func (e *Emitter) Route(ev *DomainEvent) (*Routed, error) {
	now := e.now()
	withID := func(r *Routed) *Routed {
		if ev.ID != "" {
			r.Data["eventId"] = ev.ID
		}
		return r
	}
	switch ev.Type {
	case TypeTradeExecuted:
		if err := validUserID(ev.UserID); err != nil {
			return nil, err
		}
		m, err := object(ev.Trade, "trade")
		if err != nil {
			return nil, err
		}
		var t Trade
		if err := json.Unmarshal(ev.Trade, &t); err != nil {
			return nil, invalidf("trade: symbol and side must be strings, quantity and price numbers")
		}
		if _, ok := m["price"]; !ok {
			return nil, invalidf("trade.price is required")
		}
		if err := t.Validate(); err != nil {
			return nil, invalidf("%v", err)
		}
		t.Symbol, _ = NormalizeSymbol(t.Symbol)
		return withID(&Routed{[]string{TradesRoom(ev.UserID)}, EventTradeExecuted, TradeExecutedPayload(ev.UserID, m, t, now)}), nil
	case TypeTradeFailed:
		if err := validUserID(ev.UserID); err != nil {
			return nil, err
		}
		m, err := object(ev.Error, "error")
		if err != nil {
			return nil, err
		}
		return withID(&Routed{[]string{TradesRoom(ev.UserID)}, EventTradeFailed, TradeFailedPayload(ev.UserID, m, now)}), nil
	case TypePositionClosed:
		if err := validUserID(ev.UserID); err != nil {
			return nil, err
		}
		m, err := object(ev.Position, "position")
		if err != nil {
			return nil, err
		}
		sym, _ := m["symbol"].(string)
		if _, err := NormalizeSymbol(sym); err != nil {
			return nil, invalidf("position.symbol: %v", err)
		}
		return withID(&Routed{[]string{PortfolioRoom(ev.UserID)}, EventPositionClosed, PositionClosedPayload(ev.UserID, m, now)}), nil
	case TypePortfolioUpdated:
		if err := validUserID(ev.UserID); err != nil {
			return nil, err
		}
		m, err := object(ev.Portfolio, "portfolio")
		if err != nil {
			return nil, err
		}
		return withID(&Routed{[]string{PortfolioRoom(ev.UserID)}, EventPortfolioUpdated, PortfolioUpdatedPayload(ev.UserID, m, now)}), nil
	case TypeNotification:
		if err := validUserID(ev.UserID); err != nil {
			return nil, err
		}
		if ev.Notification == nil {
			return nil, invalidf("notification.title and notification.message are required")
		}
		n := *ev.Notification // never modify the caller's event
		if n.Title == "" || n.Message == "" {
			return nil, invalidf("notification.title and notification.message are required")
		}
		switch n.Type {
		case "":
			n.Type = "info"
		case "success", "error", "info", "warning":
		default:
			return nil, invalidf("notification.type must be success, error, info or warning")
		}
		return withID(&Routed{[]string{UserRoom(ev.UserID)}, EventNotification, NotificationPayload(ev.UserID, n, now)}), nil
	case TypeQuoteUpdate:
		sym, err := NormalizeSymbol(ev.Symbol)
		if err != nil {
			return nil, invalidf("symbol: %v", err)
		}
		m, err := object(ev.Quote, "quote")
		if err != nil {
			return nil, err
		}
		return withID(&Routed{[]string{WatchlistRoom(sym)}, EventQuoteUpdate, QuotePayload(sym, m, now)}), nil
	case TypeMarketStatus:
		m, err := object(ev.Status, "status")
		if err != nil {
			return nil, err
		}
		return withID(&Routed{nil, EventMarketStatus, MarketStatusPayload(m, now)}), nil
	case "":
		return nil, invalidf("type is required")
	}
	return nil, invalidf("unknown type %q", ev.Type)
}

// Publish validates and broadcasts a domain event.
func (e *Emitter) Publish(ctx context.Context, ev *DomainEvent) error {
	r, err := e.Route(ev)
	if err != nil {
		return err
	}
	return BroadcastEvent(ctx, e.b, ev.ID, r.Rooms, nil, r.Event, r.Data)
}

func marshalRaw(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// TradeExecuted emits trade:executed to the user's trades room.
func (e *Emitter) TradeExecuted(ctx context.Context, userID string, trade Trade) error {
	m := map[string]any{"id": trade.ID, "symbol": trade.Symbol, "side": trade.Side, "quantity": trade.Quantity, "price": trade.Price}
	for k, v := range trade.Extra {
		m[k] = v
	}
	return e.Publish(ctx, &DomainEvent{Type: TypeTradeExecuted, UserID: userID, Trade: marshalRaw(m)})
}

// TradeFailed emits trade:failed to the user's trades room.
func (e *Emitter) TradeFailed(ctx context.Context, userID, message, reason string) error {
	return e.Publish(ctx, &DomainEvent{Type: TypeTradeFailed, UserID: userID,
		Error: marshalRaw(map[string]any{"message": message, "reason": reason})})
}

// PositionClosed emits position:closed to the user's portfolio room.
func (e *Emitter) PositionClosed(ctx context.Context, userID string, position map[string]any) error {
	return e.Publish(ctx, &DomainEvent{Type: TypePositionClosed, UserID: userID, Position: marshalRaw(position)})
}

// PortfolioUpdated emits portfolio:updated to the user's portfolio room.
func (e *Emitter) PortfolioUpdated(ctx context.Context, userID string, portfolio map[string]any) error {
	return e.Publish(ctx, &DomainEvent{Type: TypePortfolioUpdated, UserID: userID, Portfolio: marshalRaw(portfolio)})
}

// Notify emits notification to every socket of the user.
func (e *Emitter) Notify(ctx context.Context, userID string, n Notification) error {
	return e.Publish(ctx, &DomainEvent{Type: TypeNotification, UserID: userID, Notification: &n})
}

// Quote emits quote:update to the symbol's watchlist room.
func (e *Emitter) Quote(ctx context.Context, symbol string, quote map[string]any) error {
	return e.Publish(ctx, &DomainEvent{Type: TypeQuoteUpdate, Symbol: symbol, Quote: marshalRaw(quote)})
}

// MarketStatus emits market:status to every socket.
func (e *Emitter) MarketStatus(ctx context.Context, status map[string]any) error {
	return e.Publish(ctx, &DomainEvent{Type: TypeMarketStatus, Status: marshalRaw(status)})
}
