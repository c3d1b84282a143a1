package redisbroker_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/realtime"
	"github.com/aichat/aichat/internal/realtime/redisbroker"
	"github.com/aichat/aichat/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// recorder is a realtime.Handler that remembers what it was handed.
type recorder struct {
	mu       sync.Mutex
	payloads []string
	resyncs  int
}

func (r *recorder) Deliver(p []byte) {
	r.mu.Lock()
	r.payloads = append(r.payloads, string(p))
	r.mu.Unlock()
}

func (r *recorder) Resync() {
	r.mu.Lock()
	r.resyncs++
	r.mu.Unlock()
}

func (r *recorder) got() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.payloads), r.resyncs
}

// clock is an injectable time source shared by the brokers of a test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// logBuffer collects log output from concurrent goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newBroker(t testing.TB, url string, opt redisbroker.Options) *redisbroker.Broker {
	t.Helper()
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := redisbroker.New(ctx, url, opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// testWriter sends broker logs to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// run starts b.Run(h) and returns a function that cancels it and checks
// that it returned nil promptly. It is also called when the test ends.
func run(t testing.TB, b *redisbroker.Broker, h realtime.Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Run did not return within 5s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func rawClient(t testing.TB, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// waitSubscribers waits until channel has n subscribers, so that what is
// published next reaches them.
func waitSubscribers(t testing.TB, c *redis.Client, channel string, n int64) {
	t.Helper()
	waitFor(t, 5*time.Second, fmt.Sprintf("%d subscribers on %s", n, channel), func() bool {
		m, err := c.PubSubNumSub(context.Background(), channel).Result()
		return err == nil && m[channel] == n
	})
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPublishReachesOtherInstancesInOrder(t *testing.T) {
	url, prefix := redistest.Shared(t)
	a := newBroker(t, url, redisbroker.Options{Prefix: prefix, Instance: "a"})
	b := newBroker(t, url, redisbroker.Options{Prefix: prefix, Instance: "b"})
	var ha, hb recorder
	run(t, a, &ha)
	run(t, b, &hb)
	raw := rawClient(t, url)
	waitSubscribers(t, raw, prefix+"events", 2)

	want := []string{
		"",                          // empty
		`{"type":"message","id":1}`, // typical
		"line one\nline two\n",      // separators inside the payload
		"a\nb",                      // looks like a frame of instance "a"
		string([]byte{0, 1, 2, 0xff, '\r', '\n'}), // binary
		strings.Repeat("x", 256<<10),              // larger than the pooled buffers
	}
	for i := range 200 {
		want = append(want, fmt.Sprintf("envelope %d", i))
	}
	ctx := context.Background()
	for _, p := range want {
		if err := a.Publish(ctx, []byte(p)); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	waitFor(t, 5*time.Second, "B to receive every envelope", func() bool {
		got, _ := hb.got()
		return len(got) >= len(want)
	})
	got, resyncs := hb.got()
	if !slices.Equal(got, want) {
		t.Errorf("B received %d payloads, not the %d published in order", len(got), len(want))
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("first difference at %d: got %.40q, want %.40q", i, got[i], want[i])
			}
		}
	}
	if resyncs != 0 {
		t.Errorf("B resynced %d times without any outage", resyncs)
	}

	// A message without a frame header is dropped; then B's marker reaches
	// A after everything A published, had A received its own envelopes.
	if err := raw.Publish(ctx, prefix+"events", "no header").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, []byte("marker from b")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "A to receive B's marker", func() bool {
		got, _ := ha.got()
		return len(got) > 0
	})
	if got, _ := ha.got(); !slices.Equal(got, []string{"marker from b"}) {
		t.Errorf("A received %d payloads (%.40q), want only B's marker: an instance must not receive its own envelopes", len(got), got)
	}
}

type presenceStep struct {
	name string
	do   func(ctx context.Context) (bool, error)
	want bool
}

func runSteps(t *testing.T, steps []presenceStep) {
	t.Helper()
	ctx := context.Background()
	for i, s := range steps {
		got, err := s.do(ctx)
		if err != nil {
			t.Fatalf("step %d %s: %v", i, s.name, err)
		}
		if got != s.want {
			t.Fatalf("step %d %s = %v, want %v", i, s.name, got, s.want)
		}
	}
}

func online(b *redisbroker.Broker, user string) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) { return b.Online(ctx, user) }
}

func offline(b *redisbroker.Broker, user string) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) { return b.Offline(ctx, user) }
}

