package trading

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Server → client event names.
const (
	EventPortfolioUpdated = "portfolio:updated"
	EventTradeExecuted    = "trade:executed"
	EventTradeFailed      = "trade:failed"
	EventPositionClosed   = "position:closed"
	EventNotification     = "notification"
	EventQuoteUpdate      = "quote:update"
	EventMarketStatus     = "market:status"
	EventStatsUpdate      = "stats:update"
	EventServerShutdown   = "server:shutdown"
	EventError            = "error"
)

// Notification is the UI toast object carried by user events.
type Notification struct {
	Title   string `json:"title"`
	Message string `json:"message"`
	Type    string `json:"type"` // success, error, info, warning
}

// Trade is an executed trade. Extra fields from the backend are kept.
type Trade struct {
	ID       string         `json:"id,omitempty"`
	Symbol   string         `json:"symbol"`
	Side     string         `json:"side"`
	Quantity float64        `json:"quantity"`
	Price    float64        `json:"price"`
	Extra    map[string]any `json:"-"`
}

// Validate checks the fields the notification needs.
func (t *Trade) Validate() error {
	if _, err := NormalizeSymbol(t.Symbol); err != nil {
		return fmt.Errorf("trade.symbol: %w", err)
	}
	switch strings.ToLower(t.Side) {
	case "buy", "sell":
	default:
		return fmt.Errorf("trade.side must be buy or sell, got %q", t.Side)
	}
	if t.Quantity <= 0 {
		return fmt.Errorf("trade.quantity must be positive")
	}
	if t.Price < 0 {
		return fmt.Errorf("trade.price must not be negative")
	}
	return nil
}

func timestamp(now time.Time) string { return now.UTC().Format("2006-01-02T15:04:05.000Z") }

// formatNumber prints 10 as "10" and 187.12 as "187.12", as JavaScript does.
func formatNumber(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// TradeExecutedPayload builds the trade:executed payload of the seed.
func TradeExecutedPayload(userID string, trade map[string]any, t Trade, now time.Time) map[string]any {
	return map[string]any{
		"userId":    userID,
		"trade":     trade,
		"timestamp": timestamp(now),
		"notification": Notification{
			Title: "Trade Executed: " + strings.ToUpper(t.Symbol),
			Message: fmt.Sprintf("%s %s %s @ $%s", strings.ToUpper(t.Side), formatNumber(t.Quantity),
				strings.ToUpper(t.Symbol), formatNumber(t.Price)),
			Type: "success",
		},
	}
}

// TradeFailedPayload builds the trade:failed payload.
func TradeFailedPayload(userID string, errData map[string]any, now time.Time) map[string]any {
	msg, _ := errData["message"].(string)
	if msg == "" {
		msg = "The trade could not be executed"
	}
	return map[string]any{
		"userId":    userID,
		"error":     errData,
		"timestamp": timestamp(now),
		"notification": Notification{
			Title:   "Trade Failed",
			Message: msg,
			Type:    "error",
		},
	}
}

// PositionClosedPayload builds the position:closed payload.
func PositionClosedPayload(userID string, position map[string]any, now time.Time) map[string]any {
	sym, _ := position["symbol"].(string)
	return map[string]any{
		"userId":    userID,
		"position":  position,
		"timestamp": timestamp(now),
		"notification": Notification{
			Title:   "Position Closed: " + strings.ToUpper(sym),
			Message: "Your " + strings.ToUpper(sym) + " position was closed",
			Type:    "info",
		},
	}
}

// PortfolioUpdatedPayload builds the portfolio:updated payload.
func PortfolioUpdatedPayload(userID string, portfolio any, now time.Time) map[string]any {
	return map[string]any{"userId": userID, "portfolio": portfolio, "timestamp": timestamp(now)}
}

// NotificationPayload builds the notification payload.
func NotificationPayload(userID string, n Notification, now time.Time) map[string]any {
	return map[string]any{"userId": userID, "notification": n, "timestamp": timestamp(now)}
}

// QuotePayload builds the quote:update payload.
func QuotePayload(symbol string, quote map[string]any, now time.Time) map[string]any {
	out := make(map[string]any, len(quote)+2)
	for k, v := range quote {
		out[k] = v
	}
	out["symbol"] = symbol
	if _, ok := out["timestamp"]; !ok {
		out["timestamp"] = timestamp(now)
	}
	return out
}

// MarketStatusPayload builds the market:status payload.
func MarketStatusPayload(status map[string]any, now time.Time) map[string]any {
	out := make(map[string]any, len(status)+1)
	for k, v := range status {
		out[k] = v
	}
	if _, ok := out["timestamp"]; !ok {
		out["timestamp"] = timestamp(now)
	}
	return out
}
