package app

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/aichat/aichat/internal/ai"
	"github.com/aichat/aichat/internal/ai/llm"
	"github.com/aichat/aichat/internal/ai/prompt"
	"github.com/aichat/aichat/internal/auth"
	"github.com/aichat/aichat/internal/chat"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// ollamaURL is where a local Ollama answers, probed when no provider is set.
const ollamaURL = "http://localhost:11434/v1"

// newAI builds the providers from the configuration and the assistant's
// service. No provider is not an error: the server runs, and every turn
// answers ai.notConfigured with what to set.
func newAI(ctx context.Context, cfg config.Config, opt Options, log *slog.Logger, db *store.DB,
	chats *chat.Service, users *auth.Service, bus ai.Bus, reg prometheus.Registerer) (*ai.Service, error) {
	lo := llm.Options{IdleTimeout: cfg.AIIdleTimeout}
	if opt.LLM != nil {
		lo = *opt.LLM
	}
	var providers []*llm.Client
	if cfg.OpenAIAPIKey != "" {
		providers = append(providers, llm.New(llm.Provider{Name: "openai", BaseURL: cfg.OpenAIBaseURL, APIKey: cfg.OpenAIAPIKey,
			MaxTokensField: "max_completion_tokens"}, lo))
	}
	for _, p := range cfg.AIProviders {
		providers = append(providers, llm.New(llm.Provider{Name: p.Name, BaseURL: p.BaseURL, APIKey: p.APIKey,
			MaxTokensField: p.MaxTokensField}, lo))
	}
	if len(providers) == 0 && cfg.AIOllamaProbe && probeOllama(ctx) {
		log.Info("found Ollama on this machine; using it for the assistant", "base_url", ollamaURL)
		providers = append(providers, llm.New(llm.Provider{Name: "ollama", BaseURL: ollamaURL, MaxTokensField: "max_tokens"}, lo))
	}
	if len(providers) == 0 {
		log.Warn("no AI provider configured: the assistant answers ai.notConfigured; set OPENAI_API_KEY or AICHAT_AI_PROVIDERS")
	}
	patterns, err := prompt.ParsePatterns(cfg.AIBlockedPatterns)
	if err != nil {
		return nil, err
	}
	mod, err := prompt.NewModerator(patterns)
	if err != nil {
		return nil, err
	}
	svc := ai.New(ai.Options{
		DB: db, Chats: chats, Bus: bus, Log: log, Metrics: ai.NewMetrics(reg), Providers: providers,
		DefaultModel: cfg.AIModel, SystemPrompt: cfg.AISystemPrompt, Coalesce: cfg.AICoalesce, SaveEvery: cfg.AISaveEvery,
		DailyTokens: cfg.AIDailyTokens, MaxConcurrent: int(cfg.AIMaxConcurrent), Moderator: mod,
		ProviderModeration: cfg.AIOpenAIModerate,
		Exempt: func(ctx context.Context, userID string) bool {
			u, err := users.User(ctx, userID)
			return err == nil && u.Role == auth.RoleAdmin
		},
		Now: opt.Now,
	})
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	svc.RefreshModels(rctx)
	cancel()
	return svc, nil
}

func probeOllama(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ollamaURL+"/models", nil)
	if err != nil {
		return false
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// aiHousekeeping ends answers orphaned by a dead instance and refreshes the
// providers' model lists, until ctx ends.
func (a *App) aiHousekeeping(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A live generation saves at least every AISaveEvery; two minutes
		// of silence means its instance is gone.
		if k, err := a.Chats.FailStaleAnswers(ctx, 2*time.Minute); err != nil {
			a.Log.Warn("fail stale answers", "err", err)
		} else if k > 0 {
			a.Log.Warn("ended answers left streaming by a stopped instance", "count", k)
		}
		if n++; n%10 == 0 {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			a.AI.RefreshModels(rctx)
			cancel()
		}
	}
}
