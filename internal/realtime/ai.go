package realtime

import (
	"context"
	"sync"
)

// AI is what the hub needs from the assistant: stopping a chat's answer
// (the ai_stop command) and sending the text so far of answers in progress
// to a socket that resumes mid-answer.
type AI interface {
	Stop(ctx context.Context, userID, chatID string) error
	Snapshot(userID string, chatIDs []string)
}

// controls holds handlers for control envelopes: requests another
// instance must act on (stop the answer it is generating, send its text so
// far).
type controls struct {
	mu       sync.RWMutex
	handlers map[string]func([]byte)
}

// SetAI connects the assistant; call it before serving.
func (h *Hub) SetAI(ai AI) { h.ai = ai }

// OnControl registers the handler for control envelopes named name.
func (h *Hub) OnControl(name string, handler func(payload []byte)) {
	h.controls.mu.Lock()
	defer h.controls.mu.Unlock()
	if h.controls.handlers == nil {
		h.controls.handlers = map[string]func([]byte){}
	}
	h.controls.handlers[name] = handler
}

// Control runs the handler registered under name on every other instance.
func (h *Hub) Control(name string, payload []byte) {
	h.publish(&envelope{Kind: kindControl, Type: name, Frame: payload})
}

func (h *Hub) runControl(e *envelope) {
	h.controls.mu.RLock()
	f := h.controls.handlers[e.Type]
	h.controls.mu.RUnlock()
	if f != nil {
		f(e.Frame)
	}
}
