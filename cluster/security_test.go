package cluster

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testSecret = "cluster-secret-0123456789abcdef-0123"

func TestSignedRoutesOnlyAndNoCredentialsForwarded(t *testing.T) {
	_, rdb := testRedis(t)
	p := prefix(t)
	got := make(chan http.Header, 4)
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		_, _ = w.Write([]byte("owner"))
	}))
	t.Cleanup(owner.Close)
	a, logs := newRouter(t, rdb, Options{URL: "http://127.0.0.1:1", KeyPrefix: p, Secret: testSecret})
	b, _ := newRouter(t, rdb, Options{URL: owner.URL, KeyPrefix: p, Secret: testSecret})
	ctx := context.Background()
	if err := b.Advertise(ctx); err != nil {
		t.Fatal(err)
	}
	if v := rdb.Get(ctx, p+":route:"+b.Tag()).Val(); !strings.HasPrefix(v, owner.URL+routeSigPrefix) {
		t.Fatalf("stored entry %q is not signed", v)
	}
	front, _ := frontServer(t, a)
	req, _ := http.NewRequest(http.MethodGet, front.URL+"/socket.io/?EIO=4&transport=polling&sid="+b.NewID(), nil)
	req.Header.Set("Cookie", "connect.sid=s%3Avictim.sig")
	req.Header.Set("Authorization", "Bearer backend-key")
	req.Header.Set("User-Agent", "kept")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	h := <-got
	if h.Get("Cookie") != "" || h.Get("Authorization") != "" || h.Get("User-Agent") != "kept" {
		t.Fatalf("owner saw Cookie %q Authorization %q UA %q", h.Get("Cookie"), h.Get("Authorization"), h.Get("User-Agent"))
	}

	// Forged entries: unsigned, signed with another secret, signed for
	// another tag, or not http(s): all ignored.
	other, _ := newRouter(t, rdb, Options{URL: "http://127.0.0.1:1", KeyPrefix: p, Secret: strings.Repeat("x", 32)})
	forged := map[string]string{
		"ZZZ1": owner.URL,
		"ZZZ2": other.entry("ZZZ2", owner.URL),
		"ZZZ3": a.entry(b.Tag(), owner.URL),
		"ZZZ4": a.entry("ZZZ4", "unix:///tmp/x"),
		"ZZZ5": a.entry("ZZZ5", "http://user:pw@127.0.0.1:1"),
	}
	for tag, v := range forged {
		if err := rdb.Set(ctx, p+":route:"+tag, v, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if u, err := a.Owner(ctx, tag+"aaaaaaaaaaaaaaaa"); err != nil || u != "" {
			t.Fatalf("forged entry %s %q accepted: %q %v", tag, v, u, err)
		}
	}
	if !strings.Contains(logs.String(), "ignoring a route entry") {
		t.Fatalf("forged entries not logged: %s", logs.String())
	}
	// A well-signed entry of the same secret for the right tag is accepted.
	if err := rdb.Set(ctx, p+":route:ZZZ6", a.entry("ZZZ6", owner.URL), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if u, _ := a.Owner(ctx, "ZZZ6aaaaaaaaaaaaaaaa"); u != owner.URL {
		t.Fatalf("valid entry: %q", u)
	}
}

func TestUnknownTagsCostBoundedLookups(t *testing.T) {
	_, rdb := testRedis(t)
	p := prefix(t)
	a, _ := newRouter(t, rdb, Options{URL: "http://127.0.0.1:1", KeyPrefix: p, Secret: testSecret, LookupsPerSecond: 5})
	ctx := context.Background()
	before := rdb.Info(ctx, "commandstats").Val()
	for i := 0; i < 200; i++ {
		tag := string([]byte{'a' + byte(i%26), 'b' + byte(i/26%20), 'Q', 'Q'})
		if u, err := a.Owner(ctx, tag+"xxxxxxxxxxxxxxxx"); u != "" || err != nil {
			t.Fatalf("unknown tag: %q %v", u, err)
		}
	}
	after := rdb.Info(ctx, "commandstats").Val()
	if statCalls(after, "cmdstat_get") == 0 {
		t.Fatalf("no GET counted in %q", after)
	}
	if n := statCalls(after, "cmdstat_get") - statCalls(before, "cmdstat_get"); n > 10 {
		t.Fatalf("200 unknown tags cost %d GETs, want at most the budget", n)
	}
	if err := NewRouterErr("ftp://h:1"); err == nil {
		t.Fatal("ftp node URL accepted")
	}
}

// NewRouterErr returns NewRouter's error for a node URL.
func NewRouterErr(u string) error {
	_, err := NewRouter(nil, Options{URL: u})
	return err
}

// statCalls reads calls=N of a command from INFO commandstats text.
func statCalls(info, cmd string) int {
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), cmd+":calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}
