package deploy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/ai/llm/llmtest"
	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/store/storetest"
	"github.com/gorilla/websocket"
)

const nginxTemplate = "nginx/templates/aichat.conf.template"

// nginxBinary finds Debian's nginx (in /usr/sbin, which is not always on
// PATH). Without one the test is skipped, except in CI (CI=true), where
// .ci/run installs it and a missing nginx is a failure.
func nginxBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nginx not found, and CI=true: .ci/run installs Debian's nginx; install it with apt-get install nginx")
	}
	t.Skip("nginx not found: install Debian's nginx (apt-get install nginx) to test deploy/nginx; skipped")
	return ""
}

// nginxSite is deploy/nginx's template rendered for loopback: the
// production names and ports swapped for test ones. Every swap must match,
// so the test notices when the template changes under it.
type nginxSite struct {
	dir                 string // prefix: nginx.conf, certs, logs, temp files
	httpAddr, httpsAddr string
	certPEM             []byte
}

func renderNginx(t *testing.T, upstream string) *nginxSite {
	t.Helper()
	b, err := os.ReadFile(nginxTemplate)
	if err != nil {
		t.Fatal(err)
	}
	s := &nginxSite{dir: t.TempDir(), httpAddr: freePort(t), httpsAddr: freePort(t)}
	for _, d := range []string{"certs", "acme/.well-known/acme-challenge", "logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := string(b)
	for _, r := range [][2]string{
		{"/etc/letsencrypt/live/${AICHAT_DOMAIN}/", filepath.Join(s.dir, "certs") + "/"},
		{"${AICHAT_DOMAIN}", "localhost"},
		{"${AICHAT_UPSTREAM}", upstream},
		{"root /var/www/certbot;", "root " + filepath.Join(s.dir, "acme") + ";"},
		{"/var/log/nginx/", filepath.Join(s.dir, "logs") + "/"},
		{"listen 80 default_server;", "listen " + s.httpAddr + " default_server;"},
		{"listen [::]:80 default_server;", ""},
		{"listen 443 ssl http2 default_server;", "listen " + s.httpsAddr + " ssl http2 default_server;"},
		{"listen [::]:443 ssl http2 default_server;", ""},
	} {
		if !strings.Contains(conf, r[0]) {
			t.Fatalf("%s no longer contains %q; update renderNginx", nginxTemplate, r[0])
		}
		conf = strings.ReplaceAll(conf, r[0], r[1])
	}
	if strings.Contains(conf, "${") {
		t.Fatalf("unrendered variable left in %s", nginxTemplate)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "aichat.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s.certPEM = selfSignedCert(t, filepath.Join(s.dir, "certs"))

	// The main file the nginx image has around conf.d, pointed at the
	// prefix so nothing outside it is touched.
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers write temp files in the prefix
	}
	main := fmt.Sprintf(`%s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/logs/error.log info;
events { worker_connections 256; }
http {
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    access_log %[2]s/logs/access.log;
    include %[2]s/aichat.conf;
}
`, user, s.dir)
	if err := os.WriteFile(filepath.Join(s.dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *nginxSite) args(extra ...string) []string {
	return append([]string{"-p", s.dir, "-c", filepath.Join(s.dir, "nginx.conf")}, extra...)
}

// TestNginxConfig: `nginx -t` accepts deploy/nginx's config with a
// throwaway certificate.
func TestNginxConfig(t *testing.T) {
	bin := nginxBinary(t)
	s := renderNginx(t, "127.0.0.1:9")
	out, err := exec.Command(bin, s.args("-t")...).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	t.Logf("nginx -t: %s", strings.TrimSpace(string(out)))
}

// TestNginxProxiesAichat puts a real nginx with deploy/nginx's config in
// front of a running aichat on loopback: HTTP redirects to HTTPS and serves
// ACME challenges; HTTPS answers with HSTS and hides /metrics; and a
// browser-like WebSocket session (with an Origin) signs in through the
// proxy and receives an assistant answer streamed delta by delta.
func TestNginxProxiesAichat(t *testing.T) {
	bin := nginxBinary(t)
	up := llmtest.NewServer(t)
	up.SetModels("gpt-test")
	answer := "Through the proxy, one word at a time, until the end."
	up.SetDefault(llmtest.Script{Text: answer, TokenDelay: 20 * time.Millisecond})
	srv := apptest.Start(t, storetest.SQLite(t), apptest.WithAI(up.URL))

	s := renderNginx(t, strings.TrimPrefix(srv.URL, "http://"))
	cmd := exec.Command(bin, s.args("-g", "daemon off;")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt) // fast shutdown
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			for _, f := range []string{"error.log", "access.log"} {
				if b, err := os.ReadFile(filepath.Join(s.dir, "logs", f)); err == nil {
					t.Logf("nginx %s:\n%s", f, b)
				}
			}
		}
	})
	waitListening(t, s.httpsAddr)

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.certPEM)
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: tlsConf},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	base := "https://" + s.httpsAddr

	// Port 80: redirect to HTTPS, keeping the path and query.
	res := get(t, client, "http://"+s.httpAddr+"/some/page?x=1")
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusMovedPermanently || loc != "https://127.0.0.1/some/page?x=1" {
		t.Fatalf("plain HTTP: %d Location %q, want 301 to https://127.0.0.1/some/page?x=1", res.StatusCode, loc)
	}
	// ...but Let's Encrypt's challenge is answered from the webroot.
	if err := os.WriteFile(filepath.Join(s.dir, "acme/.well-known/acme-challenge/tok"), []byte("proof"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := get(t, client, "http://"+s.httpAddr+"/.well-known/acme-challenge/tok"); res.StatusCode != http.StatusOK || res.body != "proof" {
		t.Fatalf("ACME challenge over HTTP: %d %q", res.StatusCode, res.body)
	}

	// The container's healthcheck, on port 80.
	if res := get(t, client, "http://"+s.httpAddr+"/nginx-health"); res.StatusCode != http.StatusNoContent {
		t.Fatalf("GET /nginx-health: %d, want 204", res.StatusCode)
	}

	// HTTPS: the app answers, with HSTS and the proxy's request id.
	res = get(t, client, base+"/healthz")
	if res.StatusCode != http.StatusOK || !strings.Contains(res.body, "ok") {
		t.Fatalf("GET /healthz through nginx: %d %s", res.StatusCode, res.body)
	}
	if h := res.Header.Get("Strict-Transport-Security"); !strings.Contains(h, "max-age=") {
		t.Fatalf("no HSTS header over HTTPS: %q", h)
	}
	if id := res.Header.Get("X-Request-ID"); len(id) != 32 {
		t.Fatalf("X-Request-ID %q: want nginx's $request_id (32 hex) passed to the app and echoed", id)
	}
	if res := get(t, client, base+"/metrics"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /metrics through nginx: %d, want 404 (scraped on the internal network only)", res.StatusCode)
	}

	// Sign up and make a chat where the assistant answers every message,
	// all through the proxy.
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	call(t, client, "POST", base+"/api/v1/auth/register", "", map[string]string{"email": "proxy@example.com", "password": apptest.Password}, http.StatusCreated, &sess)
	var chat struct{ ID string }
	call(t, client, "POST", base+"/api/v1/chats", sess.AccessToken, map[string]any{"title": "through nginx"}, http.StatusCreated, &chat)
	call(t, client, "PATCH", base+"/api/v1/chats/"+chat.ID, sess.AccessToken, map[string]any{"settings": map[string]any{"ai_mode": "always"}}, http.StatusOK, nil)

	// A browser sends Origin: the app must see the Host it was asked for.
	d := websocket.Dialer{TLSClientConfig: tlsConf, HandshakeTimeout: 5 * time.Second}
	h := http.Header{"Authorization": {"Bearer " + sess.AccessToken}, "Origin": {base}}
	conn, hres, err := d.Dial("wss://"+s.httpsAddr+"/ws", h)
	if err != nil {
		status := 0
		if hres != nil {
			status = hres.StatusCode
		}
		t.Fatalf("WebSocket through nginx: %v (status %d)", err, status)
	}
	defer conn.Close()
	next := func(want string) json.RawMessage {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			var f struct {
				Type string          `json:"type"`
				Data json.RawMessage `json:"data"`
			}
			if err := conn.ReadJSON(&f); err != nil {
				t.Fatalf("waiting for %q through nginx: %v", want, err)
			}
			if f.Type == want {
				return f.Data
			}
		}
	}
	next("hello")
	send := map[string]any{"type": "send_message", "id": "q", "data": map[string]any{"chat_id": chat.ID, "content": "say something", "client_id": "c1"}}
	if err := conn.WriteJSON(send); err != nil {
		t.Fatal(err)
	}
	next("ai_start")
	var text strings.Builder
	deltas := 0
	for {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var f struct {
			Type string `json:"type"`
			Data struct {
				Delta   string `json:"delta"`
				Status  string `json:"status"`
				Content string `json:"content"`
			} `json:"data"`
		}
		if err := conn.ReadJSON(&f); err != nil {
			t.Fatalf("streaming through nginx after %d deltas: %v", deltas, err)
		}
		if f.Type == "ai_delta" {
			deltas++
			text.WriteString(f.Data.Delta)
		}
		if f.Type == "ai_done" {
			if f.Data.Content != answer {
				t.Fatalf("ai_done through nginx: status %q content %q, want %q", f.Data.Status, f.Data.Content, answer)
			}
			break
		}
	}
	// Streamed, not buffered into one piece by the proxy.
	if deltas < 2 || text.String() != answer {
		t.Fatalf("got %d deltas making %q; want the answer in several deltas", deltas, text.String())
	}
}

type response struct {
	*http.Response
	body string
}

func get(t *testing.T, c *http.Client, u string) response {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res, string(b)}
}

func call(t *testing.T, c *http.Client, method, u, token string, body any, want int, out any) {
	t.Helper()
	js, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, u, strings.NewReader(string(js)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		p, _ := url.Parse(u)
		t.Fatalf("%s %s through nginx: %d %s, want %d", method, p.Path, res.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nginx does not listen on %s after 10 s", addr)
}

// selfSignedCert writes fullchain.pem and privkey.pem for localhost and
// 127.0.0.1 into dir (Let's Encrypt's names) and returns the certificate.
func selfSignedCert(t *testing.T, dir string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "fullchain.pem"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "privkey.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPEM
}
