package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/internal/testutil/mongotest"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

// logoutBound is the promise: a logout (or expiry) disconnects the
// user's open sockets within 5 s (the gateway re-reads sessions every 2 s).
const logoutBound = 5 * time.Second

// signedValue is the cookie's value as express-session signed it,
// "s:<sid>.<sig>", the form a client passes as auth.sessionID.
func signedValue(t *testing.T, cookie string) string {
	t.Helper()
	v, err := url.PathUnescape(strings.TrimPrefix(cookie, auth.DefaultCookieName+"="))
	if err != nil || !strings.HasPrefix(v, "s:") {
		t.Fatalf("cookie %q is not a signed express-session cookie", cookie)
	}
	return v
}

func cookieOf(signed string) string {
	return auth.DefaultCookieName + "=" + url.QueryEscape(signed)
}

// tradeFor is the publish API body of a trade.executed event.
func tradeFor(userID, id, symbol, side string, qty, price float64) map[string]any {
	return map[string]any{
		"type":   "trade.executed",
		"userId": userID,
		"trade":  map[string]any{"id": id, "symbol": symbol, "side": side, "quantity": qty, "price": price},
	}
}

// checkTrade asserts r is exactly the trade:executed event the gateway must
// deliver for the published event pub.
func checkTrade(t *testing.T, r report, pub map[string]any, title, message string, publishedAt time.Time) {
	t.Helper()
	if r.Type != "event" || r.Event != "trade:executed" || len(r.Args) != 1 {
		t.Fatalf("got %v, want one trade:executed", r)
	}
	var got map[string]any
	if err := json.Unmarshal(r.Args[0], &got); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"notification", "timestamp", "trade", "userId"}; !slices.Equal(keys, want) {
		t.Errorf("trade:executed keys %v, want %v", keys, want)
	}
	if got["userId"] != pub["userId"] {
		t.Errorf("userId %v, want %v", got["userId"], pub["userId"])
	}
	wantTrade := map[string]any{}
	b, _ := json.Marshal(pub["trade"])
	_ = json.Unmarshal(b, &wantTrade)
	if !reflect.DeepEqual(got["trade"], wantTrade) {
		t.Errorf("trade %v, want %v", got["trade"], wantTrade)
	}
	wantNote := map[string]any{"title": title, "message": message, "type": "success"}
	if !reflect.DeepEqual(got["notification"], wantNote) {
		t.Errorf("notification %v, want %v", got["notification"], wantNote)
	}
	ts, _ := got["timestamp"].(string)
	at, err := time.Parse("2006-01-02T15:04:05.000Z", ts)
	if err != nil {
		t.Errorf("timestamp %q is not an ISO-8601 UTC time with milliseconds: %v", ts, err)
	} else if at.Before(publishedAt.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("timestamp %s is not the publish time %s", ts, publishedAt.UTC().Format(time.RFC3339Nano))
	}
}

// subscribeTrades subscribes s to its user's trades and checks both the ack
// and the subscribed:trades confirmation.
func subscribeTrades(t *testing.T, s *sock) {
	t.Helper()
	ack, others := s.emit(t, "subscribe:trades")
	var a struct {
		Success bool `json:"success"`
	}
	if err := json.Unmarshal(ack, &a); err != nil || !a.Success {
		t.Fatalf("subscribe:trades ack %s, want {success:true}", ack)
	}
	confirmed := slices.ContainsFunc(others, func(r report) bool { return r.Type == "event" && r.Event == "subscribed:trades" })
	for _, r := range others {
		if !(r.Type == "event" && r.Event == "subscribed:trades") {
			t.Fatalf("unexpected %v while subscribing", r)
		}
	}
	if !confirmed {
		if r := s.next(t, 5*time.Second); r.Type != "event" || r.Event != "subscribed:trades" {
			t.Fatalf("got %v, want subscribed:trades", r)
		}
	}
}

// receivesOnlyItsTrades publishes a trade for the socket's user, one for
// another user, and a second one for the user, and requires exactly the two
// own trades, in order, with nothing in between.
func receivesOnlyItsTrades(t *testing.T, g *gatewayProc, s *sock, userID, otherUserID, tag string) {
	t.Helper()
	first := tradeFor(userID, tag+"-1", "AAPL", "buy", 10, 187.12)
	foreign := tradeFor(otherUserID, tag+"-x", "MSFT", "sell", 3, 415.5)
	second := tradeFor(userID, tag+"-2", "nvda", "sell", 0.5, 121.7)
	start := time.Now()
	g.publish(t, first)
	g.publish(t, foreign)
	g.publish(t, second)
	var offsets []string
	for _, c := range []struct {
		pub            map[string]any
		title, message string
	}{
		{first, "Trade Executed: AAPL", "BUY 10 AAPL @ $187.12"},
		{second, "Trade Executed: NVDA", "SELL 0.5 NVDA @ $121.7"},
	} {
		r := s.next(t, 5*time.Second)
		checkTrade(t, r, c.pub, c.title, c.message, start)
		offsets = append(offsets, r.Offset)
	}
	// trades:<user> is a recoverable room: each event carries its own
	// connection state recovery offset.
	if offsets[0] == "" || offsets[1] == "" || offsets[0] == offsets[1] {
		t.Errorf("recovery offsets %q, want two distinct ones", offsets)
	}
}

