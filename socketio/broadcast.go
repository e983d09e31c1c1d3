package socketio

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tradewire/tradewire/adapter"
)

// BroadcastOperator selects sockets and acts on them. Each method returns a
// new operator; an operator can be reused.
type BroadcastOperator struct {
	nsp     *Namespace
	rooms   []string
	except  []string
	flags   adapter.Flags
	timeout time.Duration
}

func (b *BroadcastOperator) clone() *BroadcastOperator {
	c := *b
	c.rooms = slices.Clone(b.rooms)
	c.except = slices.Clone(b.except)
	return &c
}

// To adds target rooms.
func (b *BroadcastOperator) To(rooms ...string) *BroadcastOperator {
	c := b.clone()
	for _, r := range rooms {
		if !slices.Contains(c.rooms, r) {
			c.rooms = append(c.rooms, r)
		}
	}
	return c
}

// In is an alias of To.
func (b *BroadcastOperator) In(rooms ...string) *BroadcastOperator { return b.To(rooms...) }

// Except excludes sockets in rooms.
func (b *BroadcastOperator) Except(rooms ...string) *BroadcastOperator {
	c := b.clone()
	c.except = append(c.except, rooms...)
	return c
}

// Local restricts the operation to this node.
func (b *BroadcastOperator) Local() *BroadcastOperator {
	c := b.clone()
	c.flags.Local = true
	return c
}

// Volatile lets packets be dropped for sockets that are not ready.
func (b *BroadcastOperator) Volatile() *BroadcastOperator {
	c := b.clone()
	c.flags.Volatile = true
	return c
}

// Strict delivers nothing (locally either) when the cluster publish fails,
// so a caller that retries on error never causes a duplicate.
func (b *BroadcastOperator) Strict() *BroadcastOperator {
	c := b.clone()
	c.flags.Strict = true
	return c
}

// Once gives the broadcast an event id: an adapter that can mark ids
// atomically with its publish (see adapter.Flags.Once) refuses a second
// broadcast with the same id with adapter.ErrDuplicate.
func (b *BroadcastOperator) Once(id string) *BroadcastOperator {
	c := b.clone()
	c.flags.Once = id
	return c
}

// Timeout sets the ack timeout for EmitWithAck.
func (b *BroadcastOperator) Timeout(d time.Duration) *BroadcastOperator {
	c := b.clone()
	c.timeout = d
	return c
}

func (b *BroadcastOperator) opts() *adapter.BroadcastOptions {
	return &adapter.BroadcastOptions{Rooms: b.rooms, Except: b.except, Flags: b.flags}
}

// Emit broadcasts an event to the selected sockets.
func (b *BroadcastOperator) Emit(event string, args ...any) error {
	pkt, err := buildEvent(b.nsp.name, event, args)
	if err != nil {
		return err
	}
	return b.nsp.adapter.Broadcast(pkt, b.opts())
}

// EmitWithAck broadcasts an event and waits for one ack per recipient, up to
// the operator's timeout (default 5s) or ctx's end. It returns the acks
// received; err is adapter.ErrTimeout when some are missing.
func (b *BroadcastOperator) EmitWithAck(ctx context.Context, event string, args ...any) ([][]any, error) {
	pkt, err := buildEvent(b.nsp.name, event, args)
	if err != nil {
		return nil, err
	}
	timeout := b.timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	opts := b.opts()
	opts.Flags.Timeout = timeout.Milliseconds()
	// As socket.io: complete once every node reported its client count
	// and that many acks arrived (local-only: this node alone).
	nodes := 1
	if !opts.Flags.Local {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		nodes = b.nsp.adapter.ServerCount(cctx)
		cancel()
	}
	var mu sync.Mutex
	reported, expected, got := 0, 0, 0
	var out [][]any
	done := make(chan struct{}, 1)
	check := func() { // mu held
		if reported >= nodes && got >= expected {
			select {
			case done <- struct{}{}:
			default:
			}
		}
	}
	err = b.nsp.adapter.BroadcastWithAck(pkt, opts,
		func(n int) {
			mu.Lock()
			reported++
			expected += n
			check()
			mu.Unlock()
		},
		func(a []any) {
			mu.Lock()
			got++
			out = append(out, a)
			check()
			mu.Unlock()
		})
	if err != nil {
		return nil, err
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-done:
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(out), nil
	case <-timer.C:
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(out), adapter.ErrTimeout
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(out), ctx.Err()
	}
}

// FetchSockets returns the selected sockets across the cluster.
func (b *BroadcastOperator) FetchSockets(ctx context.Context) ([]adapter.SocketInfo, error) {
	return b.nsp.adapter.FetchSockets(ctx, b.opts())
}

// SocketsJoin makes the selected sockets join rooms.
func (b *BroadcastOperator) SocketsJoin(rooms ...string) { b.nsp.adapter.AddSockets(b.opts(), rooms) }

// SocketsLeave makes the selected sockets leave rooms.
func (b *BroadcastOperator) SocketsLeave(rooms ...string) { b.nsp.adapter.DelSockets(b.opts(), rooms) }

// DisconnectSockets disconnects the selected sockets.
func (b *BroadcastOperator) DisconnectSockets(close bool) {
	b.nsp.adapter.DisconnectSockets(b.opts(), close)
}
