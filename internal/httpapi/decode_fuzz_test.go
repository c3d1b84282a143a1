package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aichat/aichat/internal/apperr"
)

// FuzzDecode feeds arbitrary bodies to the request decoder: it must never
// panic, and every failure must be a client error with a code the status
// table knows (never a 500).
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `{"email":"a@b.c","password":"x"}`, `{"email":1}`, `[`, `{"a":`, `null`,
		`{"email":"a"} {"x":1}`, `{"name":"\u0000\ud800"}`, strings.Repeat(`[`, 10000), `{"email":"` + strings.Repeat("a", 5000) + `"}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(body)), 4096)
		var dst registerRequest
		err := decodeJSON(r, &dst)
		if err == nil {
			return
		}
		e, ok := apperr.As(err)
		if !ok {
			t.Fatalf("decode error without a code: %v", err)
		}
		st, known := statusByCode[e.Code]
		if !known || st >= 500 {
			t.Fatalf("decode error %q maps to %d", e.Code, st)
		}
	})
}
