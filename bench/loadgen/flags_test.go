package loadgen

import (
	"io"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	o, err := ParseFlags([]string{"-scenario", "cluster", "-url", "http://a:1, http://b:2", "-conns", "300",
		"-src", "127.0.0.2-127.0.0.4,127.0.1.1", "-server-pid", "10,11", "-debug-url", "http://a:1/debug/vars",
		"-p99", "20ms", "-procs", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.Config
	if c.Scenario != "cluster" || len(c.URLs) != 2 || c.URLs[1] != "http://b:2" || c.Conns != 300 || c.Procs != 2 ||
		len(c.SourceIPs) != 4 || c.SourceIPs[2] != "127.0.0.4" || c.SourceIPs[3] != "127.0.1.1" ||
		c.ServerPIDs[1] != 11 || c.P99Limit != 20*time.Millisecond || len(c.DebugURLs) != 1 {
		t.Fatalf("%+v", c)
	}
	for _, bad := range [][]string{{"-server-pid", "x"}, {"-src", "127.0.0.9-127.0.0.2"}, {"-nope"}, {"extra"}, {"-src", "1.2.3-4"}} {
		if _, err := ParseFlags(bad, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestConfigValidateAndSplit(t *testing.T) {
	c := Config{Scenario: "fanout", URLs: []string{"http://x"}, Conns: 10, Procs: 3, RampRate: 30, WorkerCmd: []string{"w"}}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	fcs := c.FleetConfigs()
	if len(fcs) != 3 || fcs[0].Conns != 4 || fcs[1].Conns != 3 || fcs[2].First != 2 || fcs[2].Stride != 3 || fcs[1].RampRate != 10 {
		t.Fatalf("%+v", fcs)
	}
	if c.RateStart != 50 || c.Users != 10 || c.PublishURL != "http://x" || c.recipientsPerMessage() != 0.3 {
		t.Fatalf("%+v", c)
	}
	ue := Config{Scenario: "user-events", URLs: []string{"http://x"}, Conns: 10, Users: 5}
	ue.Defaults()
	if ue.RateStart != 200 || ue.recipientsPerMessage() != 2 {
		t.Fatalf("%+v", ue)
	}
	bad := []Config{
		{Scenario: "nope", URLs: []string{"x"}},
		{Scenario: "cluster", URLs: []string{"x"}},
		{Scenario: "idle"},
		{Scenario: "idle", URLs: []string{"x"}, Transport: "carrier-pigeon"},
		{Scenario: "idle", URLs: []string{"x"}, PublishMode: "smoke"},
		{Scenario: "idle", URLs: []string{"x"}, PublishMode: "emitter"},
		{Scenario: "idle", URLs: []string{"x"}, Procs: 2},
	}
	for _, b := range bad {
		b.Defaults()
		if err := b.Validate(); err == nil {
			t.Errorf("%+v accepted", b)
		}
	}
}
