package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config selects and sizes one benchmark run.
type Config struct {
	Scenario  string   // idle | fanout | user-events | storm | cluster
	Label     string   // server name in the report, e.g. node or tradewire
	URLs      []string // server base URLs; clients are spread round-robin
	Path      string
	Transport string // websocket | polling
	Conns     int
	Procs     int      // worker processes (1 = in-process)
	WorkerCmd []string // argv that starts a worker (the loadgen with -worker)
	SourceIPs []string
	RampRate  float64 // new connections per second (0 = all at once)

	Users            int
	Symbols          int
	SymbolsPerClient int
	Secret           string
	RunID            string
	AuthMode         string // cookie | auth
	RedisURL         string // seed sessions here when set
	SessionTTL       time.Duration

	APIKey        string
	PublishURL    string // defaults to URLs[0]
	PublishMode   string // http | emitter
	EmitterPrefix string
	EventsBatch   bool
	PubConc       int
	Tick          time.Duration
	MaxBatch      int

	Hold         time.Duration // idle: how long to hold before measuring
	BroadcastAll bool          // idle: then publish one market:status to every socket and time its arrival
	RateStart    float64       // messages per second published in the first step
	RateFactor   float64       // next step's rate multiplier
	MaxRate      float64
	MaxSteps     int
	StepDur      time.Duration
	Warmup       time.Duration
	P99Limit     time.Duration
	MinDeliver   float64 // a step needs received >= MinDeliver*expected
	Retries      int     // re-measure a failed step this often when other processes used > MaxOtherCPU
	MaxOtherCPU  float64
	Drain        time.Duration // wait after each step for in-flight deliveries

	StormTimeout   time.Duration
	ConnectTimeout time.Duration
	RampTimeout    time.Duration

	ServerPIDs []int
	DebugURLs  []string
}

// Result is the one JSON line a run prints.
type Result struct {
	Scenario  string `json:"scenario"`
	Label     string `json:"label,omitempty"`
	Transport string `json:"transport"`
	Conns     int    `json:"conns"`
	Procs     int    `json:"procs"`
	Servers   int    `json:"servers"`
	Publish   string `json:"publish,omitempty"`
	// EventsBatch is set when user events were posted as arrays; P99Line
	// is then the latency line the run was judged by.
	EventsBatch bool          `json:"events_batch,omitempty"`
	P99Line     string        `json:"p99_line,omitempty"`
	Start       time.Time     `json:"start"`
	LoadAvg     string        `json:"loadavg_at_start"`
	Seconds     float64       `json:"seconds"`
	Ramp        RampReport    `json:"ramp"`
	Server      *ServerRep    `json:"server,omitempty"`
	Client      ClientRep     `json:"client"`
	Steps       []Step        `json:"steps,omitempty"`
	Best        *Step         `json:"best,omitempty"`
	Storm       *StormRep     `json:"storm,omitempty"`
	Broadcast   *BroadcastRep `json:"broadcast,omitempty"`
	Errors      []string      `json:"errors,omitempty"`
}

// BroadcastRep is how one market:status sent to every socket arrived (idle
// scenario with BroadcastAll): how many of the ready connections got it,
// the latency distribution, and the drops (connections lost) during the hold.
type BroadcastRep struct {
	Expected int64   `json:"expected"`
	Received uint64  `json:"received"`
	Latency  Summary `json:"latency"`
	Drops    uint64  `json:"drops_during_hold"`
}

// RampReport summarises connection setup.
type RampReport struct {
	Ready          int            `json:"ready"`
	Never          int            `json:"never"`
	FailedAttempts int            `json:"failed_attempts"`
	Errors         map[string]int `json:"errors,omitempty"`
	Seconds        float64        `json:"seconds"`
	Connect        Summary        `json:"connect"`   // dial -> Engine.IO open
	ReadyLat       Summary        `json:"ready_lat"` // dial -> 3 subscriptions confirmed
}

