package render

import (
	"strings"
	"testing"
)

var fuzzRenderer = New()

// FuzzHTML asserts the XSS invariants of checkSafe on arbitrary input, for
// both HTML and Partial (and Partial on a prefix, as a stream would see).
func FuzzHTML(f *testing.F) {
	for _, tc := range xssCorpus {
		f.Add(tc.md)
	}
	f.Add(sampleAnswer())
	f.Add("```go\nfunc main() {\n")
	f.Add("- [x] ok\n\n| a | b |\n|---|:-:|\n| 1 | 2 |\n")
	f.Fuzz(func(t *testing.T, md string) {
		if len(md) > 1<<16 {
			return
		}
		checkSafe(t, md, fuzzRenderer.HTML(md))
		checkSafe(t, md, fuzzRenderer.Partial(md))
		half := md[:len(md)/2]
		p := fuzzRenderer.Partial(half)
		checkSafe(t, half, p)
		if strings.Count(p, "<pre") != strings.Count(p, "</pre>") {
			t.Errorf("Partial(%q): unbalanced <pre>: %q", half, p)
		}
	})
}
