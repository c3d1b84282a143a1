package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/secrets"
	"github.com/aichat/aichat/internal/store"
	"github.com/google/uuid"
	"gorm.io/gorm"
)

// Options configure a Service.
type Options struct {
	Hasher        Hasher
	Tokens        *Tokens
	RefreshTTL    time.Duration
	SessionMaxAge time.Duration
	MaxFails      int           // failed logins per account before throttling
	FailWindow    time.Duration // window the failures are counted in
	Now           func() time.Time
	Log           *slog.Logger
}

// Service manages accounts and sessions.
type Service struct {
	db  *store.DB
	opt Options
	// dummyHash is verified for unknown emails so they cost what a real
	// login costs. Made on first need: hashing at start-up would add 19 MiB
	// of argon2 memory to every idle process.
	dummyHash func() (string, error)
	// lastSweep is when this instance last deleted expired WebSocket
	// tickets (Unix nanoseconds of opt.Now).
	lastSweep atomic.Int64
}

// NewService returns a Service over db.
func NewService(db *store.DB, opt Options) (*Service, error) {
	if opt.Now == nil {
		opt.Now = func() time.Time { return time.Now().UTC() }
	}
	dummy := sync.OnceValues(func() (string, error) { return opt.Hasher.Hash(uuid.NewString()) })
	return &Service{db: db, opt: opt, dummyHash: dummy}, nil
}

// Session is what register, login and refresh return to the client.
type Session struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"` // seconds until the access token expires
	User         *User  `json:"user"`
}

// refreshToken is a row of refresh_tokens. Only the SHA-256 of the token is
// stored: a database leak does not hand out sessions.
type refreshToken struct {
	ID              string
	UserID          string
	FamilyID        string
	TokenHash       string
	CreatedAt       time.Time
	ExpiresAt       time.Time
	FamilyExpiresAt time.Time
	UsedAt          *time.Time
	RevokedAt       *time.Time
}

func (refreshToken) TableName() string { return "refresh_tokens" }

// NormalizeEmail trims and lower-cases an address and checks its form.
func NormalizeEmail(s string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(s))
	if e == "" {
		return "", apperr.Invalid("email", "Email is required.")
	}
	if len(e) > 254 {
		return "", apperr.Invalid("email", "Email is too long.")
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" || !strings.Contains(e[strings.LastIndex(e, "@"):], ".") {
		return "", apperr.Invalid("email", "Email address is not valid.")
	}
	return e, nil
}

// Register creates a user account with the user role and signs it in.
func (s *Service) Register(ctx context.Context, email, password, name string) (*Session, error) {
	u, err := s.CreateUser(ctx, email, password, name, RoleUser)
	if err != nil {
		return nil, err
	}
	return s.newSession(ctx, u)
}

