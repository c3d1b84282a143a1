// Package search finds messages in encrypted history with a blind index.
// Message text is never stored in the clear: on write each distinct word
// of a message is stored only as a short keyed hash (a 12-bit value under
// a key derived for its chat), and on query the words are hashed the same
// way, candidate messages are fetched by those values, decrypted, and the
// ones that do not really match (truncation makes many words share a
// value) are dropped. docs/security.md says what the index still leaks.
package search

import (
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/kljensen/snowball/english"
	"github.com/kljensen/snowball/russian"
	"golang.org/x/text/cases"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// MaxTokenBytes bounds one token; longer words are cut (both on write and
// on query, so they still match).
const MaxTokenBytes = 64

// Token is one normalized word and where it came from in the original
// text (byte offsets, End exclusive).
type Token struct {
	Text       string
	Start, End int
}

// Casers and transformers keep state: each goroutine takes its own.
var folders = sync.Pool{New: func() any {
	return &folder{caser: cases.Fold(), strip: transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)}
}}

type folder struct {
	caser cases.Caser
	strip transform.Transformer
}

// Normalize folds a word for matching: NFKC, Unicode case folding, and
// diacritics removed (é → e, ё → е, й → и), so "Café", "CAFE" and "café"
// are one word.
func Normalize(s string) string { return normalize(s, false) }

// normalize folds s as Normalize does; with stem, a word in Latin letters
// is reduced to its English stem and one in Cyrillic to its Russian stem
// (Snowball), between case folding and removing diacritics (the Russian
// stemmer knows й and ё), so "running" and "runs" are "run", "книги" and
// "книгу" are "книг". Other scripts and words mixing scripts are not
// stemmed.
func normalize(s string, stem bool) string {
	if isASCII(s) {
		s = asciiLower(s) // NFKC and folding of ASCII
		if stem {
			s = stemWord(s)
		}
		return s
	}
	f := folders.Get().(*folder)
	defer folders.Put(f)
	s = norm.NFKC.String(s)
	s = f.caser.String(s)
	if stem {
		s = stemWord(s)
	}
	if isASCII(s) {
		return s
	}
	out, _, err := transform.String(f.strip, s)
	if err != nil {
		return s
	}
	return out
}

// stemWord stems a case-folded word by its script: English for Latin
// letters, Russian for Cyrillic; anything else (digits, other scripts, a
// mix) as it is.
func stemWord(w string) string {
	latin, cyrillic := 0, 0
	for _, r := range w {
		switch {
		case r < utf8.RuneSelf && 'a' <= r && r <= 'z':
			latin++
		case unicode.Is(unicode.Latin, r):
			return w // accented Latin: English rules would mangle it
		case unicode.Is(unicode.Cyrillic, r):
			cyrillic++
		default:
			if !unicode.Is(unicode.Mn, r) {
				return w
			}
		}
	}
	switch {
	case latin > 0 && cyrillic == 0:
		return english.Stem(w, true)
	case cyrillic > 0 && latin == 0:
		return russian.Stem(w, true)
	}
	return w
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func wordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r)
}

// Tokenize splits text into normalized words in order, with their places
// in text. A word is a run of letters, digits and combining marks; all
// else separates words.
func Tokenize(text string) []Token { return tokenize(text, false) }

// tokenize is Tokenize, with each word stemmed when stem is set (see
// normalize).
func tokenize(text string, stem bool) []Token {
	var out []Token
	start := -1
	emit := func(end int) {
		w := normalize(text[start:end], stem)
		// Normalization may bring separators (½ → 1⁄2): split again.
		for _, part := range strings.FieldsFunc(w, func(r rune) bool { return !wordRune(r) }) {
			out = append(out, Token{Text: clip(part), Start: start, End: end})
		}
	}
	for i, r := range text {
		if wordRune(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			emit(i)
			start = -1
		}
	}
	if start >= 0 {
		emit(len(text))
	}
	return out
}

// clip cuts a token to MaxTokenBytes on a rune boundary.
func clip(s string) string {
	if len(s) <= MaxTokenBytes {
		return s
	}
	n := MaxTokenBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Query is a parsed search: words that must all appear, and phrases whose
// words must appear in order, next to each other.
type Query struct {
	Words   []string   // normalized, distinct
	Phrases [][]string // each of two or more normalized words
}

// ParseQuery reads q: bare words, and "quoted phrases". An unclosed quote
// runs to the end. A quoted single word is just a word.
func ParseQuery(q string) Query { return parseQuery(q, false) }

// parseQuery is ParseQuery, its words stemmed when stem is set.
func parseQuery(q string, stem bool) Query {
	var out Query
	seen := map[string]bool{}
	addWord := func(w string) {
		if !seen[w] {
			seen[w] = true
			out.Words = append(out.Words, w)
		}
	}
	parts := strings.Split(q, `"`)
	for i, p := range parts {
		toks := tokenize(p, stem)
		if i%2 == 1 && len(toks) > 1 {
			ph := make([]string, len(toks))
			for j, t := range toks {
				ph[j] = t.Text
			}
			out.Phrases = append(out.Phrases, ph)
		}
		for _, t := range toks {
			addWord(t.Text)
		}
	}
	return out
}

// Empty reports whether the query has no word at all.
func (q Query) Empty() bool { return len(q.Words) == 0 }

// Match reports whether tokens (a message's, in order) satisfy q: every
// word present, every phrase present in order.
func (q Query) Match(tokens []Token) bool {
	if q.Empty() {
		return false
	}
	have := make(map[string]bool, len(tokens))
	for _, t := range tokens {
		have[t.Text] = true
	}
	for _, w := range q.Words {
		if !have[w] {
			return false
		}
	}
	for _, ph := range q.Phrases {
		if phraseAt(tokens, ph) < 0 {
			return false
		}
	}
	return true
}

// phraseAt returns the index of the first token where ph starts, or -1.
func phraseAt(tokens []Token, ph []string) int {
outer:
	for i := 0; i+len(ph) <= len(tokens); i++ {
		for j, w := range ph {
			if tokens[i+j].Text != w {
				continue outer
			}
		}
		return i
	}
	return -1
}
