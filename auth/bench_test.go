package auth_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/auth/memstore"
)

// BenchmarkAuthenticateMemory measures Authenticate against the memory store
// (cookie parse + HMAC verify + lookup + user), with the cache on (every
// call after the first is a hit) and off.
func BenchmarkAuthenticateMemory(b *testing.B) {
	for _, bc := range []struct {
		name string
		ttl  time.Duration
	}{{"cache=on", auth.DefaultCacheTTL}, {"cache=off", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			ms := memstore.New(time.Hour)
			const n = 1000
			creds := make([]auth.Credentials, n)
			for i := range creds {
				creds[i] = cookie(ms.Create(fmt.Sprintf("u%d", i), "trader", "premium"))
			}
			a := newAuth(b, auth.Config{CacheTTL: bc.ttl, Now: time.Now}, ms, ms)
			ctx := context.Background()
			for _, c := range creds { // warm the cache (a no-op with it off)
				if _, err := a.Authenticate(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := a.Authenticate(ctx, creds[i%n]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkRevalidateMemory1000 measures one Revalidate of 1000 session ids.
func BenchmarkRevalidateMemory1000(b *testing.B) {
	ms := memstore.New(time.Hour)
	sids := make([]string, 1000)
	for i := range sids {
		sids[i] = ms.Create(fmt.Sprintf("u%d", i), "", "")
	}
	a := newAuth(b, auth.Config{}, ms, ms)
	b.ReportAllocs()
	for b.Loop() {
		if invalid, err := a.Revalidate(context.Background(), sids); err != nil || len(invalid) != 0 {
			b.Fatal(invalid, err)
		}
	}
}
