// Package admin is what the admin and support roles do: list and search
// users, change roles and block accounts (closing their sockets on every
// instance), reset daily quotas, create bots and issue and revoke their API
// keys, read usage totals and the system status, work through the
// moderation queue, and read the audit log that every admin action writes.
// It owns its GORM queries (audit_log, moderation_flags, and reports over
// users and ai_usage); accounts and keys themselves stay in package auth.
// Who may call what is decided in httpapi's routes; this package records
// who did it.
package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/aichat/aichat/internal/ai"
	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/auth"
	"github.com/aichat/aichat/internal/chat"
	"github.com/aichat/aichat/internal/realtime"
	"github.com/aichat/aichat/internal/store"
	"github.com/google/uuid"
	"gorm.io/gorm"
)

// Options are the services the admin actions use.
type Options struct {
	DB     *store.DB
	Auth   *auth.Service
	Chats  *chat.Service
	Hub    *realtime.Hub
	AI     *ai.Service
	Broker realtime.Broker
	Log    *slog.Logger
	// Version and Started describe this instance in the status.
	Version string
	Started time.Time
	Now     func() time.Time
}

// Service runs admin actions and writes each to the audit log.
type Service struct {
	opt Options
	db  *store.DB
}

// New returns the service.
func New(opt Options) *Service {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Started.IsZero() {
		opt.Started = opt.Now()
	}
	return &Service{opt: opt, db: opt.DB}
}

// Page bounds a list: at most Limit items older than the item Before (an
// id from the previous page's Next).
type Page struct {
	Limit  int
	Before string
}

// DefaultLimit and MaxLimit bound a page.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// Check validates a page and fills in the default limit.
func (p *Page) Check() error {
	if p.Limit == 0 {
		p.Limit = DefaultLimit
	}
	if p.Limit < 1 || p.Limit > MaxLimit {
		return apperr.Invalid("limit", "limit must be 1 to %d.", MaxLimit)
	}
	if p.Before != "" && !validID(p.Before) {
		return apperr.Invalid("before", "before must be an id from the previous page's next.")
	}
	return nil
}

func validID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// likePattern makes a case-insensitive substring pattern for LIKE ...
// ESCAPE '\', so % and _ in the search match themselves.
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.ToLower(s)) + "%"
}

// ---- users ----

// UserQuery filters the user list; empty fields do not filter.
type UserQuery struct {
	Q       string // substring of the email or the name, any case
	Role    auth.Role
	Blocked *bool
	Page
}

// UserPage is one page of users, newest first.
type UserPage struct {
	Users []*auth.User `json:"users"`
	Total int64        `json:"total"` // matching users, all pages
	Next  string       `json:"next"`  // pass as before for the next page; "" at the end
}

// Users lists and searches accounts.
func (s *Service) Users(ctx context.Context, q UserQuery) (*UserPage, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	if q.Role != "" && !q.Role.Valid() {
		return nil, apperr.Invalid("role", "role must be one of user, admin, support, bot.")
	}
	if len(q.Q) > 254 {
		return nil, apperr.Invalid("q", "The search is too long.")
	}
	filter := func() *gorm.DB {
		db := s.db.WithContext(ctx).Model(&auth.User{})
		if q.Q != "" {
			like := likePattern(strings.TrimSpace(q.Q))
			db = db.Where(`(LOWER(email) LIKE ? ESCAPE '\' OR LOWER(name) LIKE ? ESCAPE '\')`, like, like)
		}
		if q.Role != "" {
			db = db.Where("role = ?", string(q.Role))
		}
		if q.Blocked != nil {
			db = db.Where("blocked = ?", *q.Blocked)
		}
		return db
	}
	out := &UserPage{Users: []*auth.User{}}
	if err := filter().Count(&out.Total).Error; err != nil {
		return nil, fmt.Errorf("count users: %w", err)
	}
	db := filter()
	if q.Before != "" {
		db = db.Where("id < ?", q.Before)
	}
	if err := db.Order("id DESC").Limit(q.Limit + 1).Find(&out.Users).Error; err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	if len(out.Users) > q.Limit {
		out.Users = out.Users[:q.Limit]
		out.Next = out.Users[q.Limit-1].ID
	}
	return out, nil
}

// UserDetail is one account as an admin sees it.
type UserDetail struct {
	*auth.User
	Quota   *ai.Quota      `json:"quota,omitempty"`
	APIKeys []*auth.APIKey `json:"api_keys,omitempty"` // bots only
}

