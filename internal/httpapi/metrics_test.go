package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/store/storetest"
)

// TestMetrics: /metrics carries HTTP requests by route pattern and status,
// the database pool, sockets, the assistant and the process; with a token
// configured it answers only requests bearing it.
func TestMetrics(t *testing.T) {
	s := apptest.Start(t, storetest.SQLite(t), apptest.WithConfig(func(c *config.Config) { c.MetricsToken = "scrape-me" }))
	alice := s.Register(t, "alice@example.com")
	var c struct{ ID string }
	s.Do(t, "POST", "/api/v1/chats", alice.AccessToken, map[string]any{"title": "t"}).JSON(t, &c)
	s.Do(t, "GET", "/api/v1/chats/"+c.ID, alice.AccessToken, nil)
	s.Do(t, "GET", "/api/v1/chats/00000000-0000-0000-0000-000000000000", alice.AccessToken, nil)
	s.Do(t, "GET", "/no/such/path", "", nil)

	for _, tok := range []string{"", "wrong"} {
		r := s.Do(t, "GET", "/metrics", tok, nil)
		if r.Status != http.StatusUnauthorized || r.Err(t).Code != "auth.required" {
			t.Fatalf("metrics with token %q: %d %s", tok, r.Status, r.Body)
		}
	}
	r := s.Do(t, "GET", "/metrics", "scrape-me", nil)
	if r.Status != 200 {
		t.Fatalf("metrics with the token: %d", r.Status)
	}
	body := string(r.Body)
	for _, want := range []string{
		`aichat_http_requests_total{method="GET",route="/api/v1/chats/:id",status="200"} 1`,
		`aichat_http_requests_total{method="GET",route="/api/v1/chats/:id",status="404"} 1`,
		`aichat_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`aichat_http_request_duration_seconds_bucket{method="POST",route="/api/v1/chats"`,
		`go_sql_open_connections{db_name="sqlite"}`,
		`go_goroutines`, `process_resident_memory_bytes`,
		`aichat_ws_connections`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, c.ID) {
		t.Error("/metrics names a chat id: routes must be patterns")
	}
}

// TestMetricsOwnListener: with AICHAT_METRICS_ADDR set, the public
// listener does not serve /metrics (Run serves it on that address).
func TestMetricsOwnListener(t *testing.T) {
	s := apptest.Start(t, storetest.SQLite(t), apptest.WithConfig(func(c *config.Config) { c.MetricsAddr = "127.0.0.1:0" }))
	if r := s.Do(t, "GET", "/metrics", "", nil); r.Status != 404 || r.Err(t).Code != "route.notFound" {
		t.Fatalf("public /metrics with its own listener configured: %d %s", r.Status, r.Body)
	}
	if s.App.MetricsHandler == nil {
		t.Fatal("no metrics handler for the separate listener")
	}
}
