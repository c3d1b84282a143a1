package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/secrets"
	"github.com/golang-jwt/jwt/v5"
)

// t0 is the fixed "now" of the token tests; whole seconds, since JWT times are.
var t0 = time.Date(2025, time.March, 14, 15, 9, 26, 0, time.UTC)

const testTTL = 15 * time.Minute

func newKey(id string) secrets.Key { return secrets.Key{ID: id, Secret: secrets.Random(32)} }

// newTokens returns Tokens over keys whose clock is stopped at now.
func newTokens(keys secrets.Keyring, now time.Time) *Tokens {
	return &Tokens{Keys: keys, Issuer: "aichat", TTL: testTTL, Now: func() time.Time { return now }}
}

func mustIssue(t *testing.T, tk *Tokens, u *User, sid string) string {
	t.Helper()
	s, _, err := tk.Issue(u, sid)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return s
}

// wantErrCode fails unless err is an *apperr.Error with the given code.
func wantErrCode(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want *apperr.Error with code %q", want)
	}
	e, ok := err.(*apperr.Error)
	if !ok {
		t.Fatalf("error = %v (%T), want *apperr.Error", err, err)
	}
	if got := e.Code; got != want {
		t.Errorf("error code = %q, want %q (error: %v)", got, want, err)
	}
}

// validClaims returns claims that Parse accepts at now; tests change one
// thing to make sure that one thing is what Parse rejects.
func validClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"sub":  "user-1",
		"role": "user",
		"typ":  "access",
		"ver":  1,
		"sid":  "session-1",
		"iss":  "aichat",
		"aud":  []string{"aichat-api"},
		"iat":  now.Unix(),
		"exp":  now.Add(testTTL).Unix(),
		"jti":  "jti-1",
	}
}

// claimsWith returns validClaims(t0) changed by edit.
func claimsWith(edit func(c jwt.MapClaims)) jwt.MapClaims {
	c := validClaims(t0)
	edit(c)
	return c
}

// forge signs claims with method and key. The header starts as Issue makes
// it (kid k1, typ at+jwt); header entries override it, a nil value removes
// the entry.
func forge(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = "k1"
	tok.Header["typ"] = "at+jwt"
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("forge: SignedString: %v", err)
	}
	return s
}

// rawToken assembles a token from JSON header and claims and a raw signature
// segment, for shapes the jwt library will not sign.
func rawToken(t *testing.T, header, claims map[string]any, sig string) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("rawToken: %v", err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(header) + "." + enc(claims) + "." + sig
}

