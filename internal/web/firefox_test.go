package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Firefox is driven over WebDriver BiDi (its built-in remote protocol): a
// WebSocket that takes JSON commands, so no driver binary is needed. Only
// what the tests use is here: navigate, resize, evaluate.

func firefoxPath(t *testing.T) string {
	return browserPath(t, "Firefox", "AICHAT_TEST_FIREFOX", "firefox-esr", "/usr/bin/firefox-esr", "/usr/bin/firefox")
}

type firefox struct {
	t    *testing.T
	conn *websocket.Conn
	id   int
	ctx  string // the browsing context (tab)
}

var bidiListening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

func startFirefox(t *testing.T, width, height int) *firefox {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tests skipped in -short mode")
	}
	bin := firefoxPath(t)
	profile := t.TempDir()
	// Quiet start: no first-run pages, no update or telemetry traffic (the
	// machine's network is closed), no default-browser check.
	prefs := []string{
		`user_pref("browser.shell.checkDefaultBrowser", false);`,
		`user_pref("browser.startup.homepage_override.mstone", "ignore");`,
		`user_pref("datareporting.policy.dataSubmissionEnabled", false);`,
		`user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);`,
		`user_pref("app.update.disabledForTesting", true);`,
		`user_pref("network.captive-portal-service.enabled", false);`,
		`user_pref("network.connectivity-service.enabled", false);`,
		`user_pref("browser.safebrowsing.malware.enabled", false);`,
		`user_pref("browser.safebrowsing.phishing.enabled", false);`,
		`user_pref("extensions.update.enabled", false);`,
		`user_pref("browser.newtabpage.enabled", false);`,
		`user_pref("remote.prefs.recommended", true);`,
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(strings.Join(prefs, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-remote", "--profile", profile,
		"--remote-debugging-port=0", "--width", fmt.Sprint(width), "--height", fmt.Sprint(height))
	cmd.Env = append(os.Environ(), "MOZ_HEADLESS=1", "MOZ_CRASHREPORTER_DISABLE=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start firefox: %v", err)
	}
	exited := make(chan struct{})
	urls := make(chan string, 1)
	go func() { // owned by the process: ends when its stderr closes
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := bidiListening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	var url string
	select {
	case url = <-urls:
	case <-exited:
		t.Fatal("firefox exited before its remote agent listened")
	case <-time.After(60 * time.Second):
		t.Fatal("firefox did not start its remote agent within 60 s")
	}
	conn, _, err := websocket.DefaultDialer.Dial(url+"/session", nil)
	if err != nil {
		t.Fatalf("connect to firefox: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	f := &firefox{t: t, conn: conn}
	f.call("session.new", map[string]any{"capabilities": map[string]any{}})
	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	if err := json.Unmarshal(f.call("browsingContext.getTree", map[string]any{}), &tree); err != nil || len(tree.Contexts) == 0 {
		t.Fatalf("firefox: no tab: %v", err)
	}
	f.ctx = tree.Contexts[0].Context
	f.call("browsingContext.setViewport", map[string]any{"context": f.ctx, "viewport": map[string]int{"width": width, "height": height}})
	return f
}

// call sends a command and waits for its answer (events are not
// subscribed to, so every message is an answer).
func (f *firefox) call(method string, params any) json.RawMessage {
	f.t.Helper()
	f.id++
	id := f.id
	if err := f.conn.WriteJSON(map[string]any{"id": id, "method": method, "params": params}); err != nil {
		f.t.Fatalf("firefox %s: %v", method, err)
	}
	_ = f.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var msg struct {
			ID      int             `json:"id"`
			Type    string          `json:"type"`
			Result  json.RawMessage `json:"result"`
			Error   string          `json:"error"`
			Message string          `json:"message"`
		}
		if err := f.conn.ReadJSON(&msg); err != nil {
			f.t.Fatalf("firefox %s: %v", method, err)
		}
		if msg.ID != id {
			continue
		}
		if msg.Type == "error" {
			f.t.Fatalf("firefox %s: %s: %s", method, msg.Error, msg.Message)
		}
		return msg.Result
	}
}

func (f *firefox) navigate(url string) {
	f.t.Helper()
	f.call("browsingContext.navigate", map[string]any{"context": f.ctx, "url": url, "wait": "complete"})
}

// eval evaluates a JavaScript expression (awaiting a promise) and decodes
// its value, passed through JSON.
func (f *firefox) eval(expr string, v any) {
	f.t.Helper()
	raw := f.call("script.evaluate", map[string]any{
		"expression":   "(async () => JSON.stringify(await (" + expr + ")))()",
		"target":       map[string]string{"context": f.ctx},
		"awaitPromise": true,
	})
	var res struct {
		Type   string `json:"type"`
		Result struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		f.t.Fatalf("firefox eval %s: %v", expr, err)
	}
	if res.Type == "exception" {
		f.t.Fatalf("firefox eval %s: %s", expr, res.ExceptionDetails.Text)
	}
	if v == nil || res.Result.Type != "string" {
		return
	}
	if err := json.Unmarshal([]byte(res.Result.Value), v); err != nil {
		f.t.Fatalf("firefox eval %s: decode %q: %v", expr, res.Result.Value, err)
	}
}

func (f *firefox) waitJS(what, expr string) {
	f.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var ok bool
		f.eval("!!("+expr+")", &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			f.screenshot("failure-firefox")
			f.t.Fatalf("firefox: waiting for %s (%s): timeout", what, expr)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (f *firefox) screenshot(name string) {
	raw := f.call("browsingContext.captureScreenshot", map[string]any{"context": f.ctx})
	var shot struct {
		Data []byte `json:"data"` // base64 in JSON
	}
	if json.Unmarshal(raw, &shot) != nil {
		return
	}
	dir := os.Getenv("AICHAT_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "aichat-artifacts")
	}
	_ = os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, name+".png")
	if os.WriteFile(path, shot.Data, 0o644) == nil {
		f.t.Logf("screenshot: %s", path)
	}
}
