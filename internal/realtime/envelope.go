package realtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"

	"github.com/aichat/aichat/internal/chat"
)

// Envelope kinds.
const (
	kindFrame      = "f" // deliver Frame to the sessions of To
	kindInvalidate = "i" // drop cached unread counts of To
	kindKick       = "k" // close the sessions of To (or of one auth session)
	kindUnread     = "u" // apply Unread and tell the users their counts
	kindControl    = "c" // run the control handler named Type with Frame
)

// envelope is one event as it travels between instances: a small JSON
// header, a newline, then the frame bytes exactly as the sockets get them,
// so the frame is encoded once, by the instance where the event happened.
type envelope struct {
	Kind   string              `json:"k"`
	To     []string            `json:"to,omitempty"`
	ChatID string              `json:"c,omitempty"`
	Seq    int64               `json:"s,omitempty"`
	Type   string              `json:"t,omitempty"` // frame type, for metrics
	Unread []chat.UnreadChange `json:"u,omitempty"`
	// Kick only.
	AuthSession string `json:"as,omitempty"`
	Code        int    `json:"cc,omitempty"`
	Reason      string `json:"cr,omitempty"`

	Frame []byte `json:"-"`
	// Local only: when the event's cause reached this machine (Arrived).
	// Frames delivered on another instance are not in the arrival
	// histogram (only in the hub's, from the envelope's arrival there).
	arrived time.Time
}

func (e *envelope) marshal() ([]byte, error) {
	h, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(h)+1+len(e.Frame))
	out = append(out, h...)
	out = append(out, '\n')
	return append(out, e.Frame...), nil
}

func unmarshalEnvelope(b []byte) (*envelope, error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, errors.New("envelope without a header line")
	}
	var e envelope
	if err := json.Unmarshal(b[:i], &e); err != nil {
		return nil, err
	}
	if len(b) > i+1 {
		e.Frame = b[i+1:]
	}
	return &e, nil
}
