package app_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestRunMetricsListener: with AICHAT_METRICS_ADDR the real program serves
// /metrics there (token-checked when AICHAT_METRICS_TOKEN is set) and not
// on the public address.
func TestRunMetricsListener(t *testing.T) {
	base, out, _ := startRun(t, map[string]string{
		"AICHAT_DATA_DIR":      t.TempDir(),
		"AICHAT_METRICS_ADDR":  "127.0.0.1:0",
		"AICHAT_METRICS_TOKEN": "scrape-me",
	})
	var addr string
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var line struct {
			Msg, Addr string
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "metrics listening" {
			addr = line.Addr
		}
	}
	if addr == "" {
		t.Fatalf("no metrics listener logged:\n%s", out)
	}
	get := func(url, token string) (int, string) {
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := get(base+"/metrics", "scrape-me"); code != 404 {
		t.Fatalf("public /metrics: %d, want 404", code)
	}
	if code, _ := get("http://"+addr+"/metrics", ""); code != 401 {
		t.Fatalf("metrics without the token: %d, want 401", code)
	}
	if code, body := get("http://"+addr+"/metrics", "scrape-me"); code != 200 || !strings.Contains(body, "go_sql_open_connections") {
		t.Fatalf("metrics with the token: %d", code)
	}
}
