package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/secrets"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Token types: the "typ" header and claim keep an access token from being
// accepted where another kind of token is expected (RFC 8725 3.11).
const (
	accessTyp      = "at+jwt"
	accessClaimTyp = "access"
	audience       = "aichat-api"
	leeway         = 30 * time.Second
)

// AccessClaims are the claims of an access token.
type AccessClaims struct {
	Role    Role   `json:"role"`
	Type    string `json:"typ"`
	Version int    `json:"ver"` // the user's token_version when issued
	Session string `json:"sid"` // the refresh-token family this token belongs to
	jwt.RegisteredClaims
}

// Tokens signs and verifies access tokens with a keyring: the first key
// signs, every key verifies, and the key id travels in the "kid" header.
type Tokens struct {
	Keys   secrets.Keyring
	Issuer string
	TTL    time.Duration
	Now    func() time.Time
}

// Issue returns a signed access token for u in session sid, and its expiry.
func (t *Tokens) Issue(u *User, sid string) (string, time.Time, error) {
	now := t.Now()
	exp := now.Add(t.TTL)
	key := t.Keys.Current()
	claims := AccessClaims{
		Role:    u.Role,
		Type:    accessClaimTyp,
		Version: u.TokenVersion,
		Session: sid,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   u.ID,
			Issuer:    t.Issuer,
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        uuid.NewString(),
		},
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = key.ID
	tok.Header["typ"] = accessTyp
	s, err := tok.SignedString(key.Secret)
	return s, exp, err
}

// Parse verifies an access token: only HS256, a known kid, the right typ,
// issuer and audience, and a required, unexpired exp. The error is an
// *apperr.Error: auth.tokenExpired or auth.invalidToken.
func (t *Tokens) Parse(s string) (*AccessClaims, error) {
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(t.Issuer),
		jwt.WithAudience(audience),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(t.Now),
	)
	var claims AccessClaims
	_, err := p.ParseWithClaims(s, &claims, func(tok *jwt.Token) (any, error) {
		if _, ok := tok.Method.(*jwt.SigningMethodHMAC); !ok {
			return nil, fmt.Errorf("unexpected signing method %v", tok.Header["alg"])
		}
		if typ, _ := tok.Header["typ"].(string); typ != accessTyp {
			return nil, fmt.Errorf("token type %q is not an access token", typ)
		}
		kid, _ := tok.Header["kid"].(string)
		key, ok := t.Keys.Find(kid)
		if !ok {
			return nil, fmt.Errorf("unknown key id")
		}
		return key.Secret, nil
	})
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, apperr.Wrap(err, apperr.CodeTokenExpired, "Token expired.")
		}
		return nil, apperr.Wrap(err, apperr.CodeInvalidToken, "Invalid token.")
	}
	if claims.Type != accessClaimTyp || claims.Subject == "" || !claims.Role.Valid() {
		return nil, apperr.New(apperr.CodeInvalidToken, "Invalid token.")
	}
	return &claims, nil
}
