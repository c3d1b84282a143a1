// Package seal encrypts what aichat stores (message text, chat
// instructions) with AES-256-GCM. Each ciphertext is bound by associated data
// to where it belongs (for a message: its id and chat), so a row copied to
// another place fails to open, and records the id of the key that sealed it,
// so keys can rotate while old rows stay readable.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aichat/aichat/internal/secrets"
)

// ErrOpen is returned when a ciphertext cannot be opened: wrong key, wrong
// associated data, or tampering.
var ErrOpen = errors.New("seal: cannot open ciphertext")

// Sealer seals and opens with a keyring: the current key seals, any key opens.
type Sealer struct {
	mu      sync.RWMutex
	current string
	aeads   map[string]cipher.AEAD

	// reload, when set, is asked for a fresh keyring when Open meets a key
	// id it does not know: another process (aichat keys rotate) may have
	// added a key and re-sealed rows with it. At most once per second.
	reload     func() (secrets.Keyring, error)
	reloadMu   sync.Mutex
	lastReload time.Time
}

// New returns a Sealer over ring.
func New(ring secrets.Keyring) (*Sealer, error) {
	s := &Sealer{}
	if err := s.SetKeys(ring); err != nil {
		return nil, err
	}
	return s, nil
}

// OnUnknownKey sets the function Open uses to look for keys it lacks.
func (s *Sealer) OnUnknownKey(reload func() (secrets.Keyring, error)) {
	s.reloadMu.Lock()
	s.reload = reload
	s.reloadMu.Unlock()
}

// SetKeys replaces the keyring, e.g. after a rotation added a key.
func (s *Sealer) SetKeys(ring secrets.Keyring) error {
	if err := ring.Validate(); err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	aeads := make(map[string]cipher.AEAD, len(ring))
	for _, k := range ring {
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return err
		}
		aeads[k.ID] = aead
	}
	s.mu.Lock()
	s.current, s.aeads = ring.Current().ID, aeads
	s.mu.Unlock()
	return nil
}

// CurrentKeyID returns the id of the key Seal uses.
func (s *Sealer) CurrentKeyID() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.current
}

// Seal encrypts plaintext bound to the associated data parts and returns the
// ciphertext (random 96-bit nonce first) and the id of the key used.
func (s *Sealer) Seal(plaintext []byte, aad ...string) ([]byte, string) {
	s.mu.RLock()
	id, aead := s.current, s.aeads[s.current]
	s.mu.RUnlock()
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return aead.Seal(out, out, plaintext, encodeAAD(aad)), id
}

// Open decrypts a ciphertext made by Seal with key keyID and the same
// associated data.
func (s *Sealer) Open(ciphertext []byte, keyID string, aad ...string) ([]byte, error) {
	aead, ok := s.aead(keyID)
	if !ok && s.tryReload() {
		aead, ok = s.aead(keyID)
	}
	if !ok {
		return nil, fmt.Errorf("%w: unknown key id %q", ErrOpen, keyID)
	}
	n := aead.NonceSize()
	if len(ciphertext) < n+aead.Overhead() {
		return nil, fmt.Errorf("%w: too short", ErrOpen)
	}
	pt, err := aead.Open(nil, ciphertext[:n], ciphertext[n:], encodeAAD(aad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

func (s *Sealer) aead(id string) (cipher.AEAD, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.aeads[id]
	return a, ok
}

// tryReload reloads the keyring if a reload function is set and none ran in
// the last second, and reports whether it loaded one.
func (s *Sealer) tryReload() bool {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.reload == nil || time.Since(s.lastReload) < time.Second {
		return false
	}
	s.lastReload = time.Now()
	ring, err := s.reload()
	if err != nil || len(ring) == 0 {
		return false
	}
	return s.SetKeys(ring) == nil
}

// encodeAAD length-prefixes each part so ("ab","c") and ("a","bc") differ.
func encodeAAD(parts []string) []byte {
	size := 0
	for _, p := range parts {
		size += 4 + len(p)
	}
	b := make([]byte, 0, size)
	for _, p := range parts {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}