func TestTokensIssueParseRoundTrip(t *testing.T) {
	k1 := newKey("k1")
	tk := newTokens(secrets.Keyring{k1}, t0)
	u := &User{ID: "user-42", Role: RoleSupport, TokenVersion: 7}

	s, exp, err := tk.Issue(u, "family-9")
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if got, want := exp, t0.Add(testTTL); !got.Equal(want) {
		t.Errorf("Issue expiry = %v, want %v", got, want)
	}

	claims, err := tk.Parse(s)
	if err != nil {
		t.Fatalf("Parse(Issue()) = %v", err)
	}
	if got, want := claims.Subject, u.ID; got != want {
		t.Errorf("sub = %q, want %q", got, want)
	}
	if got, want := claims.Role, u.Role; got != want {
		t.Errorf("role = %q, want %q", got, want)
	}
	if got, want := claims.Version, u.TokenVersion; got != want {
		t.Errorf("ver = %d, want %d", got, want)
	}
	if got, want := claims.Session, "family-9"; got != want {
		t.Errorf("sid = %q, want %q", got, want)
	}
	if got, want := claims.Issuer, "aichat"; got != want {
		t.Errorf("iss = %q, want %q", got, want)
	}
	if got, want := []string(claims.Audience), "aichat-api"; !slices.Contains(got, want) {
		t.Errorf("aud = %q, want it to contain %q", got, want)
	}
	if got, want := claims.Type, "access"; got != want {
		t.Errorf("typ claim = %q, want %q", got, want)
	}
	if claims.ExpiresAt == nil {
		t.Errorf("exp missing")
	} else if got, want := claims.ExpiresAt.Time, t0.Add(testTTL); !got.Equal(want) {
		t.Errorf("exp = %v, want %v", got, want)
	}
	if claims.IssuedAt == nil {
		t.Errorf("iat missing")
	} else if got, want := claims.IssuedAt.Time, t0; !got.Equal(want) {
		t.Errorf("iat = %v, want %v", got, want)
	}
	if claims.ID == "" {
		t.Errorf("jti is empty")
	}

	// The header, as sent.
	unverified, _, err := jwt.NewParser().ParseUnverified(s, jwt.MapClaims{})
	if err != nil {
		t.Fatalf("ParseUnverified: %v", err)
	}
	for name, want := range map[string]string{"alg": "HS256", "kid": "k1", "typ": "at+jwt"} {
		if got, _ := unverified.Header[name].(string); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if got, want := len(strings.Split(s, ".")), 3; got != want {
		t.Errorf("token has %d segments, want %d", got, want)
	}

	// Every token gets its own id.
	s2 := mustIssue(t, tk, u, "family-9")
	claims2, err := tk.Parse(s2)
	if err != nil {
		t.Fatalf("Parse(second token) = %v", err)
	}
	if claims2.ID == claims.ID {
		t.Errorf("two tokens share jti %q", claims.ID)
	}
}

func TestTokensParse(t *testing.T) {
	k1 := newKey("k1")
	attacker := newKey("k1") // same id, other secret
	tk := newTokens(secrets.Keyring{k1}, t0)
	good := mustIssue(t, tk, &User{ID: "user-1", Role: RoleUser, TokenVersion: 1}, "s")

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("ecdsa.GenerateKey: %v", err)
	}
	hs256 := jwt.SigningMethodHS256
	validHeader := map[string]any{"alg": "HS256", "kid": "k1", "typ": "at+jwt"}

	tests := []struct {
		name     string
		token    func(t *testing.T) string
		wantCode string // "" means accepted
	}{
		// Controls: the forging helpers make tokens Parse accepts, so each
		// rejection below is caused by the one thing the case changes.
		{"control: issued", func(*testing.T) string { return good }, ""},
		{"control: forged with the right key", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, validClaims(t0))
		}, ""},
		{"control: aud list containing aichat-api", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { c["aud"] = []string{"other", "aichat-api"} }))
		}, ""},
		{"control: aud as a single string", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { c["aud"] = "aichat-api" }))
		}, ""},

		{"alg none", func(t *testing.T) string {
			return forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil, validClaims(t0))
		}, apperr.CodeInvalidToken},
		{"alg NONE upper-case", func(t *testing.T) string {
			return rawToken(t, map[string]any{"alg": "NONE", "kid": "k1", "typ": "at+jwt"}, validClaims(t0), "")
		}, apperr.CodeInvalidToken},
		{"alg missing", func(t *testing.T) string {
			return rawToken(t, map[string]any{"kid": "k1", "typ": "at+jwt"}, validClaims(t0), strings.Split(good, ".")[2])
		}, apperr.CodeInvalidToken},
		{"HS512 with the right key", func(t *testing.T) string {
			return forge(t, jwt.SigningMethodHS512, k1.Secret, nil, validClaims(t0))
		}, apperr.CodeInvalidToken},
		{"HS384 with the right key", func(t *testing.T) string {
			return forge(t, jwt.SigningMethodHS384, k1.Secret, nil, validClaims(t0))
		}, apperr.CodeInvalidToken},
		{"ES256 with an attacker key", func(t *testing.T) string {
			return forge(t, jwt.SigningMethodES256, ecKey, nil, validClaims(t0))
		}, apperr.CodeInvalidToken},
		{"HS256 with another key under kid k1", func(t *testing.T) string {
			return forge(t, hs256, attacker.Secret, nil, validClaims(t0))
		}, apperr.CodeInvalidToken},
		{"HS256 with an empty key", func(t *testing.T) string {
			return rawToken(t, validHeader, validClaims(t0), hmacSig(t, nil, validHeader, validClaims(t0)))
		}, apperr.CodeInvalidToken},
		{"signature stripped", func(*testing.T) string {
			p := strings.Split(good, ".")
			return p[0] + "." + p[1] + "."
		}, apperr.CodeInvalidToken},
		{"payload swapped (role escalated), signature kept", func(t *testing.T) string {
			admin := forge(t, hs256, attacker.Secret, nil, claimsWith(func(c jwt.MapClaims) { c["role"] = "admin" }))
			g, a := strings.Split(good, "."), strings.Split(admin, ".")
			return g[0] + "." + a[1] + "." + g[2]
		}, apperr.CodeInvalidToken},
		{"unknown kid", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, map[string]any{"kid": "k9"}, validClaims(t0))
		}, apperr.CodeInvalidToken},
		{"missing kid", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, map[string]any{"kid": nil}, validClaims(t0))
		}, apperr.CodeInvalidToken},
		{"empty kid", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, map[string]any{"kid": ""}, validClaims(t0))
		}, apperr.CodeInvalidToken},
		{"kid not a string", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, map[string]any{"kid": 1}, validClaims(t0))
		}, apperr.CodeInvalidToken},
		{"jku to attacker keys, attacker key, kid k1", func(t *testing.T) string {
			return forge(t, hs256, attacker.Secret, map[string]any{"jku": "https://attacker.example/jwks.json"}, validClaims(t0))
		}, apperr.CodeInvalidToken},
		{"jku to attacker keys, attacker kid", func(t *testing.T) string {
			return forge(t, hs256, attacker.Secret,
				map[string]any{"jku": "https://attacker.example/jwks.json", "kid": "attacker"}, validClaims(t0))
		}, apperr.CodeInvalidToken},
		{"jwk header with attacker key", func(t *testing.T) string {
			return forge(t, hs256, attacker.Secret,
				map[string]any{"jwk": map[string]any{"kty": "oct", "k": base64.RawURLEncoding.EncodeToString(attacker.Secret)}}, validClaims(t0))
		}, apperr.CodeInvalidToken},
		{"header typ JWT", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, map[string]any{"typ": "JWT"}, validClaims(t0))
		}, apperr.CodeInvalidToken},
		{"header typ missing", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, map[string]any{"typ": nil}, validClaims(t0))
		}, apperr.CodeInvalidToken},
		{"missing exp", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { delete(c, "exp") }))
		}, apperr.CodeInvalidToken},
		{"exp not a number", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }))
		}, apperr.CodeInvalidToken},
		{"expired long ago", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { c["exp"] = t0.Add(-time.Hour).Unix() }))
		}, apperr.CodeTokenExpired},
		{"expired and signed with another key", func(t *testing.T) string {
			return forge(t, hs256, attacker.Secret, nil, claimsWith(func(c jwt.MapClaims) { c["exp"] = t0.Add(-time.Hour).Unix() }))
		}, apperr.CodeInvalidToken},
		{"iat far in the future", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { c["iat"] = t0.Add(time.Minute).Unix() }))
		}, apperr.CodeInvalidToken},
		{"nbf in the future", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { c["nbf"] = t0.Add(time.Minute).Unix() }))
		}, apperr.CodeInvalidToken},
		{"wrong iss", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { c["iss"] = "evil" }))
		}, apperr.CodeInvalidToken},
		{"missing iss", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { delete(c, "iss") }))
		}, apperr.CodeInvalidToken},
		{"wrong aud", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { c["aud"] = []string{"aichat-refresh"} }))
		}, apperr.CodeInvalidToken},
		{"missing aud", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { delete(c, "aud") }))
		}, apperr.CodeInvalidToken},
		{"empty aud list", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { c["aud"] = []string{} }))
		}, apperr.CodeInvalidToken},
		{"claim typ refresh", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { c["typ"] = "refresh" }))
		}, apperr.CodeInvalidToken},
		{"claim typ missing", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { delete(c, "typ") }))
		}, apperr.CodeInvalidToken},
		{"empty sub", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { c["sub"] = "" }))
		}, apperr.CodeInvalidToken},
		{"missing sub", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { delete(c, "sub") }))
		}, apperr.CodeInvalidToken},
		{"unknown role root", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { c["role"] = "root" }))
		}, apperr.CodeInvalidToken},
		{"role Admin (case matters)", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { c["role"] = "Admin" }))
		}, apperr.CodeInvalidToken},
		{"missing role", func(t *testing.T) string {
			return forge(t, hs256, k1.Secret, nil, claimsWith(func(c jwt.MapClaims) { delete(c, "role") }))
		}, apperr.CodeInvalidToken},
		{"garbage", func(*testing.T) string { return "this is not a token" }, apperr.CodeInvalidToken},
		{"empty string", func(*testing.T) string { return "" }, apperr.CodeInvalidToken},
		{"a.b.c", func(*testing.T) string { return "a.b.c" }, apperr.CodeInvalidToken},
		{"four segments", func(*testing.T) string { return good + ".x" }, apperr.CodeInvalidToken},
		{"Bearer prefix", func(*testing.T) string { return "Bearer " + good }, apperr.CodeInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.token(t)
			claims, err := tk.Parse(s)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("Parse = %v, want nil", err)
				}
				if claims == nil {
					t.Fatalf("Parse claims = nil, want claims")
				}
				return
			}
			wantErrCode(t, err, tt.wantCode)
			if claims != nil {
				t.Errorf("Parse claims = %+v, want nil on error", claims)
			}
		})
	}
}

