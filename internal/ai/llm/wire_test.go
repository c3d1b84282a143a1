//go:build linux && (amd64 || arm64)

package llm

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/netstamp"
)

// TestWireStampsOnlyHTTP1: a chunk is timed from the kernel's stamp only
// where the stamp is that chunk's: over HTTP/1.1 the stream's goroutine
// reads its own connection; over HTTP/2 the connection's goroutine reads
// ahead for every stream, so the read time is used instead.
func TestWireStampsOnlyHTTP1(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "data: {}\n\n")
		}))
		ts.EnableHTTP2 = h2
		ts.StartTLS()
		t.Cleanup(ts.Close)
		tr := ts.Client().Transport.(*http.Transport).Clone()
		tr.DialContext = netstamp.Dialer(&net.Dialer{Timeout: 5 * time.Second})
		tr.ForceAttemptHTTP2 = true
		t.Cleanup(tr.CloseIdleConnections)

		w := &wire{}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), w.trace()), "POST", ts.URL, nil)
		res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(res.Body)
		res.Body.Close()
		if got := res.ProtoMajor == 2; got != h2 {
			t.Fatalf("HTTP/2 = %v, want %v", got, h2)
		}
		w.mu.Lock()
		stamped := w.conn != nil
		w.mu.Unlock()
		if stamped == h2 {
			t.Errorf("HTTP/2 %v: stamps used = %v, want %v", h2, stamped, !h2)
		}
		if !h2 {
			if at := w.arrived(); time.Since(at) > 10*time.Second || at.After(time.Now()) {
				t.Errorf("HTTP/1.1 arrival %v is not the response's", at)
			}
		}
	}
}
