// Package secrets owns aichat's key material: the JWT signing keys, the
// message encryption keys and the search index keys. They come from the environment when set, otherwise
// from a file in the data folder that is generated (0600) on first start and
// reused after, so a laptop install needs no set-up and keeps its sessions and
// its readable history across restarts.
package secrets

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// FileName is the name of the generated key file inside the data folder.
const FileName = "secrets.json"

// Key is one piece of key material with the id that is stored next to what it
// signed or sealed, so keys can rotate while old data stays readable.
type Key struct {
	ID      string    `json:"id"`
	Secret  []byte    `json:"secret"`
	Created time.Time `json:"created"`
}

// Keyring holds the keys for one purpose; the first key is the current one
// (used to sign or seal), the others only verify or open.
type Keyring []Key

// Current returns the key new data is signed or sealed with.
func (r Keyring) Current() Key { return r[0] }

// Find returns the key with the given id.
func (r Keyring) Find(id string) (Key, bool) {
	for _, k := range r {
		if k.ID == id {
			return k, true
		}
	}
	return Key{}, false
}

// Validate checks what every user of a keyring relies on: at least one
// key, ids present and unique (an id names exactly one secret, or rows
// sealed under it could open with the wrong key), and 256-bit secrets.
func (r Keyring) Validate() error {
	if len(r) == 0 {
		return errors.New("no keys")
	}
	seen := make(map[string]bool, len(r))
	for _, k := range r {
		if k.ID == "" {
			return errors.New("a key has no id")
		}
		if seen[k.ID] {
			return fmt.Errorf("key id %q repeated", k.ID)
		}
		seen[k.ID] = true
		if len(k.Secret) != 32 {
			return fmt.Errorf("key %q must be 32 bytes, got %d", k.ID, len(k.Secret))
		}
	}
	return nil
}

// Validate checks both keyrings.
func (s Set) Validate() error {
	if err := s.JWT.Validate(); err != nil {
		return fmt.Errorf("jwt keys: %w", err)
	}
	if err := s.Encryption.Validate(); err != nil {
		return fmt.Errorf("encryption keys: %w", err)
	}
	if len(s.Index) > 0 {
		if err := s.Index.Validate(); err != nil {
			return fmt.Errorf("index keys: %w", err)
		}
	}
	return nil
}

// Set is all of aichat's key material.
type Set struct {
	JWT        Keyring `json:"jwt"`
	Encryption Keyring `json:"encryption"`
	// Index keys the search index (package search derives one key per
	// chat from the current one). Separate from Encryption: the index
	// must not be computable from the encryption key, nor the reverse.
	// Files written before search existed lack it; Load adds one.
	Index Keyring `json:"index,omitempty"`
}

// Source says where the keys came from, for the start-up log.
type Source struct {
	File      string // path of the key file, if one was used
	Generated bool   // the file was created by this start
}

// Load returns the key set: each keyring from its environment value when set
// ("id=base64,id2=base64", first is current), otherwise from dataDir/secrets.json,
// which is created with fresh random keys if it does not exist (and gains
// an index key if it has none).
func Load(dataDir, jwtEnv, encEnv string, indexEnv ...string) (Set, Source, error) {
	var set Set
	var src Source
	var err error
	if jwtEnv != "" {
		if set.JWT, err = parseEnv(jwtEnv, "AICHAT_JWT_KEYS"); err != nil {
			return set, src, err
		}
	}
	if encEnv != "" {
		if set.Encryption, err = parseEnv(encEnv, "AICHAT_ENCRYPTION_KEYS"); err != nil {
			return set, src, err
		}
	}
	if len(indexEnv) > 0 && indexEnv[0] != "" {
		if set.Index, err = parseEnv(indexEnv[0], "AICHAT_INDEX_KEYS"); err != nil {
			return set, src, err
		}
	}
	if set.JWT != nil && set.Encryption != nil && set.Index != nil {
		return set, src, nil
	}
	file, generated, err := loadOrCreate(dataDir)
	if err != nil {
		return set, src, err
	}
	src = Source{File: filepath.Join(dataDir, FileName), Generated: generated}
	if set.JWT == nil {
		set.JWT = file.JWT
	}
	if set.Encryption == nil {
		set.Encryption = file.Encryption
	}
	if set.Index == nil {
		set.Index = file.Index
	}
	return set, src, nil
}

