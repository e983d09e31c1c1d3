package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

// streamID is a Redis stream entry id, the recovery offset clients see.
type streamID struct{ ms, seq int64 }

func parseStreamID(s string) (streamID, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, false
	}
	ms, err1 := strconv.ParseInt(a, 10, 64)
	seq, err2 := strconv.ParseInt(b, 10, 64)
	return streamID{ms, seq}, err1 == nil && err2 == nil
}

func (a streamID) less(b streamID) bool { return a.ms < b.ms || a.ms == b.ms && a.seq < b.seq }

// TestOffsetsArriveInStreamOrder: the soak found duplicates after a
// recovery whose cause is that one user's trades, published at the same
// time through both nodes, reach the client in an order that differs from
// their recovery offsets (stream ids). A client resumes from the offset of
// the last event it got (socket.io-client does), so an inversion at the
// moment of a disconnection replays an event the client already has
// (duplicate) or skips one it never got (loss). This test publishes 400
// trades to one user through both nodes at once (4 publishers, one event
// per request) and requires the offsets to arrive in increasing order;
// the subtest "one node" sends every request to the client's node.
func TestOffsetsArriveInStreamOrder(t *testing.T) {
	t.Run("two nodes", func(t *testing.T) { offsetOrder(t, false) })
	t.Run("one node", func(t *testing.T) { offsetOrder(t, true) })
}

func offsetOrder(t *testing.T, oneNode bool) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	a := startNode(t, "a", srv.URL())
	b := startNode(t, "b", srv.URL())
	u := seedUsers(t, rdb, 1)[0]
	c, err := dial(a.url, u.cookie, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := ackOK(c.EmitWithAck(5*time.Second, "subscribe:trades")); err != nil {
		t.Fatal(err)
	}
	const perPublisher, publishers = 100, 4
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	client := &http.Client{Timeout: 10 * time.Second}
	for p := range publishers {
		n := []*node{a, b}[p%2]
		if oneNode {
			n = a
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perPublisher {
				body := fmt.Sprintf(`[{"type":"trade.executed","userId":%q,"trade":{"symbol":"AAPL","side":"buy","quantity":1,"price":1,"n":%d}}]`,
					u.id, p*perPublisher+i)
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, n.url+"/api/v1/events", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+apiKey)
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					errs <- fmt.Errorf("publish: %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := c.WaitEventN("trade:executed", perPublisher*publishers, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	var prev streamID
	var prevRaw string
	inversions := 0
	var examples []string
	for i, ev := range c.EventsNamed("trade:executed") {
		var off string
		if len(ev.Args) < 2 || json.Unmarshal(ev.Args[len(ev.Args)-1], &off) != nil {
			t.Fatalf("event %d carries no offset: %s", i, ev.Args)
		}
		id, ok := parseStreamID(off)
		if !ok {
			t.Fatalf("event %d: offset %q is not a stream id", i, off)
		}
		if i > 0 && id.less(prev) {
			inversions++
			if len(examples) < 5 {
				examples = append(examples, fmt.Sprintf("#%d %s after #%d %s", i, off, i-1, prevRaw))
			}
		}
		prev, prevRaw = id, off
	}
	t.Logf("%d trades, %d arrived with an offset lower than the one before", perPublisher*publishers, inversions)
	if inversions > 0 {
		t.Errorf("offsets out of stream order at the client (%d times), e.g. %s: a reconnect with the last offset "+
			"then replays the events above it (duplicates) and never the ones below it still in flight (losses)",
			inversions, strings.Join(examples, "; "))
	}
}