// User returns an account with today's quota (and a bot's keys).
func (s *Service) User(ctx context.Context, id string) (*UserDetail, error) {
	if !validID(id) {
		return nil, apperr.New(apperr.CodeUserNotFound, "User not found.")
	}
	u, err := s.opt.Auth.User(ctx, id)
	if err != nil {
		return nil, err
	}
	d := &UserDetail{User: u}
	if s.opt.AI != nil {
		q, err := s.opt.AI.QuotaOf(ctx, id)
		if err != nil {
			return nil, err
		}
		d.Quota = &q
	}
	if u.Role == auth.RoleBot {
		if d.APIKeys, err = s.opt.Auth.APIKeys(ctx, id); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// UpdateUser changes a role or blocks or unblocks an account. Either change
// ends the user's access tokens; their sockets close on every instance
// (blocked: 1008, otherwise 4001 so clients refresh and see the new role).
// An admin cannot demote or block themselves: the last admin could lock
// everyone out.
func (s *Service) UpdateUser(ctx context.Context, actor *auth.Principal, id string, up auth.UserUpdate) (*auth.User, error) {
	if up.Role == nil && up.Blocked == nil {
		return nil, apperr.Invalid("", "Send role, blocked, or both.")
	}
	if !validID(id) {
		return nil, apperr.New(apperr.CodeUserNotFound, "User not found.")
	}
	if id == actor.UserID && ((up.Role != nil && *up.Role != auth.RoleAdmin) || (up.Blocked != nil && *up.Blocked)) {
		return nil, apperr.New(apperr.CodeAdminSelf, "You cannot demote or block your own account; ask another admin.")
	}
	before, err := s.opt.Auth.User(ctx, id)
	if err != nil {
		return nil, err
	}
	u, err := s.opt.Auth.UpdateUser(ctx, id, up)
	if err != nil {
		return nil, err
	}
	if up.Blocked != nil && *up.Blocked {
		s.opt.Hub.Kick([]string{u.ID}, "", realtime.ClosePolicy, "This account was blocked.")
	} else {
		s.opt.Hub.Kick([]string{u.ID}, "", realtime.CloseTokenExpired, "Your account changed; reconnect.")
	}
	details := map[string]any{"email": u.Email}
	if up.Role != nil {
		details["role"] = map[string]any{"from": before.Role, "to": u.Role}
	}
	if up.Blocked != nil {
		details["blocked"] = map[string]any{"from": before.Blocked, "to": u.Blocked}
	}
	action := ActionUserUpdate
	switch {
	case up.Role == nil && u.Blocked && !before.Blocked:
		action = ActionUserBlock
	case up.Role == nil && !u.Blocked && before.Blocked:
		action = ActionUserUnblock
	case up.Blocked == nil && up.Role != nil:
		action = ActionUserRole
	}
	s.audit(ctx, actor, action, "user", u.ID, details)
	return u, nil
}

// ResetQuota gives a user today's whole assistant allowance again.
func (s *Service) ResetQuota(ctx context.Context, actor *auth.Principal, id string) (*ai.Quota, error) {
	if !validID(id) {
		return nil, apperr.New(apperr.CodeUserNotFound, "User not found.")
	}
	u, err := s.opt.Auth.User(ctx, id)
	if err != nil {
		return nil, err
	}
	before, err := s.opt.AI.QuotaOf(ctx, id)
	if err != nil {
		return nil, err
	}
	q, err := s.opt.AI.ResetQuota(ctx, id)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, actor, ActionQuotaReset, "user", id, map[string]any{"email": u.Email, "day": q.Day, "used_before": before.Used})
	return &q, nil
}

// ---- bots and keys ----

// CreateBot creates a bot account (it signs in only with API keys).
func (s *Service) CreateBot(ctx context.Context, actor *auth.Principal, email, name string) (*auth.User, error) {
	u, err := s.opt.Auth.CreateBot(ctx, email, name)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, actor, ActionBotCreate, "user", u.ID, map[string]any{"email": u.Email})
	return u, nil
}

// KeyRequest asks for a bot's API key.
type KeyRequest struct {
	Name          string   `json:"name"`
	Chats         []string `json:"chats"`
	ExpiresInDays int      `json:"expires_in_days"` // 0: never
}

