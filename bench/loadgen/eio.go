package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Engine.IO v4 packet types (the first character of a text packet).
const (
	EIOOpen    = '0'
	EIOClose   = '1'
	EIOPing    = '2'
	EIOPong    = '3'
	EIOMessage = '4'
	EIOUpgrade = '5'
	EIONoop    = '6'
)

// pollingSeparator joins packets in a long-polling payload (v4: no length prefixes).
const pollingSeparator = 0x1e

// OpenPacket is the data of the Engine.IO open packet.
type OpenPacket struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int      `json:"pingInterval"`
	PingTimeout  int      `json:"pingTimeout"`
	MaxPayload   int      `json:"maxPayload"`
}

// ParseOpen decodes an open packet including its leading '0'.
func ParseOpen(p []byte) (OpenPacket, error) {
	var o OpenPacket
	if len(p) < 2 || p[0] != EIOOpen {
		return o, fmt.Errorf("engine.io: expected open packet, got %q", truncate(p, 64))
	}
	if err := json.Unmarshal(p[1:], &o); err != nil {
		return o, fmt.Errorf("engine.io: open packet: %w", err)
	}
	if o.SID == "" {
		return o, errors.New("engine.io: open packet without sid")
	}
	return o, nil
}

// SplitPayload splits a long-polling payload into its packets. The slices
// alias b.
func SplitPayload(b []byte) [][]byte {
	if len(b) == 0 {
		return nil
	}
	return bytes.Split(b, []byte{pollingSeparator})
}

// JoinPayload encodes text packets as one long-polling payload.
func JoinPayload(pkts ...[]byte) []byte {
	return bytes.Join(pkts, []byte{pollingSeparator})
}

// ValidEIOPacket reports whether p is a well-formed Engine.IO text packet
// (a known type character) or a polling binary packet ('b' + base64).
func ValidEIOPacket(p []byte) bool {
	if len(p) == 0 {
		return false
	}
	return (p[0] >= EIOOpen && p[0] <= EIONoop) || p[0] == 'b'
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