// hmacSig returns the HS256 signature segment for header and claims.
func hmacSig(t *testing.T, key []byte, header, claims map[string]any) string {
	t.Helper()
	parts := strings.Split(rawToken(t, header, claims, ""), ".")
	sig, err := jwt.SigningMethodHS256.Sign(parts[0]+"."+parts[1], key)
	if err != nil {
		t.Fatalf("hmacSig: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(sig)
}

func TestTokensExpiry(t *testing.T) {
	keys := secrets.Keyring{newKey("k1")}
	s := mustIssue(t, newTokens(keys, t0), &User{ID: "u", Role: RoleUser}, "s")
	tests := []struct {
		name     string
		at       time.Duration // parse at t0+at
		wantCode string        // "" means accepted
	}{
		{"at issue", 0, ""},
		{"just before exp", testTTL - time.Second, ""},
		{"at exp", testTTL, ""},
		{"exp + 29s, within leeway", testTTL + 29*time.Second, ""},
		{"exp + 31s, past leeway", testTTL + 31*time.Second, apperr.CodeTokenExpired},
		{"a day later", 24 * time.Hour, apperr.CodeTokenExpired},
		{"clock 29s behind issuer, within leeway", -29 * time.Second, ""},
		{"clock 31s behind issuer", -31 * time.Second, apperr.CodeInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newTokens(keys, t0.Add(tt.at)).Parse(s)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("Parse at t0%+v = %v, want nil", tt.at, err)
				}
				return
			}
			wantErrCode(t, err, tt.wantCode)
		})
	}
}

