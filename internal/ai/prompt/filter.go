package prompt

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"unicode"
)

// Notice is shown in the chat instead of an answer CheckAnswer rejects.
const Notice = "The assistant's answer could not be shown."

// Reasons CheckAnswer gives, for logs and metrics; never shown to users.
const (
	ReasonEmpty    = "empty answer"
	ReasonJSONOnly = "answer is only a JSON object or array, with no text for the reader"
)

// CheckAnswer reports whether a finished answer may be shown, and if not,
// why. Rejected are answers that are empty or invisible, and answers that are
// nothing but JSON objects or arrays, bare or in one code fence: models echo
// request metadata such as {"chat_id":"123","user_id":"456"}, and local models
// print tool calls as text, neither of which means anything to a person.
// Answers that explain JSON in prose, or show it in a block next to text,
// pass. The price is that an answer which is only a fenced JSON document,
// given to a user who asked for exactly that, is rejected too.
func CheckAnswer(text string) (ok bool, reason string) {
	s := strings.TrimFunc(text, invisible)
	if s == "" {
		return false, ReasonEmpty
	}
	if body, fenced := unfence(s); fenced {
		if s = strings.TrimFunc(body, invisible); s == "" {
			return false, ReasonEmpty
		}
	}
	if onlyJSON(s) {
		return false, ReasonJSONOnly
	}
	return true, ""
}

// invisible is white space and format characters such as U+200B, which a
// model can emit alone and which render as nothing.
func invisible(r rune) bool { return unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) }

// unfence returns the body of s when s is exactly one fenced code block
// ("```json\n...\n```", any or no info string).
func unfence(s string) (string, bool) {
	const fence = "```"
	nl := strings.IndexByte(s, '\n')
	if !strings.HasPrefix(s, fence) || nl < 0 || strings.Contains(s[len(fence):nl], "`") {
		return "", false
	}
	body, closed := strings.CutSuffix(strings.TrimRightFunc(s[nl+1:], invisible), fence)
	if !closed || strings.Contains(body, fence) {
		return "", false
	}
	return body, true
}

// onlyJSON reports whether s is one or more JSON objects or arrays and
// nothing else. A lone number or string ("42") is a fine answer.
func onlyJSON(s string) bool {
	if s[0] != '{' && s[0] != '[' {
		return false
	}
	dec := json.NewDecoder(strings.NewReader(s))
	for n := 0; ; n++ {
		var v json.RawMessage
		err := dec.Decode(&v)
		if err == io.EOF {
			return n > 0
		}
		if err != nil {
			return false
		}
		if v = bytes.TrimSpace(v); v[0] != '{' && v[0] != '[' {
			return false
		}
	}
}