// isOnline asks AreOnline about user and a user nobody saw, and fails when
// the latter is reported or the map holds anything else.
func isOnline(b *redisbroker.Broker, user string) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		m, err := b.AreOnline(ctx, []string{user, "nobody"})
		if err != nil {
			return false, err
		}
		if m["nobody"] || len(m) > 1 {
			return false, fmt.Errorf("AreOnline = %v: reports users who never came online", m)
		}
		return m[user], nil
	}
}

func refresh(b *redisbroker.Broker, users ...string) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) { return true, b.Refresh(ctx, users) }
}

func advance(c *clock, d time.Duration) func(context.Context) (bool, error) {
	return func(context.Context) (bool, error) { c.Add(d); return true, nil }
}

func TestPresenceAcrossInstances(t *testing.T) {
	url, prefix := redistest.Shared(t)
	a := newBroker(t, url, redisbroker.Options{Prefix: prefix, Instance: "a"})
	b := newBroker(t, url, redisbroker.Options{Prefix: prefix, Instance: "b"})
	runSteps(t, []presenceStep{
		{"nobody online: A.AreOnline(u)", isOnline(a, "u"), false},
		{"A.Online(u)", online(a, "u"), true},
		{"B.Online(u)", online(b, "u"), false},
		{"A.Online(u) again", online(a, "u"), false},
		{"A.Offline(u)", offline(a, "u"), false},
		{"A.AreOnline(u)", isOnline(a, "u"), true},
		{"B.AreOnline(u)", isOnline(b, "u"), true},
		{"B.Offline(u)", offline(b, "u"), true},
		{"A.AreOnline(u) after all left", isOnline(a, "u"), false},
		{"B.AreOnline(u) after all left", isOnline(b, "u"), false},
		{"A.Online(u) comes back", online(a, "u"), true},
		{"A.Offline(u) leaves again", offline(a, "u"), true},
	})
}

func TestPresenceExpiresUnlessRefreshed(t *testing.T) {
	url, prefix := redistest.Shared(t)
	clk := &clock{now: time.Now()}
	a := newBroker(t, url, redisbroker.Options{Prefix: prefix, Instance: "a", Now: clk.Now})
	b := newBroker(t, url, redisbroker.Options{Prefix: prefix, Instance: "b", Now: clk.Now})
	ttl := realtime.PresenceTTL
	runSteps(t, []presenceStep{
		{"A.Online(gone)", online(a, "gone"), true},
		{"A.Online(kept)", online(a, "kept"), true},
		{"half a TTL later", advance(clk, ttl/2), true},
		{"A.Refresh(kept)", refresh(a, "kept"), true},
		{"just past the first records' expiry", advance(clk, ttl/2+time.Millisecond), true},
		// A "died": it never called Offline(gone).
		{"B.AreOnline(gone) after expiry", isOnline(b, "gone"), false},
		{"A.AreOnline(gone) after expiry", isOnline(a, "gone"), false},
		{"B.AreOnline(kept) refreshed", isOnline(b, "kept"), true},
		{"B.Online(gone) counts as first", online(b, "gone"), true},
		{"A.Online(gone) its expired record does not count", online(a, "gone"), false},
		{"past the refreshed expiry", advance(clk, ttl/2), true},
		{"B.AreOnline(kept) after the refresh expired", isOnline(b, "kept"), false},
		{"B.Online(kept) counts as first", online(b, "kept"), true},
		{"B.Offline(kept)", offline(b, "kept"), true},
	})

	// The keys expire by themselves too, so dead keys vanish.
	raw := rawClient(t, url)
	for _, user := range []string{"gone", "kept"} {
		pttl, err := raw.PTTL(context.Background(), prefix+"presence:"+user).Result()
		if user == "kept" {
			if err != nil || pttl != -2*time.Nanosecond {
				t.Errorf("presence key of %s after its last Offline: PTTL = %v, %v; want it deleted", user, pttl, err)
			}
			continue
		}
		if err != nil || pttl <= 0 || pttl > ttl {
			t.Errorf("presence key of %s: PTTL = %v, %v; want within (0, %s]", user, pttl, err, ttl)
		}
	}
}

