package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// FleetConfig describes the clients one fleet (one process) runs. Client k
// of the fleet has the global index First + k*Stride, which picks its user,
// server URL, source address and symbols.
type FleetConfig struct {
	URLs             []string      `json:"urls"`
	Path             string        `json:"path"`
	Transport        string        `json:"transport"`
	SourceIPs        []string      `json:"source_ips"`
	Conns            int           `json:"conns"`
	First            int           `json:"first"`
	Stride           int           `json:"stride"`
	RampRate         float64       `json:"ramp_rate"`
	Users            int           `json:"users"`
	Symbols          int           `json:"symbols"`
	SymbolsPerClient int           `json:"symbols_per_client"`
	Secret           string        `json:"secret"`
	RunID            string        `json:"run_id"`
	AuthMode         string        `json:"auth_mode"`
	ConnectTimeout   time.Duration `json:"connect_timeout"`
	RampTimeout      time.Duration `json:"ramp_timeout"`
}

// Progress is a fleet's live state.
type Progress struct {
	Launched  int64 `json:"launched"`
	Ready     int64 `json:"ready"`
	EverReady int64 `json:"ever_ready"`
	Failed    int64 `json:"failed"`
}

// Add sums progress.
func (p *Progress) Add(o Progress) {
	p.Launched += o.Launched
	p.Ready += o.Ready
	p.EverReady += o.EverReady
	p.Failed += o.Failed
}

// RampResult is the outcome of opening all connections.
type RampResult struct {
	Ready          int            `json:"ready"`
	Never          int            `json:"never"`
	FailedAttempts int            `json:"failed_attempts"`
	Errors         map[string]int `json:"errors,omitempty"`
	Connect        HistData       `json:"connect"`
	ReadyH         HistData       `json:"ready_hist"`
	Seconds        float64        `json:"seconds"`
}

// Merge combines the results of several fleets.
func (r *RampResult) Merge(o RampResult) {
	r.Ready += o.Ready
	r.Never += o.Never
	r.FailedAttempts += o.FailedAttempts
	r.Errors = mergeErrors(r.Errors, o.Errors)
	r.Connect.Merge(o.Connect)
	r.ReadyH.Merge(o.ReadyH)
	r.Seconds = max(r.Seconds, o.Seconds)
}

// Snapshot is what a fleet received since the previous snapshot.
type Snapshot struct {
	Latency  HistData `json:"latency"`
	Quotes   uint64   `json:"quotes"`
	Trades   uint64   `json:"trades"`
	Other    uint64   `json:"other"`
	Market   uint64   `json:"market"`
	NoTS     uint64   `json:"no_ts"`
	Drops    uint64   `json:"drops"`
	Ready    int64    `json:"ready"`
	CPUTicks uint64   `json:"cpu_ticks"` // the fleet process's own utime+stime, cumulative
	RSSKB    uint64   `json:"rss_kb"`    // the fleet process's own RSS
}

// Merge combines snapshots of several fleets.
func (s *Snapshot) Merge(o Snapshot) {
	s.Latency.Merge(o.Latency)
	s.Quotes += o.Quotes
	s.Trades += o.Trades
	s.Other += o.Other
	s.Market += o.Market
	s.NoTS += o.NoTS
	s.Drops += o.Drops
	s.Ready += o.Ready
	s.CPUTicks += o.CPUTicks
	s.RSSKB += o.RSSKB
}

// StormResult is the outcome of dropping every connection at once.
type StormResult struct {
	Conns          int            `json:"conns"`
	Recovered      int            `json:"recovered"`
	FailedAttempts int            `json:"failed_attempts"`
	Errors         map[string]int `json:"errors,omitempty"`
	Back           HistData       `json:"back"` // storm start -> ready again, per client
	Seconds        float64        `json:"seconds"`
}

// Merge combines storm results of several fleets.
func (r *StormResult) Merge(o StormResult) {
	r.Conns += o.Conns
	r.Recovered += o.Recovered
	r.FailedAttempts += o.FailedAttempts
	r.Errors = mergeErrors(r.Errors, o.Errors)
	r.Back.Merge(o.Back)
	r.Seconds = max(r.Seconds, o.Seconds)
}

