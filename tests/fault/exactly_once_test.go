package fault

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

// apiAnswer is the publish API's answer, as a backend reads it.
type apiAnswer struct {
	status int
	body   struct {
		Accepted   int  `json:"accepted"`
		Duplicates int  `json:"duplicates"`
		Duplicate  bool `json:"duplicate"`
		Results    []struct {
			Index  int    `json:"index"`
			Status string `json:"status"`
			Code   string `json:"code"`
		} `json:"results"`
	}
	raw string
}

func (a apiAnswer) statuses() []string {
	var out []string
	for _, r := range a.body.Results {
		out = append(out, strings.TrimSuffix(r.Status+":"+r.Code, ":"))
	}
	return out
}

func postEvents(t *testing.T, base, body string) apiAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return apiAnswer{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := apiAnswer{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func trade(user, n int) string {
	return fmt.Sprintf(`{"type":"trade.executed","id":"u%d-n%d","userId":"user%d","trade":{"symbol":"AAPL","side":"buy","quantity":1,"price":1,"n":%d}}`, user, n, user, n)
}

// TestRacedIdenticalPublishesOverTwoNodes: every one of 200 events is
// published at the same moment through both nodes (a backend's retry racing
// its first attempt). Each event id must be delivered exactly once, one
// request answering accepted and the other duplicate; market-status events
// (not recorded for recovery: the claim path) likewise.
func TestRacedIdenticalPublishesOverTwoNodes(t *testing.T) {
	const nUsers, perUser, statuses = 20, 10, 20
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	a, b := startNode(t, srv.URL()), startNode(t, srv.URL())
	cookies := seedSessions(t, rdb, nUsers)
	users := connectAlternating(t, cookies, a, b)
	type outcome struct{ id, status string }
	results := make(chan outcome, 4*(nUsers*perUser+statuses))
	race := func(id, body string) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, n := range []*node{a, b} {
			wg.Add(1)
			go func(base string) {
				defer wg.Done()
				<-start
				ans := postEvents(t, base, body)
				st := fmt.Sprintf("%d", ans.status)
				if len(ans.body.Results) == 1 {
					st = ans.body.Results[0].Status
				}
				results <- outcome{id, st}
			}(n.url)
		}
		close(start)
		wg.Wait()
	}
	var all sync.WaitGroup
	sem := make(chan struct{}, 16)
	for n := 1; n <= perUser; n++ {
		for u := 0; u < nUsers; u++ {
			all.Add(1)
			sem <- struct{}{}
			go func(u, n int) {
				defer func() { <-sem; all.Done() }()
				race(fmt.Sprintf("u%d-n%d", u, n), trade(u, n))
			}(u, n)
		}
		all.Wait() // rounds in order, so each user's numbers must ascend
	}
	for s := 0; s < statuses; s++ {
		all.Add(1)
		go func(s int) {
			defer all.Done()
			race(fmt.Sprintf("ms%d", s), fmt.Sprintf(`{"type":"market.status","id":"ms%d","status":{"s":%d}}`, s, s))
		}(s)
	}
	all.Wait()
	close(results)
	per := map[string][]string{}
	for r := range results {
		per[r.id] = append(per[r.id], r.status)
	}
	badAnswers := 0
	for id, st := range per {
		if len(st) != 2 || !(st[0] == "accepted" && st[1] == "duplicate" || st[0] == "duplicate" && st[1] == "accepted") {
			if badAnswers < 5 {
				t.Errorf("event %s: answers %v, want one accepted and one duplicate", id, st)
			}
			badAnswers++
		}
	}
	waitAll(t, users, perUser, 20*time.Second)
	time.Sleep(300 * time.Millisecond) // let any duplicate arrive
	dupes, lost := checkExactlyOnce(t, users, perUser)
	statusDupes := 0
	for _, u := range users {
		seen := map[string]int{}
		for _, e := range u.current().EventsNamed("market:status") {
			var p struct {
				EventID string `json:"eventId"`
			}
			_ = json.Unmarshal(e.Args[0], &p)
			seen[p.EventID]++
		}
		for s := 0; s < statuses; s++ {
			switch c := seen[fmt.Sprintf("ms%d", s)]; {
			case c == 0:
				lost++
			case c > 1:
				statusDupes += c - 1
			}
		}
	}
	t.Logf("%d trade ids + %d status ids raced over 2 nodes to %d users: duplicates %d (trades) + %d (status), lost %d, wrong answers %d",
		nUsers*perUser, statuses, nUsers, dupes, statusDupes, lost, badAnswers)
	if dupes != 0 || statusDupes != 0 || lost != 0 || badAnswers != 0 {
		t.Fatalf("not exactly once")
	}
}

// TestBatchRefusedMidwayAnswersPerItem: Redis refuses the atomic
// record-and-publish of the 3rd item of a batch (the user's stream key holds
// a value of the wrong type, so the script fails before its PUBLISH). The
// answer is per item (207: two accepted, the 3rd rejected, the rest not
// attempted), and the backend's retry of the whole batch delivers the rest,
// each event once.
func TestBatchRefusedMidwayAnswersPerItem(t *testing.T) {
	const nUsers = 5
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	a, b := startNode(t, srv.URL()), startNode(t, srv.URL())
	cookies := seedSessions(t, rdb, nUsers)
	users := connectAlternating(t, cookies, a, b)
	items := make([]string, nUsers)
	for u := range items {
		items[u] = trade(u, 1)
	}
	batch := "[" + strings.Join(items, ",") + "]"
	ctx := context.Background()
	block := "tradewire:rec:s:/:{user2}"
	if err := rdb.Set(ctx, block, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	first := postEvents(t, a.url, batch)
	want := []string{"accepted", "accepted", "rejected:PUBLISH_FAILED", "rejected:NOT_ATTEMPTED", "rejected:NOT_ATTEMPTED"}
	if first.status != http.StatusMultiStatus || first.body.Accepted != 2 || !reflect.DeepEqual(first.statuses(), want) {
		t.Fatalf("first attempt: %d %s, want 207 %v", first.status, first.raw, want)
	}
	waitAll(t, users[:2], 1, 10*time.Second)
	for _, u := range users[2:] {
		if n := u.numbers(); len(n) != 0 {
			t.Fatalf("user %d got %v although its item was not delivered", u.idx, n)
		}
	}
	if err := rdb.Del(ctx, block).Err(); err != nil {
		t.Fatal(err)
	}
	retry := postEvents(t, b.url, batch) // the backend retries the whole batch, through the other node
	want = []string{"duplicate", "duplicate", "accepted", "accepted", "accepted"}
	if retry.status != http.StatusMultiStatus || retry.body.Accepted != 3 || retry.body.Duplicates != 2 || !reflect.DeepEqual(retry.statuses(), want) {
		t.Fatalf("retry: %d %s, want 207 %v", retry.status, retry.raw, want)
	}
	again := postEvents(t, a.url, batch)
	if again.status != http.StatusOK || again.body.Duplicates != nUsers {
		t.Fatalf("second retry: %d %s, want 200 with every item duplicate", again.status, again.raw)
	}
	waitAll(t, users, 1, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	dupes, lost := checkExactlyOnce(t, users, 1)
	t.Logf("first answer %v; retry %v; duplicates %d, lost %d", first.statuses(), retry.statuses(), dupes, lost)
	if dupes != 0 || lost != 0 {
		t.Fatalf("duplicates %d, lost %d", dupes, lost)
	}
}
