package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// The server writes every frame as {"type":"...","id":"...","data":{...}}
// with the fields in that order (encoding/json of one struct), and a
// chat_message's data holds "content":"..." with the text as sent. The
// parsers below read those fields straight from the bytes, because the
// generator shares the machine with the server and must not spend a
// full JSON decode on each of 100,000 frames a second; a frame in any
// other shape falls back to encoding/json.

var (
	typePrefix = []byte(`{"type":"`)
	idKey      = []byte(`"id":"`)
	codeKey    = []byte(`"code":"`)
	contentKey = []byte(`"content":"`)
)

// stringAfter returns the JSON string that starts right after key, if it
// has no escapes (all the values read here are plain ASCII).
func stringAfter(b, key []byte) ([]byte, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return nil, false
	}
	rest := b[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return nil, false
	}
	return rest[:j], true
}

type frameHead struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// frameType returns a frame's type without decoding the frame.
func frameType(b []byte) string {
	if bytes.HasPrefix(b, typePrefix) {
		rest := b[len(typePrefix):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			return string(rest[:j])
		}
	}
	var h frameHead
	json.Unmarshal(b, &h)
	return h.Type
}

// frameID returns the command id an ack or error frame answers; it comes
// right after the type.
func frameID(b []byte) string {
	head := b
	if i := bytes.Index(b, []byte(`"data":`)); i >= 0 {
		head = b[:i]
	}
	if v, ok := stringAfter(head, idKey); ok {
		return string(v)
	}
	var h frameHead
	json.Unmarshal(b, &h)
	return h.ID
}

// errorCode returns the code of an error frame.
func errorCode(b []byte) string {
	if v, ok := stringAfter(b, codeKey); ok {
		return string(v)
	}
	var f struct {
		Data struct {
			Code string `json:"code"`
		} `json:"data"`
	}
	json.Unmarshal(b, &f)
	return f.Data.Code
}

// messageContent returns the content of a chat_message frame.
func messageContent(b []byte) ([]byte, bool) { return stringAfter(b, contentKey) }

// marker is what a generated message carries at the start of its text:
// enough for any receiver to tell which run, instance and sender it came
// from, which message it is, and when it was due to be sent.
type marker struct {
	Run    string
	Inst   int   // index of the --url the sender is connected to
	Sender int   // sender number
	Seq    int64 // message number in the run
	TS     int64 // due time, CLOCK_MONOTONIC nanoseconds
}

const markerTag = "lt1"

// text renders the marker followed by padding up to size bytes. The text is
// plain ASCII, so it needs no JSON escaping.
func (m marker) text(size int) string {
	var b strings.Builder
	b.Grow(max(size, 64))
	b.WriteString(markerTag)
	b.WriteByte(' ')
	b.WriteString(m.Run)
	for _, n := range []int64{int64(m.Inst), int64(m.Sender), m.Seq, m.TS} {
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(n, 10))
	}
	b.WriteByte(' ')
	for b.Len() < size {
		b.WriteByte('x')
	}
	return b.String()
}

// parseMarker reads a marker from the start of a message text.
func parseMarker(s []byte) (marker, bool) {
	var m marker
	f := bytes.Fields(s)
	if len(f) < 6 || string(f[0]) != markerTag {
		return m, false
	}
	m.Run = string(f[1])
	var nums [4]int64
	for i := range nums {
		n, err := strconv.ParseInt(string(f[2+i]), 10, 64)
		if err != nil {
			return m, false
		}
		nums[i] = n
	}
	m.Inst, m.Sender, m.Seq, m.TS = int(nums[0]), int(nums[1]), nums[2], nums[3]
	return m, true
}

// sendFrame builds a send_message command; id is the message number, so
// the ack or error that answers it can be matched.
func sendFrame(seq int64, chatID, content, clientID string) []byte {
	b := make([]byte, 0, 96+len(chatID)+len(content)+len(clientID))
	b = append(b, `{"type":"send_message","id":"`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `","data":{"chat_id":`...)
	b = strconv.AppendQuote(b, chatID)
	b = append(b, `,"content":`...)
	b = strconv.AppendQuote(b, content)
	b = append(b, `,"client_id":`...)
	b = strconv.AppendQuote(b, clientID)
	return append(b, "}}"...)
}

var (
	chatIDKey = []byte(`"chat_id":"`)
	seqKey    = []byte(`"seq":`)
)

// intAfter reads the integer right after key.
func intAfter(b, key []byte) (int64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	rest := b[i+len(key):]
	j := 0
	for j < len(rest) && (rest[j] == '-' || rest[j] >= '0' && rest[j] <= '9') {
		j++
	}
	n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return n, err == nil
}

// chatSeq returns the chat and seq of a chat_message frame (or of the
// message an ack carries): the message's "chat_id" and "seq" are its first
// fields of those names.
func chatSeq(b []byte) (string, int64, bool) {
	c, ok1 := stringAfter(b, chatIDKey)
	n, ok2 := intAfter(b, seqKey)
	if ok1 && ok2 {
		return string(c), n, true
	}
	var f struct {
		Data struct {
			ChatID  string `json:"chat_id"`
			Seq     int64  `json:"seq"`
			Message *struct {
				ChatID string `json:"chat_id"`
				Seq    int64  `json:"seq"`
			} `json:"message"`
		} `json:"data"`
	}
	if json.Unmarshal(b, &f) != nil {
		return "", 0, false
	}
	if m := f.Data.Message; m != nil {
		return m.ChatID, m.Seq, m.Seq > 0
	}
	return f.Data.ChatID, f.Data.Seq, f.Data.Seq > 0
}

// resumeFrame builds a resume command for the given chats and last seqs.
func resumeFrame(id string, chats map[string]int64) []byte {
	b, _ := json.Marshal(map[string]any{"type": "resume", "id": id, "data": map[string]any{"chats": chats}})
	return b
}

// resumedTruncated returns the chats a resumed frame lists as truncated.
func resumedTruncated(b []byte) []string {
	var f struct {
		Data struct {
			Truncated []string `json:"truncated"`
		} `json:"data"`
	}
	json.Unmarshal(b, &f)
	return f.Data.Truncated
}

// errorMessage returns the message of an error frame.
func errorMessage(b []byte) string {
	var f struct {
		Data struct {
			Message string `json:"message"`
		} `json:"data"`
	}
	json.Unmarshal(b, &f)
	return f.Data.Message
}