// Fleet is a set of simulated clients, in this process or in a worker.
type Fleet interface {
	Ramp(ctx context.Context) (RampResult, error)
	Snap(ctx context.Context) (Snapshot, error)
	Storm(ctx context.Context, timeout time.Duration) (StormResult, error)
	Progress() Progress
	Close() error
}

// LocalFleet runs its clients as goroutines of this process.
type LocalFleet struct {
	cfg     FleetConfig
	ctx     context.Context
	cancel  context.CancelFunc
	slots   []slot
	dialers []*net.Dialer
	hcs     []*http.Client
	sink    eventSink
	lat     Histogram
	connH   Histogram
	readyH  Histogram
	stormH  Histogram
	c       Counters
	wg      sync.WaitGroup

	launched  atomic.Int64
	ready     atomic.Int64
	everReady atomic.Int64
	failed    atomic.Int64
	gen       atomic.Int64
	genReady  atomic.Int64
	stormT0   atomic.Int64 // unix nanos of the current storm

	errMu sync.Mutex
	errs  map[string]int
}

type slot struct {
	mu       sync.Mutex
	tr       eioTransport
	kicked   bool
	readyGen int64
	everOK   bool
}

// NewLocalFleet prepares a fleet; Ramp starts the clients.
func NewLocalFleet(cfg FleetConfig) (*LocalFleet, error) {
	if cfg.Conns < 0 || len(cfg.URLs) == 0 {
		return nil, errors.New("loadgen: fleet needs urls and conns >= 0")
	}
	if cfg.Stride <= 0 {
		cfg.Stride = 1
	}
	if cfg.Path == "" {
		cfg.Path = "/socket.io/"
	}
	if cfg.Users <= 0 {
		cfg.Users = max(cfg.First+cfg.Conns*cfg.Stride, 1)
	}
	if cfg.Symbols <= 0 {
		cfg.Symbols = 100
	}
	if cfg.SymbolsPerClient <= 0 {
		cfg.SymbolsPerClient = 3
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	if cfg.RampTimeout <= 0 {
		cfg.RampTimeout = 10 * time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &LocalFleet{cfg: cfg, ctx: ctx, cancel: cancel, slots: make([]slot, cfg.Conns), errs: map[string]int{}}
	ips := cfg.SourceIPs
	if len(ips) == 0 {
		ips = []string{""}
	}
	for _, s := range ips {
		d := &net.Dialer{Timeout: cfg.ConnectTimeout}
		if s != "" {
			ip := net.ParseIP(s)
			if ip == nil {
				cancel()
				return nil, fmt.Errorf("loadgen: bad source address %q", s)
			}
			d.LocalAddr = &net.TCPAddr{IP: ip}
			d.Control = bindNoPort
		}
		f.dialers = append(f.dialers, d)
		f.hcs = append(f.hcs, &http.Client{
			Timeout: 2 * time.Minute,
			Transport: &http.Transport{
				DialContext: d.DialContext, MaxIdleConns: 0, MaxIdleConnsPerHost: 1 << 20,
				IdleConnTimeout: 2 * time.Minute, DisableCompression: true,
			},
		})
	}
	f.sink = eventSink{lat: &f.lat, c: &f.c, now: time.Now}
	return f, nil
}

// bindNoPort sets IP_BIND_ADDRESS_NO_PORT so the kernel picks the source port
// at connect time per (source, destination) pair instead of at bind time.
func bindNoPort(network, address string, c syscall.RawConn) error {
	const ipBindAddressNoPort = 24 // linux/in.h
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	_ = serr // not fatal on kernels without it
	return nil
}

// SymbolName is the ticker of symbol i.
func SymbolName(i int) string { return fmt.Sprintf("SYM%03d", i) }

// ClientSymbols returns the watchlist of the client with global index g:
// SymbolsPerClient consecutive symbols, so each symbol gets the same number
// of subscribers when the clients are a multiple of the symbols.
func ClientSymbols(g, perClient, symbols int) []string {
	out := make([]string, perClient)
	for j := range out {
		out[j] = SymbolName((g*perClient + j) % symbols)
	}
	return out
}

func (f *LocalFleet) spec(k int) *ClientSpec {
	g := f.cfg.First + k*f.cfg.Stride
	user := g % f.cfg.Users
	sid := SessionID(f.cfg.RunID, user)
	s := &ClientSpec{
		Index:     g,
		URL:       strings.TrimRight(f.cfg.URLs[g%len(f.cfg.URLs)], "/"),
		Path:      f.cfg.Path,
		Transport: f.cfg.Transport,
		Symbols:   ClientSymbols(g, f.cfg.SymbolsPerClient, f.cfg.Symbols),
		Dialer:    f.dialers[g%len(f.dialers)],
		HTTP:      f.hcs[g%len(f.hcs)],
		Life:      f.ctx,
	}
	if f.cfg.AuthMode == "auth" {
		s.Auth = []byte(`{"sessionID":"` + sid + `"}`)
	} else {
		s.Cookie = CookieValue(sid, f.cfg.Secret)
	}
	return s
}

func (f *LocalFleet) noteErr(err error) {
	key := classifyError(err)
	f.errMu.Lock()
	if _, ok := f.errs[key]; ok || len(f.errs) < 20 {
		f.errs[key]++
	}
	f.errMu.Unlock()
}

func (f *LocalFleet) takeErrors() map[string]int {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	e := f.errs
	f.errs = map[string]int{}
	if len(e) == 0 {
		return nil
	}
	return e
}

// classifyError maps an error to a short stable key (no addresses or ports).
func classifyError(err error) string {
	var ce *ConnectError
	switch {
	case errors.As(err, &ce):
		return "connect_error " + string(truncate([]byte(ce.Payload), 120))
	case errors.Is(err, context.DeadlineExceeded), os.IsTimeout(err):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no free source port (EADDRNOTAVAIL)"
	case errors.Is(err, syscall.EMFILE):
		return "too many open files"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.Contains(s[:i], "127.") {
		s = s[i+2:]
	}
	return string(truncate([]byte(s), 120))
}

func mergeErrors(a, b map[string]int) map[string]int {
	if len(b) == 0 {
		return a
	}
	if a == nil {
		a = map[string]int{}
	}
	for k, v := range b {
		a[k] += v
	}
	return a
}

// backoff follows socket.io-client's defaults: 1 s doubling to 5 s, ±50 %.
func backoff(attempt int) time.Duration {
	d := time.Second << min(attempt-1, 3)
	d = min(d, 5*time.Second)
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}

func (f *LocalFleet) runClient(k int) {
	defer f.wg.Done()
	spec := f.spec(k)
	sl := &f.slots[k]
	attempt := 0
	for f.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(f.ctx, f.cfg.ConnectTimeout)
		s, err := establish(ctx, spec, &f.sink)
		cancel()
		if err != nil {
			if f.ctx.Err() != nil {
				return
			}
			f.failed.Add(1)
			f.noteErr(err)
			attempt++
			select {
			case <-f.ctx.Done():
				return
			case <-time.After(backoff(attempt)):
			}
			continue
		}
		attempt = 0
		f.connH.Record(s.connected)
		f.readyH.Record(s.ready)
		sl.mu.Lock()
		if f.ctx.Err() != nil {
			sl.mu.Unlock()
			s.tr.Close()
			return
		}
		sl.tr = s.tr
		if !sl.everOK {
			sl.everOK = true
			f.everReady.Add(1)
		}
		if g := f.gen.Load(); sl.readyGen < g {
			sl.readyGen = g
			f.stormH.Record(time.Duration(time.Now().UnixNano() - f.stormT0.Load()))
			f.genReady.Add(1)
		}
		sl.mu.Unlock()
		f.ready.Add(1)
		err = serve(s, &f.sink)
		f.ready.Add(-1)
		sl.mu.Lock()
		sl.tr = nil
		kicked := sl.kicked
		sl.kicked = false
		sl.mu.Unlock()
		s.tr.Close()
		if f.ctx.Err() != nil {
			return
		}
		if !kicked {
			f.c.Drops.Add(1)
			f.noteErr(err)
			select {
			case <-f.ctx.Done():
				return
			case <-time.After(backoff(1)):
			}
		}
	}
}

// Ramp launches the clients at cfg.RampRate per second and returns once all
// of them are ready or RampTimeout has passed.
func (f *LocalFleet) Ramp(ctx context.Context) (RampResult, error) {
	t0 := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for k := range f.slots {
			if f.cfg.RampRate > 0 {
				due := t0.Add(time.Duration(float64(k) / f.cfg.RampRate * float64(time.Second)))
				if d := time.Until(due); d > 0 {
					select {
					case <-time.After(d):
					case <-f.ctx.Done():
						return
					case <-ctx.Done():
						return
					}
				}
			}
			f.wg.Add(1)
			f.launched.Add(1)
			go f.runClient(k)
		}
	}()
	deadline := time.NewTimer(f.cfg.RampTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for f.everReady.Load() < int64(len(f.slots)) {
		select {
		case <-tick.C:
		case <-deadline.C:
			break wait
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		}
	}
	secs := time.Since(t0).Seconds()
	<-doneOrTimeout(done, time.Second)
	ever := int(f.everReady.Load())
	return RampResult{
		Ready: ever, Never: len(f.slots) - ever, FailedAttempts: int(f.failed.Swap(0)),
		Errors: f.takeErrors(), Connect: f.connH.Snapshot(true), ReadyH: f.readyH.Snapshot(true),
		Seconds: secs,
	}, err
}

func doneOrTimeout(done chan struct{}, d time.Duration) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		select {
		case <-done:
		case <-time.After(d):
		}
		close(out)
	}()
	return out
}

