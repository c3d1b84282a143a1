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
	v, p, salt, want, err := parseArgon2(hash)
	if err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return false, false, nil
	}
	return true, h.Algorithm != "argon2id" || p != h.Argon2 || v != argon2.Version, nil
}

// parseArgon2 reads a PHC argon2id string. The parameters come from the
// database, so they are bounded before use: argon2 panics on zero rounds or
// threads, and a tampered row with a huge memory cost would exhaust the host.
func parseArgon2(hash string) (v int, p Argon2Params, salt, key []byte, err error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return 0, p, nil, nil, fmt.Errorf("unknown password hash format")
	}
	if parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return 0, p, nil, nil, fmt.Errorf("unsupported argon2id version %q", parts[2])
	}
	v = argon2.Version
	if n, _ := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); n != 3 ||
		fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Time, p.Threads) != parts[3] {
		return 0, p, nil, nil, fmt.Errorf("bad argon2id parameters %q", parts[3])
	}
	if p.Time < 1 || p.Time > 16 || p.Threads < 1 || p.Threads > 16 ||
		p.Memory < 8*uint32(p.Threads) || p.Memory > 1<<20 {
		return 0, p, nil, nil, fmt.Errorf("argon2id parameters out of range: %q", parts[3])
	}
	if salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return 0, p, nil, nil, fmt.Errorf("bad argon2id salt")
	}
	if key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(key) < 16 || len(key) > 64 {
		return 0, p, nil, nil, fmt.Errorf("bad argon2id key")
	}
	return v, p, salt, key, nil
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
