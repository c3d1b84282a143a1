package auth

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aichat/aichat/internal/apperr"
	"golang.org/x/crypto/bcrypt"
)

// cheapArgon2 keeps hashing fast (and -race runs short) wherever a test is
// not about the OWASP parameters themselves.
var cheapArgon2 = Argon2Params{Memory: 1024, Time: 1, Threads: 1}

func cheapHasher() Hasher { return Hasher{Algorithm: "argon2id", Argon2: cheapArgon2} }

// mustHash hashes password with h and fails the test on error.
func mustHash(t *testing.T, h Hasher, password string) string {
	t.Helper()
	hash, err := h.Hash(password)
	if err != nil {
		t.Fatalf("Hash(%q): %v", password, err)
	}
	return hash
}

// verify calls h.Verify and fails the test on error or panic.
func verify(t *testing.T, h Hasher, hash, password string) (ok, rehash bool) {
	t.Helper()
	ok, rehash, err := h.Verify(hash, password)
	if err != nil {
		t.Fatalf("Verify(%q, %q): unexpected error: %v", hash, password, err)
	}
	return ok, rehash
}

// differAtEnd returns s with its last byte changed.
func differAtEnd(s string) string {
	last := s[len(s)-1]
	if last == 'x' {
		return s[:len(s)-1] + "y"
	}
	return s[:len(s)-1] + "x"
}

func TestHasherArgon2idOWASP(t *testing.T) {
	h := Hasher{Algorithm: "argon2id", Argon2: OWASPArgon2}
	const password = "correct-horse-battery-staple-42"

	hash := mustHash(t, h, password)
	const wantPrefix = "$argon2id$v=19$m=19456,t=2,p=1$"
	if !strings.HasPrefix(hash, wantPrefix) {
		t.Fatalf("Hash = %q, want prefix %q", hash, wantPrefix)
	}
	if got, want := strings.Count(hash, "$"), 5; got != want {
		t.Errorf("Hash %q has %d '$', want %d (PHC: $alg$v$params$salt$key)", hash, got, want)
	}

	ok, rehash := verify(t, h, hash, password)
	if got, want := ok, true; got != want {
		t.Errorf("Verify(right password) ok = %v, want %v", got, want)
	}
	if got, want := rehash, false; got != want {
		t.Errorf("Verify(right password) rehash = %v, want %v", got, want)
	}

	ok, rehash = verify(t, h, hash, password+"!")
	if got, want := ok, false; got != want {
		t.Errorf("Verify(wrong password) ok = %v, want %v", got, want)
	}
	if got, want := rehash, false; got != want {
		t.Errorf("Verify(wrong password) rehash = %v, want %v", got, want)
	}

	if again := mustHash(t, h, password); again == hash {
		t.Errorf("two hashes of the same password are equal (%q): salt is not random", hash)
	}
}

func TestHasherVerifyRehash(t *testing.T) {
	const password = "rehash-me-please"
	owasp := Hasher{Algorithm: "argon2id", Argon2: OWASPArgon2}
	tests := []struct {
		name       string
		stored     Hasher // hashes the stored password
		verifier   Hasher // verifies it
		wantRehash bool
	}{
		{"same cheap params", cheapHasher(), cheapHasher(), false},
		{"same OWASP params", owasp, owasp, false},
		{"cheap stored, OWASP hasher", cheapHasher(), owasp, true},
		{"other memory", cheapHasher(), Hasher{Algorithm: "argon2id", Argon2: Argon2Params{Memory: 2048, Time: 1, Threads: 1}}, true},
		{"other time", cheapHasher(), Hasher{Algorithm: "argon2id", Argon2: Argon2Params{Memory: 1024, Time: 2, Threads: 1}}, true},
		{"other threads", cheapHasher(), Hasher{Algorithm: "argon2id", Argon2: Argon2Params{Memory: 1024, Time: 1, Threads: 2}}, true},
		{"hasher switched to bcrypt", cheapHasher(), Hasher{Algorithm: "bcrypt"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash := mustHash(t, tt.stored, password)
			ok, rehash := verify(t, tt.verifier, hash, password)
			if got, want := ok, true; got != want {
				t.Fatalf("Verify ok = %v, want %v", got, want)
			}
			if got, want := rehash, tt.wantRehash; got != want {
				t.Errorf("Verify rehash = %v, want %v", got, want)
			}
			// A wrong password never asks for a rehash.
			ok, rehash = verify(t, tt.verifier, hash, password+"x")
			if ok || rehash {
				t.Errorf("Verify(wrong password) = ok %v, rehash %v, want false, false", ok, rehash)
			}
		})
	}
}

