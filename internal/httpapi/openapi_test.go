package httpapi_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/store/storetest"
	"github.com/aichat/aichat/internal/web"
	"github.com/gin-gonic/gin"
)

// regenerate is what to run when the committed spec is stale.
const regenerate = "go generate ./internal/httpapi"

// specFiles are swag's outputs, committed under openapi/.
var specFiles = []string{"swagger.json", "swagger.yaml"}

// TestOpenAPIFresh runs the //go:generate line of openapi.go with the
// output in a temporary folder and compares the result with the committed
// spec, so the spec never lags behind the handlers' annotations.
func TestOpenAPIFresh(t *testing.T) {
	src, err := os.ReadFile("openapi.go")
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^//go:generate go (tool swag init .*)$`).FindSubmatch(src)
	if line == nil {
		t.Fatal("openapi.go has no //go:generate go tool swag init line")
	}
	args := strings.Fields(string(line[1]))
	out := t.TempDir()
	i := slices.Index(args, "--output")
	if i < 0 || i+1 >= len(args) || args[i+1] != "openapi" {
		t.Fatalf("the generate line must write to --output openapi: %q", line[1])
	}
	args[i+1] = out

	// go test puts the go command that runs it first in PATH.
	cmd := exec.Command("go", args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	for _, name := range specFiles {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(out, name))
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join("openapi", name))
			if err != nil {
				t.Fatalf("%v: run %s and commit internal/httpapi/openapi/", err, regenerate)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("internal/httpapi/openapi/%s is out of date with the handlers' annotations (%s): "+
					"run %s and commit the result", name, firstDiff(got, want), regenerate)
			}
		})
	}
}

func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "first difference at line " + strconv.Itoa(i+1) + ": committed " + quote(gl) + ", generated " + quote(wl)
		}
	}
	return "they differ"
}

func quote(s string) string {
	b, _ := json.Marshal(strings.TrimSpace(s))
	return string(b)
}

// spec is the part of the OpenAPI document the tests read.
type spec struct {
	Paths map[string]map[string]struct {
		Security  []map[string][]string `json:"security"`
		Responses map[string]struct {
			Schema *struct {
				Ref string `json:"$ref"`
			} `json:"schema"`
		} `json:"responses"`
	} `json:"paths"`
	Definitions map[string]json.RawMessage `json:"definitions"`
}

func readSpec(t *testing.T) spec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("openapi", "swagger.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("openapi/swagger.json: %v", err)
	}
	return s
}

