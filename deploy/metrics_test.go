package deploy

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/ai/llm/llmtest"
	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/store/storetest"
)

// exportedMetrics runs an aichat with the fake model, makes it answer once,
// fail once upstream and lose a socket (vector metrics only appear once a
// label has a value), and returns every series name /metrics lists, with
// the label values seen per name.
func exportedMetrics(t *testing.T) map[string]string {
	t.Helper()
	up := llmtest.NewServer(t)
	up.SetModels("gpt-test")
	up.SetDefault(llmtest.Script{Status: http.StatusInternalServerError, Body: `{"error":{"message":"boom","type":"server_error"}}`})
	// A set model: the provider is not asked to list its models.
	srv := apptest.Start(t, storetest.SQLite(t), apptest.WithAI(up.URL),
		apptest.WithConfig(func(c *config.Config) { c.AIModel = "gpt-test" }))
	sess := srv.Register(t, "metrics@example.com")
	r := srv.Do(t, "POST", "/api/v1/chats", sess.AccessToken, map[string]any{"title": "metrics"})
	if r.Status != http.StatusCreated {
		t.Fatalf("create chat: %d %s", r.Status, r.Body)
	}
	var chat struct{ ID string }
	r.JSON(t, &chat)
	if r := srv.Do(t, "PATCH", "/api/v1/chats/"+chat.ID, sess.AccessToken,
		map[string]any{"settings": map[string]any{"ai_mode": "always"}}); r.Status != http.StatusOK {
		t.Fatalf("ai_mode always: %d %s", r.Status, r.Body)
	}
	ws, _ := srv.Connect(t, sess.AccessToken, "")
	ws.Send(t, "send_message", "q1", map[string]any{"chat_id": chat.ID, "content": "first fails", "client_id": "c1"})
	ws.Expect(t, "ai_error")
	up.SetDefault(llmtest.Script{Text: "fine, thanks"})
	ws.Send(t, "send_message", "q2", map[string]any{"chat_id": chat.ID, "content": "second answers", "client_id": "c2"})
	ws.Expect(t, "ai_done")
	ws.Conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r = srv.Do(t, "GET", "/metrics", "", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET /metrics: %d", r.Status)
		}
		if strings.Contains(string(r.Body), "aichat_ws_disconnects_total{") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	names := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(r.Body)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 {
			continue
		}
		names[line[:end]] += line[end:] + "\n"
	}
	return names
}

var metricName = regexp.MustCompile(`\b(?:aichat|go|process)_[a-z0-9_]+\b`)

// TestMonitoringNamesExportedMetrics: every metric the alert rules and the
// Grafana dashboard query is one a running aichat really exports (the
// rules' logic itself is tested by promtool test rules in .ci/run).
func TestMonitoringNamesExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	var exprs []string
	rules := loadYAML(t, "prometheus/alerts.yml")[0]
	for _, g := range at(rules, "groups").([]any) {
		for _, r := range at(g, "rules").([]any) {
			exprs = append(exprs, str(at(r, "expr")))
		}
	}
	b, err := os.ReadFile("grafana/aichat.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana/aichat.json: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("only %d expressions found in the rules and the dashboard", len(exprs))
	}
	used := map[string]bool{}
	for _, e := range exprs {
		for _, n := range metricName.FindAllString(e, -1) {
			used[n] = true
		}
	}
	var missing []string
	for n := range used {
		if _, ok := exported[n]; !ok {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		var have []string
		for n := range exported {
			if strings.HasPrefix(n, "aichat_") {
				have = append(have, n)
			}
		}
		sort.Strings(have)
		t.Fatalf("queried but not exported: %v\nexported aichat_ series: %v", missing, have)
	}
	// The label values the rules single out exist too.
	for name, label := range map[string]string{
		"aichat_ai_generations_finished_total": `outcome="complete"`,
		"aichat_ws_commands_total":             `command="send_message"`,
		"aichat_http_requests_total":           `status="201"`,
	} {
		if !strings.Contains(exported[name], label) {
			t.Errorf("%s has no series with %s:\n%s", name, label, exported[name])
		}
	}
	t.Logf("%d metric names queried, all exported", len(used))
}
