package loadgen

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// ReadResults reads JSON result lines (other lines are ignored).
func ReadResults(r io.Reader) ([]Result, error) {
	var out []Result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var res Result
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			return nil, fmt.Errorf("result line: %w", err)
		}
		out = append(out, res)
	}
	return out, sc.Err()
}

// Figure is one compared number.
type Figure struct {
	Name           string
	Unit           string
	HigherIsBetter bool
	Get            func(*Result) (float64, bool)
}

func figuresFor(scenario string) []Figure {
	step := func(f func(*Step) float64) func(*Result) (float64, bool) {
		return func(r *Result) (float64, bool) {
			if r.Best == nil {
				return 0, false
			}
			return f(r.Best), true
		}
	}
	srv := func(f func(*ServerRep) float64) func(*Result) (float64, bool) {
		return func(r *Result) (float64, bool) {
			if r.Server == nil {
				return 0, false
			}
			return f(r.Server), true
		}
	}
	ramp := []Figure{
		{"connections ready", "", true, func(r *Result) (float64, bool) { return float64(r.Ramp.Ready), true }},
		{"connect p50", "ms", false, func(r *Result) (float64, bool) { return r.Ramp.Connect.P50MS, r.Ramp.Connect.Count > 0 }},
		{"connect p99", "ms", false, func(r *Result) (float64, bool) { return r.Ramp.Connect.P99MS, r.Ramp.Connect.Count > 0 }},
		{"ready (auth + 3 subscriptions) p50", "ms", false, func(r *Result) (float64, bool) { return r.Ramp.ReadyLat.P50MS, r.Ramp.ReadyLat.Count > 0 }},
		{"ready p99", "ms", false, func(r *Result) (float64, bool) { return r.Ramp.ReadyLat.P99MS, r.Ramp.ReadyLat.Count > 0 }},
	}
	switch scenario {
	case "idle":
		return append(ramp,
			Figure{"server RSS per connection", "KB", false, srv(func(s *ServerRep) float64 { return s.RSSPerConnKB })},
			Figure{"server RSS after hold", "MB", false, srv(func(s *ServerRep) float64 { return float64(s.RSSAfterKB) / 1024 })},
		)
	case "fanout", "cluster":
		return []Figure{
			{"deliveries/s with p99 under the line", "msg/s", true, step(func(s *Step) float64 { return s.DeliveredPerSec })},
			{"latency p50 at that rate", "ms", false, step(func(s *Step) float64 { return s.Latency.P50MS })},
			{"latency p99 at that rate", "ms", false, step(func(s *Step) float64 { return s.Latency.P99MS })},
			{"server CPU per million deliveries", "CPU s", false, step(func(s *Step) float64 { return s.ServerCPUPerMDel })},
			{"ready p99", "ms", false, func(r *Result) (float64, bool) { return r.Ramp.ReadyLat.P99MS, r.Ramp.ReadyLat.Count > 0 }},
		}
	case "user-events":
		return []Figure{
			{"events/s delivered with p99 under the line", "msg/s", true, step(func(s *Step) float64 { return s.DeliveredPerSec })},
			{"latency p50 at that rate", "ms", false, step(func(s *Step) float64 { return s.Latency.P50MS })},
			{"latency p99 at that rate", "ms", false, step(func(s *Step) float64 { return s.Latency.P99MS })},
			{"server CPU per million deliveries", "CPU s", false, step(func(s *Step) float64 { return s.ServerCPUPerMDel })},
		}
	case "storm":
		st := func(f func(*StormRep) float64) func(*Result) (float64, bool) {
			return func(r *Result) (float64, bool) {
				if r.Storm == nil {
					return 0, false
				}
				return f(r.Storm), true
			}
		}
		return []Figure{
			{"all reconnected and authenticated after", "s", false, func(r *Result) (float64, bool) {
				if r.Storm == nil || r.Storm.AllBackS < 0 {
					return 0, false
				}
				return r.Storm.AllBackS, true
			}},
			{"reconnected", "", true, st(func(s *StormRep) float64 { return float64(s.Recovered) })},
			{"back p50", "ms", false, st(func(s *StormRep) float64 { return s.Back.P50MS })},
			{"back p99", "ms", false, st(func(s *StormRep) float64 { return s.Back.P99MS })},
			{"failed attempts", "", false, st(func(s *StormRep) float64 { return float64(s.FailedAttempts) })},
			{"server peak RSS", "MB", false, st(func(s *StormRep) float64 { return float64(s.RSSPeakKB) / 1024 })},
		}
	}
	return ramp
}