// ServerRep is what the server processes used.
type ServerRep struct {
	PIDs          []int              `json:"pids"`
	RSSBeforeKB   uint64             `json:"rss_before_kb"`
	RSSAfterKB    uint64             `json:"rss_after_kb"`
	RSSPeakKB     uint64             `json:"rss_peak_kb,omitempty"`
	RSSPerConnKB  float64            `json:"rss_per_conn_kb,omitempty"`
	CPUSeconds    float64            `json:"cpu_seconds"` // whole run
	DebugBefore   map[string]float64 `json:"debug_before,omitempty"`
	DebugAfter    map[string]float64 `json:"debug_after,omitempty"`
	DebugFailures []string           `json:"debug_failures,omitempty"`
}

// ClientRep is what the load generator itself used.
type ClientRep struct {
	RSSKB        uint64  `json:"rss_kb"`
	RSSPerConnKB float64 `json:"rss_per_conn_kb"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	Drops        uint64  `json:"drops"`
}

// Step is one publish rate of a rising-rate scenario.
type Step struct {
	TargetRate       float64 `json:"target_rate"` // messages published per second asked for
	PublishedPerSec  float64 `json:"published_per_s"`
	Expected         float64 `json:"expected"` // deliveries expected from what was published
	Received         uint64  `json:"received"`
	DeliveredPerSec  float64 `json:"delivered_per_s"`
	Latency          Summary `json:"latency"`
	ServerCPU        float64 `json:"server_cpu_cores"`   // average cores busy
	ServerCPUPerMDel float64 `json:"server_cpu_s_per_M"` // CPU seconds per million deliveries
	ClientCPU        float64 `json:"client_cpu_cores"`
	MachineCPU       float64 `json:"machine_cpu_cores"` // all processes on the box
	OtherCPU         float64 `json:"other_cpu_cores"`   // machine - server - loadgen: foreign load that skews the step
	PublishFailed    int     `json:"publish_failed,omitempty"`
	OK               bool    `json:"ok"`
	Retried          bool    `json:"retried,omitempty"` // not ok under foreign load: measured again
}

// StormRep summarises a reconnect storm.
type StormRep struct {
	Conns          int            `json:"conns"`
	Recovered      int            `json:"recovered"`
	FailedAttempts int            `json:"failed_attempts"`
	Errors         map[string]int `json:"errors,omitempty"`
	AllBackS       float64        `json:"all_back_s"` // -1 when some never came back
	Back           Summary        `json:"back"`
	RSSBeforeKB    uint64         `json:"rss_before_kb"`
	RSSPeakKB      uint64         `json:"rss_peak_kb"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	defF := func(p *float64, v float64) {
		if *p <= 0 {
			*p = v
		}
	}
	defD := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&c.Procs, 1)
	def(&c.Conns, 100)
	def(&c.Users, c.Conns)
	def(&c.Symbols, 100)
	def(&c.SymbolsPerClient, 3)
	def(&c.PubConc, 4)
	def(&c.MaxBatch, 1000)
	def(&c.MaxSteps, 12)
	defF(&c.RateFactor, 1.25)
	defF(&c.MinDeliver, 0.97)
	defF(&c.MaxOtherCPU, 0.3)
	defD(&c.Tick, 10*time.Millisecond)
	defD(&c.StepDur, 5*time.Second)
	defD(&c.Warmup, time.Second)
	defD(&c.P99Limit, 50*time.Millisecond)
	defD(&c.StormTimeout, 60*time.Second)
	defD(&c.ConnectTimeout, 30*time.Second)
	defD(&c.SessionTTL, time.Hour)
	defD(&c.Drain, min(max(4*c.P99Limit, 200*time.Millisecond), 2*time.Second))
	if c.Path == "" {
		c.Path = "/socket.io/"
	}
	if c.Transport == "" {
		c.Transport = "websocket"
	}
	if c.PublishMode == "" {
		c.PublishMode = "http"
	}
	if c.EmitterPrefix == "" {
		c.EmitterPrefix = "socket.io"
	}
	if c.PublishURL == "" && len(c.URLs) > 0 {
		c.PublishURL = c.URLs[0]
	}
	if c.RunID == "" {
		c.RunID = fmt.Sprintf("run%d", time.Now().UnixNano())
	}
	if c.Hold < 0 {
		c.Hold = 0
	}
	if c.RampTimeout <= 0 {
		c.RampTimeout = c.ConnectTimeout + 2*time.Minute
		if c.RampRate > 0 {
			c.RampTimeout += time.Duration(float64(c.Conns) / c.RampRate * float64(time.Second))
		}
	}
	if c.RateStart <= 0 {
		if c.Scenario == "user-events" {
			c.RateStart = 200
		} else {
			c.RateStart = 50
		}
	}
}