// Snap returns and resets what was received since the last snapshot.
func (f *LocalFleet) Snap(context.Context) (Snapshot, error) {
	s := Snapshot{
		Latency: f.lat.Snapshot(true),
		Quotes:  f.c.Quotes.Swap(0), Trades: f.c.Trades.Swap(0), Other: f.c.Other.Swap(0), Market: f.c.Market.Swap(0),
		NoTS: f.c.NoTS.Swap(0), Drops: f.c.Drops.Swap(0), Ready: f.ready.Load(),
	}
	if st, err := ReadProcStats(os.Getpid()); err == nil {
		s.CPUTicks, s.RSSKB = st.CPUTicks, st.RSSKB
	}
	return s, nil
}

// Storm drops every connection at once; the clients reconnect immediately
// (later failures back off). It returns when all are ready again or after
// timeout.
func (f *LocalFleet) Storm(ctx context.Context, timeout time.Duration) (StormResult, error) {
	f.failed.Store(0)
	f.takeErrors()
	f.stormH.Snapshot(true)
	f.genReady.Store(0)
	t0 := time.Now()
	f.stormT0.Store(t0.UnixNano())
	f.gen.Add(1)
	for i := range f.slots {
		sl := &f.slots[i]
		sl.mu.Lock()
		if sl.tr != nil {
			sl.kicked = true
			sl.tr.Close()
		}
		sl.mu.Unlock()
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for f.genReady.Load() < int64(len(f.slots)) {
		select {
		case <-tick.C:
		case <-deadline.C:
			break wait
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		}
	}
	back := f.stormH.Snapshot(true)
	return StormResult{
		Conns: len(f.slots), Recovered: int(f.genReady.Load()), FailedAttempts: int(f.failed.Swap(0)),
		Errors: f.takeErrors(), Back: back, Seconds: time.Since(t0).Seconds(),
	}, err
}

// Progress reports the live counts.
func (f *LocalFleet) Progress() Progress {
	return Progress{Launched: f.launched.Load(), Ready: f.ready.Load(), EverReady: f.everReady.Load(), Failed: f.failed.Load()}
}

// Close stops every client and waits (up to 10 s) for them to end.
func (f *LocalFleet) Close() error {
	f.cancel()
	for i := range f.slots {
		sl := &f.slots[i]
		sl.mu.Lock()
		if sl.tr != nil {
			sl.tr.Close()
		}
		sl.mu.Unlock()
	}
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("loadgen: clients did not stop within 10 s")
	}
}

// sortedKeys returns the keys of m in order (stable output).
func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
