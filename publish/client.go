package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tradewire/tradewire/trading"
)

// Client publishes events to a tradewire gateway's HTTP API. It is safe for
// concurrent use.
type Client struct {
	base   string
	key    string
	client *http.Client
}

// NewClient returns a client for the gateway at baseURL (e.g.
// "http://tradewire:8080") with an API key.
func NewClient(baseURL, apiKey string) *Client {
	return &Client{
		base:   strings.TrimRight(baseURL, "/"),
		key:    apiKey,
		client: &http.Client{Timeout: 10 * time.Second},
	}
}

// Error is a refusal from the gateway.
type Error struct {
	Status int
	APIError
	// Results are the per-item outcomes, when the server sent them.
	Results []ItemResult
}

func (e *Error) Error() string {
	return fmt.Sprintf("tradewire: %d %s: %s", e.Status, e.Code, e.Message)
}

func (c *Client) post(ctx context.Context, path string, body any) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, fmt.Errorf("tradewire: encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return 0, fmt.Errorf("tradewire: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("tradewire: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var out Response
	_ = json.Unmarshal(raw, &out)
	if resp.StatusCode == http.StatusMultiStatus {
		// Some items were delivered, some not: retrying the whole request
		// with the same event ids delivers only the rest.
		for _, r := range out.Results {
			if r.Status == StatusRejected {
				idx := r.Index
				e := &Error{Status: resp.StatusCode, Results: out.Results}
				e.Code, e.Message, e.Index = r.Code, "some items were not delivered; retry the request with the same event ids", &idx
				return out.Accepted, e
			}
		}
		return out.Accepted, nil
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode, Results: out.Results}
		if out.Error != nil {
			e.APIError = *out.Error
		} else {
			e.Message = strings.TrimSpace(string(raw))
		}
		return 0, e
	}
	return out.Accepted, nil
}

// ErrNothingToSend is returned by Publish and Emit called with nothing.
var ErrNothingToSend = errors.New("tradewire: nothing to send")

// Publish sends typed domain events (one request).
func (c *Client) Publish(ctx context.Context, events ...trading.DomainEvent) error {
	if len(events) == 0 {
		return ErrNothingToSend
	}
	if len(events) == 1 {
		_, err := c.post(ctx, "/api/v1/events", events[0])
		return err
	}
	_, err := c.post(ctx, "/api/v1/events", events)
	return err
}

// Emit sends raw emits (one request).
func (c *Client) Emit(ctx context.Context, reqs ...EmitRequest) error {
	if len(reqs) == 0 {
		return ErrNothingToSend
	}
	if len(reqs) == 1 {
		_, err := c.post(ctx, "/api/v1/emit", reqs[0])
		return err
	}
	_, err := c.post(ctx, "/api/v1/emit", reqs)
	return err
}

func raw(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// TradeExecuted publishes trade:executed for userID.
func (c *Client) TradeExecuted(ctx context.Context, userID string, trade trading.Trade) error {
	m := map[string]any{"id": trade.ID, "symbol": trade.Symbol, "side": trade.Side, "quantity": trade.Quantity, "price": trade.Price}
	for k, v := range trade.Extra {
		m[k] = v
	}
	return c.Publish(ctx, trading.DomainEvent{Type: trading.TypeTradeExecuted, ID: trade.ID, UserID: userID, Trade: raw(m)})
}

// TradeFailed publishes trade:failed for userID.
func (c *Client) TradeFailed(ctx context.Context, userID, message, reason string) error {
	return c.Publish(ctx, trading.DomainEvent{Type: trading.TypeTradeFailed, UserID: userID,
		Error: raw(map[string]any{"message": message, "reason": reason})})
}

// PortfolioUpdated publishes portfolio:updated for userID.
func (c *Client) PortfolioUpdated(ctx context.Context, userID string, portfolio map[string]any) error {
	return c.Publish(ctx, trading.DomainEvent{Type: trading.TypePortfolioUpdated, UserID: userID, Portfolio: raw(portfolio)})
}

// PositionClosed publishes position:closed for userID.
func (c *Client) PositionClosed(ctx context.Context, userID string, position map[string]any) error {
	return c.Publish(ctx, trading.DomainEvent{Type: trading.TypePositionClosed, UserID: userID, Position: raw(position)})
}

// Notify publishes a notification to every socket of userID.
func (c *Client) Notify(ctx context.Context, userID string, n trading.Notification) error {
	return c.Publish(ctx, trading.DomainEvent{Type: trading.TypeNotification, UserID: userID, Notification: &n})
}

// Quote publishes quote:update to the watchers of symbol.
func (c *Client) Quote(ctx context.Context, symbol string, quote map[string]any) error {
	return c.Publish(ctx, trading.DomainEvent{Type: trading.TypeQuoteUpdate, Symbol: symbol, Quote: raw(quote)})
}

// MarketStatus publishes market:status to every socket.
func (c *Client) MarketStatus(ctx context.Context, status map[string]any) error {
	return c.Publish(ctx, trading.DomainEvent{Type: trading.TypeMarketStatus, Status: raw(status)})
}