// Validate reports a configuration that cannot run.
func (c *Config) Validate() error {
	switch c.Scenario {
	case "idle", "fanout", "user-events", "storm":
	case "cluster":
		if len(c.URLs) < 2 {
			return errors.New("cluster needs at least two -url values")
		}
	default:
		return fmt.Errorf("unknown scenario %q (idle, fanout, user-events, storm, cluster)", c.Scenario)
	}
	if len(c.URLs) == 0 {
		return errors.New("no server URL")
	}
	if c.Transport != "websocket" && c.Transport != "polling" {
		return fmt.Errorf("unknown transport %q", c.Transport)
	}
	if c.PublishMode != "http" && c.PublishMode != "emitter" {
		return fmt.Errorf("unknown publish mode %q", c.PublishMode)
	}
	if c.PublishMode == "emitter" && c.RedisURL == "" {
		return errors.New("publish mode emitter needs -redis")
	}
	if c.Procs > 1 && len(c.WorkerCmd) == 0 {
		return errors.New("procs > 1 needs a worker command")
	}
	return nil
}

// FleetConfigs splits the run over Procs fleets (client g goes to fleet g%Procs).
func (c *Config) FleetConfigs() []FleetConfig {
	out := make([]FleetConfig, c.Procs)
	for p := range out {
		n := c.Conns / c.Procs
		if p < c.Conns%c.Procs {
			n++
		}
		rate := 0.0
		if c.RampRate > 0 {
			rate = c.RampRate / float64(c.Procs)
		}
		out[p] = FleetConfig{
			URLs: c.URLs, Path: c.Path, Transport: c.Transport, SourceIPs: c.SourceIPs,
			Conns: n, First: p, Stride: c.Procs, RampRate: rate, Users: c.Users,
			Symbols: c.Symbols, SymbolsPerClient: c.SymbolsPerClient, Secret: c.Secret,
			RunID: c.RunID, AuthMode: c.AuthMode, ConnectTimeout: c.ConnectTimeout, RampTimeout: c.RampTimeout,
		}
	}
	return out
}

type runner struct {
	cfg    *Config
	log    io.Writer
	fleets []Fleet
	res    *Result
	rdb    *redis.Client
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.log, "loadgen: "+format+"\n", args...)
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Run executes one scenario and returns its result.
func Run(ctx context.Context, cfg Config, log io.Writer) (*Result, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, isFile := log.(*os.File); !isFile {
		log = &lockedWriter{w: log} // progress, steps and worker stderr write concurrently
	}
	r := &runner{cfg: &cfg, log: log, res: &Result{
		Scenario: cfg.Scenario, Label: cfg.Label, Transport: cfg.Transport, Conns: cfg.Conns,
		Procs: cfg.Procs, Servers: len(cfg.URLs), Start: time.Now().UTC(), LoadAvg: LoadAvg(),
	}}
	if cfg.Scenario == "fanout" || cfg.Scenario == "cluster" || cfg.Scenario == "user-events" {
		r.res.Publish = cfg.PublishMode
	}
	if cfg.Scenario == "user-events" && cfg.EventsBatch {
		r.res.EventsBatch, r.res.P99Line = true, cfg.P99Limit.String()
	}
	if cfg.RedisURL != "" {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("redis url: %w", err)
		}
		r.rdb = redis.NewClient(opt)
		defer r.rdb.Close()
		t0 := time.Now()
		n, err := SeedSessions(ctx, r.rdb, cfg.RunID, cfg.Users, cfg.SessionTTL)
		if err != nil {
			return nil, err
		}
		r.logf("seeded %d sessions in %.2fs", n, time.Since(t0).Seconds())
	}
	srvBefore, srvErr := r.serverStats()
	if len(cfg.ServerPIDs) > 0 {
		if srvErr != nil {
			return nil, fmt.Errorf("server pid: %w", srvErr)
		}
		r.res.Server = &ServerRep{PIDs: cfg.ServerPIDs, RSSBeforeKB: srvBefore.RSSKB}
		r.res.Server.DebugBefore = r.debug(ctx)
	}
	t0 := time.Now()
	if err := r.startFleets(); err != nil {
		return nil, err
	}
	defer r.closeFleets()
	snapBefore, _ := r.snap(ctx)
	if err := r.ramp(ctx); err != nil {
		return r.res, err
	}
	snap0, _ := r.snap(ctx)
	var err error
	switch cfg.Scenario {
	case "idle":
		err = r.idle(ctx)
	case "fanout", "cluster", "user-events":
		err = r.steps(ctx)
	case "storm":
		err = r.storm(ctx)
	}
	snap1, _ := r.snap(ctx)
	r.res.Client = ClientRep{
		RSSKB: snap1.RSSKB, CPUSeconds: float64(snap1.CPUTicks-snapBefore.CPUTicks) / ClockTicks, Drops: snap0.Drops + snap1.Drops,
	}
	if r.res.Ramp.Ready > 0 {
		r.res.Client.RSSPerConnKB = round3((float64(snap1.RSSKB) - float64(snapBefore.RSSKB)) / float64(r.res.Ramp.Ready))
	}
	if r.res.Server != nil {
		if st, e := r.serverStats(); e == nil {
			if r.res.Server.RSSAfterKB == 0 {
				r.res.Server.RSSAfterKB = st.RSSKB
			}
			r.res.Server.CPUSeconds = float64(st.CPUTicks-srvBefore.CPUTicks) / ClockTicks
		}
		if r.res.Server.DebugAfter == nil {
			r.res.Server.DebugAfter = r.debug(ctx)
		}
	}
	r.res.Seconds = round3(time.Since(t0).Seconds())
	return r.res, err
}