func TestTokensKeyRotation(t *testing.T) {
	k1, k2 := newKey("k1"), newKey("k2")
	u := &User{ID: "u", Role: RoleUser, TokenVersion: 1}
	old := mustIssue(t, newTokens(secrets.Keyring{k1}, t0), u, "s")

	rotated := newTokens(secrets.Keyring{k2, k1}, t0)
	if _, err := rotated.Parse(old); err != nil {
		t.Errorf("keyring {k2, k1}: Parse(token signed by k1) = %v, want nil", err)
	}

	fresh := mustIssue(t, rotated, u, "s")
	unverified, _, err := jwt.NewParser().ParseUnverified(fresh, jwt.MapClaims{})
	if err != nil {
		t.Fatalf("ParseUnverified: %v", err)
	}
	if got, want := unverified.Header["kid"], "k2"; got != want {
		t.Errorf("keyring {k2, k1}: Issue kid = %v, want %q", got, want)
	}
	if _, err := rotated.Parse(fresh); err != nil {
		t.Errorf("keyring {k2, k1}: Parse(token signed by k2) = %v, want nil", err)
	}

	tests := []struct {
		name  string
		keys  secrets.Keyring
		token string
	}{
		{"k1 retired: old token", secrets.Keyring{k2}, old},
		{"only k1: token signed by k2", secrets.Keyring{k1}, fresh},
		{"k1 id reused with a new secret: old token", secrets.Keyring{k2, newKey("k1")}, old},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newTokens(tt.keys, t0).Parse(tt.token)
			wantErrCode(t, err, apperr.CodeInvalidToken)
		})
	}
}
