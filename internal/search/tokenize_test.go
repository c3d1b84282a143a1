package search

import (
	"slices"
	"testing"
	"unicode/utf16"
)

func texts(toks []Token) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = t.Text
	}
	return out
}

func TestTokenizeFolds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"Café CAFE café", []string{"cafe", "cafe", "cafe"}},
		{"Ёлка ЁЛКА елка", []string{"елка", "елка", "елка"}},
		{"Привет, мир! Hello-world", []string{"привет", "мир", "hello", "world"}},
		{"Straße STRASSE", []string{"strasse", "strasse"}},
		{"ﬁle ＡＢＣ１２", []string{"file", "abc12"}}, // NFKC: ligature, full width
		{"naïve résumé Zoë", []string{"naive", "resume", "zoe"}},
		{"  ...  ", nil},
		{"don't", []string{"don", "t"}},
	} {
		if got := texts(Tokenize(tc.in)); !slices.Equal(got, tc.want) {
			t.Errorf("Tokenize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTokenOffsets(t *testing.T) {
	text := "Ну, ПРИВЕТ café!"
	for _, tok := range Tokenize(text) {
		if Normalize(text[tok.Start:tok.End]) != tok.Text {
			t.Errorf("token %q at [%d,%d) is %q in the text", tok.Text, tok.Start, tok.End, text[tok.Start:tok.End])
		}
	}
}

func TestQueryMatch(t *testing.T) {
	msg := Tokenize("The quick brown fox jumps over the lazy dog")
	for _, tc := range []struct {
		q    string
		want bool
	}{
		{"fox", true},
		{"FOX dog", true},
		{"fox cat", false},
		{`"quick brown"`, true},
		{`"brown quick"`, false},
		{`"lazy dog" fox`, true},
		{`"quick fox"`, false},
		{`"fox"`, true},
		{`fox "lazy dog`, true},
		{`fox "dog lazy`, false},
		{"!!!", false},
	} {
		if got := ParseQuery(tc.q).Match(msg); got != tc.want {
			t.Errorf("%q matches: %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestSnippetHighlightsInUTF16(t *testing.T) {
	text := "😀 Привет\nмир, привет!"
	q := ParseQuery("ПРИВЕТ")
	snip, hl := Snippet(text, q, Tokenize(text))
	if snip != "😀 Привет мир, привет!" {
		t.Fatalf("snippet %q", snip)
	}
	u := utf16.Encode([]rune(snip))
	var got []string
	for _, r := range hl {
		got = append(got, string(utf16.Decode(u[r.Start:r.End])))
	}
	if !slices.Equal(got, []string{"Привет", "привет"}) {
		t.Fatalf("highlights %v → %q", hl, got)
	}
	long := ""
	for range 100 {
		long += "слово "
	}
	long += "needle " + long
	snip, hl = Snippet(long, ParseQuery("needle"), Tokenize(long))
	u = utf16.Encode([]rune(snip))
	if len(hl) != 1 || string(utf16.Decode(u[hl[0].Start:hl[0].End])) != "needle" || len([]rune(snip)) > snippetRunes+2 {
		t.Fatalf("long snippet %q %v", snip, hl)
	}
}
