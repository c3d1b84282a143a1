package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/aichat/aichat/internal/app/apptest"
	"github.com/aichat/aichat/internal/store/storetest"
)

// TestRender: the web app's Markdown rendering answers sanitized HTML,
// closes a streaming code fence, refuses oversized or too many texts with
// the field named, needs a signed-in user, and is rate limited.
func TestRender(t *testing.T) {
	s := apptest.Start(t, storetest.SQLite(t))
	alice := s.Register(t, "alice@example.com")
	render := func(body any) *apptest.Response {
		return s.Do(t, "POST", "/api/v1/render", alice.AccessToken, body)
	}

	r := render(map[string]any{"items": []map[string]any{
		{"text": "**bold** <img src=x onerror=alert(1)> [x](javascript:alert(1))"},
		{"text": "```go\nfunc f() {", "partial": true},
		{"text": ""},
	}})
	if r.Status != http.StatusOK {
		t.Fatalf("render: %d %s", r.Status, r.Body)
	}
	var out struct{ HTML []string }
	r.JSON(t, &out)
	if len(out.HTML) != 3 {
		t.Fatalf("got %d results for 3 texts", len(out.HTML))
	}
	if h := out.HTML[0]; !strings.Contains(h, "<strong>bold</strong>") || strings.Contains(h, "<img") || strings.Contains(h, "javascript:") {
		t.Fatalf("unsafe or unrendered HTML: %s", h)
	}
	if h := out.HTML[1]; !strings.Contains(h, `<pre class="chroma"><code class="language-go">`) || !strings.HasSuffix(strings.TrimSpace(h), "</pre>") {
		t.Fatalf("partial fence not closed: %s", h)
	}

	tests := []struct {
		name   string
		token  string
		body   any
		status int
		code   string
		field  string
	}{
		{"no token", "", map[string]any{"items": []any{}}, 401, "auth.required", ""},
		{"too many", alice.AccessToken, map[string]any{"items": make([]map[string]any, 101)}, 400, "validation.failed", "items"},
		{"too long", alice.AccessToken, map[string]any{"items": []map[string]any{{"text": strings.Repeat("a", 600<<10)}}}, 0, "", ""},
		{"unknown field", alice.AccessToken, map[string]any{"texts": []string{"a"}}, 400, "validation.failed", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.Do(t, "POST", "/api/v1/render", tc.token, tc.body)
			if tc.status == 0 { // over the body limit or the text limit: refused either way
				if r.Status != 413 && r.Status != 400 {
					t.Fatalf("status %d %s, want 400 or 413", r.Status, r.Body)
				}
				return
			}
			e := r.Err(t)
			if r.Status != tc.status || e.Code != tc.code || (tc.field != "" && e.Field != tc.field) {
				t.Fatalf("got %d %+v, want %d %s field %q", r.Status, e, tc.status, tc.code, tc.field)
			}
		})
	}

	// The bucket holds 40 requests; then 429 with Retry-After.
	limited := false
	for range 60 {
		r := render(map[string]any{"items": []map[string]any{{"text": "hi"}}})
		if r.Status == http.StatusTooManyRequests {
			if e := r.Err(t); e.Code != "rateLimit.exceeded" || r.Header.Get("Retry-After") == "" {
				t.Fatalf("429 without the code or Retry-After: %+v %v", e, r.Header)
			}
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("60 render requests at once were never limited")
	}
}
