package memstore

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/tradewire/tradewire/auth"
)

func TestCreateGetDestroy(t *testing.T) {
	s := New(time.Hour)
	if s.Name() != "memory" {
		t.Fatal(s.Name())
	}
	ctx := context.Background()
	sid := s.Create("u1", "admin", "premium")
	if len(sid) != 32 {
		t.Fatalf("sid %q: want 32 base64url characters like uid-safe(24)", sid)
	}
	if other := s.Create("u1", "admin", "premium"); other == sid {
		t.Fatal("sids repeat")
	}
	sess, err := s.Get(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(sess.Expires); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("Expires in %v", d)
	}
	// The data is shaped like express-session's JSON, with the cookie.
	var data struct {
		Cookie struct {
			OriginalMaxAge int64  `json:"originalMaxAge"`
			Expires        string `json:"expires"`
			Path           string `json:"path"`
		} `json:"cookie"`
		Passport struct{ User string } `json:"passport"`
	}
	if err := json.Unmarshal(sess.Data, &data); err != nil {
		t.Fatal(err)
	}
	if data.Passport.User != "u1" || data.Cookie.OriginalMaxAge != 3600000 || data.Cookie.Path != "/" {
		t.Fatalf("data %s", sess.Data)
	}
	info, err := auth.ParseSession(sess.Data)
	if err != nil || info.UserID != "u1" || !info.CookieExpires.Equal(sess.Expires.Truncate(time.Millisecond)) {
		t.Fatalf("ParseSession: %+v %v (expires %v)", info, err, sess.Expires)
	}
	u, err := s.User(ctx, "u1")
	if err != nil || u.Role != "admin" || u.Tier != "premium" {
		t.Fatalf("user %+v %v", u, err)
	}
	s.Destroy(sid)
	s.Destroy("unknown")
	if _, err := s.Get(ctx, sid); !errors.Is(err, auth.ErrNoSession) {
		t.Fatalf("after Destroy: %v", err)
	}
	s.DeleteUser("u1")
	if _, err := s.User(ctx, "u1"); !errors.Is(err, auth.ErrNoUser) {
		t.Fatalf("after DeleteUser: %v", err)
	}
}

func TestPutCopiesAndExpiredSweep(t *testing.T) {
	s := New(0)
	clock := time.Now()
	s.now = func() time.Time { return clock }
	data := []byte(`{"passport":{"user":"u"}}`)
	s.Put(auth.Session{ID: "old", Expires: clock.Add(-time.Second), Data: data})
	s.Put(auth.Session{ID: "forever", Data: data})
	data[0] = 'X' // the store kept its own copy
	got, err := s.Get(context.Background(), "old")
	if err != nil || got.Data[0] != '{' {
		t.Fatalf("expired session not returned as is: %v %s", err, got.Data)
	}
	got.Data = nil // callers get copies too
	if g, _ := s.Get(context.Background(), "old"); g.Data == nil {
		t.Fatal("Get returned the stored pointer")
	}
	clock = clock.Add(2 * time.Minute)
	s.Create("u", "", "") // sweeps
	if s.Len() != 2 {
		t.Fatalf("Len %d after sweep, want 2 (forever + new)", s.Len())
	}
	if _, err := s.Get(context.Background(), "forever"); err != nil {
		t.Fatal("session without expiry swept")
	}
}

func TestCancelledContext(t *testing.T) {
	s := New(0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Get(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if _, err := s.GetMany(ctx, []string{"x"}); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if _, err := s.User(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