// TestHasherBcrypt runs Hash at the real BcryptCost, which is slow (seconds
// per operation under -race), so it makes two hashes in parallel and two
// verifications; TestHasherBcryptVerify covers the rest at a cheap cost.
func TestHasherBcrypt(t *testing.T) {
	tests := []struct {
		name     string
		password string
		verifier Hasher
		// Stored bcrypt is fine for a bcrypt Hasher, but should be replaced
		// when the configured algorithm is argon2id.
		wantRehash bool
	}{
		{"100 chars, bcrypt hasher", strings.Repeat("p", 99) + "1", Hasher{Algorithm: "bcrypt"}, false},
		{"1024 chars, argon2id hasher", strings.Repeat("0123456789abcdef", 64), cheapHasher(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hash := mustHash(t, Hasher{Algorithm: "bcrypt"}, tt.password)
			if got, want := hash, "$bcrypt-hmac-sha512$2"; !strings.HasPrefix(got, want) {
				t.Fatalf("Hash = %q, want prefix %q", got, want)
			}
			if got, want := hash, fmt.Sprintf("$%d$", BcryptCost); !strings.Contains(got, want) {
				t.Errorf("Hash = %q, want cost segment %q", got, want)
			}
			ok, rehash := verify(t, tt.verifier, hash, tt.password)
			if got, want := ok, true; got != want {
				t.Errorf("Verify(right password) ok = %v, want %v", got, want)
			}
			if got, want := rehash, tt.wantRehash; got != want {
				t.Errorf("Verify(right password) rehash = %v, want %v", got, want)
			}
		})
	}
}

// cheapBcryptHash returns a hash in Hasher's bcrypt format made at
// bcrypt.MinCost; Verify reads the cost from the hash, so Verify-side tests
// stay fast.
func cheapBcryptHash(t *testing.T, password string) string {
	t.Helper()
	b, err := bcrypt.GenerateFromPassword(bcryptPrehash(password), bcrypt.MinCost)
	if err != nil {
		t.Fatalf("bcrypt.GenerateFromPassword: %v", err)
	}
	return "$bcrypt-hmac-sha512" + string(b)
}

func TestHasherBcryptVerify(t *testing.T) {
	bc := Hasher{Algorithm: "bcrypt"}
	long := strings.Repeat("0123456789abcdef", 64) // 1024 bytes
	p100 := strings.Repeat("p", 99) + "1"
	p73 := strings.Repeat("p", 72) + "a"
	tests := []struct {
		name       string
		stored     string // password the hash is made of
		presented  string
		verifier   Hasher
		wantOK     bool
		wantRehash bool
	}{
		{"right password, cost below BcryptCost", "bcrypt-password", "bcrypt-password", bc, true, true},
		{"wrong password", "bcrypt-password", "bcrypt-passwore", bc, false, false},
		{"100 chars", p100, p100, bc, true, true},
		{"100 chars differing only in the last byte", p100, differAtEnd(p100), bc, false, false},
		{"1024 chars", long, long, bc, true, true},
		{"1024 chars differing only in the last byte", long, differAtEnd(long), bc, false, false},
		{"73 bytes differing only in byte 73", p73, differAtEnd(p73), bc, false, false},
		{"72-byte prefix of a 73-byte password", p73, p73[:72], bc, false, false},
		{"argon2id hasher", "bcrypt-password", "bcrypt-password", cheapHasher(), true, true},
		{"unicode", "пароль-очень-длинный 🔐", "пароль-очень-длинный 🔐", bc, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash := cheapBcryptHash(t, tt.stored)
			ok, rehash := verify(t, tt.verifier, hash, tt.presented)
			if got, want := ok, tt.wantOK; got != want {
				t.Errorf("Verify ok = %v, want %v", got, want)
			}
			if got, want := rehash, tt.wantRehash; got != want {
				t.Errorf("Verify rehash = %v, want %v", got, want)
			}
		})
	}
}

