package loadgen

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func TestParseOpenVector(t *testing.T) {
	// wire-formats §1 open packet
	o, err := ParseOpen([]byte(`0{"sid":"eP_6HDYKH6bLZycbAAAA","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`))
	if err != nil {
		t.Fatal(err)
	}
	if o.SID != "eP_6HDYKH6bLZycbAAAA" || len(o.SID) != 20 || o.Upgrades[0] != "websocket" || o.PingInterval != 25000 || o.PingTimeout != 20000 || o.MaxPayload != 1000000 {
		t.Fatalf("%+v", o)
	}
	for _, bad := range []string{"", "0", "4hello", `0{"sid":""}`, `0{bad`} {
		if _, err := ParseOpen([]byte(bad)); err == nil {
			t.Errorf("ParseOpen(%q) accepted", bad)
		}
	}
}

func TestPollingPayloadVector(t *testing.T) {
	// wire-formats §1: 4hello␞bAQID = 3468656c6c6f1e6241514944
	want, _ := hex.DecodeString("3468656c6c6f1e6241514944")
	got := JoinPayload([]byte("4hello"), []byte("bAQID"))
	if !bytes.Equal(got, want) {
		t.Fatalf("JoinPayload = %x", got)
	}
	parts := SplitPayload(want)
	if len(parts) != 2 || string(parts[0]) != "4hello" || string(parts[1]) != "bAQID" {
		t.Fatalf("SplitPayload = %q", parts)
	}
	if SplitPayload(nil) != nil {
		t.Fatal("empty payload should have no packets")
	}
	// the observed close sequence 6␞1
	if p := SplitPayload([]byte("6\x1e1")); len(p) != 2 || p[0][0] != EIONoop || p[1][0] != EIOClose {
		t.Fatalf("%q", p)
	}
}

func TestValidEIOPacket(t *testing.T) {
	for _, ok := range []string{"0{}", "1", "2", "3probe", "4x", "5", "6", "bAQID"} {
		if !ValidEIOPacket([]byte(ok)) {
			t.Errorf("%q rejected", ok)
		}
	}
	for _, bad := range []string{"", "7", "abc", "x"} {
		if ValidEIOPacket([]byte(bad)) {
			t.Errorf("%q accepted", bad)
		}
	}
}