// IssueKey creates an API key for a bot, scoped to chats the bot is
// already a member of (a chat's owner adds it like anyone else, so the
// people in a chat decide whether a bot is there). The key is returned
// once.
func (s *Service) IssueKey(ctx context.Context, actor *auth.Principal, botID string, req KeyRequest) (string, *auth.APIKey, error) {
	if !validID(botID) {
		return "", nil, apperr.New(apperr.CodeUserNotFound, "User not found.")
	}
	if req.ExpiresInDays < 0 || req.ExpiresInDays > 3650 {
		return "", nil, apperr.Invalid("expires_in_days", "expires_in_days must be 0 (never) to 3650.")
	}
	u, err := s.opt.Auth.User(ctx, botID)
	if err != nil {
		return "", nil, err
	}
	if u.Role != auth.RoleBot {
		return "", nil, apperr.Invalid("user", "Only bot accounts get API keys; change the role to bot first.")
	}
	if len(req.Chats) == 0 || len(req.Chats) > auth.MaxKeyChats {
		return "", nil, apperr.Invalid("chats", "Name 1 to %d chats the key may act in.", auth.MaxKeyChats)
	}
	for _, c := range req.Chats {
		if _, err := s.opt.Chats.Members(ctx, botID, c); err != nil {
			if apperr.Is(err, apperr.CodeChatNotFound) {
				return "", nil, apperr.Invalid("chats", "The bot is not a member of chat %q; a member must add it to the chat first.", truncate(c, 40))
			}
			return "", nil, err
		}
	}
	in := auth.NewAPIKey{Name: req.Name, Chats: req.Chats, CreatedBy: actor.UserID}
	if req.ExpiresInDays > 0 {
		exp := s.opt.Now().UTC().AddDate(0, 0, req.ExpiresInDays)
		in.ExpiresAt = &exp
	}
	raw, k, err := s.opt.Auth.IssueAPIKey(ctx, botID, in)
	if err != nil {
		return "", nil, err
	}
	s.audit(ctx, actor, ActionKeyIssue, "api_key", k.ID, map[string]any{"bot": botID, "bot_email": u.Email,
		"name": k.Name, "prefix": k.Prefix, "chats": k.Chats, "expires_at": k.ExpiresAt})
	return raw, k, nil
}

// Keys lists a bot's keys (never the keys themselves).
func (s *Service) Keys(ctx context.Context, botID string) ([]*auth.APIKey, error) {
	if !validID(botID) {
		return nil, apperr.New(apperr.CodeUserNotFound, "User not found.")
	}
	if _, err := s.opt.Auth.User(ctx, botID); err != nil {
		return nil, err
	}
	return s.opt.Auth.APIKeys(ctx, botID)
}

// RevokeKey revokes a key; requests with it fail at once and the sockets
// opened with it close (1008) on every instance.
func (s *Service) RevokeKey(ctx context.Context, actor *auth.Principal, keyID string) (*auth.APIKey, error) {
	k, err := s.opt.Auth.RevokeAPIKey(ctx, keyID)
	if err != nil {
		return nil, err
	}
	s.opt.Hub.Kick([]string{k.UserID}, k.ID, realtime.ClosePolicy, "This API key was revoked.")
	s.audit(ctx, actor, ActionKeyRevoke, "api_key", k.ID, map[string]any{"bot": k.UserID, "name": k.Name, "prefix": k.Prefix})
	return k, nil
}

// ---- usage and status ----

