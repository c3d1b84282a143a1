package auth

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/secrets"
	"github.com/aichat/aichat/internal/store"
	"github.com/google/uuid"
	"gorm.io/gorm"
)

// Bot accounts authenticate with API keys, not passwords or JWTs. A key is
// APIKeyPrefix followed by 43 characters (256 random bits, base64url); only
// its SHA-256 is stored, like refresh tokens, so a database dump hands out
// no key. A key names the chats it may act in; the bot must also be a
// member of each (chat membership is checked on every call, as for people).
// Revoking a key, blocking the bot or changing its role ends the key at
// once: every request looks the key up.

// APIKeyPrefix starts every API key, so a key can be recognized in a
// secret scanner or a log, and told apart from an access token (a JWT).
const APIKeyPrefix = "aichat_bot_"

// apiKeyShown is how many characters of a key (after the prefix) are kept
// in clear to tell keys apart in lists.
const apiKeyShown = 6

// MaxKeyChats bounds the chats one key may name.
const MaxKeyChats = 100

// IsAPIKey reports whether a bearer credential looks like an API key.
func IsAPIKey(s string) bool { return strings.HasPrefix(s, APIKeyPrefix) }

// APIKey is a bot's key as listed: never the key itself.
type APIKey struct {
	ID         string     `gorm:"primaryKey" json:"id"`
	UserID     string     `json:"user_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"` // "aichat_bot_Ab12Cd": the start of the key
	TokenHash  string     `json:"-"`
	CreatedBy  *string    `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	Chats      []string   `gorm:"-" json:"chats"`
}

// TableName tells GORM the table.
func (APIKey) TableName() string { return "api_keys" }

type apiKeyChat struct {
	KeyID  string
	ChatID string
}

func (apiKeyChat) TableName() string { return "api_key_chats" }

// NewAPIKey is what an admin asks for.
type NewAPIKey struct {
	Name      string
	Chats     []string // validated by the caller: chats the bot is a member of
	ExpiresAt *time.Time
	CreatedBy string
}

// CreateBot creates a bot account. It has a random password nobody knows,
// and Login refuses bots anyway: a bot only ever acts through API keys.
func (s *Service) CreateBot(ctx context.Context, email, name string) (*User, error) {
	pw := base64.RawURLEncoding.EncodeToString(secrets.Random(32))
	return s.CreateUser(ctx, email, pw, name, RoleBot)
}

// IssueAPIKey creates a key for the bot userID and returns it once, with
// its stored description.
func (s *Service) IssueAPIKey(ctx context.Context, userID string, in NewAPIKey) (string, *APIKey, error) {
	u, err := s.User(ctx, userID)
	if err != nil {
		return "", nil, err
	}
	if u.Role != RoleBot {
		return "", nil, apperr.Invalid("user", "Only bot accounts get API keys; change the role to bot first.")
	}
	name := cleanName(in.Name)
	if name == "" || utf8.RuneCountInString(name) > 64 {
		return "", nil, apperr.Invalid("name", "Name the key (1 to 64 characters), e.g. what runs with it.")
	}
	if len(in.Chats) == 0 || len(in.Chats) > MaxKeyChats {
		return "", nil, apperr.Invalid("chats", "Name 1 to %d chats the key may act in.", MaxKeyChats)
	}
	now := s.opt.Now().UTC()
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		return "", nil, apperr.Invalid("expires_at", "The expiry must be in the future.")
	}
	secret := base64.RawURLEncoding.EncodeToString(secrets.Random(32))
	raw := APIKeyPrefix + secret
	k := &APIKey{ID: newID(), UserID: u.ID, Name: name, Prefix: APIKeyPrefix + secret[:apiKeyShown],
		TokenHash: hashToken(raw), CreatedAt: now, ExpiresAt: in.ExpiresAt}
	if in.CreatedBy != "" {
		k.CreatedBy = &in.CreatedBy
	}
	seen := map[string]bool{}
	var rows []apiKeyChat
	for _, c := range in.Chats {
		if !seen[c] {
			seen[c] = true
			rows = append(rows, apiKeyChat{KeyID: k.ID, ChatID: c})
			k.Chats = append(k.Chats, c)
		}
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(k).Error; err != nil {
			return err
		}
		return tx.Create(&rows).Error
	})
	if err != nil {
		return "", nil, fmt.Errorf("store api key: %w", err)
	}
	return raw, k, nil
}

// APIKeys lists a user's keys, newest first, revoked ones included.
func (s *Service) APIKeys(ctx context.Context, userID string) ([]*APIKey, error) {
	var keys []*APIKey
	if err := s.db.WithContext(ctx).Where("user_id = ?", userID).Order("id DESC").Find(&keys).Error; err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	if err := s.keyChats(ctx, keys); err != nil {
		return nil, err
	}
	return keys, nil
}

// RevokeAPIKey revokes a key (again is not an error) and returns it; the
// caller closes the sockets opened with it.
func (s *Service) RevokeAPIKey(ctx context.Context, id string) (*APIKey, error) {
	notFound := apperr.New(apperr.CodeAPIKeyNotFound, "API key not found.")
	if !validUUID(id) {
		return nil, notFound
	}
	if err := s.db.WithContext(ctx).Model(&APIKey{}).Where("id = ? AND revoked_at IS NULL", id).
		Update("revoked_at", s.opt.Now().UTC()).Error; err != nil {
		return nil, fmt.Errorf("revoke api key: %w", err)
	}
	var k APIKey
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&k).Error
	if store.IsNotFound(err) {
		return nil, notFound
	}
	if err != nil {
		return nil, fmt.Errorf("load api key: %w", err)
	}
	if err := s.keyChats(ctx, []*APIKey{&k}); err != nil {
		return nil, err
	}
	return &k, nil
}

func (s *Service) keyChats(ctx context.Context, keys []*APIKey) error {
	if len(keys) == 0 {
		return nil
	}
	byID := make(map[string]*APIKey, len(keys))
	ids := make([]string, len(keys))
	for i, k := range keys {
		byID[k.ID], ids[i] = k, k.ID
		k.Chats = []string{}
	}
	var rows []apiKeyChat
	if err := s.db.WithContext(ctx).Where("key_id IN ?", ids).Order("chat_id").Find(&rows).Error; err != nil {
		return fmt.Errorf("api key chats: %w", err)
	}
	for _, r := range rows {
		byID[r.KeyID].Chats = append(byID[r.KeyID].Chats, r.ChatID)
	}
	return nil
}

// lastUsedEvery bounds how often a key's last_used_at is written.
const lastUsedEvery = time.Minute

// AuthenticateKey checks an API key: it exists, is not revoked or expired,
// and its user is a bot that is not blocked. The principal carries the
// key's id (as its session, so closing "the key's sockets" is a kick of
// that session) and its chats.
func (s *Service) AuthenticateKey(ctx context.Context, raw string) (*Principal, error) {
	invalid := apperr.New(apperr.CodeInvalidToken, "API key is invalid, revoked or expired.")
	if !IsAPIKey(raw) || len(raw) > 128 {
		return nil, invalid
	}
	now := s.opt.Now().UTC()
	var k APIKey
	err := s.db.WithContext(ctx).Where("token_hash = ?", hashToken(raw)).Take(&k).Error
	if store.IsNotFound(err) {
		return nil, invalid
	}
	if err != nil {
		return nil, fmt.Errorf("load api key: %w", err)
	}
	if k.RevokedAt != nil || (k.ExpiresAt != nil && !k.ExpiresAt.After(now)) {
		return nil, invalid
	}
	var u User
	err = s.db.WithContext(ctx).Select("id", "email", "role", "blocked", "token_version").
		Where("id = ?", k.UserID).Take(&u).Error
	if err != nil {
		if store.IsNotFound(err) {
			return nil, invalid
		}
		return nil, fmt.Errorf("load user: %w", err)
	}
	if u.Blocked {
		return nil, apperr.New(apperr.CodeUserBlocked, "This account is blocked.")
	}
	if u.Role != RoleBot {
		return nil, invalid
	}
	var chats []string
	if err := s.db.WithContext(ctx).Model(&apiKeyChat{}).Where("key_id = ?", k.ID).Pluck("chat_id", &chats).Error; err != nil {
		return nil, fmt.Errorf("api key chats: %w", err)
	}
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= lastUsedEvery {
		// Best effort: a failed write must not refuse the request.
		s.db.WithContext(ctx).Model(&APIKey{}).Where("id = ?", k.ID).Update("last_used_at", now)
	}
	p := &Principal{UserID: u.ID, Role: u.Role, Email: u.Email, SessionID: k.ID, Version: u.TokenVersion,
		APIKeyID: k.ID, Scope: make(map[string]bool, len(chats))}
	for _, c := range chats {
		p.Scope[c] = true
	}
	if k.ExpiresAt != nil {
		p.Expires = k.ExpiresAt.UTC()
	}
	return p, nil
}

// verifyKey is Verify for a principal authenticated with an API key.
func (s *Service) verifyKey(ctx context.Context, p *Principal) error {
	var k APIKey
	err := s.db.WithContext(ctx).Select("id", "revoked_at", "expires_at").Where("id = ?", p.APIKeyID).Take(&k).Error
	if store.IsNotFound(err) {
		return apperr.New(apperr.CodeInvalidToken, "API key is invalid, revoked or expired.")
	}
	if err != nil {
		return fmt.Errorf("load api key: %w", err)
	}
	if k.RevokedAt != nil || (k.ExpiresAt != nil && !k.ExpiresAt.After(s.opt.Now())) {
		return apperr.New(apperr.CodeInvalidToken, "API key is invalid, revoked or expired.")
	}
	return nil
}

func validUUID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}

// InScope reports whether the principal may act in chatID: always for
// people (membership decides), and for an API key only in its chats.
func (p *Principal) InScope(chatID string) bool {
	return p.APIKeyID == "" || p.Scope[chatID]
}
