package prompt

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Mentioned reports whether text addresses the assistant as "@ai", in any
// case, for chats whose ai_mode is "mention". The handle must stand on its
// own: "x@ai.com", "support@ai", "https://host/@ai", "@aim" and "@ai-bot"
// are not mentions, while "@ai,", "(@ai)", "«@AI»" and "Привет, @ai!" are.
func Mentioned(text string) bool {
	for i := 0; ; {
		j := strings.IndexByte(text[i:], '@')
		if j < 0 {
			return false
		}
		at := i + j
		i = at + 1
		if len(text) >= at+3 && strings.EqualFold(text[at+1:at+3], "ai") &&
			startsMention(text[:at]) && endsMention(text[at+3:]) && !inURL(text[:at]) {
			return true
		}
	}
}

// isWordRune is a rune that continues a word or a handle.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || r == '_'
}

// startsMention: the "@" is not inside a word, an email's local part
// ("x@ai"), a path ("/@ai") or a query ("?u=@ai").
func startsMention(before string) bool {
	r, size := utf8.DecodeLastRuneInString(before)
	if size == 0 {
		return true
	}
	return !isWordRune(r) && !strings.ContainsRune(`/\.@_-+%=&#~:`, r)
}

// endsMention: "ai" is the whole handle. Punctuation may follow ("@ai,",
// "@ai."), but not when it continues a domain, a handle or a path
// ("@ai.com", "@ai-bot", "@ai/x").
func endsMention(after string) bool {
	r, size := utf8.DecodeRuneInString(after)
	if size == 0 {
		return true
	}
	if isWordRune(r) {
		return false
	}
	if strings.ContainsRune(".-@/:", r) {
		next, _ := utf8.DecodeRuneInString(after[size:])
		return !isWordRune(next)
	}
	return true
}

// inURL: the white-space-delimited word holding the "@" is a URL or a mailto
// link, as in "https://host/(@ai)", where the "@" follows punctuation that
// startsMention lets through.
func inURL(before string) bool {
	if i := strings.LastIndexFunc(before, unicode.IsSpace); i >= 0 {
		_, size := utf8.DecodeRuneInString(before[i:])
		before = before[i+size:]
	}
	word := strings.ToLower(before)
	return strings.Contains(word, "://") || strings.HasPrefix(word, "www.") || strings.HasPrefix(word, "mailto:")
}
