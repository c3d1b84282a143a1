package prompt

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// regexpPrefix marks a pattern as a regular expression rather than a word.
const regexpPrefix = "re:"

// Moderator blocks text that matches any of a configured list of patterns.
// It is used twice per turn: on the user's message before it reaches the
// model, and on the model's answer before it is shown. The zero value and a
// nil *Moderator block nothing. A Moderator never changes after NewModerator,
// so one may be shared by any number of goroutines.
//
// A pattern is either a word or phrase, matched on word boundaries, or a
// regular expression (RE2 syntax) after "re:". Both are matched against the
// normalized text (see normalize), so "БОМБА", "бомба" and fullwidth or
// zero-width-spaced spellings match the pattern "бомба", and regular
// expressions are case-insensitive.
//
// What it does not catch: deliberate misspellings, letters swapped for
// look-alikes from another script ("bоmb" with a Cyrillic "о"), and words
// split by punctuation ("b.o.m.b"). It is a filter for a configured list, not
// a classifier.
type Moderator struct {
	rules []rule
}

type rule struct {
	source string         // the pattern as configured; what Check reports
	phrase string         // normalized word or phrase, if not a regexp
	re     *regexp.Regexp // the compiled regexp, if one
	// Boundaries are needed only where the phrase starts or ends with a
	// word character: "c++" may be followed by anything.
	wordStart, wordEnd bool
}

// NewModerator compiles patterns (as returned by ParsePatterns). Empty
// patterns are ignored.
func NewModerator(patterns []string) (*Moderator, error) {
	m := &Moderator{}
	for i, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		r, err := compileRule(p)
		if err != nil {
			return nil, fmt.Errorf("moderation pattern %d %q: %w", i+1, p, err)
		}
		m.rules = append(m.rules, r)
	}
	return m, nil
}

func compileRule(p string) (rule, error) {
	if expr, ok := strings.CutPrefix(p, regexpPrefix); ok {
		if strings.TrimSpace(expr) == "" {
			return rule{}, errors.New("empty regular expression after \"re:\"")
		}
		re, err := regexp.Compile("(?i)" + expr)
		if err != nil {
			return rule{}, fmt.Errorf("bad regular expression: %w", err)
		}
		if re.MatchString("") {
			return rule{}, errors.New("regular expression matches empty text, so it would block every message")
		}
		return rule{source: p, re: re}, nil
	}
	phrase := normalize(p)
	if phrase == "" {
		return rule{}, errors.New("nothing left of the word after normalization")
	}
	first, _ := utf8.DecodeRuneInString(phrase)
	last, _ := utf8.DecodeLastRuneInString(phrase)
	return rule{source: p, phrase: phrase, wordStart: isWordRune(first), wordEnd: isWordRune(last)}, nil
}

// Check reports whether text matches a pattern and, if so, which one, as it
// was configured. It never returns the text itself or the part of it that
// matched: that is the user's content (it could be a card number a "re:"
// pattern caught), and the result goes to logs and audit records.
// Patterns are tried in order; the first that matches is reported.
func (m *Moderator) Check(text string) (blocked bool, matched string) {
	if m == nil || len(m.rules) == 0 || text == "" {
		return false, ""
	}
	t := normalize(text)
	for _, r := range m.rules {
		if r.matches(t) {
			return true, r.source
		}
	}
	return false, ""
}

// matches reports whether normalized text t matches the regexp, or holds the
// phrase on word boundaries.
func (r rule) matches(t string) bool {
	if r.re != nil {
		return r.re.MatchString(t)
	}
	for off := 0; ; {
		i := strings.Index(t[off:], r.phrase)
		if i < 0 {
			return false
		}
		start, end := off+i, off+i+len(r.phrase)
		before, _ := utf8.DecodeLastRuneInString(t[:start])
		after, _ := utf8.DecodeRuneInString(t[end:])
		if (!r.wordStart || start == 0 || !isWordRune(before)) &&
			(!r.wordEnd || end == len(t) || !isWordRune(after)) {
			return true
		}
		off = start + 1
	}
}

// normalize folds the ways one word can be written into one: NFKC
// (fullwidth, ligatures, superscripts and other compatibility forms become
// plain letters), Unicode case folding (not just lower-casing: "ß" and "ss"
// match), "ё" as "е" (Russian writes either), format characters dropped
// (zero-width spaces and joiners, soft hyphens: invisible, and a cheap way to
// split a word), and every run of white space as one space, so a phrase
// matches across line breaks.
func normalize(s string) string {
	// A Caser keeps state, so each call gets its own.
	s = cases.Fold().String(norm.NFKC.String(s))
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Cf, r):
			continue
		case unicode.IsSpace(r):
			space = true
			continue
		case r == 'ё':
			r = 'е'
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// ParsePatterns splits a configuration value into moderation patterns and
// checks each, so a bad pattern stops the server at start-up with a clear
// message rather than failing later. A value with line breaks holds one
// pattern per line. A value on one line is split on commas, except commas
// inside a regular expression's brackets, so "bomb, re:\d{13,19}" is two
// patterns; a comma outside brackets ends a regular expression (write [,] or
// use one pattern per line). Blank entries are ignored; an empty value gives
// no patterns.
func ParsePatterns(s string) ([]string, error) {
	lines := strings.Contains(s, "\n")
	var out []string
	for s != "" {
		var p string
		unclosed := false
		if lines {
			p, s, _ = strings.Cut(s, "\n")
		} else {
			p, s, unclosed = nextOnLine(s)
		}
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		_, err := compileRule(p)
		if err == nil && unclosed {
			err = errors.New("unclosed bracket in regular expression")
		}
		if err != nil {
			return nil, fmt.Errorf("moderation pattern %d %q: %w", len(out)+1, p, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// nextOnLine cuts the first pattern off a one-line value at the first comma
// outside a regular expression's groups, classes and repetitions. unclosed
// reports a regexp whose brackets never close, which would otherwise
// swallow the patterns after it ("re:a{1,2, bomb" is a valid regexp).
func nextOnLine(s string) (p, rest string, unclosed bool) {
	isRe := strings.HasPrefix(strings.TrimSpace(s), regexpPrefix)
	depth, inClass := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ',' && (!isRe || depth == 0 && !inClass):
			return s[:i], s[i+1:], false
		case !isRe:
		case c == '\\':
			i++ // an escaped character is never a bracket or a separator
		case inClass:
			inClass = c != ']'
		case c == '[':
			inClass = true
		case c == '(' || c == '{':
			depth++
		case (c == ')' || c == '}') && depth > 0:
			depth--
		}
	}
	return s, "", isRe && (depth > 0 || inClass)
}
