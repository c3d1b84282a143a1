package app

import (
	"encoding/json"

	"github.com/aichat/aichat/internal/ai"
	"github.com/aichat/aichat/internal/search"
)

// searchBus is the assistant's bus with the search index listening: when
// an answer ends with text (ai_done), its words are indexed. Questions
// reach the index as chat events (search.Service implements chat.Events).
type searchBus struct {
	ai.Bus
	ix *search.Service
}

func (b searchBus) SendChat(chatID string, users []string, typ string, data any) {
	b.Bus.SendChat(chatID, users, typ, data)
	if typ != ai.EventDone {
		return
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return
	}
	var d struct {
		MessageID string `json:"message_id"`
		Content   string `json:"content"`
	}
	if json.Unmarshal(raw, &d) == nil && d.MessageID != "" {
		b.ix.AnswerDone(chatID, d.MessageID, d.Content)
	}
}
