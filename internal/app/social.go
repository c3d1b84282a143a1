package app

import (
	"encoding/json"

	"github.com/aichat/aichat/internal/ai"
	"github.com/aichat/aichat/internal/chat"
)

// answerBus is the assistant's bus with one more listener: when an answer
// finishes (ai_done, status complete), social hears of it, to tell members
// who have not read it (answer_finished notifications). It reads the
// frame's documented fields, so package ai needs no hook of its own.
type answerBus struct {
	ai.Bus
	finished func(chatID string, seq int64, members []string)
}

func (b answerBus) SendChat(chatID string, users []string, typ string, data any) {
	b.Bus.SendChat(chatID, users, typ, data)
	if typ != ai.EventDone || b.finished == nil {
		return
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return
	}
	var d struct {
		Seq    int64  `json:"seq"`
		Status string `json:"status"`
	}
	if json.Unmarshal(raw, &d) == nil && d.Status == chat.StatusComplete && d.Seq > 0 {
		b.finished(chatID, d.Seq, users)
	}
}
