// Package soak runs two tradewire nodes (the real binary, Redis adapter,
// connect-redis sessions, ingest stream) under a steady population of
// clients with connection churn, recovery reconnects and publishes through
// the HTTP API and the ingest stream, and records goroutines, heap, RSS and
// open fds of each node over time. It fails on a growth trend, on a trade
// a connected client did not get, and when the nodes do not go back to
// their baseline after every client left.
//
// TRADEWIRE_SOAK_DURATION sets the load duration (default 45s; the
// documented run in docs/SOAK.md is 10m), TRADEWIRE_SOAK_CLIENTS the
// population (default 300) and TRADEWIRE_SOAK_OUT a directory that receives
// samples.csv and the goroutine and heap profiles.
package soak

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
	"github.com/tradewire/tradewire/internal/testutil/sioclient"
)

const (
	secret       = "soak-test-secret"
	apiKey       = "soak-test-api-key-0000001"
	ingestStream = "soak:ingest"
	nSymbols     = 30
	// recoveryWindow is short so that the state kept for abruptly closed
	// sessions reaches its steady size within the warm-up.
	recoveryWindow = 10 * time.Second
	// deliveryWait bounds how long a leaving client waits for the trades
	// published to it while it was connected before they count as lost.
	deliveryWait = 10 * time.Second
	// recoveryMargin: a recovery is attempted only with an offset younger
	// than recoveryWindow minus this (the longest reconnect takes ~2.5s).
	recoveryMargin = 4 * time.Second
	sampleEvery    = 2 * time.Second
)

type config struct {
	duration time.Duration
	warmup   time.Duration
	clients  int
	churn    float64 // share of the live clients that leave every second
	outDir   string
	// Per 100 ms tick: trades and quotes in each node's HTTP batch, and in
	// the ingest stream.
	httpTrades, httpQuotes, ingestTrades, ingestQuotes int
	// twin: every HTTP batch is posted to both nodes at once (two
	// publishers per event; TRADEWIRE_SOAK_TWIN=false turns it off).
	twin bool
}

func loadConfig(t *testing.T) config {
	c := config{duration: 45 * time.Second, clients: 300, churn: 0.10,
		httpTrades: 4, httpQuotes: 4, ingestTrades: 4, ingestQuotes: 4, twin: os.Getenv("TRADEWIRE_SOAK_TWIN") != "false"}
	if v := os.Getenv("TRADEWIRE_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 30*time.Second {
			t.Fatalf("TRADEWIRE_SOAK_DURATION %q: want a duration of at least 30s", v)
		}
		c.duration = d
	}
	if v := os.Getenv("TRADEWIRE_SOAK_CLIENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 {
			t.Fatalf("TRADEWIRE_SOAK_CLIENTS %q: want a number >= 10", v)
		}
		c.clients = n
	}
	c.outDir = os.Getenv("TRADEWIRE_SOAK_OUT")
	c.warmup = max(15*time.Second, c.duration/10)
	return c
}

// pub is one trade accepted by the API or the stream: published to its
// user somewhere in [start, end].
type pub struct {
	n          int
	start, end time.Time
}

type user struct {
	id, cookie string
	mu         sync.Mutex
	next       int
	pubs       []pub
}

func (u *user) nextN() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.next++
	return u.next
}

func (u *user) record(n int, start, end time.Time) {
	u.mu.Lock()
	u.pubs = append(u.pubs, pub{n, start, end})
	u.mu.Unlock()
}

// expected returns the trades published entirely within [from, to].
func (u *user) expected(from, to time.Time) []int {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []int
	for _, p := range u.pubs {
		if !p.start.Before(from) && !p.end.After(to) {
			out = append(out, p.n)
		}
	}
	slices.Sort(out)
	return out
}

// epoch is one logical client session: from its subscribe:trades ack to
// the moment it decides to leave, over one connection or several joined
// by connection state recovery.
type epoch struct {
	u       *user
	start   time.Time
	conns   []*sioclient.Client
	resumed []string // offset each connection resumed from ("" for the first)
}

// inversionDupes counts the duplicates explained by out-of-order offsets:
// an event an earlier connection got whose offset is above the offset the
// next connection resumed from (the client's last event was not its
// newest). See TestOffsetsArriveInStreamOrder.
func (e *epoch) inversionDupes() int {
	n := 0
	seen := map[int]streamID{} // trade n -> offset, from earlier connections
	for i, c := range e.conns {
		from, _ := parseStreamID(e.resumed[i])
		here := map[int]streamID{}
		for _, ev := range c.EventsNamed("trade:executed") {
			var p struct {
				Trade struct {
					N int `json:"n"`
				} `json:"trade"`
			}
			var off string
			if len(ev.Args) < 2 || json.Unmarshal(ev.Args[0], &p) != nil || json.Unmarshal(ev.Args[len(ev.Args)-1], &off) != nil {
				continue
			}
			id, _ := parseStreamID(off)
			if prev, ok := seen[p.Trade.N]; ok && i > 0 && from.less(prev) {
				n++
			}
			here[p.Trade.N] = id
		}
		for k, v := range here {
			seen[k] = v
		}
	}
	return n
}

func (e *epoch) last() *sioclient.Client { return e.conns[len(e.conns)-1] }

// orderViolations counts, per connection, trades whose offset is not above
// the previous trade's (the user's stream order) or whose number is below
// an earlier trade of the same publisher (each publisher sends a user's
// trades in ascending numbers, one request after the other).
func (e *epoch) orderViolations() int {
	bad := 0
	for _, c := range e.conns {
		var last streamID
		first := true
		byPub := map[string]int{}
		for _, ev := range c.EventsNamed("trade:executed") {
			var p struct {
				Trade struct {
					N   int    `json:"n"`
					Pub string `json:"pub"`
				} `json:"trade"`
			}
			var off string
			if len(ev.Args) < 2 || json.Unmarshal(ev.Args[0], &p) != nil || json.Unmarshal(ev.Args[len(ev.Args)-1], &off) != nil {
				continue
			}
			id, ok := parseStreamID(off)
			if ok {
				if !first && !last.less(id) {
					bad++
				}
				last, first = id, false
			}
			if p.Trade.Pub == "ingest" {
				continue // the consumer group spreads one stream over the nodes: no order between entries
			}
			if prev, seen := byPub[p.Trade.Pub]; seen && p.Trade.N <= prev {
				bad++
			}
			byPub[p.Trade.Pub] = max(byPub[p.Trade.Pub], p.Trade.N)
		}
	}
	return bad
}