func TestRefreshManyUsers(t *testing.T) {
	url, prefix := redistest.Shared(t)
	clk := &clock{now: time.Now()}
	a := newBroker(t, url, redisbroker.Options{Prefix: prefix, Instance: "a", Now: clk.Now})
	b := newBroker(t, url, redisbroker.Options{Prefix: prefix, Instance: "b", Now: clk.Now})
	ctx := context.Background()
	users := make([]string, 1234) // more than one pipeline chunk
	for i := range users {
		users[i] = fmt.Sprintf("user%d", i)
	}
	if err := a.Refresh(ctx, users); err != nil {
		t.Fatal(err)
	}
	clk.Add(realtime.PresenceTTL - time.Millisecond)
	m, err := b.AreOnline(ctx, append(users, "nobody"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != len(users) || m["nobody"] {
		t.Errorf("AreOnline reports %d users online, want exactly the %d refreshed", len(m), len(users))
	}
}

func TestEmptyInputsNeedNoRoundTrip(t *testing.T) {
	url, prefix := redistest.Shared(t)
	a := newBroker(t, url, redisbroker.Options{Prefix: prefix})
	a.Close() // any round trip would fail now
	ctx := context.Background()
	if _, err := a.Online(ctx, "u"); err == nil {
		t.Fatal("Online on a closed broker succeeded; the checks below would prove nothing")
	}
	m, err := a.AreOnline(ctx, nil)
	if err != nil || m == nil || len(m) != 0 {
		t.Errorf("AreOnline(nil) = %v, %v; want an empty map", m, err)
	}
	if err := a.Refresh(ctx, nil); err != nil {
		t.Errorf("Refresh(nil) = %v", err)
	}
}

func TestRunSurvivesRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	var logs logBuffer
	a := newBroker(t, srv.URL(), redisbroker.Options{Instance: "a"})
	b := newBroker(t, srv.URL(), redisbroker.Options{
		Instance: "b",
		Log:      slog.New(slog.NewTextHandler(&logs, nil)),
	})
	var h recorder
	run(t, b, &h)
	waitSubscribers(t, rawClient(t, srv.URL()), "aichat:events", 1)

	ctx := context.Background()
	if err := a.Publish(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, `"before" to arrive`, func() bool {
		got, _ := h.got()
		return len(got) == 1
	})

	srv.Stop()
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	start := time.Now()
	err := a.Publish(pctx, []byte("lost"))
	cancel()
	if err == nil {
		t.Fatal("Publish with Redis down succeeded")
	}
	if d := time.Since(start); d > 3500*time.Millisecond {
		t.Errorf("Publish with Redis down took %s", d)
	}
	if err := b.Ping(ctx); err == nil {
		t.Error("Ping with Redis down succeeded")
	}
	t.Logf("Publish with Redis down failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	time.Sleep(500 * time.Millisecond) // let Run retry a few times

	srv.Restart()
	restarted := time.Now()
	waitFor(t, 10*time.Second, "Run to resubscribe and call Resync", func() bool {
		_, resyncs := h.got()
		return resyncs > 0
	})
	t.Logf("Run resubscribed %s after the restart", time.Since(restarted).Round(time.Millisecond))
	// a's pooled connections died with the server; go-redis redials.
	if err := a.Publish(ctx, []byte("after")); err != nil {
		t.Fatalf("Publish after the restart: %v", err)
	}
	waitFor(t, 5*time.Second, `"after" to arrive`, func() bool {
		got, _ := h.got()
		return len(got) == 2
	})
	got, resyncs := h.got()
	if !slices.Equal(got, []string{"before", "after"}) {
		t.Errorf("received %q, want before and after", got)
	}
	if resyncs != 1 {
		t.Errorf("Resync called %d times for one outage, want 1", resyncs)
	}
	out := logs.String()
	if n := strings.Count(out, "subscription lost"); n != 1 {
		t.Errorf("logged the outage %d times, want once:\n%s", n, out)
	}
	if n := strings.Count(out, "subscription restored"); n != 1 {
		t.Errorf("logged the recovery %d times, want once:\n%s", n, out)
	}
	t.Logf("broker log:\n%s", out)
}

// TestRunResyncsWhenFirstSubscriptionIsLate: Redis is down when Run starts,
// so envelopes may be missed before the first subscription; Run resyncs
// once it is subscribed.
func TestRunResyncsWhenFirstSubscriptionIsLate(t *testing.T) {
	srv := redistest.Start(t)
	a := newBroker(t, srv.URL(), redisbroker.Options{Instance: "a"})
	b := newBroker(t, srv.URL(), redisbroker.Options{Instance: "b"})
	srv.Stop()
	var h recorder
	run(t, b, &h)
	time.Sleep(300 * time.Millisecond)
	if _, resyncs := h.got(); resyncs != 0 {
		t.Fatalf("Resync called %d times before any subscription", resyncs)
	}
	srv.Restart()
	waitFor(t, 10*time.Second, "Run to subscribe and call Resync", func() bool {
		_, resyncs := h.got()
		return resyncs > 0
	})
	if err := a.Publish(context.Background(), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, `"hello" to arrive`, func() bool {
		got, _ := h.got()
		return len(got) == 1
	})
	if got, resyncs := h.got(); got[0] != "hello" || resyncs != 1 {
		t.Errorf("received %q with %d Resyncs, want hello with 1", got, resyncs)
	}
}

// TestRunReplacesSilentConnection: a subscription whose connection silently
// stops carrying data (a NAT or load balancer forgot it; no FIN, no RST) is
// detected by the health check and replaced, with a Resync.
func TestRunReplacesSilentConnection(t *testing.T) {
	url, prefix := redistest.Shared(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, opt.Addr)
	var logs logBuffer
	a := newBroker(t, url, redisbroker.Options{Prefix: prefix, Instance: "a"})
	b := newBroker(t, strings.Replace(url, opt.Addr, p.addr(), 1), redisbroker.Options{
		Prefix:      prefix,
		Instance:    "b",
		HealthCheck: 200 * time.Millisecond,
		Log:         slog.New(slog.NewTextHandler(&logs, nil)),
	})
	var h recorder
	run(t, b, &h)
	raw := rawClient(t, url)
	waitSubscribers(t, raw, prefix+"events", 1)
	ctx := context.Background()
	// Quiet for several health-check periods: PINGs answered, no Resync.
	time.Sleep(700 * time.Millisecond)
	if err := a.Publish(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, `"before" to arrive`, func() bool {
		got, _ := h.got()
		return len(got) == 1
	})
	if _, resyncs := h.got(); resyncs != 0 {
		t.Fatalf("Resync called %d times on a healthy, idle connection", resyncs)
	}

	p.freeze() // the subscription's connection now swallows everything
	if err := a.Publish(ctx, []byte("lost")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "Run to replace the silent connection and call Resync", func() bool {
		_, resyncs := h.got()
		return resyncs > 0
	})
	if err := a.Publish(ctx, []byte("after")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, `"after" to arrive`, func() bool {
		got, _ := h.got()
		return len(got) == 2
	})
	if got, resyncs := h.got(); !slices.Equal(got, []string{"before", "after"}) || resyncs != 1 {
		t.Errorf("received %q with %d Resyncs, want before and after with 1", got, resyncs)
	}
	if out := logs.String(); strings.Count(out, "subscription lost") != 1 || !strings.Contains(out, "no answer to PING") {
		t.Errorf("want one outage logged, blamed on the unanswered PING:\n%s", out)
	}
}

// proxy forwards TCP connections to a Redis and can freeze the ones it
// carries: they stay open but pass nothing on, like a connection a NAT
// dropped. Connections made after a freeze work.
type proxy struct {
	l  net.Listener
	mu sync.Mutex
	cs []*proxied
}

type proxied struct {
	client, server net.Conn
	frozen         chan struct{}
}

func startProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		for _, c := range p.cs {
			c.client.Close()
			c.server.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", upstream)
			if err != nil {
				client.Close()
				continue
			}
			c := &proxied{client: client, server: server, frozen: make(chan struct{})}
			p.mu.Lock()
			p.cs = append(p.cs, c)
			p.mu.Unlock()
			wg.Go(func() { c.pipe(server, client) })
			wg.Go(func() { c.pipe(client, server) })
		}
	})
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.cs {
		select {
		case <-c.frozen:
		default:
			close(c.frozen)
		}
	}
}