func (r *runner) serverStats() (ProcStats, error) {
	if len(r.cfg.ServerPIDs) == 0 {
		return ProcStats{}, nil
	}
	return SumProcStats(r.cfg.ServerPIDs)
}

func (r *runner) debug(ctx context.Context) map[string]float64 {
	if len(r.cfg.DebugURLs) == 0 {
		return nil
	}
	out := map[string]float64{}
	for i, u := range r.cfg.DebugURLs {
		m, err := FetchDebug(ctx, u)
		if err != nil {
			r.res.Server.DebugFailures = append(r.res.Server.DebugFailures, err.Error())
			continue
		}
		for k, v := range m {
			if len(r.cfg.DebugURLs) > 1 {
				k = fmt.Sprintf("%d.%s", i, k)
			}
			out[k] = v
		}
	}
	return out
}

func (r *runner) startFleets() error {
	for _, fc := range r.cfg.FleetConfigs() {
		var f Fleet
		var err error
		if r.cfg.Procs == 1 {
			f, err = NewLocalFleet(fc)
		} else {
			f, err = StartWorker(fc, r.cfg.WorkerCmd, r.log)
		}
		if err != nil {
			r.closeFleets()
			return err
		}
		r.fleets = append(r.fleets, f)
	}
	return nil
}

func (r *runner) closeFleets() {
	var wg sync.WaitGroup
	for _, f := range r.fleets {
		wg.Add(1)
		go func(f Fleet) {
			defer wg.Done()
			if err := f.Close(); err != nil {
				r.logf("close fleet: %v", err)
			}
		}(f)
	}
	wg.Wait()
	r.fleets = nil
}

// each runs fn on every fleet concurrently.
func each[T any](fleets []Fleet, fn func(Fleet) (T, error)) ([]T, error) {
	out := make([]T, len(fleets))
	errs := make([]error, len(fleets))
	var wg sync.WaitGroup
	for i, f := range fleets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = fn(f)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func (r *runner) progress() Progress {
	var p Progress
	for _, f := range r.fleets {
		p.Add(f.Progress())
	}
	return p
}

// reportProgress prints the live counts to the log every second until stop.
func (r *runner) reportProgress(what string, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	t0 := time.Now()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p := r.progress()
			r.logf("%s %4.0fs launched=%d ready=%d ever_ready=%d failed_attempts=%d", what,
				time.Since(t0).Seconds(), p.Launched, p.Ready, p.EverReady, p.Failed)
		}
	}
}

