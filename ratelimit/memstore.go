package ratelimit

import (
	"hash/maphash"
	"sync"
)

const (
	memShards = 64 // power of two
	// sweepGap is the minimum time between two full sweeps of one shard
	// triggered by inserts into a full shard (nanoseconds).
	sweepGap = int64(1e9)
	// evictSample is how many entries are compared when a full shard must
	// drop a live entry.
	evictSample = 8
)

// memStore is a bounded map from key to an expiry instant (nanoseconds on the
// Limiter's monotonic clock). A value <= now means "nothing stored": a GCRA
// bucket whose theoretical arrival time has passed is full again, and a
// cached denial whose retry time has passed no longer applies. Such entries
// are removed by sweeps without changing any decision. When a shard is full
// of live entries, the one closest to expiry among a small sample is evicted
// (an approximate LRU: it resets that key's bucket early, which errs towards
// allowing).
type memStore struct {
	seed     maphash.Seed
	perShard int
	shards   [memShards]memShard
}

type memShard struct {
	mu        sync.Mutex
	m         map[string]int64
	lastSweep int64
	_         [32]byte // keep hot shard locks on separate cache lines
}

func newMemStore(maxKeys int) *memStore {
	s := &memStore{seed: maphash.MakeSeed(), perShard: max(1, (maxKeys+memShards-1)/memShards)}
	for i := range s.shards {
		s.shards[i].m = make(map[string]int64)
		s.shards[i].lastSweep = -sweepGap
	}
	return s
}

func (s *memStore) shard(key string) *memShard {
	return &s.shards[maphash.String(s.seed, key)&(memShards-1)]
}

// gcra charges one request against the bucket for key: interval is the
// emission interval and burst the bucket size. It returns whether the request
// is allowed, how many more would be allowed now, and otherwise how long to
// wait (all durations in nanoseconds).
func (s *memStore) gcra(key string, now, interval, burst int64) (allowed bool, remaining int, wait int64) {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	tat, ok := sh.m[key]
	tat = max(tat, now)
	newTAT := tat + interval
	window := interval * burst
	if over := newTAT - now - window; over > 0 {
		return false, 0, over
	}
	if !ok {
		sh.makeRoom(now, s.perShard)
	}
	sh.m[key] = newTAT
	return true, int((window - (newTAT - now)) / interval), 0
}

// wait returns how long key stays blocked after now, or 0.
func (s *memStore) wait(key string, now int64) int64 {
	sh := s.shard(key)
	sh.mu.Lock()
	until := sh.m[key]
	sh.mu.Unlock()
	return max(0, until-now)
}

// block records that key is blocked until the given instant.
func (s *memStore) block(key string, until, now int64) {
	sh := s.shard(key)
	sh.mu.Lock()
	if _, ok := sh.m[key]; !ok {
		sh.makeRoom(now, s.perShard)
	}
	sh.m[key] = until
	sh.mu.Unlock()
}

// makeRoom ensures the shard can take one more key. Caller holds sh.mu.
func (sh *memShard) makeRoom(now int64, limit int) {
	if len(sh.m) < limit {
		return
	}
	if now-sh.lastSweep >= sweepGap {
		sh.sweep(now)
		if len(sh.m) < limit {
			return
		}
	}
	for len(sh.m) >= limit {
		victim, oldest, n := "", int64(0), 0
		for k, v := range sh.m { // map iteration starts at a random entry
			if n == 0 || v < oldest {
				victim, oldest = k, v
			}
			if n++; n == evictSample {
				break
			}
		}
		delete(sh.m, victim)
	}
}

// sweep removes expired entries. Caller holds sh.mu.
func (sh *memShard) sweep(now int64) int {
	sh.lastSweep = now
	n := 0
	for k, v := range sh.m {
		if v <= now {
			delete(sh.m, k)
			n++
		}
	}
	return n
}

// sweep removes expired entries from every shard and returns how many.
func (s *memStore) sweep(now int64) int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.sweep(now)
		sh.mu.Unlock()
	}
	return n
}

// len returns the number of stored keys.
func (s *memStore) len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
