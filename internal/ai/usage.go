package ai

import (
	"context"
	"fmt"
	"time"

	"github.com/aichat/aichat/internal/ai/llm"
)

// Usage is what one user spent on one day with one model.
type Usage struct {
	UserID           string `json:"user_id,omitempty"`
	Day              string `json:"day"`
	Model            string `json:"model"`
	Provider         string `json:"provider"`
	Requests         int    `json:"requests"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
}

type usageRow struct {
	UserID           string
	Day              string
	Model            string
	Provider         string
	Requests         int
	PromptTokens     int64
	CompletionTokens int64
}

func (usageRow) TableName() string { return "ai_usage" }

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// recordUsage adds one answer's tokens to the user's day. One upsert, so
// concurrent answers on several instances add up instead of overwriting.
func (s *Service) recordUsage(ctx context.Context, userID, model, provider string, u *llm.Usage) {
	err := s.opt.DB.WithContext(ctx).Exec(`INSERT INTO ai_usage (user_id, day, model, provider, requests, prompt_tokens, completion_tokens)
		VALUES (?, ?, ?, ?, 1, ?, ?)
		ON CONFLICT (user_id, day, model, provider) DO UPDATE SET requests = ai_usage.requests + 1,
			prompt_tokens = ai_usage.prompt_tokens + excluded.prompt_tokens,
			completion_tokens = ai_usage.completion_tokens + excluded.completion_tokens`,
		userID, day(s.opt.Now()), model, provider, u.PromptTokens, u.CompletionTokens).Error
	if err != nil {
		s.log.Error("ai: record usage", "user_id", userID, "err", err)
	}
	s.opt.Metrics.TokensIn.Add(float64(u.PromptTokens))
	s.opt.Metrics.TokensOut.Add(float64(u.CompletionTokens))
}

// tokensToday is what counts against the user's daily allowance: the
// tokens spent today, less those spent before an admin's reset today.
func (s *Service) tokensToday(ctx context.Context, userID string) (int64, error) {
	var total int64
	today := day(s.opt.Now())
	err := s.opt.DB.WithContext(ctx).Raw(`SELECT COALESCE((SELECT SUM(prompt_tokens + completion_tokens)
			FROM ai_usage WHERE user_id = ? AND day = ?), 0)
		- COALESCE((SELECT tokens FROM ai_quota_resets WHERE user_id = ? AND day = ?), 0)`,
		userID, today, userID, today).Scan(&total).Error
	if err != nil {
		return 0, fmt.Errorf("usage today: %w", err)
	}
	return max(total, 0), nil
}

// Quota is a user's daily allowance as of now.
type Quota struct {
	Day   string `json:"day"`   // UTC
	Used  int64  `json:"used"`  // tokens counted today (after a reset)
	Limit int64  `json:"limit"` // 0: no limit
}

// QuotaOf returns what the user has used of today's allowance.
func (s *Service) QuotaOf(ctx context.Context, userID string) (Quota, error) {
	used, err := s.tokensToday(ctx, userID)
	if err != nil {
		return Quota{}, err
	}
	return Quota{Day: day(s.opt.Now()), Used: used, Limit: s.opt.DailyTokens}, nil
}

// ResetQuota gives the user today's whole allowance again: the tokens
// spent so far today stop counting. Usage reports keep the real totals.
func (s *Service) ResetQuota(ctx context.Context, userID string) (Quota, error) {
	today := day(s.opt.Now())
	err := s.opt.DB.WithContext(ctx).Exec(`INSERT INTO ai_quota_resets (user_id, day, tokens)
		VALUES (?, ?, (SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM ai_usage WHERE user_id = ? AND day = ?))
		ON CONFLICT (user_id, day) DO UPDATE SET tokens = excluded.tokens`, userID, today, userID, today).Error
	if err != nil {
		return Quota{}, fmt.Errorf("reset quota: %w", err)
	}
	return s.QuotaOf(ctx, userID)
}

// UsageOf returns a user's usage per day and model for the last days,
// newest first.
func (s *Service) UsageOf(ctx context.Context, userID string, days int) ([]Usage, error) {
	var rows []usageRow
	since := day(s.opt.Now().AddDate(0, 0, -days+1))
	// CAST: PostgreSQL's day is a date, which would scan as a timestamp.
	if err := s.opt.DB.WithContext(ctx).Model(&usageRow{}).
		Select("user_id, CAST(day AS TEXT) AS day, model, provider, requests, prompt_tokens, completion_tokens").
		Where("user_id = ? AND day >= ?", userID, since).
		Order("day DESC, model").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	out := make([]Usage, len(rows))
	for i, r := range rows {
		out[i] = Usage{Day: r.Day, Model: r.Model, Provider: r.Provider, Requests: r.Requests,
			PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens}
	}
	return out, nil
}

// UsageTotals returns every user's totals per model over the last days,
// for admins.
func (s *Service) UsageTotals(ctx context.Context, days int) ([]Usage, error) {
	var rows []usageRow
	since := day(s.opt.Now().AddDate(0, 0, -days+1))
	if err := s.opt.DB.WithContext(ctx).Model(&usageRow{}).
		Select("user_id, model, provider, SUM(requests) AS requests, SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens").
		Where("day >= ?", since).Group("user_id, model, provider").
		Order("SUM(prompt_tokens + completion_tokens) DESC").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("usage totals: %w", err)
	}
	out := make([]Usage, len(rows))
	for i, r := range rows {
		out[i] = Usage{UserID: r.UserID, Model: r.Model, Provider: r.Provider, Requests: r.Requests,
			PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens}
	}
	return out, nil
}