// waitEnded waits for the gateway to end s's session: an error event with
// code SESSION_EXPIRED, then a server-side disconnect. It returns when the
// disconnect was read.
func waitEnded(t *testing.T, s *sock, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	sawError := false
	for {
		r := s.next(t, time.Until(deadline)+time.Second)
		switch {
		case r.Type == "event" && r.Event == "error":
			var e struct {
				Code string `json:"code"`
			}
			if len(r.Args) != 1 || json.Unmarshal(r.Args[0], &e) != nil || e.Code != auth.CodeSessionExpired {
				t.Fatalf("socket %s: %v, want error {code: SESSION_EXPIRED}", s.id, r)
			}
			sawError = true
		case r.Type == "disconnect":
			// "io server disconnect" is how socket.io-client learns that the
			// server ended the socket on purpose (it then does not
			// reconnect); "transport close" makes it reconnect.
			if r.Reason != "io server disconnect" {
				t.Errorf("socket %s: disconnect %q (error event received: %v), want \"io server disconnect\"", s.id, r.Reason, sawError)
			} else if !sawError {
				t.Errorf("socket %s: disconnected without the error event telling why", s.id)
			}
			return r.at
		default:
			t.Fatalf("socket %s: unexpected %v while waiting for the session to end", s.id, r)
		}
	}
}

// nodeAcceptsOn reports whether the Express app sees a logged-in user for
// cookie (GET /me), which also touches the session.
func nodeAcceptsOn(t *testing.T, app *nodeApp, cookie string) bool {
	t.Helper()
	return app.do(t, "GET", "/me", cookie, nil).StatusCode == 200
}

// waitReady polls /readyz until it reports ready (200) or not (503).
func waitReady(t *testing.T, g *gatewayProc, ready bool, timeout time.Duration) {
	t.Helper()
	want := http.StatusServiceUnavailable
	if ready {
		want = http.StatusOK
	}
	deadline := time.Now().Add(timeout)
	for {
		code, body := g.get(t, "/readyz")
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: HTTP %d %s, want %d", code, body, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func insertUser(t *testing.T, db *mongo.Database, id any, role, tier string) {
	t.Helper()
	if _, err := db.Collection("users").InsertOne(context.Background(),
		bson.D{{Key: "_id", Value: id}, {Key: "role", Value: role}, {Key: "subscriptionTier", Value: tier}}); err != nil {
		t.Fatal(err)
	}
}

func setSessionExpires(t *testing.T, db *mongo.Database, sid string, at time.Time) {
	t.Helper()
	res, err := db.Collection("sessions").UpdateOne(context.Background(),
		bson.D{{Key: "_id", Value: sid}}, bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: at}}}})
	if err != nil || res.MatchedCount != 1 {
		t.Fatalf("set expires of the session: matched %v, %v", res, err)
	}
}