// CreateUser validates and stores a new account.
func (s *Service) CreateUser(ctx context.Context, email, password, name string, role Role) (*User, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if err := CheckPassword(password, email); err != nil {
		return nil, err
	}
	if !role.Valid() {
		return nil, apperr.Invalid("role", "Unknown role %q.", role)
	}
	name = cleanName(name)
	if name == "" {
		name, _, _ = strings.Cut(email, "@")
	}
	if utf8.RuneCountInString(name) > 64 {
		return nil, apperr.Invalid("name", "Name must be at most 64 characters.")
	}
	hash, err := s.opt.Hasher.Hash(password)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	now := s.opt.Now()
	u := &User{ID: newID(), Email: email, Name: name, PasswordHash: hash, Role: role,
		TokenVersion: 1, CreatedAt: now, UpdatedAt: now}
	if err := s.db.WithContext(ctx).Create(u).Error; err != nil {
		if store.IsUniqueViolation(err) {
			return nil, &apperr.Error{Code: apperr.CodeEmailTaken, Field: "email",
				Message: "An account with this email already exists."}
		}
		return nil, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// Login checks credentials and starts a session. An unknown email and a
// wrong password answer alike and cost the same hashing work; failures are
// counted per email address, known or not, and throttle further attempts.
func (s *Service) Login(ctx context.Context, email, password string) (*Session, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	invalid := apperr.New(apperr.CodeInvalidCredentials, "Invalid email or password.")
	if email == "" || password == "" || utf8.RuneCountInString(password) > MaxPasswordLen || len(email) > 254 {
		return nil, invalid
	}
	if err := s.checkThrottle(ctx, email); err != nil {
		return nil, err
	}
	var u User
	err := s.db.WithContext(ctx).Where("email = ?", email).Take(&u).Error
	if err != nil && !store.IsNotFound(err) {
		return nil, fmt.Errorf("load user: %w", err)
	}
	found := err == nil
	hash := u.PasswordHash
	if !found {
		if hash, err = s.dummyHash(); err != nil {
			return nil, err
		}
	}
	ok, rehash, verr := s.opt.Hasher.Verify(hash, password)
	if verr != nil {
		return nil, fmt.Errorf("verify password: %w", verr)
	}
	if !found || !ok {
		s.recordFailure(ctx, email)
		return nil, invalid
	}
	if u.Blocked {
		return nil, apperr.New(apperr.CodeUserBlocked, "This account is blocked.")
	}
	if u.Role == RoleBot {
		return nil, apperr.New(apperr.CodeForbidden, "Bot accounts sign in with an API key, not a password.")
	}
	s.clearFailures(ctx, email)
	if rehash {
		if h, err := s.opt.Hasher.Hash(password); err == nil {
			s.db.WithContext(ctx).Model(&User{}).Where("id = ?", u.ID).Update("password_hash", h)
		}
	}
	return s.newSession(ctx, &u)
}

// Refresh rotates a refresh token: the presented one is spent and a new one
// (same family) is returned with a new access token. Presenting a spent or
// revoked token revokes its whole family, since it means the token was copied.
func (s *Service) Refresh(ctx context.Context, token string) (*Session, error) {
	invalid := apperr.New(apperr.CodeRefreshInvalid, "Refresh token is invalid or expired; sign in again.")
	if token == "" || len(token) > 256 {
		return nil, invalid
	}
	now := s.opt.Now()
	var rt refreshToken
	err := s.db.WithContext(ctx).Where("token_hash = ?", hashToken(token)).Take(&rt).Error
	if store.IsNotFound(err) {
		return nil, invalid
	}
	if err != nil {
		return nil, fmt.Errorf("load refresh token: %w", err)
	}
	if rt.UsedAt != nil || rt.RevokedAt != nil {
		if err := s.revokeFamily(ctx, rt.FamilyID); err != nil {
			return nil, err
		}
		if rt.RevokedAt == nil {
			s.opt.Log.Warn("refresh token reused; family revoked", "user_id", rt.UserID, "family", rt.FamilyID)
			return nil, apperr.New(apperr.CodeRefreshReused, "This session was signed out because its refresh token was used twice; sign in again.")
		}
		return nil, invalid
	}
	if now.After(rt.ExpiresAt) || now.After(rt.FamilyExpiresAt) {
		return nil, invalid
	}
	// Spend the token only if nobody spent it in between: the row count tells
	// a concurrent second use apart, and that counts as reuse.
	res := s.db.WithContext(ctx).Model(&refreshToken{}).
		Where("id = ? AND used_at IS NULL AND revoked_at IS NULL", rt.ID).Update("used_at", now)
	if res.Error != nil {
		return nil, fmt.Errorf("spend refresh token: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		if err := s.revokeFamily(ctx, rt.FamilyID); err != nil {
			return nil, err
		}
		return nil, apperr.New(apperr.CodeRefreshReused, "This session was signed out because its refresh token was used twice; sign in again.")
	}
	u, err := s.User(ctx, rt.UserID)
	if err != nil {
		return nil, invalid
	}
	if u.Blocked {
		s.revokeFamily(ctx, rt.FamilyID)
		return nil, apperr.New(apperr.CodeUserBlocked, "This account is blocked.")
	}
	if u.Role == RoleBot {
		s.revokeFamily(ctx, rt.FamilyID)
		return nil, invalid
	}
	return s.newSessionInFamily(ctx, u, rt.FamilyID, rt.FamilyExpiresAt)
}

// Logout revokes the session the refresh token belongs to. Unknown tokens
// are ignored: logging out twice is not an error.
func (s *Service) Logout(ctx context.Context, token string) (*Principal, error) {
	var rt refreshToken
	err := s.db.WithContext(ctx).Where("token_hash = ?", hashToken(token)).Take(&rt).Error
	if store.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load refresh token: %w", err)
	}
	if err := s.revokeFamily(ctx, rt.FamilyID); err != nil {
		return nil, err
	}
	// Who signed out, so their open sockets of this session can be closed.
	return &Principal{UserID: rt.UserID, SessionID: rt.FamilyID}, nil
}

// Authenticate verifies an access token and that its user still exists, is
// not blocked, and has not had its tokens invalidated since (password, role
// or block changes bump token_version).
func (s *Service) Authenticate(ctx context.Context, token string) (*Principal, error) {
	claims, err := s.opt.Tokens.Parse(token)
	if err != nil {
		return nil, err
	}
	var u User
	err = s.db.WithContext(ctx).Select("id", "email", "role", "blocked", "token_version").
		Where("id = ?", claims.Subject).Take(&u).Error
	if store.IsNotFound(err) {
		return nil, apperr.New(apperr.CodeInvalidToken, "Invalid token.")
	}
	if err != nil {
		return nil, fmt.Errorf("load user: %w", err)
	}
	if u.Blocked {
		return nil, apperr.New(apperr.CodeUserBlocked, "This account is blocked.")
	}
	if u.TokenVersion != claims.Version || u.Role != claims.Role || u.Role == RoleBot {
		// A bot acts only through API keys, whose chats are scoped.
		return nil, apperr.New(apperr.CodeInvalidToken, "Token was revoked; refresh or sign in again.")
	}
	return &Principal{UserID: u.ID, Role: u.Role, Email: u.Email, SessionID: claims.Session,
		Expires: claims.ExpiresAt.Time.UTC(), Version: u.TokenVersion}, nil
}

// Verify checks that a principal authenticated earlier still holds: the
// user exists, is not blocked, has the same token version (no password,
// role or block change since), and its sign-in session was not revoked.
// Long-lived sockets use it when they may have missed a revocation.
func (s *Service) Verify(ctx context.Context, p *Principal) error {
	var u User
	err := s.db.WithContext(ctx).Select("id", "blocked", "token_version").Where("id = ?", p.UserID).Take(&u).Error
	if store.IsNotFound(err) {
		return apperr.New(apperr.CodeInvalidToken, "This account no longer exists.")
	}
	if err != nil {
		return fmt.Errorf("load user: %w", err)
	}
	if u.Blocked {
		return apperr.New(apperr.CodeUserBlocked, "This account is blocked.")
	}
	if u.TokenVersion != p.Version {
		return apperr.New(apperr.CodeInvalidToken, "Token was revoked; refresh or sign in again.")
	}
	if p.APIKeyID != "" {
		return s.verifyKey(ctx, p)
	}
	if p.SessionID != "" {
		var live int64
		if err := s.db.WithContext(ctx).Model(&refreshToken{}).
			Where("family_id = ? AND revoked_at IS NULL", p.SessionID).Count(&live).Error; err != nil {
			return fmt.Errorf("check session: %w", err)
		}
		if live == 0 {
			return apperr.New(apperr.CodeInvalidToken, "This session was signed out.")
		}
	}
	return nil
}

// User returns the user with the given id.
func (s *Service) User(ctx context.Context, id string) (*User, error) {
	var u User
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&u).Error
	if store.IsNotFound(err) {
		return nil, apperr.New(apperr.CodeUserNotFound, "User not found.")
	}
	if err != nil {
		return nil, fmt.Errorf("load user: %w", err)
	}
	return &u, nil
}

