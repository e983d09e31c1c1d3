package mongotest

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func connect(t *testing.T, uri string) (*mongo.Client, string) {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(3 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c, strings.TrimPrefix(u.Path, "/")
}

func TestStartGivesFreshDatabases(t *testing.T) {
	ctx := context.Background()
	a, b := Start(t), Start(t)
	if a == b {
		t.Fatalf("two calls returned the same URL %q", a)
	}
	ca, dbA := connect(t, a)
	cb, dbB := connect(t, b)
	if dbA == "" || dbA == dbB || len(dbA) > 63 {
		t.Fatalf("database names %q, %q", dbA, dbB)
	}
	if _, err := ca.Database(dbA).Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: "x"}, {Key: "v", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	var got bson.M
	if err := ca.Database(dbA).Collection("c").FindOne(ctx, bson.D{{Key: "_id", Value: "x"}}).Decode(&got); err != nil {
		t.Fatalf("find in A: %v", err)
	}
	n, err := cb.Database(dbB).Collection("c").CountDocuments(ctx, bson.D{})
	if err != nil || n != 0 {
		t.Fatalf("database B sees %d docs (err %v); want an empty database", n, err)
	}
}

func TestStartServerStop(t *testing.T) {
	s := StartServer(t)
	uri := Database(t, s.URI)
	c, db := connect(t, uri)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Database(db).RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	s.Stop()
	s.Stop() // idempotent
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if err := c.Database(db).RunCommand(ctx2, bson.D{{Key: "ping", Value: 1}}).Err(); err == nil {
		t.Fatal("ping succeeded after Stop")
	}
}

func TestBinaryIsCached(t *testing.T) {
	if os.Getenv(EnvBinary) != "" {
		t.Logf("%s set; checking that path", EnvBinary)
	}
	p1, err := Binary(t)
	if err != nil {
		t.Fatal(err)
	}
	fi1, err := os.Stat(p1)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Binary(nil)
	if err != nil {
		t.Fatal(err)
	}
	fi2, _ := os.Stat(p2)
	if p1 != p2 || !fi1.ModTime().Equal(fi2.ModTime()) {
		t.Fatalf("second call rebuilt or moved the binary: %s vs %s", p1, p2)
	}
}

func TestDBName(t *testing.T) {
	n := dbName("TestX/sub test with spaces and a very long name that goes on and on")
	if len(n) > 63 {
		t.Fatalf("len %d > 63: %q", len(n), n)
	}
	for _, r := range n {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			t.Fatalf("bad rune %q in %q", r, n)
		}
	}
	if dbName("a") == dbName("a") {
		t.Fatal("names repeat")
	}
}
