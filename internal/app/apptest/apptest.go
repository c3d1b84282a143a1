// Package apptest starts a whole aichat in-process for tests: the real app
// (real router, real services, a real database from storetest) behind an
// httptest server, with helpers to call the JSON API.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/app"
	"github.com/aichat/aichat/internal/auth"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/netstamp"
	"github.com/aichat/aichat/internal/store/storetest"
)

// CheapArgon2 keeps password hashing fast in tests; the production
// parameters are tested on their own in package auth.
var CheapArgon2 = auth.Argon2Params{Memory: 1024, Time: 1, Threads: 1}

// Server is a running aichat under test.
type Server struct {
	URL    string
	App    *app.App
	Engine storetest.Engine
	logs   *syncBuffer

	stop     func()
	stopOnce sync.Once
}

// Option adjusts the configuration or build options before start.
type Option func(*config.Config, *app.Options)

// WithClock makes the app read time from now.
func WithClock(now func() time.Time) Option {
	return func(_ *config.Config, o *app.Options) { o.Now = now }
}

// WithConfig lets a test change any setting.
func WithConfig(f func(*config.Config)) Option {
	return func(c *config.Config, _ *app.Options) { f(c) }
}

// Start builds the app on engine e and serves it until the test ends.
func Start(t testing.TB, e storetest.Engine, opts ...Option) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.DatabaseURL = e.URL
	cfg.LogFormat = "json"
	cfg.AIOllamaProbe = false // tests never talk to a model on the machine
	o := app.Options{Argon2: &CheapArgon2}
	for _, opt := range opts {
		opt(&cfg, &o)
	}
	logs := &syncBuffer{}
	log := app.NewLogger(logs, "json", "debug")
	a, err := app.New(context.Background(), cfg, log, o)
	if err != nil {
		t.Fatalf("start app: %v", err)
	}
	// Stamped connections, as app.Serve makes them in production.
	ts := httptest.NewUnstartedServer(a.Handler)
	ts.Listener = netstamp.Listener(ts.Listener)
	ts.Start()
	srv := &Server{URL: ts.URL, App: a, Engine: e, logs: logs}
	srv.stop = func() {
		srv.stopOnce.Do(func() {
			ts.Close()
			a.Close()
		})
	}
	t.Cleanup(srv.stop)
	return srv
}

// Stop shuts the instance down as a SIGTERM would (no new requests, every
// socket closed with 1001, generations ended and saved), before the test
// ends; the test's cleanup then does nothing more.
func (s *Server) Stop() { s.stop() }

// Logs returns everything the app has logged so far.
func (s *Server) Logs() string { return s.logs.String() }

// Response is a finished API call.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test if it cannot.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Error is the decoded error body.
type Error struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Field     string `json:"field"`
	RequestID string `json:"request_id"`
}

// Err decodes the body as an error answer.
func (r *Response) Err(t testing.TB) Error {
	t.Helper()
	var e Error
	r.JSON(t, &e)
	return e
}

// Do calls the API. body may be nil, a string (sent as is) or a value
// (sent as JSON); token, when set, goes in the Authorization header.
func (s *Server) Do(t testing.TB, method, path, token string, body any) *Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return send(t, req)
}

func send(t testing.TB, req *http.Request) *Response {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &Response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// Session is a signed-in user.
type Session struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	ExpiresIn    int       `json:"expires_in"`
	User         auth.User `json:"user"`
}

// Password is the password Register uses.
const Password = "correct horse battery staple"

// Register creates a user with Password and returns the session.
func (s *Server) Register(t testing.TB, email string) Session {
	t.Helper()
	r := s.Do(t, "POST", "/api/v1/auth/register", "", map[string]string{"email": email, "password": Password})
	if r.Status != http.StatusCreated {
		t.Fatalf("register %s: %d %s", email, r.Status, r.Body)
	}
	var sess Session
	r.JSON(t, &sess)
	return sess
}

// Admin creates an admin account and signs it in.
func (s *Server) Admin(t testing.TB, email string) Session {
	t.Helper()
	if _, _, err := s.App.Auth.EnsureAdmin(context.Background(), email, Password); err != nil {
		t.Fatalf("create admin: %v", err)
	}
	r := s.Do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": Password})
	if r.Status != http.StatusOK {
		t.Fatalf("admin login: %d %s", r.Status, r.Body)
	}
	var sess Session
	r.JSON(t, &sess)
	return sess
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// DoHeader sends a request without a body and with the given headers as is.
func (s *Server) DoHeader(t testing.TB, method, path string, header map[string]string) *Response {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return send(t, req)
}