// received counts trade numbers, trades addressed to another user and
// quotes over the epoch's connections.
func (e *epoch) received() (nums map[int]int, misrouted, quotes int) {
	nums = map[int]int{}
	for _, c := range e.conns {
		for _, ev := range c.Events() {
			switch ev.Name {
			case "quote:update":
				quotes++
			case "trade:executed":
				var p struct {
					UserID string `json:"userId"`
					Trade  struct {
						N int `json:"n"`
					} `json:"trade"`
				}
				if len(ev.Args) == 0 || json.Unmarshal(ev.Args[0], &p) != nil || p.UserID != e.u.id {
					misrouted++
					continue
				}
				nums[p.Trade.N]++
			}
		}
	}
	return nums, misrouted, quotes
}

// describe lists, per connection, the trades received as n@offset in
// arrival order (the evidence for a loss or a duplicate).
func (e *epoch) describe() string {
	var b strings.Builder
	for i, c := range e.conns {
		fmt.Fprintf(&b, " [conn %d pid %s:", i, c.PID())
		for _, ev := range c.EventsNamed("trade:executed") {
			var p struct {
				Trade struct {
					N int `json:"n"`
				} `json:"trade"`
			}
			off := ""
			if len(ev.Args) > 0 {
				_ = json.Unmarshal(ev.Args[0], &p)
				_ = json.Unmarshal(ev.Args[len(ev.Args)-1], &off)
			}
			fmt.Fprintf(&b, " %d@%s", p.Trade.N, off)
		}
		b.WriteString("]")
	}
	return b.String()
}

type leaveKind int

const (
	leaveClean   leaveKind = iota // "41" then Engine.IO close
	leaveAbrupt                   // TCP close, no goodbye
	leaveRecover                  // TCP close, reconnect with {pid, offset}
	leaveGone                     // the server closed it (unexpected)
)

type slot struct {
	idx        int
	leave      chan leaveKind
	cur        atomic.Pointer[user] // nil between sessions
	recovering atomic.Bool
}

type stats struct {
	connects, connectFail, clean, abrupt, recovered, notRecovered, recoverSkipped atomic.Int64
	recoverTooOld, dupesInversion, lostInversion                                  atomic.Int64
	unexpected, epochs, checked, lost, dupes, misrouted, quotes                   atomic.Int64
	httpPosts, httpFail, httpTrades, ingestEntries, ingestFail, ingestTrades      atomic.Int64
	slowestDelivery                                                               atomic.Int64
	// orderBad: trades a connection got with an offset not above the
	// previous one, or before an earlier trade of the same publisher;
	// twinDupes: HTTP items the second publisher's request got back as
	// duplicates (expected: each trade is raced through both nodes).
	orderBad, twinDupes, twinAccepted atomic.Int64
}

type world struct {
	t       *testing.T
	cfg     config
	nodes   []*node
	rdb     *redis.Client
	users   []*user
	slots   []*slot
	symbols []string
	st      stats
	stop    chan struct{}
	wg      sync.WaitGroup
	pubHTTP *http.Client
	profDir string

	errMu  sync.Mutex
	errors []string
}

func (w *world) note(format string, args ...any) {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	if len(w.errors) < 20 {
		w.errors = append(w.errors, fmt.Sprintf(format, args...))
	}
}

func (w *world) stopping() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

func dial(base, cookie string, authPayload map[string]any) (*sioclient.Client, error) {
	h := http.Header{}
	h.Set("Cookie", cookie)
	return sioclient.Dial(base, sioclient.Options{Header: h, Auth: authPayload, Timeout: 10 * time.Second})
}

func ackOK(ack []json.RawMessage, err error) error {
	if err != nil {
		return err
	}
	if len(ack) == 0 || !strings.Contains(string(ack[0]), `"success":true`) {
		return fmt.Errorf("ack %s", ack)
	}
	return nil
}