// TestGatewayWithExpressMongoSessions is the end-to-end test: the
// real Express stack (express-session, connect-mongo, passport-local) logs
// users in over HTTP and stores sessions in FerretDB; the tradewire binary
// reads the same database; the real socket.io-client connects with the
// cookie (or auth.sessionID) and receives the trades published through the
// HTTP API. Then every way in is refused with its code, a logout disconnects
// within 5 s, and a store outage refuses new connections while open ones
// keep receiving.
func TestGatewayWithExpressMongoSessions(t *testing.T) {
	start := time.Now()
	srv := mongotest.StartServer(t) // dedicated: the outage subtest stops it
	uri := strings.TrimSuffix(srv.URI, "/") + "/tradewire_interop"
	db := mongoDB(t, uri)

	alice := bson.NewObjectID() // users._id as an ObjectID, passport.user its hex string
	const bob = "u-bob"         // users._id as a string
	insertUser(t, db, alice, "trader", "premium")
	insertUser(t, db, bob, "user", "free")
	app := startNodeApp(t, map[string]string{"STORE": "mongo", "MONGO_URL": uri}, []user{
		{"alice", "pw-a", alice.Hex()},
		{"bob", "pw-b", bob},
		{"dave", "pw-d", "u-dave-no-document"},
	})
	gw := startGateway(t, map[string]string{"TRADEWIRE_SESSION_STORE": "mongo", "TRADEWIRE_MONGO_URL": uri})
	cl := startClients(t)
	t.Logf("FerretDB, Express app, tradewire and socket.io-client up in %v", time.Since(start).Round(time.Millisecond))

	var secretsSeen []string // every sid and signed value, to check the log never shows them
	login := func(t *testing.T, username, password string, extra map[string]any) string {
		t.Helper()
		body := map[string]any{"username": username, "password": password}
		for k, v := range extra {
			body[k] = v
		}
		resp := app.do(t, "POST", "/login", "", body)
		if resp.StatusCode != 200 {
			t.Fatalf("login %s: HTTP %d", username, resp.StatusCode)
		}
		c := ""
		for _, ck := range resp.Cookies() {
			if ck.Name == auth.DefaultCookieName {
				c = ck.Name + "=" + ck.Value
			}
		}
		if c == "" {
			t.Fatalf("login %s set no cookie: %v", username, resp.Header.Values("Set-Cookie"))
		}
		secretsSeen = append(secretsSeen, sidOf(t, c), signedValue(t, c))
		return c
	}
	nodeAccepts := func(t *testing.T, cookie string) bool {
		t.Helper()
		return nodeAcceptsOn(t, app, cookie)
	}

	aliceCookie := login(t, "alice", "pw-a", nil)

	t.Run("cookie from the Express login, polling then websocket: receives exactly its trades", func(t *testing.T) {
		s := cl.open(t, "alice-cookie", gw.base, connectOpts{Cookie: aliceCookie})
		if r := s.connected(t); r.First != "polling" {
			t.Errorf("opened over %q, want polling first", r.First)
		}
		subscribeTrades(t, s)
		receivesOnlyItsTrades(t, gw, s, alice.Hex(), bob, "t-cookie")
		s.waitUpgrade(t, 5*time.Second)
		// After the upgrade the same socket still gets its trades.
		pub := tradeFor(alice.Hex(), "t-cookie-ws", "AAPL", "sell", 1, 187.5)
		at := time.Now()
		gw.publish(t, pub)
		r := s.next(t, 5*time.Second)
		checkTrade(t, r, pub, "Trade Executed: AAPL", "SELL 1 AAPL @ $187.5", at)
		if r.Transport != "websocket" {
			t.Errorf("trade after the upgrade came over %q", r.Transport)
		}
		s.close(t)
	})

	t.Run("auth.sessionID over websocket only, with the matching userId", func(t *testing.T) {
		bobCookie := login(t, "bob", "pw-b", nil)
		s := cl.open(t, "bob-auth", gw.base, connectOpts{
			Auth:       map[string]any{"sessionID": signedValue(t, bobCookie), "userId": bob},
			Transports: []string{"websocket"},
		})
		if r := s.connected(t); r.Transport != "websocket" {
			t.Errorf("transport %q, want websocket", r.Transport)
		}
		subscribeTrades(t, s)
		receivesOnlyItsTrades(t, gw, s, bob, alice.Hex(), "t-auth")
		s.close(t)
		// The value as document.cookie shows it (URL-encoded) is accepted too.
		enc := cl.open(t, "bob-auth-encoded", gw.base, connectOpts{Auth: map[string]any{"sessionID": strings.TrimPrefix(bobCookie, auth.DefaultCookieName+"=")}})
		enc.connected(t)
		enc.close(t)
	})

	t.Run("forged credentials: UNAUTHORIZED", func(t *testing.T) {
		signed := signedValue(t, login(t, "alice", "pw-a", nil))
		bobSigned := signedValue(t, login(t, "bob", "pw-b", nil))
		dot := strings.LastIndexByte(signed, '.')
		sid, sig := signed[2:dot], signed[dot+1:]
		flip := func(c byte) byte { // another base64 character differing only in the lowest bit
			if c == 'A' {
				return 'B'
			}
			return c ^ 1
		}
		lastFlipped := sig[:len(sig)-1] + string(flip(sig[len(sig)-1])) // the HMAC's padding bits: same bytes once decoded
		firstFlipped := string(flip(sig[0])) + sig[1:]
		bobDot := strings.LastIndexByte(bobSigned, '.')
		cases := []struct {
			name string
			opts connectOpts
		}{
			{"cookie, signature's last character changed", connectOpts{Cookie: cookieOf("s:" + sid + "." + lastFlipped)}},
			{"cookie, signature's first character changed", connectOpts{Cookie: cookieOf("s:" + sid + "." + firstFlipped)}},
			{"cookie, another session's signature", connectOpts{Cookie: cookieOf("s:" + sid + bobSigned[bobDot:])}},
			{"cookie signed with a secret the gateway does not have", connectOpts{Cookie: auth.SignedCookie(auth.DefaultCookieName, sid, "attacker-secret")}},
			{"auth.sessionID, signature changed", connectOpts{Auth: map[string]any{"sessionID": "s:" + sid + "." + firstFlipped}}},
			{"auth.sessionID, unsigned sid", connectOpts{Auth: map[string]any{"sessionID": sid}}},
			{"a forged connect.sid before the genuine one (the first one counts)", connectOpts{Cookie: cookieOf("s:"+sid+"."+firstFlipped) + "; " + cookieOf(signed)}},
			{"no credentials", connectOpts{}},
		}
		for i, c := range cases {
			s := cl.open(t, fmt.Sprintf("forged-%d", i), gw.base, c.opts)
			if code, msg := s.refused(t, 10*time.Second); code != auth.CodeUnauthorized {
				t.Errorf("%s: code %q (%q), want UNAUTHORIZED", c.name, code, msg)
			}
			if c.opts.Cookie != "" && nodeAccepts(t, c.opts.Cookie) {
				t.Errorf("%s: Express accepts the cookie the gateway refused", c.name)
			}
		}
		// The genuine cookie still works for both.
		if !nodeAccepts(t, cookieOf(signed)) {
			t.Fatal("Express refuses the genuine cookie")
		}
		s := cl.open(t, "forged-genuine", gw.base, connectOpts{Cookie: cookieOf(signed)})
		s.connected(t)
		s.close(t)
	})

	t.Run("another user's sessionID with a mismatched userId: USER_MISMATCH", func(t *testing.T) {
		bobSigned := signedValue(t, login(t, "bob", "pw-b", nil))
		s := cl.open(t, "mismatch-1", gw.base, connectOpts{Auth: map[string]any{"sessionID": bobSigned, "userId": alice.Hex()}})
		if code, msg := s.refused(t, 10*time.Second); code != auth.CodeUserMismatch {
			t.Errorf("bob's sessionID as alice: code %q (%q), want USER_MISMATCH", code, msg)
		}
		s = cl.open(t, "mismatch-2", gw.base, connectOpts{Cookie: aliceCookie, Auth: map[string]any{"userId": bob}})
		if code, msg := s.refused(t, 10*time.Second); code != auth.CodeUserMismatch {
			t.Errorf("alice's cookie as bob: code %q (%q), want USER_MISMATCH", code, msg)
		}
		// ObjectID hex ids compare case-insensitively.
		s = cl.open(t, "mismatch-case", gw.base, connectOpts{Cookie: aliceCookie, Auth: map[string]any{"userId": strings.ToUpper(alice.Hex())}})
		s.connected(t)
		s.close(t)
	})

	t.Run("logged-in user without a users document: FORBIDDEN", func(t *testing.T) {
		s := cl.open(t, "dave", gw.base, connectOpts{Cookie: login(t, "dave", "pw-d", nil)})
		if code, msg := s.refused(t, 10*time.Second); code != auth.CodeForbidden {
			t.Errorf("code %q (%q), want FORBIDDEN", code, msg)
		}
	})

	t.Run("expired sessions: SESSION_EXPIRED, and open sockets are disconnected", func(t *testing.T) {
		// A session whose cookie maxAge is 3 s, connected while still valid.
		const maxAge = 3 * time.Second
		short := login(t, "alice", "pw-a", map[string]any{"maxAgeMs": maxAge.Milliseconds()})
		var doc struct {
			Expires time.Time `bson:"expires"`
		}
		if err := db.Collection("sessions").FindOne(context.Background(), bson.D{{Key: "_id", Value: sidOf(t, short)}}).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		if d := time.Until(doc.Expires); d <= 0 || d > maxAge {
			t.Fatalf("connect-mongo expires in %v, want within the %v maxAge", d, maxAge)
		}
		sShort := cl.open(t, "exp-short", gw.base, connectOpts{Cookie: short})
		sShort.connected(t)

		// A 14-day session, connected, whose store expiry is then moved
		// into the past (what connect-mongo's autoRemove would delete).
		moved := login(t, "bob", "pw-b", nil)
		sMoved := cl.open(t, "exp-moved", gw.base, connectOpts{Cookie: moved})
		sMoved.connected(t)
		movedAt := time.Now()
		setSessionExpires(t, db, sidOf(t, moved), movedAt.Add(-time.Minute))

		// A session never used with the gateway, expired in the store.
		stale := login(t, "alice", "pw-a", nil)
		setSessionExpires(t, db, sidOf(t, stale), time.Now().Add(-time.Second))
		if nodeAccepts(t, stale) {
			t.Error("Express (connect-mongo) still accepts the session expired in the store")
		}
		s := cl.open(t, "exp-stale", gw.base, connectOpts{Cookie: stale})
		if code, msg := s.refused(t, 10*time.Second); code != auth.CodeSessionExpired {
			t.Errorf("session expired in the store: code %q (%q), want SESSION_EXPIRED", code, msg)
		}

		gone := waitEnded(t, sMoved, logoutBound+time.Second)
		t.Logf("store expiry moved to the past → socket disconnected after %v", gone.Sub(movedAt).Round(time.Millisecond))
		if d := gone.Sub(movedAt); d > logoutBound {
			t.Errorf("expired session's socket disconnected after %v, want ≤ %v", d, logoutBound)
		}
		gone = waitEnded(t, sShort, time.Until(doc.Expires)+logoutBound+time.Second)
		t.Logf("maxAge passed → socket disconnected %v after the session's expiry", gone.Sub(doc.Expires).Round(time.Millisecond))
		if d := gone.Sub(doc.Expires); d > logoutBound {
			t.Errorf("short session's socket disconnected %v after expiry, want ≤ %v", d, logoutBound)
		}
		if nodeAccepts(t, short) {
			t.Error("Express still accepts the session whose maxAge passed")
		}
		for i, c := range []string{short, moved} {
			s := cl.open(t, fmt.Sprintf("exp-again-%d", i), gw.base, connectOpts{Cookie: c})
			if code, msg := s.refused(t, 10*time.Second); code != auth.CodeSessionExpired {
				t.Errorf("reconnect with expired session %d: code %q (%q), want SESSION_EXPIRED", i, code, msg)
			}
		}
	})

	t.Run("logout through Express disconnects that session's sockets within 5 s, not the user's others", func(t *testing.T) {
		var latencies []time.Duration
		for round := range 3 {
			ended := login(t, "alice", "pw-a", nil)
			kept := login(t, "alice", "pw-a", nil)
			s1 := cl.open(t, fmt.Sprintf("logout-%d-cookie", round), gw.base, connectOpts{Cookie: ended})
			s2 := cl.open(t, fmt.Sprintf("logout-%d-auth", round), gw.base, connectOpts{
				Auth: map[string]any{"sessionID": signedValue(t, ended)}, Transports: []string{"websocket"}})
			// Long-polling only (no websocket through some proxies): the error
			// event and the DISCONNECT must reach the client before the
			// Engine.IO close, or socket.io-client reports "transport close".
			s3 := cl.open(t, fmt.Sprintf("logout-%d-polling", round), gw.base, connectOpts{Cookie: ended, Transports: []string{"polling"}})
			other := cl.open(t, fmt.Sprintf("logout-%d-other", round), gw.base, connectOpts{Cookie: kept})
			for _, s := range []*sock{s1, s2, s3, other} {
				s.connected(t)
				subscribeTrades(t, s)
			}
			// Land the logout at a random point of the 2 s revalidation cycle.
			time.Sleep(time.Duration(round) * 700 * time.Millisecond)
			before := time.Now()
			if resp := app.do(t, "POST", "/logout", ended, nil); resp.StatusCode != 200 {
				t.Fatalf("logout: HTTP %d", resp.StatusCode)
			}
			if nodeAccepts(t, ended) {
				t.Fatal("Express still accepts the logged-out cookie")
			}
			for _, s := range []*sock{s1, s2, s3} {
				d := waitEnded(t, s, logoutBound+time.Second).Sub(before)
				latencies = append(latencies, d)
				if d > logoutBound {
					t.Errorf("socket %s disconnected %v after logout, want ≤ %v", s.id, d, logoutBound)
				}
			}
			// The same user's other session is untouched and still served.
			pub := tradeFor(alice.Hex(), fmt.Sprintf("after-logout-%d", round), "TSLA", "buy", 2, 248.9)
			at := time.Now()
			gw.publish(t, pub)
			checkTrade(t, other.next(t, 5*time.Second), pub, "Trade Executed: TSLA", "BUY 2 TSLA @ $248.9", at)
			other.close(t)
			// The logged-out cookie is refused from now on.
			again := cl.open(t, fmt.Sprintf("logout-%d-again", round), gw.base, connectOpts{Cookie: ended})
			if code, msg := again.refused(t, 10*time.Second); code != auth.CodeSessionNotFound {
				t.Errorf("logged-out cookie: code %q (%q), want SESSION_NOT_FOUND", code, msg)
			}
		}
		slices.Sort(latencies)
		t.Logf("logout → disconnect (Go clock, logout request sent → disconnect read), %d sockets: min %v, median %v, max %v",
			len(latencies), latencies[0].Round(time.Millisecond), latencies[len(latencies)/2].Round(time.Millisecond),
			latencies[len(latencies)-1].Round(time.Millisecond))
	})

	t.Run("a session Express keeps alive (rolling, maxAge 3 s) keeps its socket connected", func(t *testing.T) {
		// The same store seen through an app with rolling sessions: every
		// response re-sends the cookie with a new Expires, and
		// express-session's touch moves connect-mongo's "expires" forward.
		const maxAge = 3 * time.Second
		rolling := startNodeApp(t, map[string]string{"STORE": "mongo", "MONGO_URL": uri, "ROLLING": "true",
			"MAX_AGE_MS": fmt.Sprint(maxAge.Milliseconds())}, []user{{"alice", "pw-a", alice.Hex()}})
		resp := rolling.do(t, "POST", "/login", "", map[string]string{"username": "alice", "password": "pw-a"})
		var cookie string
		for _, c := range resp.Cookies() {
			if c.Name == auth.DefaultCookieName {
				cookie = c.Name + "=" + c.Value
			}
		}
		if resp.StatusCode != 200 || cookie == "" {
			t.Fatalf("login: HTTP %d, cookie %q", resp.StatusCode, cookie)
		}
		loginAt := time.Now()
		secretsSeen = append(secretsSeen, sidOf(t, cookie), signedValue(t, cookie))
		s := cl.open(t, "rolling", gw.base, connectOpts{Cookie: cookie})
		s.connected(t)
		subscribeTrades(t, s)
		// The user keeps using the site for more than twice the maxAge.
		var ended *report
		for ended == nil && time.Since(loginAt) < 2*maxAge+time.Second {
			select {
			case r := <-s.q:
				if r.Type != "upgrade" {
					ended = &r
				}
			case <-time.After(600 * time.Millisecond):
			}
			if !nodeAcceptsOn(t, rolling, cookie) {
				t.Fatalf("Express dropped the rolling session %v after login", time.Since(loginAt))
			}
		}
		if ended != nil {
			// The gateway itself still accepts the session it just ended.
			again := cl.open(t, "rolling-again", gw.base, connectOpts{Cookie: cookie})
			r := again.next(t, 10*time.Second)
			t.Fatalf("socket got %v %v after login (maxAge %v) while Express kept the session alive; "+
				"a new connection with the same cookie then gets: %v", *ended, ended.at.Sub(loginAt).Round(time.Millisecond), maxAge, r)
		}
		var doc struct {
			Expires time.Time `bson:"expires"`
		}
		if err := db.Collection("sessions").FindOne(context.Background(), bson.D{{Key: "_id", Value: sidOf(t, cookie)}}).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		if !doc.Expires.After(loginAt.Add(2 * maxAge)) {
			t.Fatalf("connect-mongo expires %v was not moved forward by the touches", doc.Expires)
		}
		pub := tradeFor(alice.Hex(), "rolling", "GOOGL", "buy", 4, 171.3)
		at := time.Now()
		gw.publish(t, pub)
		checkTrade(t, s.next(t, 5*time.Second), pub, "Trade Executed: GOOGL", "BUY 4 GOOGL @ $171.3", at)
		s.close(t)
	})

	t.Run("store outage: new connections STORE_UNAVAILABLE, open ones keep receiving", func(t *testing.T) {
		survivor := cl.open(t, "outage-survivor", gw.base, connectOpts{Cookie: login(t, "bob", "pw-b", nil)})
		survivor.connected(t)
		subscribeTrades(t, survivor)
		fresh := login(t, "alice", "pw-a", nil) // valid, never looked up by the gateway (not cached)

		stopped := time.Now()
		srv.Stop()
		tried := time.Now()
		s := cl.open(t, "outage-new", gw.base, connectOpts{Cookie: fresh})
		code, msg := s.refused(t, 15*time.Second)
		t.Logf("refused %v after the connection attempt (%q)", time.Since(tried).Round(time.Millisecond), msg)
		if code != auth.CodeStoreUnavailable {
			t.Errorf("code %q (%q), want STORE_UNAVAILABLE", code, msg)
		}
		for _, c := range []string{"mongo", "127.0.0.1", "tradewire_interop", "sessions"} {
			if strings.Contains(msg, c) {
				t.Errorf("connect_error message %q reveals infrastructure (%q)", msg, c)
			}
		}

		// Let at least two failed revalidation rounds pass: the open socket
		// must not be taken for logged out.
		time.Sleep(time.Until(stopped.Add(2*2*time.Second + 500*time.Millisecond)))
		pub := tradeFor(bob, "during-outage", "AMZN", "buy", 1, 182.4)
		at := time.Now()
		gw.publish(t, pub)
		checkTrade(t, survivor.next(t, 5*time.Second), pub, "Trade Executed: AMZN", "BUY 1 AMZN @ $182.4", at)

		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body := gw.get(t, "/readyz")
			if code == http.StatusServiceUnavailable && strings.Contains(body, "mongo") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz during the outage: HTTP %d %s, want 503 naming mongo", code, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
		survivor.quiet(t, 300*time.Millisecond)
	})

	// Never log session ids (CONTRIBUTING): none of the sids or signed values
	// used above may appear in the gateway's log.
	logs := gw.logs.String()
	for _, s := range secretsSeen {
		if strings.Contains(logs, s) || strings.Contains(logs, url.QueryEscape(s)) {
			t.Errorf("the gateway log contains a session id or signed cookie value")
			break
		}
	}
	t.Logf("whole test: %v", time.Since(start).Round(time.Millisecond))
}

