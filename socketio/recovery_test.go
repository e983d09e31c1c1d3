package socketio

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/parser"
)

// hookAdapter is the in-memory adapter with a hook run once at the start of
// the next CatchUp: the moment a restored socket has joined its rooms but
// not yet been released.
type hookAdapter struct {
	*adapter.Memory
	mu   sync.Mutex
	hook func()
}

func (h *hookAdapter) setHook(f func()) { h.mu.Lock(); h.hook = f; h.mu.Unlock() }

func (h *hookAdapter) CatchUp(rooms []string, offset string) []*parser.Packet {
	h.mu.Lock()
	f := h.hook
	h.hook = nil
	h.mu.Unlock()
	if f != nil {
		f()
	}
	return h.Memory.CatchUp(rooms, offset)
}

// A restore replays, in order and each once: the missed packets, the ones
// recorded between the restore and the join (catch-up), the CONNECT reply,
// then the live packets held meanwhile that were not replayed already.
func TestRecoveryCatchUpAndHold(t *testing.T) {
	var ha *hookAdapter
	srv := newTestServer(t, Options{
		Recovery: RecoveryOptions{MaxDisconnection: time.Minute},
		Adapter: func(nsp adapter.Namespace) adapter.Adapter {
			a := &hookAdapter{Memory: adapter.NewMemory(nsp, adapter.Options{
				RecoveryWindow: time.Minute,
				Recoverable:    func(o *adapter.BroadcastOptions) bool { return !slices.Contains(o.Rooms, "live") },
			})}
			if nsp.Name() == "/" {
				ha = a
			}
			return a
		},
	})
	nsp := srv.io.Of("/")
	ss := collectSockets(nsp)
	inMiddleware, proceed := make(chan struct{}), make(chan struct{})
	nsp.Use(func(_ context.Context, s *Socket) error {
		if s.Recovered() {
			close(inMiddleware)
			<-proceed
		}
		return nil
	})

	c := srv.dial("")
	_, sid, pid := connectRecovering(t, c, "")
	s := ss.get(t, sid)
	s.Join("room")
	r := onDisconnect(s)
	_ = nsp.To("room").Emit("tick", 1)
	offset := lastOffset(t, c.next())
	c.close()
	r.wait(t)
	_ = nsp.To("room").Emit("tick", 2) // missed

	ha.setHook(func() {
		_ = nsp.To("room").Emit("tick", 4)         // recorded: caught up, and held (skipped at release)
		_ = nsp.To("room", "live").Emit("live", 5) // not recorded: held, sent after the reply
	})
	c2 := srv.dial("")
	got := make(chan []string, 1)
	go func() {
		missed, sid2, pid2 := connectRecovering(t, c2, fmt.Sprintf(`{"pid":%q,"offset":%q}`, pid, offset))
		if sid2 != sid || pid2 != pid {
			t.Errorf("not restored: %s %s", sid2, pid2)
		}
		got <- missed
	}()
	<-inMiddleware
	_ = nsp.To("room").Emit("tick", 3) // while the restored socket is not yet in its rooms
	close(proceed)
	missed := <-got
	var names []string
	for _, m := range missed {
		p, err := parser.Decode([]byte(m))
		if err != nil {
			t.Fatalf("%q: %v", m, err)
		}
		name, args := eventArgs(t, p)
		names = append(names, fmt.Sprint(name, ",", args[0]))
	}
	if want := []string{"tick,2", "tick,3", "tick,4"}; !slices.Equal(names, want) {
		t.Fatalf("before the CONNECT reply: %q (%q), want %q", names, missed, want)
	}
	if p := c2.nextText(); p != `2["live",5]` {
		t.Fatalf("after the reply: %s, want the held live packet", p)
	}
	_ = nsp.To("room").Emit("tick", 6)
	if p := c2.next(); !strings.HasPrefix(string(p.Data), `["tick",6,"`) {
		t.Fatalf("live: %s", p.Data)
	}
	c2.none(50 * time.Millisecond)
}

// Conflated broadcasts: a lagging polling client gets only the newest quote
// per key; unkeyed events are never dropped.
func TestConflatedBroadcast(t *testing.T) {
	srv := newTestServer(t, Options{Adapter: adapter.MemoryFactory(adapter.Options{Conflate: func(o *adapter.BroadcastOptions) string {
		if len(o.Rooms) == 1 && strings.HasPrefix(o.Rooms[0], "quotes:") {
			return o.Rooms[0]
		}
		return ""
	}})})
	nsp := srv.io.Of("/")
	ss := collectSockets(nsp)
	pc := newPollingClient(t, srv)
	s := ss.get(t, pc.connect())
	s.Join("quotes:AAPL", "quotes:MSFT", "trades")
	for _, e := range []struct{ room, ev string }{
		{"quotes:AAPL", "a1"}, // first in an empty queue: kept
		{"trades", "t1"},
		{"quotes:AAPL", "a2"},
		{"quotes:MSFT", "m1"},
		{"quotes:AAPL", "a3"},
		{"trades", "t2"},
		{"quotes:MSFT", "m2"},
	} {
		_ = nsp.To(e.room).Emit(e.ev)
	}
	if got := pc.get(); got != "42[\"a1\"]\x1e42[\"t1\"]\x1e42[\"a3\"]\x1e42[\"m2\"]\x1e42[\"t2\"]" {
		t.Fatalf("GET %q", got)
	}
	// Binary packets are never conflated (they span several messages).
	_ = nsp.To("trades").Emit("x")
	_ = nsp.To("quotes:AAPL").Emit("bin", []byte{1})
	_ = nsp.To("quotes:AAPL").Emit("bin", []byte{2})
	if got := pc.get(); got != "42[\"x\"]\x1e451-[\"bin\",{\"_placeholder\":true,\"num\":0}]\x1ebAQ==\x1e451-[\"bin\",{\"_placeholder\":true,\"num\":0}]\x1ebAg==" {
		t.Fatalf("GET %q", got)
	}
}