// ChangePassword replaces the password after checking the current one. Every
// existing session of the user ends; the caller gets a fresh one.
func (s *Service) ChangePassword(ctx context.Context, userID, current, next string) (*Session, error) {
	u, err := s.User(ctx, userID)
	if err != nil {
		return nil, err
	}
	ok, _, err := s.opt.Hasher.Verify(u.PasswordHash, current)
	if err != nil {
		return nil, fmt.Errorf("verify password: %w", err)
	}
	if !ok {
		return nil, &apperr.Error{Code: apperr.CodeWrongPassword, Field: "current_password",
			Message: "Current password is wrong."}
	}
	if err := CheckPassword(next, u.Email); err != nil {
		if e, ok := apperr.As(err); ok {
			e.Field = "new_password"
		}
		return nil, err
	}
	hash, err := s.opt.Hasher.Hash(next)
	if err != nil {
		return nil, err
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&User{}).Where("id = ?", u.ID).Updates(map[string]any{
			"password_hash": hash, "token_version": gorm.Expr("token_version + 1"), "updated_at": s.opt.Now(),
		}).Error; err != nil {
			return err
		}
		return revokeUser(tx, u.ID, s.opt.Now())
	})
	if err != nil {
		return nil, fmt.Errorf("change password: %w", err)
	}
	u, err = s.User(ctx, userID)
	if err != nil {
		return nil, err
	}
	return s.newSession(ctx, u)
}

