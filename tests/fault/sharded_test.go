package fault

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/internal/testutil/redistest"
	"github.com/tradewire/tradewire/internal/testutil/sioclient"
)

// startCluster launches a three-master Redis Cluster (no replicas) on free
// ports and returns its redis+cluster:// URL.
func startCluster(t *testing.T) string {
	t.Helper()
	var addrs []string
	for range 3 {
		dir := t.TempDir()
		s := redistest.Start(t, "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-node-timeout", "5000")
		addrs = append(addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	out, err := exec.Command("redis-cli", append(args, "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range addrs {
		cl := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, err := cl.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s not ok: %v %s", a, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = cl.Close()
	}
	return "redis+cluster://" + strings.Join(addrs, ",")
}

// TestShardedOrderPerUser: sharded pub/sub on a local 3-master Redis
// Cluster, three gateway nodes, four publishers sending every user's trades
// concurrently through rotating nodes. Each user has two connections on two
// different nodes: both must receive the same sequence, with strictly
// ascending recovery offsets (the stream order), each publisher's trades in
// the order it sent them, none lost, none twice.
func TestShardedOrderPerUser(t *testing.T) {
	const nUsers, publishers, rounds = 24, 4, 12
	bus := startCluster(t)
	sessions := redistest.Start(t)
	srdb := redis.NewClient(&redis.Options{Addr: sessions.Addr})
	defer srdb.Close()
	extra := []string{"TRADEWIRE_REDIS_SHARDED=true", "TRADEWIRE_SESSION_REDIS_URL=" + sessions.URL()}
	nodes := []*node{startNode(t, bus, extra...), startNode(t, bus, extra...), startNode(t, bus, extra...)}
	cookies := seedSessions(t, srdb, nUsers)
	conns := make([][2]*sioclient.Client, nUsers)
	for u := 0; u < nUsers; u++ {
		for k := 0; k < 2; k++ {
			c, err := dial(nodes[(u+k)%3].url, cookies[u], nil)
			if err == nil {
				_, err = c.EmitWithAck(10*time.Second, "subscribe:trades")
			}
			if err != nil {
				t.Fatalf("user %d: %v", u, err)
			}
			conns[u][k] = c
		}
	}
	var wg sync.WaitGroup
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for r := 1; r <= rounds; r++ {
				items := make([]string, nUsers)
				for u := range items {
					items[u] = fmt.Sprintf(`{"type":"trade.executed","id":"p%d-u%d-r%d","userId":"user%d","trade":{"symbol":"AAPL","side":"buy","quantity":1,"price":1,"n":%d}}`,
						p, u, r, u, p*1000+r)
				}
				ans := postEvents(t, nodes[(p+r)%3].url, "["+strings.Join(items, ",")+"]")
				if ans.status != 202 {
					t.Errorf("publisher %d round %d: %d %s", p, r, ans.status, ans.raw)
					return
				}
			}
		}(p)
	}
	wg.Wait()
	want := publishers * rounds
	type seq struct {
		ns      []int
		offsets []string
	}
	read := func(c *sioclient.Client) seq {
		var s seq
		for _, e := range c.EventsNamed("trade:executed") {
			var p struct {
				Trade struct{ N int } `json:"trade"`
			}
			_ = json.Unmarshal(e.Args[0], &p)
			var off string
			if len(e.Args) > 1 {
				_ = json.Unmarshal(e.Args[len(e.Args)-1], &off)
			}
			s.ns = append(s.ns, p.Trade.N)
			s.offsets = append(s.offsets, off)
		}
		return s
	}
	deadline := time.Now().Add(20 * time.Second)
	for u := 0; u < nUsers; u++ {
		for k := 0; k < 2; k++ {
			for len(read(conns[u][k]).ns) < want && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	time.Sleep(300 * time.Millisecond)
	inversions, lost, dupes, differ := 0, 0, 0, 0
	for u := 0; u < nUsers; u++ {
		var seqs [2]seq
		for k := 0; k < 2; k++ {
			s := read(conns[u][k])
			seqs[k] = s
			seen := map[int]int{}
			last := map[int]int{}
			for i, n := range s.ns {
				seen[n]++
				if p := n / 1000; n <= last[p] {
					inversions++
				} else {
					last[p] = n
				}
				if i > 0 && !offsetLess(s.offsets[i-1], s.offsets[i]) {
					inversions++
				}
			}
			for p := 0; p < publishers; p++ {
				for r := 1; r <= rounds; r++ {
					switch c := seen[p*1000+r]; {
					case c == 0:
						lost++
					case c > 1:
						dupes += c - 1
					}
				}
			}
		}
		if !slices.Equal(seqs[0].ns, seqs[1].ns) {
			differ++
			if differ <= 2 {
				t.Logf("user %d: node %d saw %v, node %d saw %v", u, u%3, seqs[0].ns, (u+1)%3, seqs[1].ns)
			}
		}
	}
	t.Logf("sharded, 3 masters, 3 nodes, %d publishers, %d users x 2 connections, %d trades each: inversions %d, lost %d, duplicates %d, users whose two connections differ %d",
		publishers, nUsers, want, inversions, lost, dupes, differ)
	if inversions != 0 || lost != 0 || dupes != 0 || differ != 0 {
		t.Fatal("per-user order not kept in sharded mode")
	}
}

// offsetLess compares two stream ids ms-seq.
func offsetLess(a, b string) bool {
	var am, as, bm, bs uint64
	if _, err := fmt.Sscanf(a, "%d-%d", &am, &as); err != nil {
		return false
	}
	if _, err := fmt.Sscanf(b, "%d-%d", &bm, &bs); err != nil {
		return false
	}
	return am < bm || am == bm && as < bs
}
