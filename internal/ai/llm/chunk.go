package llm

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
)

// chunk is what the client reads of a streamed chunk. The SDK's
// reflective ChatCompletionChunk decoder was a fifth of the server's CPU
// when relaying 10,000 chunks a second; encoding/json into these fields
// still cost ~4 µs a chunk, most of it skipping fields nobody reads.
type chunk struct {
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   *chunkUsage   `json:"usage"` // nil when absent or null
}

type chunkChoice struct {
	Index int64 `json:"index"`
	Delta struct {
		Content string `json:"content"`
	} `json:"delta"`
	FinishReason string `json:"finish_reason"`
}

type chunkUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// decode reads a chunk: the common shape with a small scanner, anything
// it does not handle with encoding/json, and what encoding/json refuses
// (a number sent as a string, say) with the SDK's lenient decoder, so this
// client accepts whatever the SDK accepts.
func (ch *chunk) decode(data []byte) error {
	if ch.scan(data) {
		return nil
	}
	*ch = chunk{}
	if json.Unmarshal(data, ch) == nil {
		return nil
	}
	*ch = chunk{}
	var sdk openai.ChatCompletionChunk
	if err := json.Unmarshal(data, &sdk); err != nil {
		return err
	}
	ch.Model = sdk.Model
	for _, c := range sdk.Choices {
		cc := chunkChoice{Index: c.Index, FinishReason: c.FinishReason}
		cc.Delta.Content = c.Delta.Content
		ch.Choices = append(ch.Choices, cc)
	}
	if sdk.JSON.Usage.Valid() {
		ch.Usage = &chunkUsage{PromptTokens: sdk.Usage.PromptTokens, CompletionTokens: sdk.Usage.CompletionTokens}
	}
	return nil
}

