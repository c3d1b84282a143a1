package app_test

import (
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/faultproxy"
	"github.com/aichat/aichat/internal/store/storetest"
)

// TestPostgresOutage cuts PostgreSQL off for 5 s (a TCP proxy between
// aichat and the database drops every connection and refuses new ones)
// while a sender keeps writing: sends during the outage get a JSON error
// quickly, /readyz says not ready while it lasts and ready after, the
// service recovers by itself, every acknowledged message is stored, and
// the failed ones, retried with their client_id, are stored once.
func TestPostgresOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test skipped in -short mode")
	}
	e := storetest.Postgres(t)
	u, err := url.Parse(e.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	u.Host = proxy.Addr()
	e.URL = u.String()
	s := apptest.Start(t, e)
	alice := s.Register(t, "alice@example.com")
	var c struct{ ID string }
	s.Do(t, "POST", "/api/v1/chats", alice.AccessToken, map[string]any{"title": "outage", "settings": map[string]any{"ai_mode": "off"}}).JSON(t, &c)

	type result struct {
		clientID string
		status   int
		code     string
		took     time.Duration
	}
	var (
		mu      sync.Mutex
		results []result
	)
	send := func(i int) {
		cid := fmt.Sprintf("m-%d", i)
		start := time.Now()
		r := s.Do(t, "POST", "/api/v1/chats/"+c.ID+"/messages", alice.AccessToken, map[string]any{"content": cid, "client_id": cid})
		res := result{clientID: cid, status: r.Status, took: time.Since(start)}
		if r.Status >= 400 {
			res.code = r.Err(t).Code
		}
		mu.Lock()
		results = append(results, res)
		mu.Unlock()
	}
	ready := func() int { return s.Do(t, "GET", "/readyz", "", nil).Status }

	i := 0
	sendFor := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); i++ {
			send(i)
			time.Sleep(20 * time.Millisecond)
		}
	}
	sendFor(1 * time.Second)
	proxy.Down()
	downAt := time.Now()
	sendFor(2 * time.Second)
	if st := ready(); st != 503 {
		t.Errorf("/readyz during the outage: %d, want 503", st)
	}
	sendFor(time.Until(downAt.Add(5 * time.Second)))
	if err := proxy.Up(); err != nil {
		t.Fatal(err)
	}
	upAt := time.Now()
	for ready() != 200 {
		if time.Since(upAt) > 15*time.Second {
			t.Fatal("/readyz still not ready 15 s after the database came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	recovered := time.Since(upAt)
	sendFor(1 * time.Second)

	var ok, failed []result
	var slowest time.Duration
	for _, r := range results {
		switch {
		case r.status == 201:
			ok = append(ok, r)
		case r.status >= 500 && r.code != "":
			failed = append(failed, r)
			slowest = max(slowest, r.took)
		default:
			t.Fatalf("send %s: status %d code %q", r.clientID, r.status, r.code)
		}
	}
	t.Logf("%d sends acknowledged, %d refused during the outage (slowest refusal %v); ready again %v after the database came back",
		len(ok), len(failed), slowest, recovered)
	if len(failed) == 0 {
		t.Fatal("no send failed: the outage was not felt")
	}
	if slowest > 5*time.Second {
		t.Errorf("a refusal took %v: senders should learn quickly", slowest)
	}
	if last := results[len(results)-1]; last.status != 201 {
		t.Fatalf("the last send, after recovery: %d %s", last.status, last.code)
	}

	// Retry every refused send with its client_id, then check the history:
	// each message exactly once.
	for _, r := range failed {
		if rr := s.Do(t, "POST", "/api/v1/chats/"+c.ID+"/messages", alice.AccessToken, map[string]any{"content": r.clientID, "client_id": r.clientID}); rr.Status != 201 && rr.Status != 200 {
			t.Fatalf("retry %s: %d %s", r.clientID, rr.Status, rr.Body)
		}
	}
	seen := map[string]int{}
	path := "/api/v1/chats/" + c.ID + "/messages?limit=200" // newest first, then older pages
	for {
		var page struct {
			Messages []struct {
				Seq     int64
				Content string
			}
			HasMore bool `json:"has_more"`
		}
		s.Do(t, "GET", path, alice.AccessToken, nil).JSON(t, &page)
		for _, m := range page.Messages {
			seen[m.Content]++
		}
		if !page.HasMore || len(page.Messages) == 0 {
			break
		}
		path = fmt.Sprintf("/api/v1/chats/%s/messages?limit=200&before=%d", c.ID, page.Messages[len(page.Messages)-1].Seq)
	}
	for _, r := range results {
		if seen[r.clientID] != 1 {
			t.Errorf("%s is stored %d times", r.clientID, seen[r.clientID])
		}
	}
}
