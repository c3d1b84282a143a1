// Package auth owns accounts and sessions: users and their roles, password
// hashing, login throttling, JWT access tokens and rotating refresh tokens.
// It answers one question for every other package: who is this request from,
// and are they still allowed in.
package auth

import (
	"time"
)

// Role is what a user may do beyond using their own chats.
type Role string

// The roles that exist from the start.
const (
	RoleUser    Role = "user"
	RoleAdmin   Role = "admin"
	RoleSupport Role = "support"
	RoleBot     Role = "bot"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RoleUser, RoleAdmin, RoleSupport, RoleBot:
		return true
	}
	return false
}

// User is an account as stored. PasswordHash and TokenVersion never leave
// this package in API answers (see UserView).
type User struct {
	ID           string    `gorm:"primaryKey" json:"id"`
	Email        string    `json:"email"`
	Name         string    `json:"name"`
	PasswordHash string    `json:"-"`
	Role         Role      `json:"role"`
	Blocked      bool      `json:"blocked"`
	TokenVersion int       `json:"-"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// TableName tells GORM the table.
func (User) TableName() string { return "users" }

// Principal is the authenticated caller of a request or a socket.
type Principal struct {
	UserID    string
	Role      Role
	Email     string
	SessionID string // the refresh-token family, "" for other credentials
	Version   int    // the user's token_version the credential was issued under
	// Expires is when the credential that authenticated this caller stops
	// being valid (an access token's exp); a socket must not outlive it.
	Expires time.Time
	// APIKeyID is the key a bot authenticated with ("" for people); Scope
	// is the chats that key may act in (see InScope).
	APIKeyID string
	Scope    map[string]bool
}