func TestBcryptPrehash(t *testing.T) {
	long := strings.Repeat("0123456789abcdef", 64)
	for _, pw := range []string{"", "short", long, long + "x"} {
		if got, max := len(bcryptPrehash(pw)), 72; got > max {
			t.Errorf("len(bcryptPrehash(%d bytes)) = %d, want at most %d (bcrypt's input limit)", len(pw), got, max)
		}
	}
	if a, b := string(bcryptPrehash(long)), string(bcryptPrehash(differAtEnd(long))); a == b {
		t.Errorf("bcryptPrehash of two 1024-byte passwords differing in the last byte are equal")
	}
}

func TestHasherUnicodeNotNormalized(t *testing.T) {
	h := cheapHasher()
	tests := []struct {
		name     string
		password string
		other    string // must NOT verify against password's hash
	}{
		{"cyrillic", "пароль-очень-длинный", "Пароль-очень-длинный"},
		{"emoji", "🔐 секрет 🦄 tajemnica", "🔐 секрет 🦄 tajemnica "},
		{"ascii case", "password-is-long", "Password-is-long"},
		{"NFC vs NFD", "caf\u00e9-au-lait", "cafe\u0301-au-lait"},
		{"fullwidth vs ascii", "ｐａｓｓｗｏｒｄ-x", "password-x"},
		{"trailing space kept", "spaces matter ", "spaces matter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash := mustHash(t, h, tt.password)
			if ok, _ := verify(t, h, hash, tt.password); !ok {
				t.Errorf("Verify(%q) ok = false, want true", tt.password)
			}
			if ok, _ := verify(t, h, hash, tt.other); ok {
				t.Errorf("Verify(%q) against hash of %q ok = true, want false (no normalization)", tt.other, tt.password)
			}
		})
	}
}

func TestHasherVerifyMalformed(t *testing.T) {
	valid := mustHash(t, cheapHasher(), "some-password")
	parts := strings.Split(valid, "$") // "", "argon2id", "v=19", "m=..", salt, key
	salt, key := parts[4], parts[5]
	join := func(p ...string) string { return strings.Join(p, "$") }

	tests := []struct {
		name string
		hash string
	}{
		{"empty", ""},
		{"garbage", "not a hash"},
		{"plain bcrypt without prefix", "$2a$12$abcdefghijklmnopqrstuuJ6Q8N2lJ4n0Cz3jJ8b3a5m8xq1S"},
		{"bcrypt prefix, garbage", "$bcrypt-hmac-sha512garbage"},
		{"bcrypt prefix only", "$bcrypt-hmac-sha512"},
		{"argon2i", join("", "argon2i", "v=19", "m=1024,t=1,p=1", salt, key)},
		{"too few parts", join("", "argon2id", "v=19", "m=1024,t=1,p=1", salt)},
		{"too many parts", valid + "$extra"},
		{"bad version", join("", "argon2id", "v=x", "m=1024,t=1,p=1", salt, key)},
		{"bad params", join("", "argon2id", "v=19", "m=a,t=1,p=1", salt, key)},
		{"params missing", join("", "argon2id", "v=19", "", salt, key)},
		{"threads overflow uint8", join("", "argon2id", "v=19", "m=1024,t=1,p=256", salt, key)},
		{"negative memory", join("", "argon2id", "v=19", "m=-1,t=1,p=1", salt, key)},
		{"salt not base64", join("", "argon2id", "v=19", "m=1024,t=1,p=1", "!!!", key)},
		{"key not base64", join("", "argon2id", "v=19", "m=1024,t=1,p=1", salt, "%%%")},
		{"padded base64 key", join("", "argon2id", "v=19", "m=1024,t=1,p=1", salt, key+"=")},
		{"time zero", join("", "argon2id", "v=19", "m=1024,t=0,p=1", salt, key)},
		{"threads zero", join("", "argon2id", "v=19", "m=1024,t=1,p=0", salt, key)},
		{"empty key", join("", "argon2id", "v=19", "m=1024,t=1,p=1", salt, "")},
		{"huge memory", join("", "argon2id", "v=19", "m=4294967295,t=1,p=1", salt, key)},
		{"huge time", join("", "argon2id", "v=19", "m=1024,t=100000,p=1", salt, key)},
		{"trailing junk in params", join("", "argon2id", "v=19", "m=1024,t=1,p=1junk", salt, key)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ok bool
			var err error
			panicked := func() (p any) {
				defer func() { p = recover() }()
				ok, _, err = cheapHasher().Verify(tt.hash, "some-password")
				return nil
			}()
			if panicked != nil {
				t.Fatalf("Verify(%q) panicked: %v", tt.hash, panicked)
			}
			if err == nil {
				t.Errorf("Verify(%q) error = nil, want an error", tt.hash)
			}
			if ok {
				t.Errorf("Verify(%q) ok = true, want false", tt.hash)
			}
		})
	}
}

