package render

import (
	"strings"
	"testing"
)

func TestCacheRendersOnceAndEvicts(t *testing.T) {
	c := NewCache(New(), 4<<10)
	a := c.HTML("**bold** text")
	if a != "<p><strong>bold</strong> text</p>\n" {
		t.Fatalf("HTML = %q", a)
	}
	if got := c.HTML("**bold** text"); got != a || c.Len() != 1 {
		t.Fatalf("second call: %q, len %d", got, c.Len())
	}
	// Partial renders are not kept: a stream's text is new every time.
	c.Partial("```go\nfunc f() {}")
	if c.Len() != 1 {
		t.Fatalf("a partial render was cached: len %d", c.Len())
	}
	for i := range 200 {
		c.HTML(strings.Repeat("word ", 20) + string(rune('a'+i%26)) + strings.Repeat("x", i))
	}
	c.mu.Lock()
	bytes := c.bytes
	c.mu.Unlock()
	if bytes > 4<<10 {
		t.Fatalf("cache holds %d bytes, more than its 4 KiB bound", bytes)
	}
}
