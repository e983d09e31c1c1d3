package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// AppendQuote appends the quote:update payload {symbol, price, ts}.
func AppendQuote(dst []byte, symbol string, price float64, ts int64) []byte {
	dst = append(dst, `{"symbol":"`...)
	dst = append(dst, symbol...)
	dst = append(dst, `","price":`...)
	dst = strconv.AppendFloat(dst, price, 'f', 2, 64)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, '}')
}

// AppendTrade appends a trade object {id, symbol, side, quantity, price, ts}.
func AppendTrade(dst []byte, id int64, symbol string, price float64, ts int64) []byte {
	dst = append(dst, `{"id":"t`...)
	dst = strconv.AppendInt(dst, id, 10)
	dst = append(dst, `","symbol":"`...)
	dst = append(dst, symbol...)
	dst = append(dst, `","side":"buy","quantity":10,"price":`...)
	dst = strconv.AppendFloat(dst, price, 'f', 2, 64)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, '}')
}

// AppendEmit appends one /api/v1/emit message {rooms:[room], event, data}.
func AppendEmit(dst []byte, room, event string, data []byte) []byte {
	dst = append(dst, `{"rooms":[`...)
	dst = strconv.AppendQuote(dst, room)
	dst = append(dst, `],"event":`...)
	dst = strconv.AppendQuote(dst, event)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

// AppendBroadcast appends a one-message /api/v1/emit batch that sends event
// to every socket (empty rooms) with data {"status":"bench","ts":ts}.
func AppendBroadcast(dst []byte, event string, ts int64) []byte {
	dst = append(dst, `[{"rooms":[],"event":`...)
	dst = strconv.AppendQuote(dst, event)
	dst = append(dst, `,"data":{"status":"bench","ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, `}}]`...)
}

// AppendTradeEvent appends one /api/v1/events domain event
// {"type":"trade.executed","userId":..,"trade":{..}}.
func AppendTradeEvent(dst []byte, userID string, trade []byte) []byte {
	dst = append(dst, `{"type":"trade.executed","userId":`...)
	dst = strconv.AppendQuote(dst, userID)
	dst = append(dst, `,"trade":`...)
	dst = append(dst, trade...)
	return append(dst, '}')
}

// Publisher sends quotes to watchlist rooms and trades to users.
type Publisher interface {
	// Quotes publishes one quote per symbol index, stamped now.
	Quotes(ctx context.Context, symbols []int) error
	// Trades publishes one trade:executed per user index, stamped now.
	Trades(ctx context.Context, users []int) error
	Close() error
}

var tradeSeq atomic.Int64

func price(i int) float64 { return 100 + float64(i%1000)/100 }

// HTTPPublisher uses the HTTP publish API (POST /api/v1/emit batches and
// POST /api/v1/events, one event per request unless EventsBatch).
type HTTPPublisher struct {
	Base        string // http://host:port
	Key         string
	Client      *http.Client
	EventsBatch bool
}

// NewHTTPPublisher returns a publisher with a keep-alive connection pool.
func NewHTTPPublisher(base, key string, eventsBatch bool) *HTTPPublisher {
	return &HTTPPublisher{Base: base, Key: key, EventsBatch: eventsBatch, Client: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
	}}
}

func (p *HTTPPublisher) post(ctx context.Context, path string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.Base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.Key)
	resp, err := p.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: HTTP %d: %s", path, resp.StatusCode, truncate(b, 200))
	}
	return nil
}

// Quotes posts one batch to /api/v1/emit.
func (p *HTTPPublisher) Quotes(ctx context.Context, symbols []int) error {
	body := make([]byte, 0, 128*len(symbols)+2)
	body = append(body, '[')
	var data []byte
	ts := time.Now().UnixNano()
	for i, s := range symbols {
		if i > 0 {
			body = append(body, ',')
		}
		sym := SymbolName(s)
		data = AppendQuote(data[:0], sym, price(i+s), ts)
		body = AppendEmit(body, "watchlist:"+sym, "quote:update", data)
	}
	body = append(body, ']')
	return p.post(ctx, "/api/v1/emit", body)
}

// Trades posts domain events to /api/v1/events.
func (p *HTTPPublisher) Trades(ctx context.Context, users []int) error {
	var trade []byte
	if p.EventsBatch {
		body := []byte{'['}
		ts := time.Now().UnixNano()
		for i, u := range users {
			if i > 0 {
				body = append(body, ',')
			}
			trade = AppendTrade(trade[:0], tradeSeq.Add(1), SymbolName(u%100), price(u), ts)
			body = AppendTradeEvent(body, UserID(u), trade)
		}
		return p.post(ctx, "/api/v1/events", append(body, ']'))
	}
	var body []byte
	for _, u := range users {
		trade = AppendTrade(trade[:0], tradeSeq.Add(1), SymbolName(u%100), price(u), time.Now().UnixNano())
		body = AppendTradeEvent(body[:0], UserID(u), trade)
		if err := p.post(ctx, "/api/v1/events", body); err != nil {
			return err
		}
	}
	return nil
}

// Close releases idle connections.
func (p *HTTPPublisher) Close() error {
	p.Client.CloseIdleConnections()
	return nil
}

// EmitterPublisher publishes like @socket.io/redis-emitter 5.x: msgpack
// PUBLISHed on the adapter's channels, pipelined per batch. Trades go out
// as the final trade:executed event to trades:<user> (the emitter has no
// domain logic).
type EmitterPublisher struct {
	RDB    redis.UniversalClient
	Prefix string // socket.io
}

func (p *EmitterPublisher) publish(ctx context.Context, n int, build func(i int) (string, []byte, error)) error {
	pipe := p.RDB.Pipeline()
	for i := 0; i < n; i++ {
		ch, msg, err := build(i)
		if err != nil {
			return err
		}
		pipe.Publish(ctx, ch, msg)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// Quotes publishes quote:update to watchlist:<symbol>.
func (p *EmitterPublisher) Quotes(ctx context.Context, symbols []int) error {
	ts := time.Now().UnixNano()
	return p.publish(ctx, len(symbols), func(i int) (string, []byte, error) {
		sym := SymbolName(symbols[i])
		data := (&OrderedMap{}).Set("symbol", sym).Set("price", price(i+symbols[i])).Set("ts", ts)
		return EmitterMessage(p.Prefix, "/", []string{"watchlist:" + sym}, "quote:update", data)
	})
}

// Trades publishes trade:executed {userId, trade} to trades:<user>.
func (p *EmitterPublisher) Trades(ctx context.Context, users []int) error {
	ts := time.Now().UnixNano()
	return p.publish(ctx, len(users), func(i int) (string, []byte, error) {
		u := users[i]
		trade := (&OrderedMap{}).Set("id", "t"+strconv.FormatInt(tradeSeq.Add(1), 10)).
			Set("symbol", SymbolName(u%100)).Set("side", "buy").Set("quantity", 10).
			Set("price", price(u)).Set("ts", ts)
		data := (&OrderedMap{}).Set("userId", UserID(u)).Set("trade", trade)
		return EmitterMessage(p.Prefix, "/", []string{"trades:" + UserID(u)}, "trade:executed", data)
	})
}

// Close closes the Redis client.
func (p *EmitterPublisher) Close() error { return p.RDB.Close() }

// PaceResult is what a paced publishing run achieved.
type PaceResult struct {
	Sent    int            `json:"sent"`   // messages accepted by the server
	Failed  int            `json:"failed"` // messages in failed requests
	Errors  map[string]int `json:"errors,omitempty"`
	Seconds float64        `json:"seconds"`
}

// Pace calls send every tick with the number of messages due at rate per
// second, keeping at most conc calls in flight; when all are busy the due
// messages accumulate into the next call (at most maxBatch each), so a slow
// server lowers the achieved rate instead of queueing without bound.
func Pace(ctx context.Context, rate float64, dur, tick time.Duration, conc, maxBatch int, send func(ctx context.Context, n int) error) PaceResult {
	conc = max(conc, 1)
	maxBatch = max(maxBatch, 1)
	sem := make(chan struct{}, conc)
	var mu sync.Mutex
	res := PaceResult{}
	var wg sync.WaitGroup
	t0 := time.Now()
	issued := 0
	tk := time.NewTicker(tick)
	defer tk.Stop()
	end := time.NewTimer(dur)
	defer end.Stop()
loop:
	for {
		due := int(rate*time.Since(t0).Seconds()) - issued
		for due > 0 {
			n := min(due, maxBatch)
			select {
			case sem <- struct{}{}:
			case <-end.C:
				break loop
			case <-ctx.Done():
				break loop
			}
			issued += n
			due -= n
			wg.Add(1)
			go func(n int) {
				defer wg.Done()
				err := send(ctx, n)
				<-sem
				mu.Lock()
				if err != nil {
					res.Failed += n
					if res.Errors == nil {
						res.Errors = map[string]int{}
					}
					if k := classifyError(err); len(res.Errors) < 10 || res.Errors[k] > 0 {
						res.Errors[k]++
					}
				} else {
					res.Sent += n
				}
				mu.Unlock()
			}(n)
		}
		select {
		case <-tk.C:
		case <-end.C:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	wg.Wait()
	res.Seconds = time.Since(t0).Seconds()
	return res
}

// RoundRobin hands out indexes 0..n-1 in turn; it is safe for concurrent use.
type RoundRobin struct {
	n    int
	next atomic.Int64
}

// NewRoundRobin cycles over n indexes.
func NewRoundRobin(n int) *RoundRobin { return &RoundRobin{n: max(n, 1)} }

// Take returns the next k indexes.
func (r *RoundRobin) Take(k int) []int {
	start := r.next.Add(int64(k)) - int64(k)
	out := make([]int, k)
	for i := range out {
		out[i] = int((start + int64(i)) % int64(r.n))
	}
	return out
}
