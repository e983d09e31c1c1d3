package auth

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// identityCache is a bounded LRU of successful lookups with a short TTL.
// Failures are never stored.
type identityCache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu    sync.Mutex
	ll    *list.List // front = most recently used
	items map[string]*list.Element
	gen   uint64      // bumped by every invalidation, so an older lookup cannot re-insert
	sweep *time.Timer // armed while the cache holds entries: drops expired ones
}

type cacheEntry struct {
	sid     string
	id      Identity
	expires time.Time
}

func newIdentityCache(ttl time.Duration, max int, now func() time.Time) *identityCache {
	return &identityCache{ttl: ttl, max: max, now: now, ll: list.New(), items: make(map[string]*list.Element)}
}

// get returns a copy of the cached identity for sid if present and fresh.
func (c *identityCache) get(sid string) (*Identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[sid]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !c.now().Before(e.expires) {
		c.ll.Remove(el)
		delete(c.items, sid)
		return nil, false
	}
	c.ll.MoveToFront(el)
	id := e.id
	return &id, true
}

// generation returns the current invalidation generation.
func (c *identityCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put stores id unless an invalidation happened since generation gen was
// read. The entry lives for the TTL, or until the session expires if sooner.
func (c *identityCache) put(gen uint64, id *Identity) {
	now := c.now()
	exp := now.Add(c.ttl)
	if e := id.ExpiresAt(); !e.IsZero() && e.Before(exp) {
		exp = e
	}
	if !now.Before(exp) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if el, ok := c.items[id.SessionID]; ok {
		el.Value = &cacheEntry{sid: id.SessionID, id: *id, expires: exp}
		c.ll.MoveToFront(el)
		return
	}
	c.items[id.SessionID] = c.ll.PushFront(&cacheEntry{sid: id.SessionID, id: *id, expires: exp})
	for c.ll.Len() > c.max {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).sid)
	}
	if c.sweep == nil {
		c.sweep = time.AfterFunc(c.ttl, c.dropExpired)
	}
}

// dropExpired removes every expired entry, so that a reconnection storm's
// lookups do not stay in memory once their TTL is over (get only drops the
// entries it is asked for). It re-arms itself while entries remain.
func (c *identityCache) dropExpired() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for el := c.ll.Back(); el != nil; {
		prev := el.Prev()
		if e := el.Value.(*cacheEntry); !now.Before(e.expires) {
			c.ll.Remove(el)
			delete(c.items, e.sid)
		}
		el = prev
	}
	if c.ll.Len() == 0 {
		c.sweep = nil
		c.items = make(map[string]*list.Element) // a map never shrinks
		return
	}
	c.sweep.Reset(c.ttl)
}

// invalidate removes sids and stops lookups already in flight from caching.
func (c *identityCache) invalidate(sids ...string) {
	if len(sids) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, sid := range sids {
		if el, ok := c.items[sid]; ok {
			c.ll.Remove(el)
			delete(c.items, sid)
		}
	}
}

func (c *identityCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// flight coalesces concurrent lookups of the same key: one runs, the others
// wait for its result.
type flight struct {
	mu    sync.Mutex
	calls map[string]*call
}

type call struct {
	done chan struct{}
	id   *Identity
	err  error
}

// do runs fn once per key among concurrent callers. fn runs in its own
// goroutine with a context detached from any caller's cancellation (fn sets
// its own deadline), so one impatient caller cannot fail the others; each
// caller stops waiting when its own ctx ends.
func (f *flight) do(ctx context.Context, key string, fn func(context.Context) (*Identity, error)) (*Identity, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = make(map[string]*call)
	}
	c, ok := f.calls[key]
	if !ok {
		c = &call{done: make(chan struct{})}
		f.calls[key] = c
		go func() {
			defer func() {
				f.mu.Lock()
				delete(f.calls, key)
				f.mu.Unlock()
				close(c.done)
			}()
			c.id, c.err = fn(context.WithoutCancel(ctx))
		}()
	}
	f.mu.Unlock()
	select {
	case <-c.done:
		if c.id != nil {
			cp := *c.id
			return &cp, c.err
		}
		return nil, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