// UserUpdate is an administrative change to an account; nil fields stay.
type UserUpdate struct {
	Role    *Role `json:"role"`
	Blocked *bool `json:"blocked"`
}

// UpdateUser changes a user's role or blocked flag. Either change invalidates
// the user's access tokens at once; blocking also ends their sessions.
func (s *Service) UpdateUser(ctx context.Context, id string, up UserUpdate) (*User, error) {
	if up.Role != nil && !up.Role.Valid() {
		return nil, apperr.Invalid("role", "Role must be one of user, admin, support, bot.")
	}
	if _, err := s.User(ctx, id); err != nil {
		return nil, err
	}
	fields := map[string]any{"token_version": gorm.Expr("token_version + 1"), "updated_at": s.opt.Now()}
	if up.Role != nil {
		fields["role"] = *up.Role
	}
	if up.Blocked != nil {
		fields["blocked"] = *up.Blocked
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&User{}).Where("id = ?", id).Updates(fields).Error; err != nil {
			return err
		}
		if up.Blocked != nil && *up.Blocked {
			return revokeUser(tx, id, s.opt.Now())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update user: %w", err)
	}
	return s.User(ctx, id)
}

// AdminResult says what EnsureAdmin did.
type AdminResult string

// The outcomes of EnsureAdmin.
const (
	AdminCreated   AdminResult = "created"
	AdminPromoted  AdminResult = "promoted"
	AdminUnchanged AdminResult = "unchanged"
)

// EnsureAdmin creates an admin account with the given credentials, or makes
// the existing account with that email an admin (its password unchanged).
func (s *Service) EnsureAdmin(ctx context.Context, email, password string) (*User, AdminResult, error) {
	norm, err := NormalizeEmail(email)
	if err != nil {
		return nil, "", err
	}
	var u User
	err = s.db.WithContext(ctx).Where("email = ?", norm).Take(&u).Error
	if store.IsNotFound(err) {
		nu, err := s.CreateUser(ctx, norm, password, "", RoleAdmin)
		return nu, AdminCreated, err
	}
	if err != nil {
		return nil, "", err
	}
	if u.Role == RoleAdmin {
		return &u, AdminUnchanged, nil
	}
	role := RoleAdmin
	nu, err := s.UpdateUser(ctx, u.ID, UserUpdate{Role: &role})
	return nu, AdminPromoted, err
}

// newSession issues an access token and a refresh token in a new family.
func (s *Service) newSession(ctx context.Context, u *User) (*Session, error) {
	return s.newSessionInFamily(ctx, u, newID(), s.opt.Now().Add(s.opt.SessionMaxAge))
}

func (s *Service) newSessionInFamily(ctx context.Context, u *User, family string, familyExp time.Time) (*Session, error) {
	access, exp, err := s.opt.Tokens.Issue(u, family)
	if err != nil {
		return nil, fmt.Errorf("sign access token: %w", err)
	}
	now := s.opt.Now()
	raw := base64.RawURLEncoding.EncodeToString(secrets.Random(32))
	rt := refreshToken{ID: newID(), UserID: u.ID, FamilyID: family, TokenHash: hashToken(raw),
		CreatedAt: now, ExpiresAt: minTime(now.Add(s.opt.RefreshTTL), familyExp), FamilyExpiresAt: familyExp}
	if err := s.db.WithContext(ctx).Create(&rt).Error; err != nil {
		return nil, fmt.Errorf("store refresh token: %w", err)
	}
	return &Session{AccessToken: access, RefreshToken: raw, TokenType: "Bearer",
		ExpiresIn: int(exp.Sub(now).Round(time.Second).Seconds()), User: u}, nil
}

func (s *Service) revokeFamily(ctx context.Context, family string) error {
	err := s.db.WithContext(ctx).Model(&refreshToken{}).
		Where("family_id = ? AND revoked_at IS NULL", family).Update("revoked_at", s.opt.Now()).Error
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

func revokeUser(tx *gorm.DB, userID string, now time.Time) error {
	return tx.Model(&refreshToken{}).Where("user_id = ? AND revoked_at IS NULL", userID).
		Update("revoked_at", now).Error
}

func hashToken(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// cleanName strips control characters and surrounding space from a name.
func cleanName(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s))
}
