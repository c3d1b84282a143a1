package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/app"
	"github.com/aichat/aichat/internal/store/storetest"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// startRun runs the real program in-process and returns its base URL and a
// stop function that cancels it and returns Run's error.
func startRun(t *testing.T, vars map[string]string) (string, *lockedBuffer, func() error) {
	t.Helper()
	vars["AICHAT_ADDR"] = "127.0.0.1:0"
	vars["AICHAT_LOG_FORMAT"] = "json"
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, nil, env(vars), out, out) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(20 * time.Second):
				runErr = errors.New("Run did not return within 20 s of its context ending")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(out.String()))
		for sc.Scan() {
			var line struct {
				Msg string `json:"msg"`
				URL string `json:"url"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				return line.URL, out, stop
			}
		}
		select {
		case err := <-done:
			once.Do(func() { runErr = err })
			t.Fatalf("Run ended before listening: %v\n%s", err, out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	t.Fatalf("server did not start:\n%s", out.String())
	return "", nil, nil
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	res, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

// TestRunZeroSetup is the README's first command: no settings at all but a
// data folder. It creates the database and secrets (0600) on first start and
// reuses them on the next, so sessions survive a restart.
func TestRunZeroSetup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	vars := map[string]string{"AICHAT_DATA_DIR": dir}
	url, out, stop := startRun(t, vars)
	if !strings.Contains(out.String(), `"database":"sqlite"`) || !strings.Contains(out.String(), `"broker":"in-process"`) ||
		!strings.Contains(out.String(), `"data_dir":"`+dir+`"`) {
		t.Errorf("start-up log does not say where data lives and what is used:\n%s", out.String())
	}
	status, sess := post(t, url+"/api/v1/auth/register", `{"email":"zed@example.com","password":"correct horse battery staple"}`)
	if status != 201 {
		t.Fatalf("register: %d %v", status, sess)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	for _, f := range []string{"secrets.json", "aichat.db"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", f, fi.Mode().Perm())
		}
	}
	fi, _ := os.Stat(dir)
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("data folder mode = %v, want no group/other access", fi.Mode().Perm())
	}
	keys1, _ := os.ReadFile(filepath.Join(dir, "secrets.json"))

	url, out, stop = startRun(t, vars)
	keys2, _ := os.ReadFile(filepath.Join(dir, "secrets.json"))
	if !bytes.Equal(keys1, keys2) {
		t.Fatal("secrets were regenerated on the second start")
	}
	if strings.Contains(out.String(), "generated secrets") {
		t.Error("second start claims to have generated secrets")
	}
	req, _ := http.NewRequest("GET", url+"/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+sess["access_token"].(string))
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("access token from before the restart: %v %v", res, err)
	}
	res.Body.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestRunOnPostgres(t *testing.T) {
	e := storetest.Postgres(t)
	url, out, stop := startRun(t, map[string]string{"AICHAT_DATA_DIR": t.TempDir(), "AICHAT_DATABASE_URL": e.URL})
	if !strings.Contains(out.String(), `"database":"postgres"`) {
		t.Errorf("log does not say postgres:\n%s", out.String())
	}
	if status, body := post(t, url+"/api/v1/auth/register", `{"email":"pg@example.com","password":"correct horse battery staple"}`); status != 201 {
		t.Fatalf("register: %d %v", status, body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestShutdownWaitsForRequests: a request in flight when SIGTERM arrives
// still gets its answer.
func TestShutdownWaitsForRequests(t *testing.T) {
	url, _, stop := startRun(t, map[string]string{"AICHAT_DATA_DIR": t.TempDir()})
	got := make(chan int, 1)
	go func() {
		// Registration hashes with the production argon2id cost: slow enough
		// to still be running when stop is called.
		status, _ := post(t, url+"/api/v1/auth/register", `{"email":"slow@example.com","password":"correct horse battery staple"}`)
		got <- status
	}()
	time.Sleep(5 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if status := <-got; status != 201 {
		t.Fatalf("request in flight during shutdown: %d, want 201", status)
	}
}

func TestMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	var out lockedBuffer
	vars := env(map[string]string{"AICHAT_DATA_DIR": dir, "AICHAT_LOG_FORMAT": "json"})
	if err := app.Run(context.Background(), []string{"migrate"}, vars, &out, &out); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), `"applied":0`) || !strings.Contains(out.String(), `"database migrated"`) {
		t.Fatalf("first migrate did not apply the schema:\n%s", out.String())
	}
	out = lockedBuffer{}
	if err := app.Run(context.Background(), []string{"migrate"}, vars, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"applied":0`) {
		t.Fatalf("second migrate applied again:\n%s", out.String())
	}
}

func TestAdminCreateCommand(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"AICHAT_DATA_DIR": dir}
	var out, errOut lockedBuffer
	err := app.Run(context.Background(), []string{"admin", "create", "--email", "Root@Example.com"}, env(vars), &out, &errOut)
	if err != nil {
		t.Fatalf("admin create: %v\n%s", err, errOut.String())
	}
	line := strings.TrimSpace(out.String())
	pw, ok := strings.CutPrefix(line, "created admin root@example.com with password: ")
	if !ok || len(pw) < 20 {
		t.Fatalf("output = %q, want the generated password", line)
	}
	url, _, stop := startRun(t, vars)
	defer stop()
	status, sess := post(t, url+"/api/v1/auth/login", `{"email":"root@example.com","password":"`+pw+`"}`)
	if status != 200 || sess["user"].(map[string]any)["role"] != "admin" {
		t.Fatalf("admin login: %d %v", status, sess)
	}
	out = lockedBuffer{}
	if err := app.Run(context.Background(), []string{"admin", "create", "--email", "root@example.com"}, env(vars), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "already an admin") {
		t.Fatalf("second create: %q", out.String())
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, nil, "unknown command"},
		{"bad duration", nil, map[string]string{"AICHAT_ACCESS_TTL": "soon"}, "AICHAT_ACCESS_TTL"},
		{"bad database url", nil, map[string]string{"AICHAT_DATABASE_URL": "mysql://x"}, "AICHAT_DATABASE_URL"},
		{"unknown flag", []string{"--colour"}, nil, "colour"},
		{"half an admin", nil, map[string]string{"AICHAT_ADMIN_EMAIL": "a@example.com"}, "AICHAT_ADMIN_PASSWORD"},
		{"bad key", nil, map[string]string{"AICHAT_JWT_KEYS": "k1=notbase64!"}, "AICHAT_JWT_KEYS"},
		{"admin without email", []string{"admin", "create"}, nil, "--email"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.vars == nil {
				tc.vars = map[string]string{}
			}
			tc.vars["AICHAT_DATA_DIR"] = t.TempDir()
			var out lockedBuffer
			err := app.Run(context.Background(), tc.args, env(tc.vars), &out, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// authedCall returns a function that sends a request to the server at
// base with tok as its bearer token and decodes the JSON answer.
func authedCall(t *testing.T, base, tok string) func(method, path, body string) (int, map[string]any) {
	return func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		json.NewDecoder(res.Body).Decode(&m)
		return res.StatusCode, m
	}
}