// pipe copies from src to dst until either closes; once frozen it reads but
// drops everything.
func (c *proxied) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			dst.Close()
			return
		}
		select {
		case <-c.frozen:
			continue
		default:
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			src.Close()
			return
		}
	}
}

func TestRunReturns(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setUp readies the broker; stop makes Run return.
		setUp func(t *testing.T) *redisbroker.Broker
		stop  func(b *redisbroker.Broker, cancel context.CancelFunc)
	}{
		{"cancel while subscribed", subscribedBroker, func(_ *redisbroker.Broker, cancel context.CancelFunc) { cancel() }},
		{"close while subscribed", subscribedBroker, func(b *redisbroker.Broker, _ context.CancelFunc) { b.Close() }},
		{"cancel while Redis is down", downBroker, func(_ *redisbroker.Broker, cancel context.CancelFunc) { cancel() }},
		{"close while Redis is down", downBroker, func(b *redisbroker.Broker, _ context.CancelFunc) { b.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.setUp(t)
			before := runtime.NumGoroutine()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- b.Run(ctx, &recorder{}) }()
			time.Sleep(300 * time.Millisecond) // subscribed, or retrying
			tc.stop(b, cancel)
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Run did not return within 2s")
			}
			// Nothing Run started may outlive it.
			waitFor(t, 2*time.Second, fmt.Sprintf("goroutines back to %d", before), func() bool {
				return runtime.NumGoroutine() <= before
			})
		})
	}
}