// TestGatewayWithExpressRedisSessions is the happy path and the logout with
// connect-redis as the session store (users still in MongoDB), the gateway
// also using Redis as its cluster adapter.
func TestGatewayWithExpressRedisSessions(t *testing.T) {
	start := time.Now()
	rsrv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	uri := mongotest.Start(t)
	db := mongoDB(t, uri)
	const carol, erin = "64b7f0c2a1b2c3d4e5f60718", "u-erin"
	insertUser(t, db, carol, "trader", "enterprise") // a hex string _id, not an ObjectID
	insertUser(t, db, erin, "user", "free")
	app := startNodeApp(t, map[string]string{"STORE": "redis", "REDIS_URL": rsrv.URL()}, []user{
		{"carol", "pw-c", carol}, {"erin", "pw-e", erin},
	})
	gw := startGateway(t, map[string]string{
		"TRADEWIRE_SESSION_STORE": "redis",
		"TRADEWIRE_REDIS_URL":     rsrv.URL(),
		"TRADEWIRE_MONGO_URL":     uri,
	})
	cl := startClients(t)
	t.Logf("Redis, FerretDB, Express app, tradewire and socket.io-client up in %v", time.Since(start).Round(time.Millisecond))

	cookie := app.login(t, "carol", "pw-c")
	s := cl.open(t, "carol", gw.base, connectOpts{Cookie: cookie})
	s.connected(t)
	subscribeTrades(t, s)
	receivesOnlyItsTrades(t, gw, s, carol, erin, "t-redis")

	erinSigned := signedValue(t, app.login(t, "erin", "pw-e"))
	m := cl.open(t, "mismatch", gw.base, connectOpts{Auth: map[string]any{"sessionID": erinSigned, "userId": carol}})
	if code, msg := m.refused(t, 10*time.Second); code != auth.CodeUserMismatch {
		t.Errorf("erin's sessionID as carol: code %q (%q), want USER_MISMATCH", code, msg)
	}

	before := time.Now()
	if resp := app.do(t, "POST", "/logout", cookie, nil); resp.StatusCode != 200 {
		t.Fatalf("logout: HTTP %d", resp.StatusCode)
	}
	d := waitEnded(t, s, logoutBound+time.Second).Sub(before)
	t.Logf("connect-redis logout → disconnect: %v", d.Round(time.Millisecond))
	if d > logoutBound {
		t.Errorf("disconnected %v after logout, want ≤ %v", d, logoutBound)
	}
	again := cl.open(t, "again", gw.base, connectOpts{Cookie: cookie})
	if code, msg := again.refused(t, 10*time.Second); code != auth.CodeSessionNotFound {
		t.Errorf("logged-out cookie: code %q (%q), want SESSION_NOT_FOUND", code, msg)
	}

	t.Run("a publish the API refused is not delivered later by the link catch-up", func(t *testing.T) {
		// Redis stays up but refuses PUBLISH (an ACL): the recovery stream
		// write succeeds, the cluster publish fails, the API refuses the
		// event, and the adapter's pub/sub self-check fails (link lost).
		// When PUBLISH is allowed again the link comes back, and the
		// backend retries the refused event.
		ctx := context.Background()
		rdb := redis.NewClient(&redis.Options{Addr: rsrv.Addr})
		defer rdb.Close()
		s := cl.open(t, "acl-survivor", gw.base, connectOpts{Cookie: app.login(t, "erin", "pw-e")})
		s.connected(t)
		subscribeTrades(t, s)
		if err := rdb.Do(ctx, "ACL", "SETUSER", "default", "-publish").Err(); err != nil {
			t.Fatal(err)
		}
		allowed := false
		allow := func() {
			if !allowed {
				allowed = true
				if err := rdb.Do(ctx, "ACL", "SETUSER", "default", "+publish").Err(); err != nil {
					t.Fatal(err)
				}
			}
		}
		defer allow()
		waitReady(t, gw, false, 15*time.Second)
		pub := tradeFor(erin, "refused-then-retried", "MSFT", "buy", 5, 415.5)
		at := time.Now()
		status, body := gw.publishStatus(t, pub)
		t.Logf("publish while Redis refuses PUBLISH: HTTP %d %s", status, body)
		if status == http.StatusAccepted {
			checkTrade(t, s.next(t, 5*time.Second), pub, "Trade Executed: MSFT", "BUY 5 MSFT @ $415.5", at)
		} else {
			s.quiet(t, 500*time.Millisecond) // refused: nothing delivered
			allow()
			waitReady(t, gw, true, 15*time.Second)
			gw.publish(t, pub) // the backend's retry
			checkTrade(t, s.next(t, 5*time.Second), pub, "Trade Executed: MSFT", "BUY 5 MSFT @ $415.5", at)
		}
		// Exactly once: the refused attempt must not show up as well.
		for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); {
			select {
			case r := <-s.q:
				if r.Type != "upgrade" {
					t.Errorf("second delivery of the event the API refused (then accepted on retry): %v", r)
				}
			case <-time.After(100 * time.Millisecond):
			}
		}
		s.close(t)
	})

	// Redis outage. Redis holds the sessions and is the cluster adapter;
	// it keeps an append-only file, so a restart keeps the sessions.
	survivor := cl.open(t, "outage-survivor", gw.base, connectOpts{Cookie: app.login(t, "erin", "pw-e")})
	survivor.connected(t)
	subscribeTrades(t, survivor)
	fresh := app.login(t, "carol", "pw-c") // never looked up by the gateway
	stopped := time.Now()
	rsrv.Kill()
	tried := time.Now()
	n := cl.open(t, "outage-new", gw.base, connectOpts{Cookie: fresh})
	code, msg := n.refused(t, 15*time.Second)
	t.Logf("Redis down: refused %v after the connection attempt (%q)", time.Since(tried).Round(time.Millisecond), msg)
	if code != auth.CodeStoreUnavailable {
		t.Errorf("code %q (%q), want STORE_UNAVAILABLE", code, msg)
	}
	// Two failed revalidation rounds must not disconnect the survivor.
	time.Sleep(time.Until(stopped.Add(2*2*time.Second + 500*time.Millisecond)))
	pub := tradeFor(erin, "during-redis-outage", "AMZN", "sell", 7, 182.4)
	at := time.Now()
	status, body := gw.publishStatus(t, pub)
	t.Logf("publish during the Redis outage: HTTP %d %s", status, body)
	// Whatever the API answers must be true: accepted means delivered once,
	// refused means nothing delivered (so the backend's retry is no
	// duplicate).
	delivered := status == http.StatusAccepted
	if delivered {
		checkTrade(t, survivor.next(t, 5*time.Second), pub, "Trade Executed: AMZN", "SELL 7 AMZN @ $182.4", at)
	} else if status < 500 || !strings.Contains(body, `"code"`) {
		t.Errorf("publish during the outage: HTTP %d %s, want 202 or a 5xx with an error code", status, body)
	}
	survivor.quiet(t, 500*time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := gw.get(t, "/readyz")
		if code == http.StatusServiceUnavailable && strings.Contains(body, "redis") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz during the Redis outage: HTTP %d %s, want 503 naming redis", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}

	rsrv.Restart()
	back := time.Now()
	if !delivered { // the backend retries until accepted
		for {
			status, body := gw.publishStatus(t, pub)
			if status == http.StatusAccepted {
				t.Logf("publish accepted again %v after Redis restarted", time.Since(back).Round(time.Millisecond))
				break
			}
			if time.Since(back) > 15*time.Second {
				t.Fatalf("publish after Redis restarted: HTTP %d %s", status, body)
			}
			time.Sleep(250 * time.Millisecond)
		}
		checkTrade(t, survivor.next(t, 5*time.Second), pub, "Trade Executed: AMZN", "SELL 7 AMZN @ $182.4", at)
	}
	for i := 0; ; i++ { // a client retries its connection
		s := cl.open(t, fmt.Sprintf("after-outage-%d", i), gw.base, connectOpts{Cookie: fresh})
		r := s.next(t, 15*time.Second)
		if r.Type == "connect" {
			t.Logf("new connections accepted again %v after Redis restarted", time.Since(back).Round(time.Millisecond))
			subscribeTrades(t, s)
			p := tradeFor(carol, "after-redis-outage", "AAPL", "buy", 1, 187.12)
			at := time.Now()
			gw.publish(t, p)
			checkTrade(t, s.next(t, 5*time.Second), p, "Trade Executed: AAPL", "BUY 1 AAPL @ $187.12", at)
			break
		}
		if r.Type != "connect_error" || !strings.Contains(string(r.Data), auth.CodeStoreUnavailable) || time.Since(back) > 15*time.Second {
			t.Fatalf("connection after Redis restarted (%v): %v", time.Since(back).Round(time.Millisecond), r)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The survivor was never disconnected and got each trade once.
	survivor.quiet(t, 300*time.Millisecond)
}
