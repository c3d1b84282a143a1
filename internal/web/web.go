// Package web serves the browser app: plain HTML, one stylesheet and ES
// modules embedded in the binary. Every asset is served under a path that
// holds a hash of all of them (/assets/<hash>/js/main.js), so browsers keep
// them for a year and a new build is fetched at once; index.html is always
// revalidated. The page carries a strict Content-Security-Policy: scripts,
// styles and connections from the server's own origin only, nothing
// inline, no frames. Assistant answers arrive as HTML already sanitized
// by package render (POST /api/v1/render), so no Markdown or sanitizer code
// runs in the browser.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"sort"
	"strings"
)

//go:embed static
var static embed.FS

// CSP is the page's Content-Security-Policy. connect-src 'self' covers the
// same-origin WebSocket (ws: and wss: of the page's host).
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// assetsToken is replaced in index.html by the hashed assets prefix.
const assetsToken = "{{ASSETS}}"

// Options configure the app.
type Options struct {
	// HighlightCSS is the stylesheet for highlighted code blocks
	// (render.CSS); it is served as highlight.css.
	HighlightCSS string
}

// Handler serves index.html at / and the assets under /assets/<hash>/.
type Handler struct {
	prefix string // "/assets/<hash>/"
	index  file
	assets map[string]file // by path below the prefix
}

type file struct {
	body, gz []byte
	ctype    string
	etag     string
}

// New reads the embedded files once and prepares them (hash, gzip).
func New(opt Options) (*Handler, error) {
	contents := map[string][]byte{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		contents[strings.TrimPrefix(p, "static/")] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: read assets: %w", err)
	}
	contents["highlight.css"] = []byte(opt.HighlightCSS)
	index, ok := contents["index.html"]
	if !ok {
		return nil, fmt.Errorf("web: index.html missing")
	}
	delete(contents, "index.html")

	names := make([]string, 0, len(contents))
	for n := range contents {
		names = append(names, n)
	}
	sort.Strings(names)
	sum := sha256.New()
	for _, n := range names {
		fmt.Fprintf(sum, "%s\x00%d\x00", n, len(contents[n]))
		sum.Write(contents[n])
	}
	hash := hex.EncodeToString(sum.Sum(nil))[:12]
	h := &Handler{prefix: "/assets/" + hash + "/", assets: map[string]file{}}
	for _, n := range names {
		h.assets[n] = newFile(n, contents[n])
	}
	h.index = newFile("index.html", bytes.ReplaceAll(index, []byte(assetsToken), []byte(h.prefix)))
	return h, nil
}

func newFile(name string, body []byte) file {
	ctype := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) { // not every system's mime table knows these
	case ".js", ".mjs":
		ctype = "text/javascript; charset=utf-8"
	case ".css":
		ctype = "text/css; charset=utf-8"
	case ".html":
		ctype = "text/html; charset=utf-8"
	case ".svg":
		ctype = "image/svg+xml"
	case ".webmanifest":
		ctype = "application/manifest+json"
	}
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	_, _ = zw.Write(body)
	_ = zw.Close()
	sum := sha256.Sum256(body)
	f := file{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	if gz.Len() < len(body) {
		f.gz = gz.Bytes()
	}
	return f
}

// Prefix is the hashed assets path, e.g. "/assets/3fa2c1d09b7e/".
func (h *Handler) Prefix() string { return h.prefix }

// Sizes reports the bytes of every file as served, plain and gzipped.
func (h *Handler) Sizes() (plain, gz map[string]int) {
	plain, gz = map[string]int{"index.html": len(h.index.body)}, map[string]int{"index.html": len(h.index.gz)}
	for n, f := range h.assets {
		plain[n], gz[n] = len(f.body), len(f.gz)
		if f.gz == nil {
			gz[n] = len(f.body)
		}
	}
	return plain, gz
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	p := r.URL.Path
	switch {
	case p == "/" || p == "/index.html":
		hdr.Set("Content-Security-Policy", CSP)
		hdr.Set("X-Frame-Options", "DENY")
		hdr.Set("Referrer-Policy", "no-referrer")
		hdr.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()")
		hdr.Set("Cache-Control", "no-cache")
		h.serve(w, r, h.index)
	case p == "/favicon.ico":
		hdr.Set("Cache-Control", "public, max-age=86400")
		h.serve(w, r, h.assets["icon.svg"])
	case strings.HasPrefix(p, "/assets/"):
		rest := strings.TrimPrefix(p, "/assets/")
		hash, name, ok := strings.Cut(rest, "/")
		f, found := h.assets[name]
		if !ok || !found {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		if "/assets/"+hash+"/" == h.prefix {
			hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			// A page from another build (a rolling update): serve this
			// build's file, but never let it be cached under that name.
			hdr.Set("Cache-Control", "no-cache")
		}
		h.serve(w, r, f)
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, f file) {
	hdr := w.Header()
	hdr.Set("Content-Type", f.ctype)
	hdr.Set("ETag", f.etag)
	hdr.Set("Vary", "Accept-Encoding")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if f.gz != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		hdr.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	hdr.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func acceptsGzip(ae string) bool {
	for part := range strings.SplitSeq(ae, ",") {
		name, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			return !strings.Contains(strings.ReplaceAll(q, " ", ""), "q=0") || strings.Contains(q, "q=0.")
		}
	}
	return false
}