// scan decodes data as encoding/json would into ch, or reports false
// (leaving ch partly set) for anything unusual: escapes in keys, keys
// that differ from ours only in case (encoding/json matches them), a
// repeated "choices", a value of another type, invalid JSON.
func (ch *chunk) scan(data []byte) bool {
	s := scanner{b: data}
	choicesSeen := false
	ok := s.object(func(key []byte) bool {
		switch {
		case string(key) == "model":
			return s.stringOrNull(&ch.Model)
		case string(key) == "choices":
			if choicesSeen {
				// A repeated array decodes into the elements already
				// there in encoding/json; leave that oddity to it.
				return false
			}
			choicesSeen = true
			return s.choices(ch)
		case string(key) == "usage":
			return s.usage(ch)
		case foldsTo(key, "model", "choices", "usage"):
			return false
		}
		return s.skip(0)
	})
	s.space()
	return ok && s.i == len(s.b)
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips spaces and returns the next byte without consuming it (0 at
// the end).
func (s *scanner) next() byte {
	s.space()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// object reads {"key": value, ...}, calling field with each key while the
// scanner stands at its value; field must consume the value.
func (s *scanner) object(field func(key []byte) bool) bool {
	if s.next() != '{' {
		return false
	}
	s.i++
	if s.next() == '}' {
		s.i++
		return true
	}
	for {
		key, ok := s.rawString()
		if !ok || bytes.IndexByte(key, '\\') >= 0 || s.next() != ':' {
			return false
		}
		s.i++
		if !field(key) {
			return false
		}
		switch s.next() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// rawString reads a string and returns its bytes between the quotes, still
// escaped.
func (s *scanner) rawString() ([]byte, bool) {
	if s.next() != '"' {
		return nil, false
	}
	start := s.i + 1
	for i := start; i < len(s.b); i++ {
		switch c := s.b[i]; {
		case c == '"':
			s.i = i + 1
			return s.b[start:i], true
		case c == '\\':
			i++
			if i >= len(s.b) {
				return nil, false
			}
			switch s.b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s.b) {
					return nil, false
				}
				for _, h := range s.b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return nil, false
					}
				}
				i += 4
			default:
				return nil, false
			}
		case c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// str reads a string value; escapes and invalid UTF-8 (which
// encoding/json replaces) go through encoding/json.
func (s *scanner) str(dst *string) bool {
	start := s.i
	raw, ok := s.rawString()
	if !ok {
		return false
	}
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		*dst = string(raw)
		return true
	}
	return json.Unmarshal(s.b[start:s.i], dst) == nil
}

// null consumes a literal null.
func (s *scanner) null() bool {
	if s.next() == 'n' && bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

// stringOrNull reads a string; null leaves dst as it is, like
// encoding/json.
func (s *scanner) stringOrNull(dst *string) bool {
	if s.null() {
		return true
	}
	return s.str(dst)
}

// int reads an integer (null leaves dst as it is).
func (s *scanner) int(dst *int64) bool {
	if s.null() {
		return true
	}
	start := s.i
	for s.i < len(s.b) && (s.b[s.i] == '-' || s.b[s.i] >= '0' && s.b[s.i] <= '9') {
		s.i++
	}
	n, err := strconv.ParseInt(string(s.b[start:s.i]), 10, 64)
	if err != nil || (len(s.b[start:s.i]) > 1 && s.b[start] == '0') || bytes.HasPrefix(s.b[start:s.i], []byte("-0")) {
		return false
	}
	*dst = n
	return true
}

func (s *scanner) choices(ch *chunk) bool {
	if s.null() {
		ch.Choices = nil
		return true
	}
	if s.next() != '[' {
		return false
	}
	s.i++
	if ch.Choices == nil {
		ch.Choices = make([]chunkChoice, 0, 1)
	}
	ch.Choices = ch.Choices[:0]
	if s.next() == ']' {
		s.i++
		return true
	}
	for {
		var c chunkChoice
		ok := s.object(func(key []byte) bool {
			switch {
			case string(key) == "index":
				return s.int(&c.Index)
			case string(key) == "finish_reason":
				return s.stringOrNull(&c.FinishReason)
			case string(key) == "delta":
				if s.null() {
					return true
				}
				return s.object(func(key []byte) bool {
					switch {
					case string(key) == "content":
						return s.stringOrNull(&c.Delta.Content)
					case foldsTo(key, "content"):
						return false
					}
					return s.skip(0)
				})
			case foldsTo(key, "index", "finish_reason", "delta"):
				return false
			}
			return s.skip(0)
		})
		if !ok {
			return false
		}
		ch.Choices = append(ch.Choices, c)
		switch s.next() {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return false
		}
	}
}

func (s *scanner) usage(ch *chunk) bool {
	if s.null() {
		ch.Usage = nil
		return true
	}
	u := &chunkUsage{}
	if ch.Usage != nil {
		u = ch.Usage
	}
	ok := s.object(func(key []byte) bool {
		switch {
		case string(key) == "prompt_tokens":
			return s.int(&u.PromptTokens)
		case string(key) == "completion_tokens":
			return s.int(&u.CompletionTokens)
		case foldsTo(key, "prompt_tokens", "completion_tokens"):
			return false
		}
		return s.skip(0)
	})
	ch.Usage = u
	return ok
}

// skip consumes one value of any type, checking it well enough that the
// whole chunk is valid JSON when scan accepts it.
func (s *scanner) skip(depth int) bool {
	if depth > 64 {
		return false
	}
	switch c := s.next(); {
	case c == '"':
		_, ok := s.rawString()
		return ok
	case c == '{':
		return s.object(func([]byte) bool { return s.skip(depth + 1) })
	case c == '[':
		s.i++
		if s.next() == ']' {
			s.i++
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			switch s.next() {
			case ',':
				s.i++
			case ']':
				s.i++
				return true
			default:
				return false
			}
		}
	case c == 'n':
		return s.null()
	case c == 't' || c == 'f':
		for _, lit := range []string{"true", "false"} {
			if bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
				s.i += len(lit)
				return true
			}
		}
		return false
	case c == '-' || c >= '0' && c <= '9':
		start := s.i
		for s.i < len(s.b) && bytes.IndexByte([]byte("+-.eE0123456789"), s.b[s.i]) >= 0 {
			s.i++
		}
		return json.Valid(s.b[start:s.i])
	}
	return false
}

// foldsTo reports whether key matches one of names only when case is
// ignored, which encoding/json would treat as that field.
func foldsTo(key []byte, names ...string) bool {
	for _, n := range names {
		if string(key) != n && bytes.EqualFold(key, []byte(n)) {
			return true
		}
	}
	return false
}