// UsageRow is tokens spent over a period, per user and model, per model,
// or per day (the fields that do not apply are empty).
type UsageRow struct {
	UserID           string `json:"user_id,omitempty"`
	Email            string `json:"email,omitempty"`
	Day              string `json:"day,omitempty"`
	Model            string `json:"model,omitempty"`
	Provider         string `json:"provider,omitempty"`
	Requests         int64  `json:"requests"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
}

// UsageReport is usage over the last Days days (UTC, today included).
type UsageReport struct {
	Days    int        `json:"days"`
	Since   string     `json:"since"`
	Usage   []UsageRow `json:"usage"`    // per user and model, biggest first
	ByModel []UsageRow `json:"by_model"` // per model, biggest first
	ByDay   []UsageRow `json:"by_day"`   // per day, oldest first
	Total   UsageRow   `json:"total"`
}

// maxUsageRows bounds the per-user rows of one report.
const maxUsageRows = 1000

// Usage reports tokens spent, optionally for one user.
func (s *Service) Usage(ctx context.Context, days int, userID string) (*UsageReport, error) {
	if userID != "" && !validID(userID) {
		return nil, apperr.Invalid("user", "user must be a user id.")
	}
	since := s.opt.Now().UTC().AddDate(0, 0, -days+1).Format(time.DateOnly)
	rep := &UsageReport{Days: days, Since: since, Usage: []UsageRow{}, ByModel: []UsageRow{}, ByDay: []UsageRow{}}
	base := func() *gorm.DB {
		db := s.db.WithContext(ctx).Table("ai_usage AS u").Where("u.day >= ?", since)
		if userID != "" {
			db = db.Where("u.user_id = ?", userID)
		}
		return db
	}
	sums := "SUM(u.requests) AS requests, SUM(u.prompt_tokens) AS prompt_tokens, SUM(u.completion_tokens) AS completion_tokens"
	if err := base().Select("u.user_id, COALESCE(users.email, '') AS email, u.model, u.provider, " + sums).
		Joins("LEFT JOIN users ON users.id = u.user_id").
		Group("u.user_id, users.email, u.model, u.provider").
		Order("SUM(u.prompt_tokens + u.completion_tokens) DESC, u.user_id, u.model").
		Limit(maxUsageRows).Scan(&rep.Usage).Error; err != nil {
		return nil, fmt.Errorf("usage per user: %w", err)
	}
	if err := base().Select("u.model, u.provider, " + sums).Group("u.model, u.provider").
		Order("SUM(u.prompt_tokens + u.completion_tokens) DESC, u.model").Scan(&rep.ByModel).Error; err != nil {
		return nil, fmt.Errorf("usage per model: %w", err)
	}
	// CAST: PostgreSQL's day is a date, which would scan as a timestamp.
	if err := base().Select("CAST(u.day AS TEXT) AS day, " + sums).Group("u.day").Order("u.day").
		Scan(&rep.ByDay).Error; err != nil {
		return nil, fmt.Errorf("usage per day: %w", err)
	}
	for _, d := range rep.ByDay {
		rep.Total.Requests += d.Requests
		rep.Total.PromptTokens += d.PromptTokens
		rep.Total.CompletionTokens += d.CompletionTokens
	}
	return rep, nil
}

// Health is one dependency's state.
type Health struct {
	OK        bool    `json:"ok"`
	Name      string  `json:"name"`
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

// Status is this instance's state and a few counts over the whole system.
type Status struct {
	Version           string    `json:"version"`
	GoVersion         string    `json:"go_version"`
	StartedAt         time.Time `json:"started_at"`
	UptimeSeconds     int64     `json:"uptime_seconds"`
	Connections       int       `json:"connections"`        // open sockets on this instance
	ActiveGenerations int       `json:"active_generations"` // answers streaming from this instance
	Goroutines        int       `json:"goroutines"`
	Database          Health    `json:"database"`
	Broker            Health    `json:"broker"`
	AI                struct {
		Configured bool `json:"configured"`
		Models     int  `json:"models"`
	} `json:"ai"`
	Users struct {
		Total   int64 `json:"total"`
		Blocked int64 `json:"blocked"`
		Admins  int64 `json:"admins"`
		Support int64 `json:"support"`
		Bots    int64 `json:"bots"`
	} `json:"users"`
	OpenFlags int64 `json:"open_flags"`
}

// Status reports this instance's health. Counts of sockets and generations
// are this instance's: ask each instance (or read /metrics) for a cluster.
func (s *Service) Status(ctx context.Context) *Status {
	now := s.opt.Now()
	st := &Status{Version: s.opt.Version, GoVersion: runtime.Version(), StartedAt: s.opt.Started.UTC(),
		UptimeSeconds: int64(now.Sub(s.opt.Started).Seconds()), Goroutines: runtime.NumGoroutine()}
	if s.opt.Hub != nil {
		st.Connections = s.opt.Hub.Connections()
	}
	if s.opt.AI != nil {
		st.ActiveGenerations = s.opt.AI.Active()
		st.AI.Configured = s.opt.AI.Configured()
		st.AI.Models = len(s.opt.AI.Models())
	}
	st.Database = probe(ctx, string(s.db.Dialect), s.db.Ping)
	if s.opt.Broker != nil {
		st.Broker = probe(ctx, s.opt.Broker.Name(), s.opt.Broker.Ping)
	}
	if st.Database.OK {
		var rows []struct {
			Role    string
			Blocked bool
			N       int64
		}
		if err := s.db.WithContext(ctx).Model(&auth.User{}).Select("role, blocked, COUNT(*) AS n").
			Group("role, blocked").Scan(&rows).Error; err != nil {
			s.opt.Log.Warn("status: count users", "err", err)
		}
		for _, r := range rows {
			st.Users.Total += r.N
			if r.Blocked {
				st.Users.Blocked += r.N
			}
			switch auth.Role(r.Role) {
			case auth.RoleAdmin:
				st.Users.Admins += r.N
			case auth.RoleSupport:
				st.Users.Support += r.N
			case auth.RoleBot:
				st.Users.Bots += r.N
			}
		}
		if err := s.db.WithContext(ctx).Model(&flagRow{}).Where("reviewed_at IS NULL").Count(&st.OpenFlags).Error; err != nil {
			s.opt.Log.Warn("status: count flags", "err", err)
		}
	}
	return st
}

func probe(ctx context.Context, name string, ping func(context.Context) error) Health {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start := time.Now()
	err := ping(ctx)
	h := Health{OK: err == nil, Name: name, LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		// The kind of failure, not the driver's text (it may name hosts).
		h.Error = "unreachable"
		if ctx.Err() != nil {
			h.Error = "timeout"
		}
	}
	return h
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func marshalDetails(v map[string]any) string {
	if len(v) == 0 {
		return "{}"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "{}"
	}
	return string(b)
}
