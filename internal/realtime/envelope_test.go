package realtime

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/aichat/aichat/internal/chat"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	frame := encode(EventChatMessage, "", &chat.Message{ID: "m1", ChatID: "c1", Seq: 7, Author: "u1",
		AuthorKind: chat.AuthorUser, Content: "line one\nline two \u2028 \"quoted\" {}", Status: chat.StatusComplete})
	tests := []struct {
		name string
		e    envelope
	}{
		{"frame with unread", envelope{Kind: kindFrame, Type: EventChatMessage, To: []string{"u1", "u2"}, ChatID: "c1", Seq: 7,
			Unread: []chat.UnreadChange{{UserID: "u2", ChatID: "c1", LastSeq: 7}}, Frame: frame}},
		{"unread only", envelope{Kind: kindUnread, Unread: []chat.UnreadChange{{UserID: "u1", ChatID: "c1", LastSeq: 7, LastRead: 7},
			{UserID: "u1", ChatID: "c2", Gone: true}}}},
		{"invalidate", envelope{Kind: kindInvalidate, To: []string{"u1"}}},
		{"kick", envelope{Kind: kindKick, To: []string{"u1"}, AuthSession: "as1", Code: CloseTokenExpired, Reason: "bye\nnow"}},
		{"frame with newlines in it", envelope{Kind: kindFrame, Type: "x", To: []string{"u"}, Frame: []byte("a\nb\n\nc")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.e.marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := unmarshalEnvelope(b)
			if err != nil {
				t.Fatalf("unmarshal %q: %v", b, err)
			}
			if !bytes.Equal(got.Frame, tt.e.Frame) {
				t.Errorf("frame = %q, want %q", got.Frame, tt.e.Frame)
			}
			want := tt.e
			want.Frame, got.Frame = nil, nil
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("header = %+v, want %+v", *got, want)
			}
		})
	}
}

func TestEnvelopeUnmarshalErrors(t *testing.T) {
	for _, b := range []string{"", `{"k":"f"}`, "not json\n{}", `{"k":1}` + "\n"} {
		if e, err := unmarshalEnvelope([]byte(b)); err == nil {
			t.Errorf("unmarshal %q = %+v, want an error", b, e)
		}
	}
	// A header with nothing after the newline is an envelope without a frame.
	e, err := unmarshalEnvelope([]byte(`{"k":"i","to":["u"]}` + "\n"))
	if err != nil || e.Kind != kindInvalidate || len(e.Frame) != 0 || !reflect.DeepEqual(e.To, []string{"u"}) {
		t.Errorf("header only: %+v, %v", e, err)
	}
}