func (r *runner) ramp(ctx context.Context) error {
	stop := make(chan struct{})
	go r.reportProgress("ramp", stop)
	results, err := each(r.fleets, func(f Fleet) (RampResult, error) { return f.Ramp(ctx) })
	close(stop)
	var total RampResult
	for _, x := range results {
		total.Merge(x)
	}
	r.res.Ramp = RampReport{
		Ready: total.Ready, Never: total.Never, FailedAttempts: total.FailedAttempts, Errors: total.Errors,
		Seconds: round3(total.Seconds), Connect: total.Connect.Summarize(), ReadyLat: total.ReadyH.Summarize(),
	}
	r.logf("ramp done: %d ready, %d never, %d failed attempts in %.1fs; ready p50 %.1fms p99 %.1fms",
		total.Ready, total.Never, total.FailedAttempts, total.Seconds, r.res.Ramp.ReadyLat.P50MS, r.res.Ramp.ReadyLat.P99MS)
	for _, k := range sortedKeys(total.Errors) {
		r.logf("  %6d x %s", total.Errors[k], k)
	}
	if err != nil {
		return err
	}
	if total.Ready == 0 && r.cfg.Conns > 0 {
		return errors.New("no connection became ready")
	}
	return nil
}

func (r *runner) snap(ctx context.Context) (Snapshot, error) {
	snaps, err := each(r.fleets, func(f Fleet) (Snapshot, error) { return f.Snap(ctx) })
	var s Snapshot
	for _, x := range snaps {
		s.Merge(x)
	}
	return s, err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *runner) idle(ctx context.Context) error {
	r.logf("holding %d connections for %s", r.res.Ramp.Ready, r.cfg.Hold)
	if err := sleepCtx(ctx, r.cfg.Hold); err != nil {
		return err
	}
	if r.res.Server != nil {
		st, err := r.serverStats()
		if err != nil {
			return err
		}
		r.res.Server.RSSAfterKB = st.RSSKB
		if r.res.Ramp.Ready > 0 {
			r.res.Server.RSSPerConnKB = round3((float64(st.RSSKB) - float64(r.res.Server.RSSBeforeKB)) / float64(r.res.Ramp.Ready))
		}
		r.res.Server.DebugAfter = r.debug(ctx)
	}
	if r.cfg.BroadcastAll {
		return r.broadcastAll(ctx)
	}
	return nil
}

// broadcastAll publishes one market:status to every socket (a raw emit
// without rooms, stamped now) and waits until every ready connection has
// it, or 10 seconds.
func (r *runner) broadcastAll(ctx context.Context) error {
	before, err := r.snap(ctx) // also resets the counters
	if err != nil {
		return err
	}
	rep := &BroadcastRep{Expected: before.Ready, Drops: before.Drops}
	r.res.Broadcast = rep
	pub := NewHTTPPublisher(strings.TrimRight(r.cfg.PublishURL, "/"), r.cfg.APIKey, false)
	defer pub.Close()
	body := AppendBroadcast(nil, "market:status", time.Now().UnixNano())
	if err := pub.post(ctx, "/api/v1/emit", body); err != nil {
		return fmt.Errorf("broadcast: %w", err)
	}
	var lat HistData
	deadline := time.Now().Add(10 * time.Second)
	for int64(rep.Received) < rep.Expected && time.Now().Before(deadline) {
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
		s, err := r.snap(ctx)
		if err != nil {
			return err
		}
		rep.Received += s.Market
		rep.Drops += s.Drops
		lat.Merge(s.Latency)
	}
	rep.Latency = lat.Summarize()
	r.logf("broadcast: %d of %d connections got it, max %.1f ms", rep.Received, rep.Expected, rep.Latency.MaxMS)
	return nil
}

// recipientsPerMessage is the average number of connections one published
// message reaches, from the deterministic client assignment.
func (c *Config) recipientsPerMessage() float64 {
	if c.Scenario == "user-events" {
		return float64(c.Conns) / float64(c.Users)
	}
	return float64(c.Conns*c.SymbolsPerClient) / float64(c.Symbols)
}

func (r *runner) publisher() (Publisher, error) {
	if r.cfg.PublishMode == "emitter" {
		opt, err := redis.ParseURL(r.cfg.RedisURL)
		if err != nil {
			return nil, err
		}
		return &EmitterPublisher{RDB: redis.NewClient(opt), Prefix: r.cfg.EmitterPrefix}, nil
	}
	return NewHTTPPublisher(strings.TrimRight(r.cfg.PublishURL, "/"), r.cfg.APIKey, r.cfg.EventsBatch), nil
}