// connect opens a subscribed connection; start is when the trades room
// was joined (its ack came back).
func (w *world) connect(n *node, u *user, idx int) (*sioclient.Client, time.Time, error) {
	c, err := dial(n.url, u.cookie, nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	if err := ackOK(c.EmitWithAck(10*time.Second, "subscribe:trades")); err != nil {
		c.Close()
		return nil, time.Time{}, fmt.Errorf("subscribe:trades: %w", err)
	}
	start := time.Now()
	if err := ackOK(c.EmitWithAck(10*time.Second, "subscribe:portfolio")); err != nil {
		c.Close()
		return nil, time.Time{}, fmt.Errorf("subscribe:portfolio: %w", err)
	}
	syms := []string{w.symbols[idx%nSymbols], w.symbols[(idx+1)%nSymbols], w.symbols[(idx+2)%nSymbols]}
	if err := ackOK(c.EmitWithAck(10*time.Second, "subscribe:watchlist", map[string]any{"symbols": syms})); err != nil {
		c.Close()
		return nil, time.Time{}, fmt.Errorf("subscribe:watchlist: %w", err)
	}
	return c, start, nil
}

func (w *world) runSlot(s *slot) {
	defer w.wg.Done()
	r := rand.New(rand.NewSource(int64(s.idx) + 1))
	for gen := 0; !w.stopping(); gen++ {
		u := w.users[s.idx+len(w.slots)*(gen%2)]
		n := w.nodes[r.Intn(len(w.nodes))]
		c, start, err := w.connect(n, u, s.idx)
		if err != nil {
			w.st.connectFail.Add(1)
			w.note("connect %s to node %s: %v", u.id, n.name, err)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		w.st.connects.Add(1)
		select { // a leave signal meant for the previous session
		case <-s.leave:
		default:
		}
		ep := &epoch{u: u, start: start, conns: []*sioclient.Client{c}, resumed: []string{""}}
		s.cur.Store(u)
		kind, cut := w.live(s, ep, r)
		s.cur.Store(nil)
		w.finish(ep, kind, cut)
	}
}

// live runs a session until it should end; it reconnects with recovery
// when told to. cut, when set, ends the checked interval early.
func (w *world) live(s *slot, ep *epoch, r *rand.Rand) (leaveKind, time.Time) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			if s.idx%2 == 0 {
				return leaveClean, time.Time{}
			}
			return leaveAbrupt, time.Time{}
		case k := <-s.leave:
			if k != leaveRecover {
				return k, time.Time{}
			}
			ok, cut := w.recoverSession(s, ep, r)
			if !ok {
				return leaveAbrupt, cut
			}
		case <-tick.C:
			if ep.last().Closed() {
				w.st.unexpected.Add(1)
				w.note("user %s: connection closed by the server", ep.u.id)
				return leaveGone, time.Now()
			}
		}
	}
}

// recoverSession drops the connection without a goodbye, waits 0.2–1.5 s,
// and reconnects to either node (at random) with {pid, offset}. The session goes on
// when the server restored it.
func (w *world) recoverSession(s *slot, ep *epoch, r *rand.Rand) (bool, time.Time) {
	c := ep.last()
	pid, off := c.PID(), c.LastOffset() // may still move until the reader stops
	if pid == "" || off == "" {
		// Nothing received yet that carries an offset: a client cannot
		// ask for recovery (socket.io-client neither).
		w.st.recoverSkipped.Add(1)
		return false, time.Time{}
	}
	// The offset is a Redis stream id (milliseconds first). Its stream
	// expires a recovery window after its last entry, as Socket.IO drops
	// packets older than maxDisconnectionDuration: an offset that old
	// cannot be recovered by design, whatever the disconnection lasted.
	if ms, err := strconv.ParseInt(strings.SplitN(off, "-", 2)[0], 10, 64); err != nil ||
		time.Since(time.UnixMilli(ms)) > recoveryWindow-recoveryMargin {
		w.st.recoverTooOld.Add(1)
		return false, time.Time{}
	}
	s.recovering.Store(true)
	defer s.recovering.Store(false)
	closedAt := time.Now()
	c.Close()
	w.st.abrupt.Add(1)
	// Resume from the last event the reader took before the close, as
	// socket.io-client does.
	_ = c.WaitClosed(5 * time.Second)
	off = c.LastOffset()
	time.Sleep(200*time.Millisecond + time.Duration(r.Intn(1300))*time.Millisecond)
	var nc *sioclient.Client
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		n := w.nodes[r.Intn(len(w.nodes))]
		if nc, err = dial(n.url, ep.u.cookie, map[string]any{"pid": pid, "offset": off}); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		w.st.connectFail.Add(1)
		w.note("recovery reconnect %s: %v", ep.u.id, err)
		return false, closedAt
	}
	w.st.connects.Add(1)
	if nc.PID() != pid {
		w.st.notRecovered.Add(1)
		w.note("user %s: session not recovered (pid %q offset %q)", ep.u.id, pid, off)
		nc.Close()
		return false, closedAt
	}
	w.st.recovered.Add(1)
	ep.conns = append(ep.conns, nc)
	ep.resumed = append(ep.resumed, off)
	return true, time.Time{}
}

