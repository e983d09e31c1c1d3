package auth

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/tradewire/tradewire/internal/testutil/poll"
)

// A lookup storm's entries leave the cache once their TTL is over, without
// anyone asking for them again.
func TestIdentityCacheDropsExpiredEntries(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	c := newIdentityCache(20*time.Millisecond, 100, func() time.Time { return time.Unix(0, now.Load()) })
	for _, sid := range []string{"a", "b", "c"} {
		c.put(c.generation(), &Identity{UserID: "u-" + sid, SessionID: sid})
	}
	if n := c.len(); n != 3 {
		t.Fatalf("len = %d, want 3", n)
	}
	// One entry is refreshed: it must outlive the others.
	now.Add(int64(15 * time.Millisecond))
	c.put(c.generation(), &Identity{UserID: "u-b", SessionID: "b"})
	now.Add(int64(10 * time.Millisecond))
	poll.For(t, 2*time.Second, "the two old entries dropped", func() bool { return c.len() == 1 })
	if _, ok := c.get("b"); !ok {
		t.Fatal("the refreshed entry was dropped")
	}
	now.Add(int64(time.Second))
	poll.For(t, 2*time.Second, "the cache empty", func() bool { return c.len() == 0 })
	c.mu.Lock()
	armed := c.sweep != nil
	c.mu.Unlock()
	if armed {
		t.Fatal("sweep still armed on an empty cache")
	}
	// It works again after emptying.
	c.put(c.generation(), &Identity{UserID: "u-d", SessionID: "d"})
	if _, ok := c.get("d"); !ok {
		t.Fatal("entry missing after the cache emptied")
	}
}
