package loadgen

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Options are the command line of the loadgen command.
type Options struct {
	Config
	Worker  bool
	Timeout time.Duration
}

// ParseFlags parses the loadgen command line.
func ParseFlags(args []string, errOut io.Writer) (*Options, error) {
	o := &Options{}
	c := &o.Config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(errOut)
	var urls, src, pids, debugURLs string
	fs.StringVar(&c.Scenario, "scenario", "idle", "idle | fanout | user-events | storm | cluster")
	fs.StringVar(&c.Label, "label", "", "server label in the result (node, tradewire)")
	fs.StringVar(&urls, "url", "http://127.0.0.1:3000", "server base URL(s), comma separated; clients spread round-robin")
	fs.StringVar(&c.Path, "path", "/socket.io/", "Engine.IO path")
	fs.StringVar(&c.Transport, "transport", "websocket", "websocket | polling")
	fs.IntVar(&c.Conns, "conns", 100, "connections")
	fs.IntVar(&c.Procs, "procs", 1, "worker processes to spread connections over (each below ulimit -n)")
	fs.StringVar(&src, "src", "", "source addresses: 127.0.0.2-127.0.0.9 or a comma list (default: kernel's choice)")
	fs.Float64Var(&c.RampRate, "ramp", 500, "new connections per second (0 = all at once)")
	fs.IntVar(&c.Users, "users", 0, "distinct users/sessions (default: conns)")
	fs.IntVar(&c.Symbols, "symbols", 100, "watchlist symbols")
	fs.IntVar(&c.SymbolsPerClient, "symbols-per-client", 3, "symbols each client subscribes to")
	fs.StringVar(&c.Secret, "secret", "keyboard cat", "session secret that signs connect.sid")
	fs.StringVar(&c.RunID, "run-id", "", "session id seed (default: unique per run)")
	fs.StringVar(&c.AuthMode, "auth", "cookie", "cookie (signed connect.sid header) | auth (CONNECT {sessionID})")
	fs.StringVar(&c.RedisURL, "redis", "", "redis URL to seed sessions into (connect-redis format); also the emitter's Redis")
	fs.DurationVar(&c.SessionTTL, "session-ttl", time.Hour, "TTL of seeded sessions")
	fs.StringVar(&c.APIKey, "api-key", "bench-api-key-0123456789", "publish API key (Authorization: Bearer)")
	fs.StringVar(&c.PublishURL, "publish-url", "", "base URL of the publish API (default: first -url)")
	fs.StringVar(&c.PublishMode, "publish", "http", "http (POST /api/v1/emit, /api/v1/events) | emitter (redis-emitter msgpack PUBLISH)")
	fs.StringVar(&c.EmitterPrefix, "emitter-prefix", "socket.io", "redis adapter channel prefix")
	fs.BoolVar(&c.EventsBatch, "events-batch", false, "post user events as JSON arrays instead of one per request")
	fs.IntVar(&c.PubConc, "pub-conc", 4, "publish requests in flight")
	fs.DurationVar(&c.Tick, "tick", 10*time.Millisecond, "publisher batching interval")
	fs.IntVar(&c.MaxBatch, "max-batch", 1000, "most messages in one publish request")
	fs.DurationVar(&c.Hold, "hold", 5*time.Second, "idle: hold before measuring RSS")
	fs.BoolVar(&c.BroadcastAll, "broadcast", false, "idle: after the hold, publish one market:status to every socket (POST /api/v1/emit without rooms) and report its arrival")
	fs.Float64Var(&c.RateStart, "rate-start", 0, "first step's published messages per second (default 50 quotes, 200 events)")
	fs.Float64Var(&c.RateFactor, "rate-factor", 1.25, "rate multiplier per step")
	fs.Float64Var(&c.MaxRate, "max-rate", 0, "stop before a step above this rate (0 = none)")
	fs.IntVar(&c.MaxSteps, "max-steps", 12, "most steps")
	fs.DurationVar(&c.StepDur, "step", 5*time.Second, "measured duration of each step")
	fs.DurationVar(&c.Warmup, "warmup", time.Second, "unmeasured time at the start of each step")
	fs.DurationVar(&c.P99Limit, "p99", 50*time.Millisecond, "p99 latency line")
	fs.Float64Var(&c.MinDeliver, "min-deliver", 0.97, "a step must deliver this share of the expected messages")
	fs.DurationVar(&c.Drain, "drain", 0, "pause after each step for in-flight deliveries (default 4 x p99 line, 200ms..2s)")
	fs.IntVar(&c.Retries, "retries", 2, "measure a failed step again this often when other processes used more than -max-other-cpu cores")
	fs.Float64Var(&c.MaxOtherCPU, "max-other-cpu", 0.3, "foreign CPU load (cores) above which a failed step is measured again")
	fs.DurationVar(&c.StormTimeout, "storm-timeout", 60*time.Second, "storm: give up waiting after this")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", 30*time.Second, "per connection attempt")
	fs.StringVar(&pids, "server-pid", "", "server pid(s), comma separated, for RSS and CPU from /proc")
	fs.StringVar(&debugURLs, "debug-url", "", "server debug endpoint(s) returning JSON (e.g. /debug/vars)")
	fs.BoolVar(&o.Worker, "worker", false, "internal: run as a worker driven over stdin/stdout")
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Minute, "abort the run after this")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.URLs = splitList(urls)
	c.DebugURLs = splitList(debugURLs)
	var err error
	if c.SourceIPs, err = ParseSourceIPs(src); err != nil {
		return nil, err
	}
	for _, p := range splitList(pids) {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad -server-pid %q", p)
		}
		c.ServerPIDs = append(c.ServerPIDs, n)
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