// finish waits until the session got every trade published to its user
// while it was connected (or deliveryWait passed), closes it and counts.
func (w *world) finish(ep *epoch, kind leaveKind, cut time.Time) {
	mark := cut
	if mark.IsZero() {
		mark = time.Now()
	}
	want := ep.u.expected(ep.start, mark)
	deadline := time.Now().Add(deliveryWait)
	var got map[int]int
	var misrouted, quotes int
	var missing []int
	for {
		got, misrouted, quotes = ep.received()
		missing = missing[:0]
		for _, n := range want {
			if got[n] == 0 {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) || ep.last().Closed() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if waited := time.Since(mark); len(missing) == 0 && waited > time.Duration(w.st.slowestDelivery.Load()) {
		w.st.slowestDelivery.Store(int64(waited))
	}
	c := ep.last()
	switch kind {
	case leaveClean:
		_ = c.WriteRaw("41") // namespace disconnect, as socket.disconnect()
		_ = c.WriteRaw("1")  // Engine.IO close
		_ = c.Close()
		w.st.clean.Add(1)
	case leaveAbrupt:
		_ = c.Close()
		if cut.IsZero() { // else closed already by recoverSession
			w.st.abrupt.Add(1)
		}
	default:
		_ = c.Close()
	}
	dupes := 0
	for _, k := range got {
		if k > 1 {
			dupes += k - 1
		}
	}
	w.st.epochs.Add(1)
	w.st.checked.Add(int64(len(want)))
	w.st.lost.Add(int64(len(missing)))
	w.st.dupes.Add(int64(dupes))
	if dupes > 0 {
		w.st.dupesInversion.Add(int64(ep.inversionDupes()))
	}
	w.st.misrouted.Add(int64(misrouted))
	w.st.quotes.Add(int64(quotes))
	if bad := ep.orderViolations(); bad > 0 {
		w.st.orderBad.Add(int64(bad))
		w.note("user %s: %d trades out of order; received%s", ep.u.id, bad, ep.describe())
	}
	if len(missing) > 0 {
		detail, inv := w.lossOffsets(ep, missing)
		w.st.lostInversion.Add(int64(inv))
		w.note("user %s: missing trades recorded at %s", ep.u.id, detail)
	}
	if len(missing) > 0 || dupes > 0 {
		w.note("user %s: expected %v, missing %v, duplicates %d; received%s", ep.u.id, want, missing, dupes, ep.describe())
	}
}

// lossOffsets looks the missing trades up in the user's recovery stream
// and counts those below an offset a later connection resumed from: the
// client had skipped past them (it got a newer event first).
func (w *world) lossOffsets(ep *epoch, missing []int) (string, int) {
	key := "tradewire:rec:s:/:{" + ep.u.id + "}"
	entries, err := w.rdb.XRange(context.Background(), key, "-", "+").Result()
	if err != nil {
		return err.Error(), 0
	}
	var parts []string
	inv := 0
	for _, n := range missing {
		at := "not in the stream"
		for _, e := range entries {
			d, _ := e.Values["d"].(string)
			if strings.Contains(d, fmt.Sprintf(`"n":%d,`, n)) || strings.Contains(d, fmt.Sprintf(`"n":%d}`, n)) {
				at = e.ID
				id, _ := parseStreamID(e.ID)
				for _, r := range ep.resumed[1:] {
					if from, ok := parseStreamID(r); ok && id.less(from) {
						at += " (below resume offset " + r + ")"
						inv++
						break
					}
				}
			}
		}
		parts = append(parts, fmt.Sprintf("%d@%s", n, at))
	}
	return strings.Join(parts, ", ") + "; resumed from " + strings.Join(ep.resumed[1:], ", "), inv
}

// churn tells a share of the live sessions to leave every second: a
// quarter leave cleanly twice over, a quarter drop the connection, a
// quarter drop it and recover.
func (w *world) churn() {
	defer w.wg.Done()
	kinds := []leaveKind{leaveRecover, leaveClean, leaveAbrupt, leaveClean}
	seq := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
		var live []*slot
		for _, s := range w.slots {
			if s.cur.Load() != nil && !s.recovering.Load() {
				live = append(live, s)
			}
		}
		rand.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
		k := int(math.Round(float64(len(live)) * w.cfg.churn))
		for _, s := range live[:k] {
			select {
			case s.leave <- kinds[seq%len(kinds)]:
				seq++
			default:
			}
		}
	}
}

func (w *world) pickUser(r *rand.Rand) *user {
	for range 5 {
		if u := w.slots[r.Intn(len(w.slots))].cur.Load(); u != nil {
			return u
		}
	}
	return nil
}

type tradeOut struct {
	u    *user
	n    int
	body []byte
}

func (w *world) trades(r *rand.Rand, k int, via string) []tradeOut {
	return w.tradesFrom(r, k, via, via)
}

// tradesFrom builds k trades of publisher pub (numbered per user; a
// publisher's trades of one user are published in ascending order).
func (w *world) tradesFrom(r *rand.Rand, k int, via, pub string) []tradeOut {
	var out []tradeOut
	for range k {
		u := w.pickUser(r)
		if u == nil {
			continue
		}
		n := u.nextN()
		b, _ := json.Marshal(map[string]any{
			"type": "trade.executed", "id": fmt.Sprintf("soak-%s-%d", u.id, n), "userId": u.id,
			"trade": map[string]any{"symbol": w.symbols[r.Intn(nSymbols)], "side": "buy", "quantity": 1 + r.Intn(100),
				"price": 100 + r.Float64(), "n": n, "via": via, "pub": pub},
		})
		out = append(out, tradeOut{u, n, b})
	}
	return out
}

func (w *world) quote(r *rand.Rand) []byte {
	b, _ := json.Marshal(map[string]any{"type": "quote.update", "symbol": w.symbols[r.Intn(nSymbols)],
		"quote": map[string]any{"price": 100 + r.Float64(), "volume": r.Intn(1e6)}})
	return b
}

// publishHTTP posts a batch of trades and quotes to one node every 100 ms.
func (w *world) publishHTTP(n *node, seed int64) {
	defer w.wg.Done()
	r := rand.New(rand.NewSource(seed))
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
		ts := w.tradesFrom(r, w.cfg.httpTrades, "http", "http-"+n.name)
		parts := make([]string, 0, len(ts)+w.cfg.httpQuotes)
		for _, t := range ts {
			parts = append(parts, string(t.body))
		}
		for range w.cfg.httpQuotes {
			parts = append(parts, string(w.quote(r)))
		}
		if u := w.pickUser(r); u != nil { // recoverable too: gives clients fresher offsets
			b, _ := json.Marshal(map[string]any{"type": "portfolio.updated", "userId": u.id,
				"portfolio": map[string]any{"value": 10000 + r.Float64(), "cash": 500}})
			parts = append(parts, string(b))
		}
		body := "[" + strings.Join(parts, ",") + "]"
		// Two publishers per event: the same batch (same event ids) goes to
		// this node and, at the same moment, to the other one, as a backend
		// whose retry races its first attempt. Every trade must still reach
		// its user once.
		targets := []*node{n}
		if w.cfg.twin {
			for _, o := range w.nodes {
				if o != n {
					targets = append(targets, o)
					break
				}
			}
		}
		start := time.Now()
		oks := make([]bool, len(targets))
		var wg sync.WaitGroup
		for i, tn := range targets {
			wg.Add(1)
			go func(i int, tn *node) {
				defer wg.Done()
				oks[i] = w.postBatch(tn, body, i > 0)
			}(i, tn)
		}
		wg.Wait()
		if !slices.Contains(oks, true) {
			continue
		}
		end := time.Now()
		w.st.httpTrades.Add(int64(len(ts)))
		for _, t := range ts {
			t.u.record(t.n, start, end)
		}
	}
}

