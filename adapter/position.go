package adapter

import "strconv"

// Position is where a recorded packet sits in its recovery source: the
// typed form of the offset string a client holds (the last argument of a
// recoverable event, sent back at reconnection).
//
// Two sources exist. A Redis stream id "<ms>-<seq>" is Ms and Seq with
// Epoch 0. An in-memory adapter's offset "<epoch>.<seq>" (both base 36) is
// Epoch, a random nonzero number drawn when the adapter starts, and Seq.
// Positions compare within one source only.
type Position struct {
	Epoch uint64
	Ms    uint64
	Seq   uint64
}

// ParsePosition reads an offset string; false when it is neither form.
func ParsePosition(s string) (Position, bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '-':
			ms, err1 := strconv.ParseUint(s[:i], 10, 64)
			seq, err2 := strconv.ParseUint(s[i+1:], 10, 64)
			return Position{Ms: ms, Seq: seq}, err1 == nil && err2 == nil
		case '.':
			epoch, err1 := strconv.ParseUint(s[:i], 36, 64)
			seq, err2 := strconv.ParseUint(s[i+1:], 36, 64)
			return Position{Epoch: epoch, Seq: seq}, err1 == nil && err2 == nil && epoch != 0
		}
	}
	return Position{}, false
}

// String is the offset string clients hold.
func (p Position) String() string {
	if p.Epoch != 0 {
		return strconv.FormatUint(p.Epoch, 36) + "." + strconv.FormatUint(p.Seq, 36)
	}
	return strconv.FormatUint(p.Ms, 10) + "-" + strconv.FormatUint(p.Seq, 10)
}

// IsStream reports whether p is a Redis stream id.
func (p Position) IsStream() bool { return p.Epoch == 0 }

// After reports whether p comes after q. Positions of different sources
// cannot be compared and count as after: deliver rather than drop.
func (p Position) After(q Position) bool {
	if p.Epoch != q.Epoch {
		return true
	}
	if p.Ms != q.Ms {
		return p.Ms > q.Ms
	}
	return p.Seq > q.Seq
}
