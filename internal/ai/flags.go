package ai

import (
	"context"
	"strings"
	"time"
)

// Flag is a moderation refusal as recorded for the moderation queue: what
// the filter matched (a configured pattern, or the provider's categories),
// never the text it matched in.
type Flag struct {
	ChatID    string
	MessageID string // the refused question, or the replaced answer
	UserID    string // who asked
	Stage     string // "question" or "answer"
	Source    string // "pattern" or "provider"
	Matched   string // the pattern as configured, or the categories
	At        time.Time
}

// Flag stages and sources.
const (
	FlagQuestion = "question"
	FlagAnswer   = "answer"
	FlagPattern  = "pattern"
	FlagProvider = "provider"
)

// flag hands a moderation refusal in t to Options.OnFlag. The question
// stage is before the answer exists (t.msg is nil); the answer stage is
// after it was generated.
func (s *Service) flag(ctx context.Context, t *turn, source, matched string) {
	if s.opt.OnFlag == nil || t == nil || t.question == nil {
		return
	}
	f := Flag{ChatID: t.chatID, UserID: t.userID, Stage: FlagQuestion, Source: source, Matched: matched, At: s.opt.Now().UTC()}
	if f.UserID == "" {
		f.UserID = t.question.Author
	}
	f.MessageID = t.question.ID
	if t.msg != nil {
		f.Stage, f.MessageID = FlagAnswer, t.msg.ID
	}
	// Recorded even when the turn's context has ended: the refusal happened.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	s.opt.OnFlag(ctx, f)
}

// Active returns how many answers this instance is generating now.
func (s *Service) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.running)
}

// providerMatched is what a provider flag records: its categories.
func providerMatched(cats []string) string {
	if len(cats) == 0 {
		return "flagged"
	}
	return strings.Join(cats, ",")
}

// SetFlagRecorder sets Options.OnFlag. Call it before the service answers
// anything (app.New does, right after building it).
func (s *Service) SetFlagRecorder(fn func(ctx context.Context, f Flag)) {
	s.opt.OnFlag = fn
}