// postBatch posts one batch; every item must be accepted or a duplicate.
func (w *world) postBatch(n *node, body string, twin bool) bool {
	req, _ := http.NewRequest(http.MethodPost, n.url+"/api/v1/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.pubHTTP.Do(req)
	if err != nil {
		w.st.httpFail.Add(1)
		w.note("POST /api/v1/events to %s: %v", n.name, err)
		return false
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ans struct {
		Accepted, Duplicates int
		Results              []struct{ Status string }
	}
	_ = json.Unmarshal(raw, &ans)
	ok := resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusMultiStatus
	for _, r := range ans.Results {
		ok = ok && (r.Status == "accepted" || r.Status == "duplicate")
	}
	if !ok {
		w.st.httpFail.Add(1)
		w.note("POST /api/v1/events to %s: %d %s", n.name, resp.StatusCode, raw)
		return false
	}
	w.st.httpPosts.Add(1)
	if twin {
		w.st.twinDupes.Add(int64(ans.Duplicates))
		w.st.twinAccepted.Add(int64(ans.Accepted))
	}
	return true
}

// publishIngest appends trades and quotes to the ingest stream every 100 ms
// (field "event" = the domain event JSON).
func (w *world) publishIngest(seed int64) {
	defer w.wg.Done()
	r := rand.New(rand.NewSource(seed))
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	ctx := context.Background()
	for {
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
		ts := w.trades(r, w.cfg.ingestTrades, "ingest")
		var bodies [][]byte
		for _, t := range ts {
			bodies = append(bodies, t.body)
		}
		for range w.cfg.ingestQuotes {
			bodies = append(bodies, w.quote(r))
		}
		start := time.Now()
		pipe := w.rdb.Pipeline()
		for _, b := range bodies {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: ingestStream, MaxLen: 20000, Approx: true, Values: []any{"event", string(b)}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			w.st.ingestFail.Add(1)
			w.note("XADD: %v", err)
			continue
		}
		end := time.Now()
		w.st.ingestEntries.Add(int64(len(bodies)))
		w.st.ingestTrades.Add(int64(len(ts)))
		for _, t := range ts {
			t.u.record(t.n, start, end)
		}
	}
}

// sampler measures every node every sampleEvery.
type sampler struct {
	w       *world
	redis   int // Redis port
	started time.Time
	phase   atomic.Value
	mu      sync.Mutex
	samples []sample
}

func (sp *sampler) measure(ctx context.Context, n *node) (sample, error) {
	s := sample{T: time.Since(sp.started).Seconds(), Phase: sp.phase.Load().(string), Node: n.name}
	fds, err := countFDs(n.pid, n.port, sp.redis)
	if err != nil {
		return s, err
	}
	s.FDs, s.ClientFDs, s.RedisFDs = fds.Total, fds.Client, fds.Redis
	text, err := httpGet(ctx, n.url+"/metrics")
	if err != nil {
		return s, err
	}
	m := metricValues(text, "go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes",
		"tradewire_connections", "go_memstats_next_gc_bytes", "go_memstats_stack_inuse_bytes", "go_gc_gogc_percent",
		"go_memstats_buck_hash_sys_bytes")
	s.Goroutines, s.HeapInuse, s.RSS = m["go_goroutines"], m["go_memstats_heap_inuse_bytes"], m["process_resident_memory_bytes"]
	s.Conns, s.ProfBuckets = m["tradewire_connections"], m["go_memstats_buck_hash_sys_bytes"]
	s.HeapLive = liveHeap(m["go_memstats_next_gc_bytes"], m["go_memstats_stack_inuse_bytes"], m["go_gc_gogc_percent"])
	clients := 0
	for _, sl := range sp.w.slots {
		if sl.cur.Load() != nil {
			clients++
		}
	}
	s.Clients = clients
	if info, err := sp.w.rdb.Info(ctx, "memory").Result(); err == nil {
		for _, l := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
				s.RedisMem, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return s, nil
}

func (sp *sampler) run(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	for {
		for _, n := range sp.w.nodes {
			if n.exited() {
				sp.w.note("node %s exited: %s", n.name, n.exitState)
				continue
			}
			s, err := sp.measure(ctx, n)
			if err != nil {
				if ctx.Err() == nil {
					sp.w.note("sample %s: %v", n.name, err)
				}
				continue
			}
			sp.mu.Lock()
			sp.samples = append(sp.samples, s)
			sp.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (sp *sampler) all() []sample {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return append([]sample(nil), sp.samples...)
}

func seedUsers(t *testing.T, rdb *redis.Client, n int) []*user {
	t.Helper()
	users := make([]*user, n)
	pipe := rdb.Pipeline()
	for i := range users {
		sid := fmt.Sprintf("soak-session-%06d-bbbbbbbbbbbbb", i)
		id := fmt.Sprintf("soak-user-%d", i)
		v := fmt.Sprintf(`{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"passport":{"user":%q}}`, id)
		pipe.Set(context.Background(), "sess:"+sid, v, 2*time.Hour)
		users[i] = &user{id: id, cookie: "connect.sid=" + url.QueryEscape(auth.Sign(sid, secret))}
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	return users
}

// liveHeap derives the heap marked live by the last GC from the heap goal
// the GC set after it: goal = live + (live + stacks + globals)·GOGC/100
// (Go ≥ 1.21 pacer), globals neglected (constant). Unlike heap_inuse it
// does not depend on where in its cycle the GC is, and unlike a forced GC
// it does not disturb the process.
func liveHeap(goal, stacks, gogc float64) float64 {
	g := gogc / 100
	if g <= 0 {
		return goal
	}
	return max(0, (goal-stacks*g)/(1+g))
}

func mib(b float64) string { return fmt.Sprintf("%.1f", b/(1<<20)) }

func writeCSV(path string, ss []sample) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	cw := csv.NewWriter(f)
	_ = cw.Write([]string{"t_s", "phase", "node", "goroutines", "heap_inuse_bytes", "heap_live_bytes", "rss_bytes",
		"fds", "client_fds", "redis_fds", "connections", "clients_live", "redis_used_bytes", "profiling_buckets_bytes"})
	for _, s := range ss {
		_ = cw.Write([]string{strconv.FormatFloat(s.T, 'f', 1, 64), s.Phase, s.Node,
			strconv.FormatFloat(s.Goroutines, 'f', 0, 64), strconv.FormatFloat(s.HeapInuse, 'f', 0, 64),
			strconv.FormatFloat(s.HeapLive, 'f', 0, 64), strconv.FormatFloat(s.RSS, 'f', 0, 64),
			strconv.Itoa(s.FDs), strconv.Itoa(s.ClientFDs), strconv.Itoa(s.RedisFDs),
			strconv.FormatFloat(s.Conns, 'f', 0, 64), strconv.Itoa(s.Clients), strconv.FormatInt(s.RedisMem, 10),
			strconv.FormatFloat(s.ProfBuckets, 'f', 0, 64)})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// saveProfile fetches a goroutine profile (text, debug=1) or a heap
// profile (pprof format, for go tool pprof -base) and keeps it in the
// output directory.
func (w *world) saveProfile(n *node, kind, label string) []byte {
	u, name := n.debugURL+"/debug/pprof/goroutine?debug=1", fmt.Sprintf("goroutine-%s-%s.txt", n.name, label)
	if kind == "heap" {
		u, name = n.debugURL+"/debug/pprof/heap?gc=1", fmt.Sprintf("heap-%s-%s.pb.gz", n.name, label)
	}
	b, err := httpGet(context.Background(), u)
	if err != nil {
		w.t.Errorf("%s profile of node %s: %v", kind, n.name, err)
		return nil
	}
	if err := os.WriteFile(filepath.Join(w.profDir, name), b, 0o644); err != nil {
		w.t.Error(err)
	}
	return b
}

// heapDiff runs go tool pprof -top on two saved heap profiles of a node.
func (w *world) heapDiff(n *node, base, label string) string {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-inuse_space", "-nodecount=15",
		"-ignore=runtime/pprof|net/http/pprof|promhttp",
		"-base", filepath.Join(w.profDir, fmt.Sprintf("heap-%s-%s.pb.gz", n.name, base)),
		binPath, filepath.Join(w.profDir, fmt.Sprintf("heap-%s-%s.pb.gz", n.name, label))).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("go tool pprof: %v\n%s", err, out)
	}
	return string(out)
}

// TestSoak: two nodes, a steady population with churn, recovery and
// publishes for TRADEWIRE_SOAK_DURATION; no growth trend, no lost trade,
// back to the baseline once every client left.
func TestSoak(t *testing.T) {
	cfg := loadConfig(t)
	if cfg.outDir != "" {
		if err := os.MkdirAll(cfg.outDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	extra := []string{"TRADEWIRE_INGEST_STREAM=" + ingestStream, "TRADEWIRE_RECOVERY_WINDOW=" + recoveryWindow.String(),
		"TRADEWIRE_PING_INTERVAL=10s", "TRADEWIRE_PING_TIMEOUT=10s",
		// Sample one allocation per 4 KiB (default 512 KiB) so that heap
		// profile differences of a few hundred KiB are measured, not guessed.
		"GODEBUG=memprofilerate=4096"}
	w := &world{t: t, cfg: cfg, rdb: rdb, stop: make(chan struct{}),
		pubHTTP: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
	w.profDir = cfg.outDir
	if w.profDir == "" {
		w.profDir = t.TempDir()
	}
	w.nodes = []*node{startNode(t, "a", srv.URL(), extra...), startNode(t, "b", srv.URL(), extra...)}
	w.users = seedUsers(t, rdb, 2*cfg.clients)
	for i := range nSymbols {
		w.symbols = append(w.symbols, fmt.Sprintf("SOAK%02d", i))
	}
	for i := range cfg.clients {
		w.slots = append(w.slots, &slot{idx: i, leave: make(chan leaveKind, 1)})
	}

	sp := &sampler{w: w, redis: portOf(srv.Addr), started: time.Now()}
	sp.phase.Store("baseline")
	baseline := map[string]sample{}
	baseStacks := map[string]map[string]int{}
	for _, n := range w.nodes {
		s, err := sp.measure(context.Background(), n)
		if err != nil {
			t.Fatal(err)
		}
		baseline[n.name] = s
		baseStacks[n.name] = goroutineStacks(w.saveProfile(n, "goroutine", "baseline"))
		w.saveProfile(n, "heap", "baseline")
		t.Logf("baseline node %s: goroutines %.0f, heap live %s MiB, RSS %s MiB, fds %d (redis %d)",
			n.name, s.Goroutines, mib(s.HeapLive), mib(s.RSS), s.FDs, s.RedisFDs)
	}

	t.Logf("load: %d clients, churn %.0f%%/s (¼ clean, ¼ clean, ¼ abrupt, ¼ abrupt + recovery on either node), %d trades + %d quotes/s over HTTP, %d + %d/s via the ingest stream, %v (warm-up %v)",
		cfg.clients, cfg.churn*100, 10*len(w.nodes)*cfg.httpTrades, 10*len(w.nodes)*cfg.httpQuotes,
		10*cfg.ingestTrades, 10*cfg.ingestQuotes, cfg.duration, cfg.warmup)
	cpu0 := map[string]float64{"test": procCPU(os.Getpid()), "redis": redisCPU(rdb)}
	for _, n := range w.nodes {
		cpu0[n.name] = procCPU(n.pid)
	}
	sp.started = time.Now()
	sp.phase.Store("load")
	sctx, scancel := context.WithCancel(context.Background())
	sdone := make(chan struct{})
	go sp.run(sctx, sdone)
	defer func() { scancel(); <-sdone }()

	for _, s := range w.slots {
		w.wg.Add(1)
		go w.runSlot(s)
	}
	w.wg.Add(2 + len(w.nodes))
	go w.churn()
	for i, n := range w.nodes {
		go w.publishHTTP(n, int64(100+i))
	}
	go w.publishIngest(200)
	// Capture the goroutines after warm-up: a trend failure shows what grew.
	warmStacks := map[string]map[string]int{}
	crashed := false
	deadline := time.Now().Add(cfg.duration)
	warmAt := time.Now().Add(cfg.warmup)
	for time.Now().Before(deadline) && !crashed {
		time.Sleep(500 * time.Millisecond)
		if len(warmStacks) == 0 && time.Now().After(warmAt) {
			for _, n := range w.nodes {
				warmStacks[n.name] = goroutineStacks(w.saveProfile(n, "goroutine", "warm"))
				w.saveProfile(n, "heap", "warm")
			}
		}
		for _, n := range w.nodes {
			if n.exited() {
				t.Errorf("node %s exited during the soak: %s\n%s", n.name, n.exitState, n.logTail(50))
				crashed = true
			}
		}
	}
	loadEnd := time.Since(sp.started).Seconds()
	cpu := fmt.Sprintf("test process %.2f", (procCPU(os.Getpid())-cpu0["test"])/loadEnd)
	for _, n := range w.nodes {
		cpu += fmt.Sprintf(", node %s %.2f", n.name, (procCPU(n.pid)-cpu0[n.name])/loadEnd)
	}
	cpu += fmt.Sprintf(", redis %.2f", (redisCPU(rdb)-cpu0["redis"])/loadEnd)
	endStacks := map[string]map[string]int{}
	for _, n := range w.nodes {
		if !n.exited() {
			endStacks[n.name] = goroutineStacks(w.saveProfile(n, "goroutine", "end-load"))
			w.saveProfile(n, "heap", "end-load")
		}
	}
	sp.phase.Store("drain")
	close(w.stop)
	w.wg.Wait()
	w.pubHTTP.CloseIdleConnections()

	// Every client has left: the nodes must go back near their baseline.
	type after struct {
		s     sample
		ok    bool
		why   string
		stack map[string]int
	}
	afters := map[string]*after{}
	settle := time.Now().Add(30 * time.Second)
	for _, n := range w.nodes {
		if n.exited() {
			continue
		}
		a := &after{}
		afters[n.name] = a
		b := baseline[n.name]
		for {
			s, err := sp.measure(context.Background(), n)
			if err != nil {
				a.why = err.Error()
				break
			}
			sp.mu.Lock()
			sp.samples = append(sp.samples, s) // kept in samples.csv as phase "drain"
			sp.mu.Unlock()
			a.s = s
			var why []string
			if s.Conns != 0 || s.ClientFDs != 0 {
				why = append(why, fmt.Sprintf("%.0f connections and %d client sockets still open", s.Conns, s.ClientFDs))
			}
			if s.Goroutines > b.Goroutines+goroutineSlack {
				why = append(why, fmt.Sprintf("goroutines %.0f > baseline %.0f + %d", s.Goroutines, b.Goroutines, goroutineSlack))
			}
			if other, base := s.FDs-s.RedisFDs, b.FDs-b.RedisFDs; other > base+fdSlack {
				why = append(why, fmt.Sprintf("non-Redis fds %d > baseline %d + %d", other, base, fdSlack))
			}
			if s.RedisFDs > redisFDLimit() {
				why = append(why, fmt.Sprintf("Redis fds %d > %d (go-redis pools)", s.RedisFDs, redisFDLimit()))
			}
			a.ok, a.why = len(why) == 0, strings.Join(why, "; ")
			if a.ok || time.Now().After(settle) {
				break
			}
			time.Sleep(time.Second)
		}
		a.stack = goroutineStacks(w.saveProfile(n, "goroutine", "after"))
		w.saveProfile(n, "heap", "after")
	}
	scancel()
	<-sdone
	samples := sp.all()
	if cfg.outDir != "" {
		if err := writeCSV(filepath.Join(cfg.outDir, "samples.csv"), samples); err != nil {
			t.Error(err)
		}
	}

	// Report.
	step := max(1, int(60/sampleEvery.Seconds()))
	if cfg.duration < 5*time.Minute {
		step = max(1, int(10/sampleEvery.Seconds()))
	}
	t.Logf("%7s %4s %6s %10s %10s %9s %5s %6s %7s", "t", "node", "gorout", "heap_live", "heap_inuse", "rss", "fds", "conns", "clients")
	for i, s := range samples {
		if s.Phase == "load" && (i/len(w.nodes))%step != 0 {
			continue
		}
		t.Logf("%6.0fs %4s %6.0f %9sM %9sM %8sM %5d %6.0f %7d %s", s.T, s.Node, s.Goroutines, mib(s.HeapLive), mib(s.HeapInuse),
			mib(s.RSS), s.FDs, s.Conns, s.Clients, s.Phase)
	}
	st := &w.st
	t.Logf("CPU cores used during the load (machine: %d): %s", runtime.NumCPU(), cpu)
	t.Logf("connections %d (failed %d), sessions %d, clean leaves %d, abrupt %d, recovered %d (not recovered %d; not attempted: no offset yet %d, offset older than the window %d), closed by the server %d",
		st.connects.Load(), st.connectFail.Load(), st.epochs.Load(), st.clean.Load(), st.abrupt.Load(), st.recovered.Load(),
		st.notRecovered.Load(), st.recoverSkipped.Load(), st.recoverTooOld.Load(), st.unexpected.Load())
	t.Logf("published: %d HTTP batches (%d trades, %d failed), %d stream entries (%d trades, %d failed); quotes received %d",
		st.httpPosts.Load(), st.httpTrades.Load(), st.httpFail.Load(), st.ingestEntries.Load(), st.ingestTrades.Load(),
		st.ingestFail.Load(), st.quotes.Load())
	t.Logf("two publishers per HTTP event: %v; the second request of each pair: %d items accepted, %d answered duplicate; trades out of order: %d",
		cfg.twin, st.twinAccepted.Load(), st.twinDupes.Load(), st.orderBad.Load())
	t.Logf("trades checked %d, lost %d, duplicates %d (%d after an offset inversion), misrouted %d, slowest wait for the last expected trade %v",
		st.checked.Load(), st.lost.Load(), st.dupes.Load(), st.dupesInversion.Load(), st.misrouted.Load(), time.Duration(st.slowestDelivery.Load()).Round(time.Millisecond))
	w.errMu.Lock()
	for _, e := range w.errors {
		t.Log("  " + e)
	}
	w.errMu.Unlock()

	// Verdicts.
	for _, n := range w.nodes {
		var ss []sample
		for _, s := range samples {
			if s.Node == n.name && s.Phase == "load" && s.T >= cfg.warmup.Seconds() && s.T <= loadEnd {
				ss = append(ss, s)
			}
		}
		trs := analyze(ss, defaultLimits)
		for _, tr := range trs {
			t.Logf("node %s %v", n.name, tr)
		}
		if failed(trs) {
			t.Errorf("node %s: growth trend after warm-up (%d samples)", n.name, len(ss))
			for _, g := range stackGrowth(warmStacks[n.name], endStacks[n.name], 8) {
				t.Logf("node %s goroutines grown between warm-up and end of load: %s", n.name, g)
			}
		}
		if len(warmStacks) > 0 && endStacks[n.name] != nil {
			t.Logf("node %s heap in use, end of load minus end of warm-up:\n%s", n.name, w.heapDiff(n, "warm", "end-load"))
		}
		if a := afters[n.name]; a != nil {
			b := baseline[n.name]
			t.Logf("node %s after every client left: goroutines %.0f (baseline %.0f), fds %d (baseline %d; Redis %d, baseline %d), heap live %s MiB (baseline %s), RSS %s MiB (baseline %s)",
				n.name, a.s.Goroutines, b.Goroutines, a.s.FDs, b.FDs, a.s.RedisFDs, b.RedisFDs, mib(a.s.HeapLive), mib(b.HeapLive), mib(a.s.RSS), mib(b.RSS))
			if !a.ok {
				t.Errorf("node %s not back near its baseline 30s after every client left: %s", n.name, a.why)
				for _, g := range stackGrowth(baseStacks[n.name], a.stack, 8) {
					t.Logf("node %s goroutines above baseline: %s", n.name, g)
				}
				t.Logf("node %s heap in use, after minus baseline:\n%s", n.name, w.heapDiff(n, "baseline", "after"))
			}
		}
		if n.exited() {
			t.Errorf("node %s exited: %s", n.name, n.exitState)
		}
	}
	minSessions := int64(cfg.duration.Seconds() * float64(cfg.clients) * cfg.churn / 2)
	checks := []struct {
		bad  bool
		what string
	}{
		{st.lost.Load() != 0, fmt.Sprintf("%d trades lost by connected clients, %d of them below an offset a recovery resumed from (see TestOffsetsArriveInStreamOrder)",
			st.lost.Load(), st.lostInversion.Load())},
		{st.dupes.Load() != 0, fmt.Sprintf("%d trades delivered twice, %d of them because the connection before the recovery got offsets out of order (see TestOffsetsArriveInStreamOrder)",
			st.dupes.Load(), st.dupesInversion.Load())},
		{st.misrouted.Load() != 0, fmt.Sprintf("%d trades delivered to another user", st.misrouted.Load())},
		{st.orderBad.Load() != 0, fmt.Sprintf("%d trades out of order (offset not ascending, or a publisher's trades reordered)", st.orderBad.Load())},
		{st.unexpected.Load() != 0, fmt.Sprintf("%d connections closed by the server", st.unexpected.Load())},
		{st.notRecovered.Load() != 0, fmt.Sprintf("%d sessions not recovered", st.notRecovered.Load())},
		{st.connectFail.Load() != 0, fmt.Sprintf("%d connection attempts failed", st.connectFail.Load())},
		{st.httpFail.Load()+st.ingestFail.Load() != 0, fmt.Sprintf("%d publishes failed", st.httpFail.Load()+st.ingestFail.Load())},
		{st.epochs.Load() < minSessions, fmt.Sprintf("only %d sessions ended (want >= %d): the churn did not run", st.epochs.Load(), minSessions)},
		{st.recovered.Load() == 0, "no session was recovered"},
		{st.checked.Load() == 0, "no trade was checked"},
	}
	for _, c := range checks {
		if c.bad {
			t.Error(c.what)
		}
	}
	for _, n := range w.nodes {
		n.mu.Lock()
		t.Logf("node %s: %d warn/error log lines", n.name, n.logLines)
		if n.logLines > 0 {
			t.Logf("node %s log (first lines):\n%s", n.name, strings.Join(n.log[:min(len(n.log), 20)], "\n"))
		}
		n.mu.Unlock()
	}
}

// Tolerances once every client left (see docs/SOAK.md).
const (
	goroutineSlack = 10
	fdSlack        = 5
)

// redisFDLimit is the most connections a node's go-redis v9 client keeps:
// PoolSize (10 × GOMAXPROCS, the test runs on the same machine), the
// pipeline pool (10), and the pub/sub connections of the adapter (4 at
// most). Idle connections stay open for ConnMaxIdleTime (30 min), so
// after a load the pools are full, not back at their start size.
func redisFDLimit() int { return 10*runtime.GOMAXPROCS(0) + 10 + 4 }

// redisCPU returns the CPU seconds Redis used so far (INFO cpu).
func redisCPU(rdb *redis.Client) float64 {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		return 0
	}
	total := 0.0
	for _, l := range strings.Split(info, "\r\n") {
		for _, k := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(l, k); ok {
				f, _ := strconv.ParseFloat(v, 64)
				total += f
			}
		}
	}
	return total
}
