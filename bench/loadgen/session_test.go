package loadgen

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

// Vectors of wire-formats §4.
func TestSignVectors(t *testing.T) {
	if got := Sign("hello", "tobiiscool"); got != "hello.DGDUkGlIkCzPz+C0B064FNgHdEjox7ch8tOBGslZ5QI" {
		t.Fatal(got)
	}
	sid := "2Wk8G1uV0lB-iNm3pQ4rS5tU6vW7xY8z"
	if got := "s:" + Sign(sid, "keyboard cat"); got != "s:2Wk8G1uV0lB-iNm3pQ4rS5tU6vW7xY8z.Zzdlt1yuLAUDQgmFicmsbM/xaih88Q5Z5ya83/Cs8Xc" {
		t.Fatal(got)
	}
	if got := CookieValue(sid, "keyboard cat"); got != "connect.sid=s%3A2Wk8G1uV0lB-iNm3pQ4rS5tU6vW7xY8z.Zzdlt1yuLAUDQgmFicmsbM%2Fxaih88Q5Z5ya83%2FCs8Xc" {
		t.Fatal(got)
	}
	// real express app, secrets ["new-secret","old-secret"], sid "sid-redis-2"
	if got := CookieValue("sid-redis-2", "new-secret"); got != "connect.sid=s%3Asid-redis-2.f1525kODo0ptBfCeTPc6jjOMlux1XH2jkR%2FKT38w9os" {
		t.Fatal(got)
	}
	if got := CookieValue("sid-redis-2", "old-secret"); got != "connect.sid=s%3Asid-redis-2.hFnbP2ZB0Gl3bC8ejSMP%2BhYZdtfbacnbctkZZ%2Bj4gVM" {
		t.Fatal(got)
	}
}

func TestEncodeURIComponent(t *testing.T) {
	in := "azAZ09-_.!~*'() :/+=?&é"
	want := "azAZ09-_.!~*'()%20%3A%2F%2B%3D%3F%26%C3%A9"
	if got := EncodeURIComponent(in); got != want {
		t.Fatalf("%s != %s", got, want)
	}
}

func TestSessionIDsAndJSON(t *testing.T) {
	a, b := SessionID("run", 1), SessionID("run", 2)
	if len(a) != 32 || a == b || a != SessionID("run", 1) || a == SessionID("other", 1) {
		t.Fatalf("%q %q", a, b)
	}
	for _, c := range a {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			t.Fatalf("not base64url: %q", a)
		}
	}
	// the exact connect-redis layout of §5
	if got := SessionJSON("64b7f0c2a1b2c3d4e5f60718"); got != `{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"passport":{"user":"64b7f0c2a1b2c3d4e5f60718"}}` {
		t.Fatal(got)
	}
	var v struct {
		Passport struct{ User string } `json:"passport"`
	}
	if err := json.Unmarshal([]byte(SessionJSON(`we"ird`)), &v); err != nil || v.Passport.User != `we"ird` {
		t.Fatal(err, v)
	}
	if SessionKey("x") != "sess:x" || UserID(7) != "u7" {
		t.Fatal("key/user")
	}
}

func TestSeedSessionsRealRedis(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	ctx := context.Background()
	n, err := SeedSessions(ctx, rdb, "seedtest", 2500, time.Hour)
	if err != nil || n != 2500 {
		t.Fatal(n, err)
	}
	got, err := rdb.Get(ctx, SessionKey(SessionID("seedtest", 2499))).Result()
	if err != nil || got != SessionJSON("u2499") {
		t.Fatal(got, err)
	}
	ttl, _ := rdb.TTL(ctx, SessionKey(SessionID("seedtest", 0))).Result()
	if ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("ttl %v", ttl)
	}
	if size, _ := rdb.DBSize(ctx).Result(); size != 2500 {
		t.Fatalf("dbsize %d", size)
	}
	rdb.Close()
	if _, err := SeedSessions(ctx, rdb, "x", 1, time.Hour); err == nil {
		t.Fatal("closed client should fail")
	}
}