// steps raises the publish rate step by step until p99 passes the limit,
// deliveries fall short, or the publisher cannot reach the target rate.
func (r *runner) steps(ctx context.Context) error {
	pub, err := r.publisher()
	if err != nil {
		return err
	}
	defer pub.Close()
	var rr *RoundRobin
	var send func(ctx context.Context, n int) error
	var sent atomic.Int64
	if r.cfg.Scenario == "user-events" {
		rr = NewRoundRobin(r.cfg.Users)
		send = func(ctx context.Context, n int) error {
			err := pub.Trades(ctx, rr.Take(n))
			if err == nil {
				sent.Add(int64(n))
			}
			return err
		}
	} else {
		rr = NewRoundRobin(r.cfg.Symbols)
		send = func(ctx context.Context, n int) error {
			err := pub.Quotes(ctx, rr.Take(n))
			if err == nil {
				sent.Add(int64(n))
			}
			return err
		}
	}
	perMsg := r.cfg.recipientsPerMessage()
	settle := min(time.Second, r.cfg.StepDur)
	drain := r.cfg.Drain
	if err := sleepCtx(ctx, settle/2); err != nil {
		return err
	}
	rate := r.cfg.RateStart
	retries := 0
	for i := 0; i < r.cfg.MaxSteps; i++ {
		if r.cfg.MaxRate > 0 && rate > r.cfg.MaxRate {
			break
		}
		// unmeasured lead-in at the new rate, then the measured window, then a
		// pause for in-flight deliveries so that received can be compared
		// with exactly what was published
		if Pace(ctx, rate, r.cfg.Warmup, r.cfg.Tick, r.cfg.PubConc, r.cfg.MaxBatch, send); ctx.Err() != nil {
			return ctx.Err()
		}
		_, _ = r.snap(ctx)
		srv0, _ := r.serverStats()
		cl0, _ := r.snap(ctx)
		mb0, _, _ := ReadMachineCPU()
		sent0 := sent.Load()
		t0 := time.Now()
		pr := Pace(ctx, rate, r.cfg.StepDur, r.cfg.Tick, r.cfg.PubConc, r.cfg.MaxBatch, send)
		pubSecs := time.Since(t0).Seconds()
		published := float64(sent.Load() - sent0)
		if err := sleepCtx(ctx, drain); err != nil {
			return err
		}
		secs := time.Since(t0).Seconds()
		srv1, _ := r.serverStats()
		mb1, _, _ := ReadMachineCPU()
		snap, err := r.snap(ctx)
		if err != nil {
			return err
		}
		received := snap.Quotes + snap.Trades
		st := Step{
			TargetRate: rate, PublishedPerSec: round3(published / pubSecs), Expected: math.Round(published * perMsg),
			Received: received, DeliveredPerSec: math.Round(float64(received) / pubSecs),
			Latency: snap.Latency.Summarize(), PublishFailed: pr.Failed,
			ClientCPU:  round3(float64(snap.CPUTicks-cl0.CPUTicks) / ClockTicks / secs),
			MachineCPU: round3(float64(mb1-mb0) / ClockTicks / secs),
		}
		if len(r.cfg.ServerPIDs) > 0 {
			cpu := float64(srv1.CPUTicks-srv0.CPUTicks) / ClockTicks
			st.ServerCPU = round3(cpu / secs)
			if received > 0 {
				st.ServerCPUPerMDel = round3(cpu / float64(received) * 1e6)
			}
		}
		st.OtherCPU = round3(max(st.MachineCPU-st.ServerCPU-st.ClientCPU, 0))
		limitMS := float64(r.cfg.P99Limit) / float64(time.Millisecond)
		st.OK = st.Latency.Count > 0 && st.Latency.P99MS <= limitMS &&
			float64(received) >= r.cfg.MinDeliver*st.Expected && published >= 0.8*rate*pubSecs && pr.Failed == 0
		r.res.Steps = append(r.res.Steps, st)
		r.logf("step %2d: target %.0f msg/s published %.0f/s delivered %.0f/s (%d of %.0f) p50 %.2fms p99 %.2fms cores: server %.2f loadgen %.2f machine %.2f ok=%v",
			i, rate, st.PublishedPerSec, st.DeliveredPerSec, received, st.Expected, st.Latency.P50MS, st.Latency.P99MS, st.ServerCPU, st.ClientCPU, st.MachineCPU, st.OK)
		for _, k := range sortedKeys(pr.Errors) {
			r.logf("  publish error %d x %s", pr.Errors[k], k)
		}
		if len(r.cfg.ServerPIDs) > 0 && st.OtherCPU > 0.25 {
			r.logf("  warning: %.2f cores used by other processes during this step; its latency is not representative", st.OtherCPU)
		}
		if st.OK && (r.res.Best == nil || st.DeliveredPerSec > r.res.Best.DeliveredPerSec) {
			b := st
			r.res.Best = &b
		}
		if !st.OK && st.OtherCPU > r.cfg.MaxOtherCPU && retries < r.cfg.Retries {
			retries++
			r.res.Steps[len(r.res.Steps)-1].Retried = true
			r.logf("  measuring this rate again (%d of %d)", retries, r.cfg.Retries)
			i--
			continue
		}
		if !st.OK {
			break
		}
		retries = 0
		rate *= r.cfg.RateFactor
	}
	// let queued deliveries drain so they do not count against later runs
	_ = sleepCtx(ctx, settle)
	return nil
}

