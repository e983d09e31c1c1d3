package loadgen

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sampleResults(scale float64) []Result {
	step := Step{TargetRate: 100, PublishedPerSec: 100, Expected: 30000, Received: 30000, DeliveredPerSec: 30000 * scale,
		Latency: Summary{Count: 30000, P50MS: 2 / scale, P99MS: 40 / scale}, ServerCPUPerMDel: 20 / scale, OK: true}
	return []Result{
		{Scenario: "idle", Transport: "websocket", Conns: 1000, Servers: 1,
			Ramp:   RampReport{Ready: 1000, Connect: Summary{Count: 1000, P50MS: 1, P99MS: 8}, ReadyLat: Summary{Count: 1000, P50MS: 3, P99MS: 12}},
			Server: &ServerRep{RSSPerConnKB: 18 / scale, RSSAfterKB: 80000}},
		{Scenario: "fanout", Transport: "websocket", Conns: 10000, Servers: 1, Publish: "http", Steps: []Step{step, {TargetRate: 125, Retried: true}, {TargetRate: 125}}, Best: &step},
		{Scenario: "user-events", Transport: "websocket", Conns: 10000, Servers: 1, Publish: "http", Steps: []Step{step}, Best: &step},
		{Scenario: "storm", Transport: "websocket", Conns: 5000, Servers: 1,
			Storm: &StormRep{Conns: 5000, Recovered: 5000, AllBackS: 4 / scale, Back: Summary{P50MS: 900, P99MS: 3000}, RSSPeakKB: 300000}},
		{Scenario: "cluster", Transport: "websocket", Conns: 10000, Servers: 2, Publish: "emitter", Errors: []string{"something odd"}},
	}
}

func TestWriteReportRatios(t *testing.T) {
	var buf bytes.Buffer
	meta := [][2]string{{"machine", "2 cores"}, {"command", "`bench/run.sh`"}}
	WriteReport(&buf, meta, sampleResults(1), sampleResults(2)[:4], "Node", "tradewire")
	out := buf.String()
	for _, want := range []string{
		"- **machine**: 2 cores",
		"| idle, websocket, 1000 conns | server RSS per connection (KB) | 18 | 9 | 0.50 | lower |",
		"| fanout, websocket, 10000 conns | deliveries/s with p99 under the line (msg/s) | 30000 | 60000 | 2.00 | higher |",
		"| storm, websocket, 5000 conns | all reconnected and authenticated after (s) | 4 | 2 | 0.50 | lower |",
		"| cluster, websocket, 10000 conns, 2 servers, via emitter | deliveries/s with p99 under the line (msg/s) | — | — | — | higher |",
		"**tradewire — user-events, websocket, 10000 conns**",
		"| 125 | 0 | 0 | 0.000 | 0.00 | 0.00 | 0.00 | 0.00 | 0.00 | no (foreign load, measured again) |",
		"| 125 | 0 | 0 | 0.000 | 0.00 | 0.00 | 0.00 | 0.00 | 0.00 | no |",
		"cluster, websocket, 10000 conns, 2 servers, via emitter (): something odd",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

// Batched user events are their own run, named with the line they were
// judged by, so they never mix with the one-per-request runs.
func TestRunKeyBatchedEvents(t *testing.T) {
	r := Result{Scenario: "user-events", Transport: "websocket", Conns: 10000, Servers: 1, Publish: "http"}
	if got, want := RunKey(&r), "user-events, websocket, 10000 conns"; got != want {
		t.Fatalf("RunKey = %q, want %q", got, want)
	}
	r.EventsBatch, r.P99Line = true, "10ms"
	if got, want := RunKey(&r), "user-events, websocket, 10000 conns, batched, p99 line 10ms"; got != want {
		t.Fatalf("RunKey = %q, want %q", got, want)
	}
}

func TestWriteReportWithReference(t *testing.T) {
	var buf bytes.Buffer
	node, tw := sampleResults(1), sampleResults(2)[:3]
	tw = append(tw, sampleResults(3)[0]) // a later idle run of the candidate wins
	WriteReportRef(&buf, nil, node, tw, sampleResults(4)[:2], "Node", "tradewire", "minimal")
	out := buf.String()
	for _, want := range []string{
		"| run | figure | Node | tradewire | minimal | ratio to Node | ratio to minimal | better |",
		"| idle, websocket, 1000 conns | server RSS per connection (KB) | 18 | 6 | 4.5 | 0.33 | 1.33 | lower |",
		"| fanout, websocket, 10000 conns | deliveries/s with p99 under the line (msg/s) | 30000 | 60000 | 120000 | 2.00 | 0.50 | higher |",
		"| user-events, websocket, 10000 conns | events/s delivered with p99 under the line (msg/s) | 30000 | 60000 | — | 2.00 | — | higher |",
		"**minimal — fanout, websocket, 10000 conns**",
		"physical limit",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

func TestReportMainFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, rs []Result) string {
		var b bytes.Buffer
		b.WriteString("not json: progress noise\n")
		for _, r := range rs {
			line, _ := json.Marshal(r)
			b.Write(append(line, '\n'))
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	node := write("node.jsonl", sampleResults(1))
	tw := write("tw.jsonl", sampleResults(4))
	meta := filepath.Join(dir, "meta.json")
	os.WriteFile(meta, []byte(`[["kernel","6.1"]]`), 0o644)
	out := filepath.Join(dir, "BENCH.md")
	if err := ReportMain([]string{"-node", node, "-tradewire", tw, "-meta", meta, "-o", out}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(out)
	if !strings.Contains(string(md), "| 120000 | 4.00 | higher |") || !strings.Contains(string(md), "**kernel**: 6.1") {
		t.Fatalf("%s", md)
	}
	if err := ReportMain([]string{"-node", node, "-tradewire", tw, "-minimal", write("min.jsonl", sampleResults(5)), "-o", out}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if md, _ := os.ReadFile(out); !strings.Contains(string(md), "| 30000 | 120000 | 150000 | 4.00 | 0.80 | higher |") {
		t.Fatalf("%s", md)
	}
	var stdout bytes.Buffer
	if err := ReportMain([]string{"-node", node}, &stdout, io.Discard); err != nil || !strings.Contains(stdout.String(), "| 30000 | — | — |") {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{broken\n"), 0o644)
	for _, args := range [][]string{{"-node", bad}, {"-node", filepath.Join(dir, "missing")}, {"-tradewire", bad},
		{"-meta", bad}, {"-minimal", bad}, {"-meta", filepath.Join(dir, "missing")}, {"-o", filepath.Join(dir, "no/such/dir/x.md")}, {"-bogus"}} {
		if err := ReportMain(args, io.Discard, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	if fmtNum(0) != "0" || fmtNum(0.01234) != "0.0123" || fmtNum(12.34) != "12.3" || fmtNum(500) != "500" || fmtNum(1234.5) != "1234" {
		t.Error("fmtNum")
	}
}