// documented tells the routes the spec must describe: the REST API, the
// health checks and the WebSocket upgrade. /metrics (Prometheus text), the
// web app and /swagger/ itself are not part of it.
func documented(path string) bool {
	return strings.HasPrefix(path, "/api/v1/") || path == "/healthz" || path == "/readyz" || path == "/ws"
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z_]+)`)

// TestOpenAPICoversRoutes compares the router's routes with the spec's
// operations both ways: every documented route is in the spec with the same
// method and path, and the spec has nothing the router lacks.
func TestOpenAPICoversRoutes(t *testing.T) {
	s := apptest.Start(t, storetest.SQLite(t))
	engine, ok := s.App.Handler.(*gin.Engine)
	if !ok {
		t.Fatalf("App.Handler is %T, want *gin.Engine", s.App.Handler)
	}
	doc := readSpec(t)

	routes := map[string]bool{}
	for _, r := range engine.Routes() {
		if documented(r.Path) {
			routes[r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}")] = true
		}
	}
	ops := map[string]bool{}
	for path, methods := range doc.Paths {
		for m := range methods {
			ops[strings.ToUpper(m)+" "+path] = true
		}
	}
	if len(routes) < 50 {
		t.Fatalf("only %d documented routes found in the router; is the filter right?", len(routes))
	}

	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range routes {
			if !yield(k) {
				return
			}
		}
	})
	for _, op := range keys {
		t.Run(op, func(t *testing.T) {
			if !ops[op] {
				t.Errorf("%s is routed but not in the spec: annotate its handler (@Router) and run %s", op, regenerate)
				return
			}
			method, path, _ := strings.Cut(op, " ")
			o := doc.Paths[path][strings.ToLower(method)]
			public := !strings.HasPrefix(path, "/api/v1/") || strings.HasPrefix(path, "/api/v1/auth/")
			if !public && len(o.Security) == 0 {
				t.Errorf("%s needs a token but the spec lists no @Security", op)
			}
			var success bool
			for code, resp := range o.Responses {
				if code[0] == '2' || code == "101" {
					success = true
					continue
				}
				if resp.Schema == nil || resp.Schema.Ref != "#/definitions/Error" {
					t.Errorf("%s: response %s is not the Error schema", op, code)
				}
			}
			if !success {
				t.Errorf("%s: no success response", op)
			}
			if _, ok := o.Responses["500"]; !ok {
				t.Errorf("%s: no 500 (internal.error) response", op)
			}
		})
	}
	for op := range ops {
		if !routes[op] {
			t.Errorf("the spec has %s, which the router does not serve", op)
		}
	}
	if _, ok := doc.Definitions["Error"]; !ok {
		t.Error("the spec has no Error definition")
	}
}

// TestSwaggerServing checks what the binary serves under /swagger/ and that
// its CSP stays there: the web app keeps its own strict one.
func TestSwaggerServing(t *testing.T) {
	committed, err := os.ReadFile(filepath.Join("openapi", "swagger.json"))
	if err != nil {
		t.Fatal(err)
	}
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := apptest.Start(t, e)
		for _, tc := range []struct {
			path, ctype string
			status      int
			swaggerCSP  bool
			check       func(t *testing.T, body []byte)
		}{
			{path: "/swagger/doc.json", status: 200, ctype: "application/json", swaggerCSP: true, check: func(t *testing.T, body []byte) {
				var d struct {
					Swagger string                     `json:"swagger"`
					Paths   map[string]json.RawMessage `json:"paths"`
				}
				if err := json.Unmarshal(body, &d); err != nil || d.Swagger != "2.0" || len(d.Paths) == 0 {
					t.Errorf("doc.json: swagger %q, %d paths, err %v", d.Swagger, len(d.Paths), err)
				}
				if !bytes.Equal(body, committed) {
					t.Error("doc.json is not the committed openapi/swagger.json")
				}
			}},
			{path: "/swagger/index.html", status: 200, ctype: "text/html", swaggerCSP: true, check: func(t *testing.T, body []byte) {
				// Everything the page loads is served, from here.
				refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllSubmatch(body, -1)
				if len(refs) < 3 {
					t.Fatalf("index.html loads %d files:\n%s", len(refs), body)
				}
				for _, m := range refs {
					ref := string(m[1])
					if strings.Contains(ref, ":") || strings.HasPrefix(ref, "/") {
						t.Errorf("index.html loads %q: only files beside it", ref)
						continue
					}
					if r := s.Do(t, "GET", "/swagger/"+ref, "", nil); r.Status != 200 {
						t.Errorf("%s: %d", ref, r.Status)
					}
				}
				if bytes.Contains(body, []byte("<script>")) || bytes.Contains(body, []byte("style=")) {
					t.Error("index.html has inline script or style, which its CSP forbids")
				}
			}},
			{path: "/swagger/", status: 200, ctype: "text/html", swaggerCSP: true}, // redirected to index.html
			{path: "/swagger/swagger-init.js", status: 200, ctype: "text/javascript", swaggerCSP: true, check: func(t *testing.T, body []byte) {
				if !bytes.Contains(body, []byte(`url: "doc.json"`)) {
					t.Errorf("the UI is not pointed at doc.json:\n%s", body)
				}
			}},
			{path: "/swagger/swagger-ui-bundle.js", status: 200, ctype: "javascript", swaggerCSP: true, check: func(t *testing.T, body []byte) {
				if !bytes.Contains(body, []byte("SwaggerUIBundle")) {
					t.Error("the bundle does not define SwaggerUIBundle")
				}
				// Stored gzipped: sent as is to a client that takes gzip,
				// unpacked to one that does not.
				gz := s.DoHeader(t, "GET", "/swagger/swagger-ui-bundle.js", map[string]string{"Accept-Encoding": "gzip"})
				plain := s.DoHeader(t, "GET", "/swagger/swagger-ui-bundle.js", map[string]string{"Accept-Encoding": "identity"})
				if gz.Header.Get("Content-Encoding") != "gzip" || len(gz.Body) >= len(body) {
					t.Errorf("gzip: Content-Encoding %q, %d bytes of %d", gz.Header.Get("Content-Encoding"), len(gz.Body), len(body))
				}
				if plain.Header.Get("Content-Encoding") != "" || !bytes.Equal(plain.Body, body) {
					t.Errorf("identity: Content-Encoding %q, %d bytes, want the %d plain ones", plain.Header.Get("Content-Encoding"), len(plain.Body), len(body))
				}
			}},
			{path: "/swagger/swagger-ui.css", status: 200, ctype: "text/css", swaggerCSP: true},
			{path: "/swagger/swagger-ui.js.map", status: 404, ctype: "application/json", swaggerCSP: true},
			{path: "/swagger/oauth2-redirect.html", status: 404, ctype: "application/json", swaggerCSP: true},
			{path: "/", status: 200, ctype: "text/html"},
			{path: "/api/v1/models", status: 401, ctype: "application/json"},
		} {
			t.Run(tc.path, func(t *testing.T) {
				r := s.Do(t, "GET", tc.path, "", nil)
				if r.Status != tc.status || !strings.Contains(r.Header.Get("Content-Type"), tc.ctype) {
					t.Fatalf("%d %s, want %d %s", r.Status, r.Header.Get("Content-Type"), tc.status, tc.ctype)
				}
				csp := r.Header.Get("Content-Security-Policy")
				switch {
				case tc.swaggerCSP:
					for _, want := range []string{"default-src 'none'", "script-src 'self';", "connect-src 'self'", "frame-ancestors 'none'"} {
						if !strings.Contains(csp, want) {
							t.Errorf("CSP %q lacks %q", csp, want)
						}
					}
					if strings.Contains(csp, "unsafe") || strings.Contains(csp, "http") || strings.Contains(csp, "*") {
						t.Errorf("CSP %q allows inline code, eval or another host", csp)
					}
				case tc.path == "/":
					if csp != web.CSP {
						t.Errorf("the web app's CSP is %q, want its own %q", csp, web.CSP)
					}
				case csp != "":
					t.Errorf("CSP %q on %s", csp, tc.path)
				}
				if tc.check != nil {
					tc.check(t, r.Body)
				}
			})
		}
	})
}