func (r *runner) storm(ctx context.Context) error {
	if err := sleepCtx(ctx, min(time.Second, r.cfg.Hold)); err != nil {
		return err
	}
	rep := &StormRep{AllBackS: -1}
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if len(r.cfg.ServerPIDs) > 0 {
		st, _ := r.serverStats()
		rep.RSSBeforeKB = st.RSSKB
		peak.Store(st.RSSKB)
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if st, err := r.serverStats(); err == nil && st.RSSKB > peak.Load() {
						peak.Store(st.RSSKB)
					}
				}
			}
		}()
	}
	pstop := make(chan struct{})
	go r.reportProgress("storm", pstop)
	results, err := each(r.fleets, func(f Fleet) (StormResult, error) { return f.Storm(ctx, r.cfg.StormTimeout) })
	close(pstop)
	close(stop)
	wg.Wait()
	var total StormResult
	for _, x := range results {
		total.Merge(x)
	}
	rep.Conns, rep.Recovered, rep.FailedAttempts, rep.Errors = total.Conns, total.Recovered, total.FailedAttempts, total.Errors
	rep.Back = total.Back.Summarize()
	if total.Recovered == total.Conns {
		rep.AllBackS = round3(float64(total.Back.MaxUS) / 1e6)
	}
	rep.RSSPeakKB = peak.Load()
	if r.res.Server != nil {
		r.res.Server.RSSPeakKB = rep.RSSPeakKB
	}
	r.res.Storm = rep
	r.logf("storm: %d of %d back, all back after %.2fs, %d failed attempts, server RSS %d -> peak %d KB",
		rep.Recovered, rep.Conns, rep.AllBackS, rep.FailedAttempts, rep.RSSBeforeKB, rep.RSSPeakKB)
	for _, k := range sortedKeys(rep.Errors) {
		r.logf("  %6d x %s", rep.Errors[k], k)
	}
	return err
}

// ParseSourceIPs expands "127.0.0.2-127.0.0.9" or a comma list.
func ParseSourceIPs(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			out = append(out, part)
			continue
		}
		a, b := parseIPv4(lo), parseIPv4(hi)
		if a == nil || b == nil || a[0] != b[0] || a[1] != b[1] || a[2] != b[2] || a[3] > b[3] {
			return nil, fmt.Errorf("bad source range %q (same /24, low-high)", part)
		}
		for x := int(a[3]); x <= int(b[3]); x++ {
			out = append(out, fmt.Sprintf("%d.%d.%d.%d", a[0], a[1], a[2], x))
		}
	}
	return out, nil
}

func parseIPv4(s string) []byte {
	var a [4]int
	if n, err := fmt.Sscanf(s, "%d.%d.%d.%d", &a[0], &a[1], &a[2], &a[3]); n != 4 || err != nil {
		return nil
	}
	out := make([]byte, 4)
	for i, v := range a {
		if v < 0 || v > 255 {
			return nil
		}
		out[i] = byte(v)
	}
	return out
}
