package auth

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/secrets"
	"github.com/golang-jwt/jwt/v5"
)

// fuzzTokens uses a fixed key so that an input the fuzzer saves reproduces.
func fuzzTokens() *Tokens {
	key := secrets.Key{ID: "k1", Secret: []byte("aichat-fuzz-key-0123456789abcdef")}
	return newTokens(secrets.Keyring{key}, t0)
}

func FuzzParseAccessToken(f *testing.F) {
	tk := fuzzTokens()
	u := &User{ID: "user-1", Role: RoleUser, TokenVersion: 1}

	issue := func(tk *Tokens) string {
		s, _, err := tk.Issue(u, "session-1")
		if err != nil {
			f.Fatalf("Issue: %v", err)
		}
		return s
	}
	valid := issue(tk)
	expired := issue(newTokens(tk.Keys, t0.Add(-time.Hour)))

	none := jwt.NewWithClaims(jwt.SigningMethodNone, validClaims(t0))
	none.Header["kid"] = "k1"
	none.Header["typ"] = "at+jwt"
	noneToken, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		f.Fatalf("none token: %v", err)
	}
	p := strings.Split(valid, ".")

	for _, seed := range []string{
		valid,
		expired,
		noneToken,
		"",
		"garbage",
		"a.b.c",
		"..",
		"a.b.c.d",
		valid + "=",                         // padding
		p[0] + "=." + p[1] + "." + p[2],     // padded header
		strings.ReplaceAll(valid, "-", "+"), // std alphabet
		strings.ReplaceAll(valid, "_", "/"),
		p[0] + "." + p[1] + ".", // no signature
		p[0] + "." + p[1] + "." + p[2][:len(p[2])-1], // short signature
		"eyJ.eyJ.===",
		"====.====.====",
		"e30.e30.",                  // {} . {} .
		"eyJhbGciOiJIUzI1NiJ9.e30.", // {"alg":"HS256"} . {} .
		" " + valid,
		valid + "\n",
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, s string) {
		claims, err := tk.Parse(s)
		if err != nil {
			if claims != nil {
				t.Errorf("Parse(%q) returned claims with error %v", s, err)
			}
			e, ok := err.(*apperr.Error)
			if !ok {
				t.Fatalf("Parse(%q) error = %v (%T), want *apperr.Error", s, err, err)
			}
			if e.Code != apperr.CodeInvalidToken && e.Code != apperr.CodeTokenExpired {
				t.Errorf("Parse(%q) code = %q, want %q or %q", s, e.Code, apperr.CodeInvalidToken, apperr.CodeTokenExpired)
			}
			return
		}
		if claims == nil {
			t.Fatalf("Parse(%q) = nil, nil", s)
		}
		parts := strings.Split(s, ".")
		if got, want := len(parts), 3; got != want {
			t.Fatalf("Parse(%q) accepted a token with %d segments, want %d", s, got, want)
		}
		// What was accepted must be what Issue makes with the fuzz key:
		// header alg HS256, kid k1, typ at+jwt, and an HS256 signature by k1.
		// (Seeds are issued afresh in each fuzz worker, with a new jti, so
		// comparing against the issued strings themselves would not work.)
		unverified, _, err := jwt.NewParser().ParseUnverified(s, &AccessClaims{})
		if err != nil {
			t.Fatalf("Parse(%q) accepted a token ParseUnverified rejects: %v", s, err)
		}
		for name, want := range map[string]string{"alg": "HS256", "kid": "k1", "typ": "at+jwt"} {
			if got, _ := unverified.Header[name].(string); got != want {
				t.Errorf("Parse(%q) accepted header %s = %q, want %q", s, name, got, want)
			}
		}
		key, _ := tk.Keys.Find("k1")
		if err := jwt.SigningMethodHS256.Verify(parts[0]+"."+parts[1], unverified.Signature, key.Secret); err != nil {
			t.Errorf("Parse(%q) accepted a token whose HS256 signature by k1 does not verify: %v", s, err)
		}
		if claims.Subject == "" {
			t.Errorf("Parse(%q) accepted an empty sub", s)
		}
		if got, want := claims.Type, "access"; got != want {
			t.Errorf("Parse(%q) typ = %q, want %q", s, got, want)
		}
		if !claims.Role.Valid() {
			t.Errorf("Parse(%q) accepted role %q", s, claims.Role)
		}
		if got, want := claims.Issuer, "aichat"; got != want {
			t.Errorf("Parse(%q) iss = %q, want %q", s, got, want)
		}
	})
}

func FuzzCheckPassword(f *testing.F) {
	for _, seed := range []struct{ password, email string }{
		{"", ""},
		{"abcdefg", "a@b.co"},
		{"zq7-vw3k", "a@b.co"},
		{"password123", "a@b.co"},
		{"PASSWORD123", "a@b.co"},
		{"alice.wonderland@example.com", "alice.wonderland@example.com"},
		{"alice.wonderland", "alice.wonderland@example.com"},
		{"жёлтыйсв", "a@b.co"},
		{"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", "a@b.co"},
		{strings.Repeat("x", 1024), ""},
		{strings.Repeat("ж", 1025), ""},
		{"İİİİİİİİ", "a@b.co"},
	} {
		f.Add(seed.password, seed.email)
	}
	f.Fuzz(func(t *testing.T, password, email string) {
		err := CheckPassword(password, email)
		if err != nil {
			e, ok := err.(*apperr.Error)
			if !ok {
				t.Fatalf("CheckPassword(%q, %q) error = %v (%T), want *apperr.Error", password, email, err, err)
			}
			if e.Code != apperr.CodeValidation && e.Code != apperr.CodeWeakPassword {
				t.Errorf("CheckPassword(%q, %q) code = %q, want %q or %q", password, email, e.Code, apperr.CodeValidation, apperr.CodeWeakPassword)
			}
			if got, want := e.Field, "password"; got != want {
				t.Errorf("CheckPassword(%q, %q) field = %q, want %q", password, email, got, want)
			}
			return
		}
		if n := utf8.RuneCountInString(password); n < MinPasswordLen || n > MaxPasswordLen {
			t.Errorf("CheckPassword accepted a password of %d characters, want %d..%d", n, MinPasswordLen, MaxPasswordLen)
		}
		if _, common := commonPasswords[strings.ToLower(password)]; common {
			t.Errorf("CheckPassword(%q) accepted a common password", password)
		}
		//lint:ignore SA6005 mirrors CheckPassword, which compares lower-cased strings (EqualFold folds more)
		if strings.ToLower(password) == strings.ToLower(email) {
			t.Errorf("CheckPassword(%q, %q) accepted the email as password", password, email)
		}
	})
}
