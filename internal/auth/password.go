package auth

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha512"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/secrets"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Password length limits, in characters. The upper bound only stops
// hashing-cost abuse; passwords are never truncated.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 1024
)

// Argon2Params are the argon2id cost parameters.
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// OWASPArgon2 is the OWASP Password Storage Cheat Sheet minimum for argon2id
// (m=19 MiB, t=2, p=1).
var OWASPArgon2 = Argon2Params{Memory: 19456, Time: 2, Threads: 1}

// BcryptCost is the bcrypt work factor used in bcrypt mode.
const BcryptCost = 12

// bcryptPrehashKey domain-separates the pre-hash that lets bcrypt take
// passwords longer than its 72-byte input limit without truncating them.
// Being keyed, the pre-hash matches no other site's unsalted hashes, which
// defeats "password shucking".
var bcryptPrehashKey = []byte("aichat bcrypt prehash v1")

// Hasher hashes and verifies passwords in PHC string format.
type Hasher struct {
	Algorithm string // "argon2id" or "bcrypt"
	Argon2    Argon2Params
}

// Hash returns the PHC-format hash of password.
func (h Hasher) Hash(password string) (string, error) {
	if h.Algorithm == "bcrypt" {
		b, err := bcrypt.GenerateFromPassword(bcryptPrehash(password), BcryptCost)
		if err != nil {
			return "", err
		}
		return "$bcrypt-hmac-sha512" + string(b), nil
	}
	p := h.Argon2
	salt := secrets.Random(16)
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether password matches hash, and whether the hash should be
// replaced because it was made with other parameters than h's.
func (h Hasher) Verify(hash, password string) (ok, rehash bool, err error) {
	if rest, found := strings.CutPrefix(hash, "$bcrypt-hmac-sha512"); found {
		err := bcrypt.CompareHashAndPassword([]byte(rest), bcryptPrehash(password))
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return false, false, nil
		}
		if err != nil {
			return false, false, err
		}
		cost, _ := bcrypt.Cost([]byte(rest))
		return true, h.Algorithm != "bcrypt" || cost != BcryptCost, nil
	}
	var v int
	var p Argon2Params
	var saltB64, keyB64 string
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, false, fmt.Errorf("unknown password hash format")
	}
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil {
		return false, false, fmt.Errorf("bad argon2id version: %w", err)
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return false, false, fmt.Errorf("bad argon2id parameters: %w", err)
	}
	saltB64, keyB64 = parts[4], parts[5]
	salt, err := base64.RawStdEncoding.DecodeString(saltB64)
	if err != nil {
		return false, false, err
	}
	want, err := base64.RawStdEncoding.DecodeString(keyB64)
	if err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return false, false, nil
	}
	return true, h.Algorithm != "argon2id" || p != h.Argon2 || v != argon2.Version, nil
}

func bcryptPrehash(password string) []byte {
	m := hmac.New(sha512.New, bcryptPrehashKey)
	m.Write([]byte(password))
	// 64 bytes in base64 is 88 characters: too long for bcrypt, so use the
	// first 48 bytes (64 characters), still far beyond a password's entropy.
	return []byte(base64.StdEncoding.EncodeToString(m.Sum(nil)[:48]))
}

//go:embed common_passwords.txt
var commonPasswordsText string

// commonPasswords is the deny-list, built once at package load from embedded
// data (no I/O, no side effects beyond this map).
var commonPasswords = func() map[string]struct{} {
	m := make(map[string]struct{}, 6000)
	sc := bufio.NewScanner(strings.NewReader(commonPasswordsText))
	for sc.Scan() {
		if w := strings.TrimSpace(sc.Text()); w != "" {
			m[w] = struct{}{}
		}
	}
	return m
}()

// CheckPassword applies the password policy (ASVS 6.2): length in characters,
// no composition rules, and not a commonly used password or the email itself.
func CheckPassword(password, email string) error {
	n := utf8.RuneCountInString(password)
	if n < MinPasswordLen {
		return apperr.Invalid("password", "Password must be at least %d characters.", MinPasswordLen)
	}
	if n > MaxPasswordLen {
		return apperr.Invalid("password", "Password must be at most %d characters.", MaxPasswordLen)
	}
	lower := strings.ToLower(password)
	if _, common := commonPasswords[lower]; common {
		return &apperr.Error{Code: apperr.CodeWeakPassword, Field: "password",
			Message: "This password is too common; choose another one."}
	}
	local, _, _ := strings.Cut(strings.ToLower(email), "@")
	if lower == strings.ToLower(email) || (len(local) >= MinPasswordLen && lower == local) {
		return &apperr.Error{Code: apperr.CodeWeakPassword, Field: "password",
			Message: "Password must not be your email address."}
	}
	return nil
}
