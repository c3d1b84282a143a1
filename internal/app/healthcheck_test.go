package app_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aichat/aichat/internal/app"
)

// TestHealthcheckCommand: `aichat healthcheck` (the Dockerfile's
// HEALTHCHECK) succeeds against a running server's /healthz, found from
// AICHAT_ADDR with a wildcard host, and fails when nothing listens or the
// answer is not 200.
func TestHealthcheckCommand(t *testing.T) {
	base, _, stop := startRun(t, map[string]string{"AICHAT_DATA_DIR": t.TempDir()})
	defer stop()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	run := func(vars map[string]string, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := app.Run(context.Background(), append([]string{"healthcheck"}, args...), env(vars), &out, &errOut)
		return out.String() + errOut.String(), err
	}
	if out, err := run(map[string]string{"AICHAT_ADDR": ":" + port}); err != nil || !strings.Contains(out, "http://127.0.0.1:"+port+"/healthz") {
		t.Fatalf("healthcheck with AICHAT_ADDR=:%s: %v %q", port, err, out)
	}
	if _, err := run(nil, "--addr", "0.0.0.0:"+port); err != nil {
		t.Fatalf("healthcheck --addr 0.0.0.0:%s: %v", port, err)
	}

	// Nothing listens: fails.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	if _, err := run(map[string]string{"AICHAT_ADDR": dead}, "--timeout", "1s"); err == nil {
		t.Fatalf("healthcheck against %s where nothing listens succeeded", dead)
	}
	// A non-200 answer fails.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer bad.Close()
	if _, err := run(nil, "--url", bad.URL+"/healthz"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("healthcheck against a 503: %v, want an error naming 503", err)
	}
	// A bad address is an error, not a panic.
	if _, err := run(map[string]string{"AICHAT_ADDR": "no-port"}); err == nil {
		t.Fatal("healthcheck with AICHAT_ADDR=no-port succeeded")
	}
}
