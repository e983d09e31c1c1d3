package mongostore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/auth/memstore"
	"github.com/tradewire/tradewire/auth/mongostore"
	"github.com/tradewire/tradewire/internal/testutil/mongotest"
)

const secret = "mongo-secret"

func open(t testing.TB, uri string) *mongo.Database {
	t.Helper()
	c, db, err := mongostore.Connect(uri, options.Client().SetServerSelectionTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return db
}

func insert(t testing.TB, coll *mongo.Collection, docs ...bson.D) {
	t.Helper()
	for _, d := range docs {
		if _, err := coll.InsertOne(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
}

// connectMongoDoc is a document as connect-mongo writes it with the default
// stringify: true.
func connectMongoDoc(sid string, expires time.Time, sessionJSON string) bson.D {
	return bson.D{{Key: "_id", Value: sid}, {Key: "expires", Value: expires}, {Key: "session", Value: sessionJSON}}
}

func TestSessionsAndUsersAgainstFerretDB(t *testing.T) {
	db := open(t, mongotest.Start(t))
	ctx := context.Background()
	oid := bson.NewObjectID()
	future := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	past := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)

	sessions := db.Collection("sessions")
	insert(t, sessions,
		connectMongoDoc("s-string", future, `{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"passport":{"user":"`+oid.Hex()+`"}}`),
		connectMongoDoc("s-obj-id", future, `{"cookie":{},"passport":{"user":{"id":"plain-user"}}}`),
		// stringify: false — the session is an embedded document; cookie.expires
		// is a BSON Date and passport.user an ObjectID inside {_id}.
		bson.D{{Key: "_id", Value: "s-embedded"}, {Key: "expires", Value: future}, {Key: "session", Value: bson.D{
			{Key: "cookie", Value: bson.D{{Key: "originalMaxAge", Value: 3600000}, {Key: "expires", Value: future}, {Key: "secure", Value: nil}}},
			{Key: "passport", Value: bson.D{{Key: "user", Value: bson.D{{Key: "_id", Value: oid}}}}},
		}}},
		bson.D{{Key: "_id", Value: "s-embedded-oid"}, {Key: "session", Value: bson.D{
			{Key: "cookie", Value: bson.D{{Key: "expires", Value: future}}},
			{Key: "passport", Value: bson.D{{Key: "user", Value: oid}}},
		}}},
		connectMongoDoc("s-expired", past, `{"passport":{"user":"plain-user"}}`),
		bson.D{{Key: "_id", Value: "s-no-expires"}, {Key: "session", Value: `{"passport":{"user":"plain-user"}}`}},
		bson.D{{Key: "_id", Value: "s-bad-expires"}, {Key: "expires", Value: "tomorrow"}, {Key: "session", Value: `{"passport":{"user":"plain-user"}}`}},
		bson.D{{Key: "_id", Value: "s-bad-session"}, {Key: "expires", Value: future}, {Key: "session", Value: 42}},
		connectMongoDoc("s-anon", future, `{"cookie":{}}`),
		connectMongoDoc("s-ghost", future, `{"passport":{"user":"ghost"}}`),
	)
	insert(t, db.Collection("users"),
		bson.D{{Key: "_id", Value: oid}, {Key: "role", Value: "admin"}, {Key: "subscriptionTier", Value: "enterprise"}},
		bson.D{{Key: "_id", Value: "plain-user"}, {Key: "role", Value: "trader"}},
	)

	a, err := auth.New(auth.Config{Secrets: []string{secret}},
		mongostore.NewSessions(db, ""), mongostore.NewUsers(db, mongostore.UsersConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		sid, code, user, role, tier string
		expires                     time.Time
	}{
		{"s-string", "", oid.Hex(), "admin", "enterprise", future},
		{"s-obj-id", "", "plain-user", "trader", auth.DefaultTier, future},
		{"s-embedded", "", oid.Hex(), "admin", "enterprise", future},
		{"s-embedded-oid", "", oid.Hex(), "admin", "enterprise", future}, // no store expiry: cookie.expires applies
		{"s-no-expires", "", "plain-user", "trader", auth.DefaultTier, time.Time{}},
		{"s-expired", auth.CodeSessionExpired, "", "", "", time.Time{}},
		{"s-bad-expires", auth.CodeUnauthorized, "", "", "", time.Time{}},
		{"s-bad-session", auth.CodeUnauthorized, "", "", "", time.Time{}},
		{"s-anon", auth.CodeUnauthorized, "", "", "", time.Time{}},
		{"s-ghost", auth.CodeForbidden, "", "", "", time.Time{}},
		{"s-missing", auth.CodeSessionNotFound, "", "", "", time.Time{}},
	}
	for _, c := range cases {
		id, err := a.Authenticate(ctx, auth.Credentials{Cookie: auth.SignedCookie("connect.sid", c.sid, secret)})
		if got := auth.CodeOf(err); got != c.code {
			t.Errorf("%s: code %q (err %v), want %q", c.sid, got, err, c.code)
			continue
		}
		if c.code != "" {
			continue
		}
		if id.UserID != c.user || id.Role != c.role || id.Tier != c.tier || !id.ExpiresAt().Equal(c.expires) {
			t.Errorf("%s: identity %+v expires %v, want %s/%s/%s expires %v", c.sid, *id, id.ExpiresAt(), c.user, c.role, c.tier, c.expires)
		}
	}

	// Revalidate: one $in query for the batch.
	invalid, err := a.Revalidate(ctx, []string{"s-string", "s-expired", "s-missing", "s-embedded", "s-anon"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(invalid) != "[s-expired s-missing s-anon]" {
		t.Fatalf("invalid = %v", invalid)
	}
	// Logout: connect-mongo destroy is deleteOne({_id}).
	if _, err := sessions.DeleteOne(ctx, bson.D{{Key: "_id", Value: "s-string"}}); err != nil {
		t.Fatal(err)
	}
	invalid, err = a.Revalidate(ctx, []string{"s-string", "s-embedded"})
	if err != nil || fmt.Sprint(invalid) != "[s-string]" {
		t.Fatalf("after logout: %v %v", invalid, err)
	}
	_, err = a.Authenticate(ctx, auth.Credentials{SessionID: auth.Sign("s-string", secret)})
	if auth.CodeOf(err) != auth.CodeSessionNotFound {
		t.Fatalf("after logout: %v", err)
	}
	m, err := mongostore.NewSessions(db, "").GetMany(ctx, nil)
	if err != nil || len(m) != 0 {
		t.Fatalf("GetMany(nil) = %v, %v", m, err)
	}
}

func TestUsersIDFormsAndFieldNames(t *testing.T) {
	db := open(t, mongotest.Start(t))
	ctx := context.Background()
	oid := bson.NewObjectID()
	hexAsString := bson.NewObjectID().Hex()
	insert(t, db.Collection("accounts"),
		bson.D{{Key: "uid", Value: oid}, {Key: "profile", Value: bson.D{{Key: "tier", Value: "premium"}, {Key: "role", Value: "admin"}}}},
		bson.D{{Key: "uid", Value: hexAsString}, {Key: "profile", Value: bson.D{{Key: "tier", Value: "basic"}}}},
		bson.D{{Key: "uid", Value: "name-id"}, {Key: "profile", Value: bson.D{{Key: "tier", Value: 7}}}},
	)
	users := mongostore.NewUsers(db, mongostore.UsersConfig{Collection: "accounts", IDField: "uid", RoleField: "profile.role", TierField: "profile.tier"})
	if users.Name() != "mongo-users" {
		t.Fatal(users.Name())
	}
	for _, c := range []struct{ id, role, tier string }{
		{oid.Hex(), "admin", "premium"},
		{hexAsString, "", "basic"},
		{"name-id", "", ""}, // non-string tier is ignored
	} {
		u, err := users.User(ctx, c.id)
		if err != nil {
			t.Fatalf("%s: %v", c.id, err)
		}
		if u.ID != c.id || u.Role != c.role || u.Tier != c.tier {
			t.Fatalf("%s: %+v", c.id, *u)
		}
	}
	if _, err := users.User(ctx, bson.NewObjectID().Hex()); !errors.Is(err, auth.ErrNoUser) {
		t.Fatalf("missing user: %v", err)
	}
}

func TestConnectErrors(t *testing.T) {
	if _, _, err := mongostore.Connect("mongodb://127.0.0.1:1/"); err == nil {
		t.Fatal("URI without a database accepted")
	}
	if _, _, err := mongostore.Connect("http://x/db"); err == nil {
		t.Fatal("bad URI accepted")
	}
	if _, _, err := mongostore.Connect("mongodb://127.0.0.1:1/db", options.Client().SetAppName("")); err != nil {
		t.Fatalf("lazy connect failed: %v", err)
	}
}

func TestStoreDownIsStoreUnavailable(t *testing.T) {
	srv := mongotest.StartServer(t)
	db := open(t, mongotest.Database(t, srv.URI))
	ctx := context.Background()
	insert(t, db.Collection("sessions"), connectMongoDoc("s1", time.Now().Add(time.Hour), `{"passport":{"user":"u1"}}`))
	insert(t, db.Collection("users"), bson.D{{Key: "_id", Value: "u1"}})
	sessions, users := mongostore.NewSessions(db, ""), mongostore.NewUsers(db, mongostore.UsersConfig{})
	a, err := auth.New(auth.Config{Secrets: []string{secret}, LookupTimeout: time.Second, CacheTTL: -1}, sessions, users)
	if err != nil {
		t.Fatal(err)
	}
	creds := auth.Credentials{SessionID: auth.Sign("s1", secret)}
	if _, err := a.Authenticate(ctx, creds); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	_, err = a.Authenticate(ctx, creds)
	if auth.CodeOf(err) != auth.CodeStoreUnavailable {
		t.Fatalf("with FerretDB stopped: %v", err)
	}
	if _, err := a.Revalidate(ctx, []string{"s1"}); auth.CodeOf(err) != auth.CodeStoreUnavailable {
		t.Fatalf("Revalidate with FerretDB stopped: %v", err)
	}
	if _, err := users.User(ctx, "u1"); err == nil || errors.Is(err, auth.ErrNoUser) {
		t.Fatalf("users with FerretDB stopped: %v", err)
	}
	// Sessions answer but the user store is down.
	ms := memstore.New(time.Hour)
	b, err := auth.New(auth.Config{Secrets: []string{secret}, LookupTimeout: time.Second}, ms, users)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Authenticate(ctx, auth.Credentials{SessionID: auth.Sign(ms.Create("u1", "", ""), secret)})
	if auth.CodeOf(err) != auth.CodeStoreUnavailable || err.(*auth.Error).Message != "user store unavailable" {
		t.Fatalf("user store down: %v", err)
	}
}
