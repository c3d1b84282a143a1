package web

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	rd := io.Reader(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		rd = zr
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestServing: index.html is revalidated and carries the security
// headers; every asset it names is served from the hashed prefix with a
// year of caching, gzipped on request, and revalidated by ETag.
func TestServing(t *testing.T) {
	h, err := New(Options{HighlightCSS: ".chroma{}"})
	if err != nil {
		t.Fatal(err)
	}
	r := get(t, h, "/")
	if r.StatusCode != 200 || r.Header.Get("Cache-Control") != "no-cache" || r.Header.Get("Content-Security-Policy") != CSP ||
		r.Header.Get("X-Frame-Options") != "DENY" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("index: %d %v", r.StatusCode, r.Header)
	}
	if strings.Contains(CSP, "unsafe") {
		t.Fatal("the CSP allows unsafe sources")
	}
	index := body(t, r)
	if strings.Contains(index, "{{") || strings.Contains(index, "<script>") || strings.Contains(index, " style=") || strings.Contains(index, " on") && regexp.MustCompile(` on[a-z]+=`).MatchString(index) {
		t.Fatal("index.html has a placeholder left, an inline script, a style attribute or an inline handler")
	}
	refs := regexp.MustCompile(`(?:href|src)="(/assets/[^"]+)"`).FindAllStringSubmatch(index, -1)
	if len(refs) < 4 {
		t.Fatalf("index names %d assets", len(refs))
	}
	for _, m := range refs {
		path := m[1]
		if !strings.HasPrefix(path, h.Prefix()) {
			t.Fatalf("%s is not under the hashed prefix %s", path, h.Prefix())
		}
		r := get(t, h, path, "Accept-Encoding", "gzip, deflate, br")
		if r.StatusCode != 200 || r.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Fatalf("%s: %d %v", path, r.StatusCode, r.Header)
		}
		if strings.HasSuffix(path, ".js") && r.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
			t.Fatalf("%s: content type %q", path, r.Header.Get("Content-Type"))
		}
		if len(body(t, r)) == 0 {
			t.Fatalf("%s is empty", path)
		}
		if r2 := get(t, h, path, "If-None-Match", r.Header.Get("ETag")); r2.StatusCode != http.StatusNotModified {
			t.Fatalf("%s with its ETag: %d", path, r2.StatusCode)
		}
	}
	js := get(t, h, h.Prefix()+"js/main.js", "Accept-Encoding", "gzip")
	if js.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(body(t, js), "import") {
		t.Fatal("main.js is not served gzipped")
	}
	if plain := get(t, h, h.Prefix()+"js/main.js"); plain.Header.Get("Content-Encoding") != "" {
		t.Fatal("gzip sent to a client that did not ask for it")
	}
	// Another build's prefix still gets this build's file, never cached.
	if r := get(t, h, "/assets/000000000000/app.css"); r.StatusCode != 200 || r.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("old prefix: %d %v", r.StatusCode, r.Header)
	}
	for _, p := range []string{"/assets/" + strings.Trim(h.Prefix()[8:], "/") + "/nope.js", "/assets/", "/etc/passwd", h.Prefix() + "../index.html"} {
		if r := get(t, h, p); r.StatusCode != 404 {
			t.Fatalf("%s: %d, want 404", p, r.StatusCode)
		}
	}
}

// TestPageWeight logs what a first visit downloads (gzip), the figure the
// issue asks for; BENCHMARKS.md quotes it.
func TestPageWeight(t *testing.T) {
	h, err := New(Options{HighlightCSS: strings.Repeat(".c{}", 10)})
	if err != nil {
		t.Fatal(err)
	}
	plain, gz := h.Sizes()
	var p, g int
	for n := range plain {
		p += plain[n]
		g += gz[n]
	}
	t.Logf("page weight: %d files, %d bytes, %d bytes gzipped", len(plain), p, g)
	if g > 100<<10 {
		t.Fatalf("the app weighs %d bytes gzipped; keep it light", g)
	}
}