// RunKey identifies comparable runs.
func RunKey(r *Result) string {
	k := fmt.Sprintf("%s, %s, %d conns", r.Scenario, r.Transport, r.Conns)
	if r.Servers > 1 {
		k += fmt.Sprintf(", %d servers", r.Servers)
	}
	if r.Publish != "" && r.Publish != "http" {
		k += ", via " + r.Publish
	}
	if r.EventsBatch {
		k += ", batched, p99 line " + r.P99Line
	}
	return k
}

func fmtNum(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1000:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// WriteReport writes the comparison as Markdown. meta holds ordered
// [key, value] pairs (machine, versions, commands).
func WriteReport(w io.Writer, meta [][2]string, base, cand []Result, baseName, candName string) {
	WriteReportRef(w, meta, base, cand, nil, baseName, candName, "")
}

// WriteReportRef is WriteReport with a third server as the reference (the
// minimal epoll server of bench/minimal): when ref holds results, its column
// and the ratio candidate / reference are added.
func WriteReportRef(w io.Writer, meta [][2]string, base, cand, ref []Result, baseName, candName, refName string) {
	fmt.Fprintf(w, "# Benchmarks: %s vs %s\n\n", candName, baseName)
	fmt.Fprintf(w, "Generated by `bench/run.sh` (load generator: `bench/cmd/loadgen`). Ratio = %s / %s; the last column says which direction is better.", candName, baseName)
	if len(ref) > 0 {
		fmt.Fprintf(w, " The reference column is %s (`bench/minimal`: an epoll push server that speaks just enough Engine.IO/Socket.IO for the load generator and does nothing else, the physical limit of this box), with the ratio %s / %s.", refName, candName, refName)
	}
	fmt.Fprintf(w, "\n\n")
	if len(meta) > 0 {
		fmt.Fprintf(w, "## Machine and versions\n\n")
		for _, kv := range meta {
			fmt.Fprintf(w, "- **%s**: %s\n", kv[0], kv[1])
		}
		fmt.Fprintln(w)
	}
	sets := [][]Result{base, cand, ref}
	seen := map[string]bool{}
	var order []*Result
	for _, set := range sets {
		for i := range set {
			if k := RunKey(&set[i]); !seen[k] {
				seen[k] = true
				order = append(order, &set[i])
			}
		}
	}
	if len(ref) > 0 {
		fmt.Fprintf(w, "## Results\n\n| run | figure | %s | %s | %s | ratio to %s | ratio to %s | better |\n|---|---|---:|---:|---:|---:|---:|---|\n",
			baseName, candName, refName, baseName, refName)
	} else {
		fmt.Fprintf(w, "## Results\n\n| run | figure | %s | %s | ratio | better |\n|---|---|---:|---:|---:|---|\n", baseName, candName)
	}
	for _, r := range order {
		key := RunKey(r)
		b, c, x := findKey(base, key), findKey(cand, key), findKey(ref, key)
		for _, f := range figuresFor(r.Scenario) {
			bv, bok := get(f, b)
			cv, cok := get(f, c)
			better := "lower"
			if f.HigherIsBetter {
				better = "higher"
			}
			name := f.Name
			if f.Unit != "" {
				name += " (" + f.Unit + ")"
			}
			if len(ref) == 0 {
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", key, name, cell(bv, bok), cell(cv, cok), ratio(cv, cok, bv, bok), better)
				continue
			}
			xv, xok := get(f, x)
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", key, name, cell(bv, bok), cell(cv, cok), cell(xv, xok),
				ratio(cv, cok, bv, bok), ratio(cv, cok, xv, xok), better)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "## Steps of the rising-rate runs\n\n")
	for _, set := range []struct {
		name string
		rs   []Result
	}{{baseName, base}, {candName, cand}, {refName, ref}} {
		for i := range set.rs {
			r := &set.rs[i]
			if len(r.Steps) == 0 {
				continue
			}
			fmt.Fprintf(w, "**%s — %s**\n\n| target msg/s | published/s | delivered/s | received/expected | p50 ms | p99 ms | server cores | CPU s/M | other load (cores) | ok |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n", set.name, RunKey(r))
			for _, s := range r.Steps {
				share := 0.0
				if s.Expected > 0 {
					share = float64(s.Received) / s.Expected
				}
				fmt.Fprintf(w, "| %.0f | %.0f | %.0f | %.3f | %.2f | %.2f | %.2f | %.2f | %.2f | %s |\n",
					s.TargetRate, s.PublishedPerSec, s.DeliveredPerSec, share, s.Latency.P50MS, s.Latency.P99MS, s.ServerCPU, s.ServerCPUPerMDel, s.OtherCPU, okText(s))
			}
			fmt.Fprintln(w)
		}
	}
	var errs []string
	for _, set := range sets {
		for i := range set {
			for _, e := range set[i].Errors {
				errs = append(errs, fmt.Sprintf("%s (%s): %s", RunKey(&set[i]), set[i].Label, e))
			}
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "## Errors reported by the runs\n\n")
		for _, e := range errs {
			fmt.Fprintf(w, "- %s\n", e)
		}
		fmt.Fprintln(w)
	}
}

func cell(v float64, ok bool) string {
	if !ok {
		return "—"
	}
	return fmtNum(v)
}

func ratio(num float64, numOK bool, den float64, denOK bool) string {
	if !numOK || !denOK || den == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", num/den)
}

func okText(s Step) string {
	switch {
	case s.OK:
		return "yes"
	case s.Retried:
		return "no (foreign load, measured again)"
	}
	return "no"
}

func get(f Figure, r *Result) (float64, bool) {
	if r == nil {
		return 0, false
	}
	return f.Get(r)
}

// findKey returns the last result with key (runs appended later win).
func findKey(rs []Result, key string) *Result {
	for i := len(rs) - 1; i >= 0; i-- {
		if RunKey(&rs[i]) == key {
			return &rs[i]
		}
	}
	return nil
}

// ReportMain implements "loadgen report".
func ReportMain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	basePath := fs.String("node", "", "baseline results (JSON lines)")
	candPath := fs.String("tradewire", "", "candidate results (JSON lines)")
	baseName := fs.String("node-name", "Node socket.io", "baseline column title")
	candName := fs.String("tradewire-name", "tradewire", "candidate column title")
	refPath := fs.String("minimal", "", "reference results (JSON lines of bench/minimal; optional)")
	refName := fs.String("minimal-name", "minimal epoll", "reference column title")
	metaPath := fs.String("meta", "", "JSON array of [key, value] pairs (machine, versions, commands)")
	out := fs.String("o", "", "output file (default stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	read := func(p string) ([]Result, error) {
		if p == "" {
			return nil, nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return ReadResults(f)
	}
	base, err := read(*basePath)
	if err != nil {
		return err
	}
	cand, err := read(*candPath)
	if err != nil {
		return err
	}
	ref, err := read(*refPath)
	if err != nil {
		return err
	}
	var meta [][2]string
	if *metaPath != "" {
		b, err := os.ReadFile(*metaPath)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &meta); err != nil {
			return fmt.Errorf("meta: %w", err)
		}
	}
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	WriteReportRef(w, meta, base, cand, ref, *baseName, *candName, *refName)
	return nil
}
