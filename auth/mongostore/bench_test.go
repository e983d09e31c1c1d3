package mongostore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/auth/mongostore"
	"github.com/tradewire/tradewire/internal/testutil/mongotest"
)

// BenchmarkAuthenticateFerretDB measures Authenticate against FerretDB
// v1.24.2 (SQLite backend) holding 1000 connect-mongo sessions and users,
// cache on and off. FerretDB scans the collection for every _id lookup, so
// these are not MongoDB numbers: they show what the cache saves.
func BenchmarkAuthenticateFerretDB(b *testing.B) {
	db := open(b, mongotest.Start(b))
	ctx := context.Background()
	const n = 1000
	sessions := make([]any, n)
	users := make([]any, n)
	creds := make([]auth.Credentials, n)
	exp := time.Now().Add(time.Hour)
	for i := range n {
		oid := bson.NewObjectID()
		sid := fmt.Sprintf("bench-session-%04d-xxxxxxxxxxxxxxx", i)
		sessions[i] = connectMongoDoc(sid, exp, `{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"passport":{"user":"`+oid.Hex()+`"}}`)
		users[i] = bson.D{{Key: "_id", Value: oid}, {Key: "role", Value: "trader"}, {Key: "subscriptionTier", Value: "premium"}}
		creds[i] = auth.Credentials{Cookie: auth.SignedCookie("connect.sid", sid, secret)}
	}
	if _, err := db.Collection("sessions").InsertMany(ctx, sessions); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Collection("users").InsertMany(ctx, users); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		ttl  time.Duration
	}{{"cache=on", time.Hour}, {"cache=off", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			a, err := auth.New(auth.Config{Secrets: []string{secret}, CacheTTL: bc.ttl},
				mongostore.NewSessions(db, ""), mongostore.NewUsers(db, mongostore.UsersConfig{}))
			if err != nil {
				b.Fatal(err)
			}
			if bc.ttl > 0 { // warm the cache: measure hits, as in a reconnect storm
				for _, c := range creds {
					if _, err := a.Authenticate(ctx, c); err != nil {
						b.Fatal(err)
					}
				}
			}
			i := 0
			for b.Loop() {
				if _, err := a.Authenticate(ctx, creds[i%n]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	b.Run("revalidate-1000", func(b *testing.B) {
		a, _ := auth.New(auth.Config{Secrets: []string{secret}}, mongostore.NewSessions(db, ""), nil)
		sids := make([]string, n)
		for i := range sids {
			sids[i] = fmt.Sprintf("bench-session-%04d-xxxxxxxxxxxxxxx", i)
		}
		for b.Loop() {
			if invalid, err := a.Revalidate(ctx, sids); err != nil || len(invalid) != 0 {
				b.Fatal(invalid, err)
			}
		}
	})
}