func subscribedBroker(t *testing.T) *redisbroker.Broker {
	url, prefix := redistest.Shared(t)
	return newBroker(t, url, redisbroker.Options{Prefix: prefix})
}

func downBroker(t *testing.T) *redisbroker.Broker {
	srv := redistest.Start(t)
	b := newBroker(t, srv.URL(), redisbroker.Options{})
	srv.Stop()
	return b
}

func TestNameAndURLSecrets(t *testing.T) {
	url, prefix := redistest.Shared(t)
	b := newBroker(t, url, redisbroker.Options{Prefix: prefix})
	opt, _ := redis.ParseURL(url)
	if got, want := b.Name(), "redis "+opt.Addr; got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
	if b.Instance() == "" || strings.ContainsAny(b.Instance(), "\n ") {
		t.Errorf("generated instance id %q", b.Instance())
	}
	if other := newBroker(t, url, redisbroker.Options{Prefix: prefix}); other.Instance() == b.Instance() {
		t.Errorf("two brokers generated the same instance id %q", b.Instance())
	}

	const pw = "s3cret-Passw0rd"
	for _, tc := range []struct {
		name, url string
		opt       redisbroker.Options
	}{
		{"unreachable", "redis://user:" + pw + "@127.0.0.1:1/0", redisbroker.Options{}},
		{"bad port", "redis://user:" + pw + "@127.0.0.1:port/0", redisbroker.Options{}},
		{"bad database", "redis://:" + pw + "@127.0.0.1:6379/x", redisbroker.Options{}},
		{"bad scheme", "http://:" + pw + "@127.0.0.1:6379/0", redisbroker.Options{}},
		{"line break in instance", url, redisbroker.Options{Instance: "a\nb"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			b, err := redisbroker.New(ctx, tc.url, tc.opt)
			if err == nil {
				b.Close()
				t.Fatal("New succeeded")
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error reveals the password: %v", err)
			}
			t.Logf("New: %v", err)
		})
	}
}

// BenchmarkPublishDeliver measures one envelope's round trip: Publish on A
// until B's handler has it, over the shared Redis.
func BenchmarkPublishDeliver(bm *testing.B) {
	url, prefix := redistest.Shared(bm)
	silent := redisbroker.Options{Prefix: prefix, Log: slog.New(slog.DiscardHandler)}
	a, b := silent, silent
	a.Instance, b.Instance = "a", "b"
	pa := newBroker(bm, url, a)
	pb := newBroker(bm, url, b)
	h := &signal{ch: make(chan struct{}, 1)}
	run(bm, pb, h)
	waitSubscribers(bm, rawClient(bm, url), prefix+"events", 1)
	payload := []byte(`{"type":"message","chat":"c_0123456789","message":{"id":"m_0123456789","sender":"u_0123456789","body":"hello there, how are you doing today?"}}`)
	ctx := context.Background()
	bm.ReportAllocs()
	bm.ResetTimer()
	for bm.Loop() {
		if err := pa.Publish(ctx, payload); err != nil {
			bm.Fatal(err)
		}
		<-h.ch
	}
}

// BenchmarkPublish measures Publish alone, the hub's hot path.
func BenchmarkPublish(bm *testing.B) {
	url, prefix := redistest.Shared(bm)
	a := newBroker(bm, url, redisbroker.Options{Prefix: prefix, Log: slog.New(slog.DiscardHandler)})
	payload := bytes.Repeat([]byte("x"), 200)
	ctx := context.Background()
	bm.ReportAllocs()
	for bm.Loop() {
		if err := a.Publish(ctx, payload); err != nil {
			bm.Fatal(err)
		}
	}
}

type signal struct{ ch chan struct{} }

func (s *signal) Deliver([]byte) { s.ch <- struct{}{} }
func (s *signal) Resync()        {}

// TestPingNeedsTheSubscription: an instance whose subscription is not
// confirmed misses other instances' envelopes, so /readyz (Ping) must say
// not ready until Run has subscribed.
func TestPingNeedsTheSubscription(t *testing.T) {
	url, prefix := redistest.Shared(t)
	b := newBroker(t, url, redisbroker.Options{Prefix: prefix})
	ctx := context.Background()
	if err := b.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded before Run subscribed")
	}
	run(t, b, &recorder{})
	deadline := time.Now().Add(5 * time.Second)
	for b.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Ping still fails after Run subscribed: %v", b.Ping(ctx))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