func TestCheckPassword(t *testing.T) {
	const email = "alice.wonderland@example.com"
	tests := []struct {
		name     string
		password string
		email    string
		wantCode string // "" means accepted
	}{
		{"7 chars", "abcdefg", email, apperr.CodeValidation},
		{"empty", "", email, apperr.CodeValidation},
		{"exactly 8 chars", "zq7-vw3k", email, ""},
		{"1024 chars", strings.Repeat("Kx9!", 256), email, ""},
		{"1025 chars", strings.Repeat("Kx9!", 256) + "z", email, apperr.CodeValidation},
		{"1024 multibyte chars", strings.Repeat("ж", 1024), email, ""},
		{"1025 multibyte chars", strings.Repeat("ж", 1025), email, apperr.CodeValidation},
		{"8 multibyte chars", "жёлтыйсв", email, ""},
		{"8 emoji", "🦄🔐🌍🎲🚀🍉🐙🎈", email, ""},
		{"7 multibyte chars", "жёлтыйс", email, apperr.CodeValidation},
		{"common password123", "password123", email, apperr.CodeWeakPassword},
		{"common Password123 case-insensitive", "Password123", email, apperr.CodeWeakPassword},
		{"common qwertyuiop", "qwertyuiop", email, apperr.CodeWeakPassword},
		{"common non-ascii contraseña", "Contraseña", email, apperr.CodeWeakPassword},
		{"email itself", email, email, apperr.CodeWeakPassword},
		{"email upper-cased", strings.ToUpper(email), email, apperr.CodeWeakPassword},
		{"local part of email", "alice.wonderland", email, apperr.CodeWeakPassword},
		{"short local part is fine", "bob12345", "bob@example.com", ""},
		{"long random passphrase", "violet tangerine orbits 42 quietly", email, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPassword(tt.password, tt.email)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("CheckPassword(%q) = %v, want nil", tt.password, err)
				}
				return
			}
			e, ok := apperr.As(err)
			if !ok {
				t.Fatalf("CheckPassword(%q) = %v (%T), want *apperr.Error", tt.password, err, err)
			}
			if got, want := apperr.Code(err), tt.wantCode; got != want {
				t.Errorf("CheckPassword(%q) code = %q, want %q", tt.password, got, want)
			}
			if got, want := e.Field, "password"; got != want {
				t.Errorf("CheckPassword(%q) field = %q, want %q", tt.password, got, want)
			}
			if e.Message == "" {
				t.Errorf("CheckPassword(%q) message is empty", tt.password)
			}
		})
	}
}

func TestCommonPasswordsList(t *testing.T) {
	if got, want := len(commonPasswords), 3000; got < want {
		t.Errorf("len(commonPasswords) = %d, want at least %d", got, want)
	}
	for w := range commonPasswords {
		if got, want := w, strings.ToLower(w); got != want {
			t.Errorf("common password %q is not lower-case (CheckPassword could never match it)", w)
		}
		if got, want := utf8.RuneCountInString(w), MinPasswordLen; got < want {
			t.Errorf("common password %q has %d characters, want at least %d (shorter ones are refused anyway)", w, got, want)
		}
		if got := strings.TrimSpace(w); got != w {
			t.Errorf("common password %q has surrounding space", w)
		}
	}
}