func parseEnv(v, name string) (Keyring, error) {
	var ring Keyring
	seen := map[string]bool{}
	for _, part := range strings.Split(v, ",") {
		id, b64, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || id == "" {
			return nil, fmt.Errorf("%s: each key must be id=base64", name)
		}
		secret, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			if secret, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "=")); err != nil {
				return nil, fmt.Errorf("%s: key %q is not base64", name, id)
			}
		}
		if len(secret) != 32 {
			return nil, fmt.Errorf("%s: key %q must be 32 bytes, got %d", name, id, len(secret))
		}
		if seen[id] {
			return nil, fmt.Errorf("%s: key id %q repeated", name, id)
		}
		seen[id] = true
		ring = append(ring, Key{ID: id, Secret: secret})
	}
	return ring, nil
}

func loadOrCreate(dir string) (Set, bool, error) {
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	if err == nil {
		var set Set
		if err := json.Unmarshal(b, &set); err != nil {
			return set, false, fmt.Errorf("read %s: %w", path, err)
		}
		if err := set.Validate(); err != nil {
			return set, false, fmt.Errorf("read %s: %w", path, err)
		}
		if len(set.Index) == 0 {
			// A file from before search: add its index key, then read the
			// file again so two processes upgrading at once end up with
			// whichever key was written last, not one each.
			set.Index = Keyring{NewKey()}
			if err := Save(dir, set); err != nil {
				return set, false, err
			}
			set, err := LoadFile(dir)
			return set, false, err
		}
		return set, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Set{}, false, fmt.Errorf("read %s: %w", path, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Set{}, false, fmt.Errorf("create data folder: %w", err)
	}
	set := Set{JWT: Keyring{NewKey()}, Encryption: Keyring{NewKey()}, Index: Keyring{NewKey()}}
	if err := Save(dir, set); err != nil {
		return Set{}, false, err
	}
	return set, true, nil
}

// Save writes the key file atomically with mode 0600. O_EXCL on the temporary
// file keeps two processes starting at once from interleaving their writes.
func Save(dir string, set Set) error {
	b, err := json.MarshalIndent(set, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, FileName)
	tmp := path + ".tmp-" + NewID()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	f.Close()
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// NewKey returns a fresh 256-bit key with a random id.
func NewKey() Key {
	return Key{ID: NewID(), Secret: Random(32), Created: time.Now().UTC().Truncate(time.Second)}
}

// NewID returns a short random identifier for a key.
func NewID() string { return hex.EncodeToString(Random(4)) }

// Random returns n bytes from the operating system's CSPRNG.
func Random(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand.Read never fails on supported platforms (Go 1.24+ panics itself).
		panic(err)
	}
	return b
}

// LoadFile reads the key file in dataDir without creating it.
func LoadFile(dataDir string) (Set, error) {
	path := filepath.Join(dataDir, FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		return Set{}, fmt.Errorf("read %s: %w", path, err)
	}
	var set Set
	if err := json.Unmarshal(b, &set); err != nil {
		return Set{}, fmt.Errorf("read %s: %w", path, err)
	}
	if err := set.Validate(); err != nil {
		return Set{}, fmt.Errorf("read %s: %w", path, err)
	}
	return set, nil
}

// AddEncryptionKey puts a fresh encryption key at the front of the key file's
// encryption keyring, making it current, and returns it. Older keys stay so
// rows sealed with them can still be opened until they are re-sealed.
func AddEncryptionKey(dataDir string) (Key, error) {
	return addKey(dataDir, func(s *Set) *Keyring { return &s.Encryption })
}

// AddIndexKey puts a fresh search index key at the front of the key file's
// index keyring and returns it. Older keys stay: rows hashed with them are
// searched until the rebuild has moved them to the new key.
func AddIndexKey(dataDir string) (Key, error) {
	return addKey(dataDir, func(s *Set) *Keyring { return &s.Index })
}

// addKey puts a fresh key at the front of one keyring of the key file.
func addKey(dataDir string, ring func(*Set) *Keyring) (Key, error) {
	set, err := LoadFile(dataDir)
	if err != nil {
		return Key{}, err
	}
	r := ring(&set)
	k := NewKey()
	for _, taken := r.Find(k.ID); taken; _, taken = r.Find(k.ID) {
		k = NewKey() // 32-bit ids: rare, but a clash would shadow a key
	}
	*r = append(Keyring{k}, *r...)
	return k, Save(dataDir, set)
}

// RemoveIndexKeys removes the index keys with these ids from the key file
// (keys no index row uses any more), never the current one, and returns
// the ids it removed.
func RemoveIndexKeys(dataDir string, ids ...string) ([]string, error) {
	set, err := LoadFile(dataDir)
	if err != nil {
		return nil, err
	}
	var kept Keyring
	var removed []string
	for i, k := range set.Index {
		if i > 0 && slices.Contains(ids, k.ID) {
			removed = append(removed, k.ID)
		} else {
			kept = append(kept, k)
		}
	}
	if len(removed) == 0 {
		return nil, nil
	}
	set.Index = kept
	return removed, Save(dataDir, set)
}
