package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aichat/aichat/internal/store"
	"github.com/gin-gonic/gin"
)

// TestPanicRecovered proves a panicking handler answers 500 internal.error
// without details, is logged with its request id, and the server goes on.
func TestPanicRecovered(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "x.db"), "", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := NewServer(Deps{Log: log, Ready: db.Ping, MaxBodyBytes: 1 << 20})
	h.(*gin.Engine).GET("/boom", func(c *gin.Context) { panic("secret detail") })
	ts := httptest.NewServer(h)
	defer ts.Close()

	res, err := http.Get(ts.URL + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	var body errorBody
	json.NewDecoder(res.Body).Decode(&body)
	res.Body.Close()
	if res.StatusCode != 500 || body.Code != "internal.error" || strings.Contains(body.Message, "secret") {
		t.Fatalf("panic answer: %d %+v", res.StatusCode, body)
	}
	if !strings.Contains(logs.String(), "panic in handler") || !strings.Contains(logs.String(), body.RequestID) {
		t.Fatalf("panic not logged with request id %s:\n%s", body.RequestID, logs.String())
	}
	if res, err := http.Get(ts.URL + "/healthz"); err != nil || res.StatusCode != 200 {
		t.Fatalf("server after panic: %v %v", res, err)
	}
}
