package adapter

import "testing"

func TestPositionParseAndString(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Position
		ok   bool
	}{
		{"1700000000000-0", Position{Ms: 1700000000000}, true},
		{"5-12", Position{Ms: 5, Seq: 12}, true},
		{"zz.1a", Position{Epoch: 35*36 + 35, Seq: 46}, true},
		{"0.5", Position{}, false}, // a memory epoch is never 0
		{"", Position{}, false},
		{"12", Position{}, false},
		{"a-1", Position{}, false},
		{"1-", Position{}, false},
		{"x.!", Position{}, false},
		{"18446744073709551616-0", Position{}, false}, // beyond uint64
	} {
		got, ok := ParsePosition(c.in)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("ParsePosition(%q) = %+v, %v; want %+v, %v", c.in, got, ok, c.want, c.ok)
		}
		if ok && got.String() != c.in {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), c.in)
		}
	}
}

func TestPositionAfter(t *testing.T) {
	p := func(s string) Position {
		t.Helper()
		x, ok := ParsePosition(s)
		if !ok {
			t.Fatalf("parse %q", s)
		}
		return x
	}
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"2-0", "1-9", true},
		{"1-9", "2-0", false},
		{"1-10", "1-9", true}, // numeric, not lexical
		{"1-9", "1-9", false},
		{"k.b", "k.a", true},
		{"k.a", "k.b", false},
		{"k.a", "j.z", true}, // other adapter lifetime: incomparable, deliver
		{"k.a", "5-5", true}, // memory vs stream: incomparable
		{"5-5", "k.a", true},
	} {
		if got := p(c.a).After(p(c.b)); got != c.want {
			t.Errorf("%s after %s = %v, want %v", c.a, c.b, got, c.want)
		}
	}
	if !(Position{Ms: 3}).IsStream() || (Position{Epoch: 1}).IsStream() {
		t.Error("IsStream")
	}
}
