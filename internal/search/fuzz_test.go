package search

import (
	"testing"
	"unicode/utf8"
)

// FuzzTokenize: for any text, tokens stay inside it and within the size
// bound, and every word of the text, searched on its own, finds the text —
// what someone wrote can always be found again.
func FuzzTokenize(f *testing.F) {
	for _, s := range []string{
		"Hello, world", "Café CAFE café", "Ёлка и елка", "straße STRASSE", "½ 1⁄2 ﬁle file",
		"Łódź Lodz", "e\u0301cole école", `say "hello there" twice`, "日本語のテキスト", "", "\x00\xff",
		"a-b_c.d", "x" + string(make([]byte, 100)),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if !utf8.ValidString(text) || len(text) > 4096 {
			return // messages are valid UTF-8 (the API refuses others) and bounded
		}
		toks := Tokenize(text)
		for _, tok := range toks {
			if tok.Start < 0 || tok.End > len(text) || tok.Start >= tok.End {
				t.Fatalf("token %+v outside %q", tok, text)
			}
			if tok.Text == "" || len(tok.Text) > MaxTokenBytes || !utf8.ValidString(tok.Text) {
				t.Fatalf("token %+v: empty, too long or not UTF-8", tok)
			}
			q := ParseQuery(text[tok.Start:tok.End])
			if q.Empty() || !q.Match(toks) {
				t.Fatalf("the word %q does not find %q (query %+v)", text[tok.Start:tok.End], text, q)
			}
		}
	})
}
