// Package ai owns the assistant's turns: which provider serves a model,
// when a message calls for an answer, the generation itself (owned by the
// server, not by a socket: closing a tab does not stop it), relaying the
// answer as coalesced deltas, saving it, stopping and regenerating it, and
// usage and quotas. Talking to providers is package llm; building the
// prompt and checking what goes in and out is package prompt.
package ai

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aichat/aichat/internal/ai/llm"
	"github.com/aichat/aichat/internal/ai/prompt"
	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/chat"
	"github.com/aichat/aichat/internal/store"
)

// Bus carries the assistant's events to sockets on every instance, and
// stop requests to the instance that runs a generation. The real-time hub
// implements it.
type Bus interface {
	// SendChat sends an event about a chat: a socket resuming that chat
	// holds it until the replay is done.
	SendChat(chatID string, users []string, typ string, data any)
	// Control runs the handler registered under name on every other
	// instance with payload.
	Control(name string, payload []byte)
	OnControl(name string, handler func(payload []byte))
}

// Options configure the Service.
type Options struct {
	DB        *store.DB
	Chats     *chat.Service
	Bus       Bus
	Log       *slog.Logger
	Metrics   *Metrics
	Providers []*llm.Client
	// DefaultModel serves chats whose settings name no model; empty: the
	// first model the first provider lists.
	DefaultModel  string
	SystemPrompt  string
	Coalesce      time.Duration // 0 sends every chunk at once
	SaveEvery     time.Duration
	DailyTokens   int64 // per user; 0: no limit
	MaxConcurrent int   // streaming answers per user
	Moderator     *prompt.Moderator
	// ProviderModeration also asks OpenAI's moderation endpoint about
	// questions and answers, when the chat's provider is OpenAI.
	ProviderModeration bool
	// Exempt reports users without quotas (admins).
	Exempt func(ctx context.Context, userID string) bool
	// OnFlag records a moderation refusal for the moderation queue.
	OnFlag func(ctx context.Context, f Flag)
	Now    func() time.Time
}

// Service runs the assistant's turns.
type Service struct {
	opt Options
	log *slog.Logger

	ctx    context.Context // ends at Close: every generation stops
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	running map[string]*turn // by chat id: the generations on this instance
	perUser map[string]int   // streaming answers per user on this instance
	models  map[string]*llm.Client
	listed  []Model
}

// Model is one model a provider serves, as GET /models lists it.
type Model struct {
	ID       string `json:"id"`
	Provider string `json:"provider"`
}

// New returns the service; RefreshModels asks providers what they serve.
func New(opt Options) *Service {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Metrics == nil {
		opt.Metrics = NewMetrics(nil)
	}
	if opt.SaveEvery <= 0 {
		opt.SaveEvery = 2 * time.Second
	}
	if opt.MaxConcurrent <= 0 {
		opt.MaxConcurrent = 2
	}
	if opt.Moderator == nil {
		opt.Moderator, _ = prompt.NewModerator(nil)
	}
	s := &Service{opt: opt, log: opt.Log, running: map[string]*turn{}, perUser: map[string]int{},
		models: map[string]*llm.Client{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	opt.Bus.OnControl(controlStop, s.onStopControl)
	opt.Bus.OnControl(controlSnapshot, s.onSnapshotControl)
	return s
}

// Close stops every generation of this instance (their answers are saved
// as stopped) and waits for them.
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
}

// Configured reports whether any provider is set up.
func (s *Service) Configured() bool { return len(s.opt.Providers) > 0 }

// RefreshModels asks every provider for its models. A provider that does
// not answer keeps serving the models configured for it.
func (s *Service) RefreshModels(ctx context.Context) {
	models := map[string]*llm.Client{}
	var listed []Model
	for _, p := range s.opt.Providers {
		ids := p.Provider().Models
		if got, err := p.Models(ctx); err == nil {
			ids = got
		} else {
			s.log.Warn("list models", "provider", p.Provider().Name, "err", err)
		}
		for _, id := range ids {
			if _, taken := models[id]; !taken {
				models[id] = p
				listed = append(listed, Model{ID: id, Provider: p.Provider().Name})
			}
		}
	}
	slices.SortFunc(listed, func(a, b Model) int { return strings.Compare(a.Provider+"/"+a.ID, b.Provider+"/"+b.ID) })
	s.mu.Lock()
	s.models, s.listed = models, listed
	s.mu.Unlock()
}

// Models lists the models of every provider.
func (s *Service) Models() []Model {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Model{}, s.listed...)
}

// route finds the provider for a model: "provider/model" names both; a
// bare name goes to the provider that listed it, else to the first
// provider. An empty name is the default model.
func (s *Service) route(model string) (*llm.Client, string, error) {
	if len(s.opt.Providers) == 0 {
		return nil, "", errNotConfigured()
	}
	if model == "" {
		model = s.opt.DefaultModel
	}
	if name, rest, ok := strings.Cut(model, "/"); ok {
		for _, p := range s.opt.Providers {
			if p.Provider().Name == name {
				return p, rest, nil
			}
		}
	}
	s.mu.Lock()
	p := s.models[model]
	if model == "" && len(s.listed) > 0 {
		model, p = s.listed[0].ID, s.models[s.listed[0].ID]
	}
	s.mu.Unlock()
	if p == nil {
		p = s.opt.Providers[0]
	}
	if model == "" {
		return nil, "", apperr.New(apperr.CodeAIModelNotFound,
			"No model is set for this chat and provider %s lists none; set one in the chat's settings or AICHAT_AI_MODEL.", p.Provider().Name)
	}
	return p, model, nil
}

func errNotConfigured() error {
	return apperr.New(apperr.CodeAINotConfigured, "No AI provider is configured. An admin must set OPENAI_API_KEY "+
		"(and OPENAI_BASE_URL for another OpenAI-compatible server), or AICHAT_AI_PROVIDERS=name=http://host/v1, "+
		"or run Ollama on this machine, and restart aichat.")
}
