// Package redistest gives tests a real Redis: the shared test server named by
// AICHAT_TEST_REDIS_URL (with a unique key prefix per test, cleaned up when
// the test ends), or a private redis-server process that a test may stop and
// restart under a running aichat server. Without the shared server or the
// binary the test is skipped, or fails when CI=true, so CI can never pass
// without exercising Redis.
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvURL names the environment variable holding the shared test Redis URL.
const EnvURL = "AICHAT_TEST_REDIS_URL"

// URL returns the shared test Redis from AICHAT_TEST_REDIS_URL, e.g.
// redis://127.0.0.1:6379/0. Without it the test is skipped, or fails when
// CI=true. Tests sharing it should keep to their own keys: see Shared.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		missing(t, EnvURL+" is not set", "set "+EnvURL+"=redis://127.0.0.1:6379/0 to run them")
	}
	return u
}

// Shared returns the shared test Redis and a key prefix of the form
// "t_<random>:" that no other test uses. Every key starting with the prefix
// is deleted when the test ends.
func Shared(t testing.TB) (url, prefix string) {
	t.Helper()
	url = URL(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("%s: %v", EnvURL, redact(err, url))
	}
	prefix = "t_" + randomHex(8) + ":"
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		t.Fatalf("ping the Redis at %s (is it running?): %v", EnvURL, err)
	}
	t.Cleanup(func() {
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := DeletePrefix(ctx, c, prefix); err != nil {
			t.Errorf("redistest: clean up keys %s*: %v", prefix, err)
		}
	})
	return url, prefix
}

// DeletePrefix deletes every key starting with prefix. The prefix must not
// hold glob characters (*?[]\).
func DeletePrefix(ctx context.Context, c *redis.Client, prefix string) error {
	iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := c.Unlink(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return c.Unlink(ctx, batch...).Err()
	}
	return nil
}

// Server is a private redis-server process listening on a loopback port,
// without persistence: every (re)start begins empty.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	mu     sync.Mutex
	proc   *os.Process   // nil when stopped
	exited chan struct{} // closed once proc has been waited for
}

// Start runs a private redis-server (from PATH) on a free loopback port,
// waits until it answers PING and stops it when the test ends. Without the
// binary the test is skipped, or fails when CI=true.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missing(t, "redis-server is not in PATH", "install redis-server to run them")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	t.Cleanup(s.Stop)
	// A free port found by listening on :0 may be taken again before
	// redis-server binds it, so try a few.
	var last error
	for range 5 {
		s.port, err = freePort()
		if err != nil {
			t.Fatalf("redistest: find a free port: %v", err)
		}
		if last = s.start(); last == nil {
			return s
		}
	}
	t.Fatalf("redistest: start redis-server: %v", last)
	return nil
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Stop kills the server and returns once its port refuses connections. It
// does nothing when the server is not running.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.Kill()
	<-s.exited
	s.proc, s.exited = nil, nil
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: port %d still open after redis-server was killed", s.port)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Restart stops the server if it runs and starts a fresh, empty one on the
// same port.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	// The old socket may linger briefly; redis-server sets SO_REUSEADDR, but
	// retry anyway rather than fail a test on a transient bind error.
	for range 20 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart redis-server on port %d: %v", s.port, err)
}

// start launches redis-server on s.port and waits until it answers PING.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &lockedBuffer{}
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", "",
	)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ping(s.Addr()) == nil {
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited: %s", bytes.TrimSpace(out.Bytes()))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server did not answer PING within 10s: %s", bytes.TrimSpace(out.Bytes()))
		}
	}
	// The goroutine above owns cmd.Wait; Stop waits on exited instead.
	s.proc, s.exited = cmd.Process, exited
	return nil
}

// ping sends one inline PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func missing(t testing.TB, why, how string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s but CI=true: Redis tests must run in CI", why)
	}
	t.Skipf("Redis tests skipped: %s; %s", why, how)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// redact keeps a URL's password out of an error message: net/url quotes the
// whole URL in its errors, so keep only the reason, and blank the password
// wherever else it appears.
func redact(err error, rawURL string) string {
	var ue *neturl.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if _, rest, ok := strings.Cut(rawURL, "://"); ok {
		host, _, _ := strings.Cut(rest, "/")
		if i := strings.LastIndex(host, "@"); i >= 0 {
			if _, pw, ok := strings.Cut(host[:i], ":"); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "xxxxx")
			}
		}
	}
	return msg
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}
