package search

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aichat/aichat/internal/secrets"
	"github.com/aichat/aichat/internal/store"
	"gorm.io/gorm"
)

// keyVersion is an index key as the database knows it: the version
// stored in message_tokens.key_version and the key's id (never the key).
type keyVersion struct {
	Version int
	KeyID   string
	Stemmed bool // words stemmed (AICHAT_SEARCH_STEMMING)
}

// errNoKey: this process lacks the index key the database asks for.
var errNoKey = errors.New("search: index key missing")

// ErrRebuilding: a rotation was asked for while the rebuild of the
// previous one is still running.
var ErrRebuilding = errors.New("search: the index is still being rebuilt for the previous rotation")

// bootstrap records the key in use as version 1 the first time the
// database is searched with versions (every row before migration 0009 is
// version 1), then reads the current version.
func (s *Service) bootstrap(ctx context.Context, current secrets.Key) error {
	now := time.Now().UTC()
	db := s.db.WithContext(ctx)
	if err := db.Exec("INSERT INTO search_keys (version, key_id, created_at) VALUES (1, ?, ?) ON CONFLICT DO NOTHING",
		current.ID, now).Error; err != nil {
		return fmt.Errorf("search: record index key: %w", err)
	}
	if err := db.Exec("INSERT INTO search_index (id, current_version) VALUES (1, 1) ON CONFLICT DO NOTHING").Error; err != nil {
		return fmt.Errorf("search: record index key: %w", err)
	}
	if err := s.matchStemming(ctx); err != nil && !errors.Is(err, ErrRebuilding) {
		return err
	}
	cur, err := s.currentVersion(db, false)
	if err != nil {
		return err
	}
	if _, ok := s.secret(cur.KeyID); !ok {
		s.log.Error("search: this server lacks the current index key: new messages are not indexed until it has it",
			"key_id", cur.KeyID, "version", cur.Version)
	}
	return nil
}

// currentVersion reads the version new rows are written with. In a
// writer's transaction on PostgreSQL it locks the row FOR SHARE: a
// rotation (which updates it) waits until the writer commits, and writers
// after the rotation see the new version. SQLite transactions take the
// write lock up front (BEGIN IMMEDIATE), which serializes them anyway.
func (s *Service) currentVersion(tx *gorm.DB, lock bool) (keyVersion, error) {
	q := "SELECT i.current_version AS version, k.key_id, k.stemmed FROM search_index i JOIN search_keys k ON k.version = i.current_version WHERE i.id = 1"
	if lock && s.db.Dialect == store.Postgres {
		q += " FOR SHARE OF i"
	}
	var kv []keyVersion
	if err := tx.Raw(q).Scan(&kv).Error; err != nil {
		return keyVersion{}, fmt.Errorf("search: current index key: %w", err)
	}
	if len(kv) == 0 {
		return keyVersion{}, errors.New("search: no current index key recorded")
	}
	s.cur.Store(&kv[0])
	return kv[0], nil
}

// liveVersions returns the versions rows may still have, newest first:
// the current one and, during a rebuild, the ones it replaces.
func (s *Service) liveVersions(ctx context.Context) ([]keyVersion, error) {
	var kv []keyVersion
	if err := s.db.WithContext(ctx).Raw("SELECT version, key_id, stemmed FROM search_keys WHERE retired_at IS NULL ORDER BY version DESC").
		Scan(&kv).Error; err != nil {
		return nil, fmt.Errorf("search: index keys: %w", err)
	}
	return kv, nil
}

// secret returns the index key with id. A key this process lacks is
// looked for again in its source (the data folder's key file) at most
// once a second: a rotation by "aichat keys rotate --index" reaches a
// running server the first time it needs the new key.
func (s *Service) secret(id string) ([]byte, bool) {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	if k, ok := s.keys.Find(id); ok {
		return k.Secret, true
	}
	if s.reload == nil || time.Since(s.lastReload) < time.Second {
		return nil, false
	}
	s.lastReload = time.Now()
	ring, err := s.reload()
	if err == nil {
		err = ring.Validate()
	}
	if err != nil {
		s.log.Error("search: reload index keys", "err", err)
		return nil, false
	}
	s.keys = ring
	s.log.Info("search: index keys reloaded", "keys", len(ring))
	k, ok := s.keys.Find(id)
	return k.Secret, ok
}

// CurrentKeyID returns the id of the index key new rows are written
// with, as last read from the database.
func (s *Service) CurrentKeyID() string { return s.cur.Load().KeyID }

// Rotate makes the index key keyID current: rows written from now on use
// it, and a rebuild moves every older row to it (Rebuild, run by the
// servers in the background). Searches ask for every version until the
// rebuild is done. This process must have the key. It fails with
// ErrRebuilding while the previous rotation's rebuild runs, and when
// keyID was current before (a key is never used twice).
func (s *Service) Rotate(ctx context.Context, keyID string) (version int, err error) {
	if _, ok := s.secret(keyID); !ok {
		return 0, fmt.Errorf("search: rotate: index key %q not found in this process's keys", keyID)
	}
	now := time.Now().UTC()
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		lock := ""
		if s.db.Dialect == store.Postgres {
			lock = " FOR UPDATE"
		}
		var cur []int
		if err := tx.Raw("SELECT current_version FROM search_index WHERE id = 1" + lock).Scan(&cur).Error; err != nil {
			return err
		}
		if err := noRebuild(tx); err != nil {
			return err
		}
		var used []int
		if err := tx.Raw("SELECT version FROM search_keys WHERE key_id = ?", keyID).Scan(&used).Error; err != nil {
			return err
		}
		if len(used) > 0 {
			return fmt.Errorf("search: rotate: index key %q was already used (version %d); rotate to a new key", keyID, used[0])
		}
		version, err = s.startVersion(tx, keyID, now)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrRebuilding) {
			return 0, err
		}
		return 0, fmt.Errorf("search: rotate: %w", err)
	}
	s.cur.Store(&keyVersion{Version: version, KeyID: keyID, Stemmed: s.stem})
	s.log.Info("search: index key rotated; rebuilding", "key_id", keyID, "version", version)
	return version, nil
}

// RetiredKeyIDs returns the ids of index keys no row uses any more: they
// may be removed from the key file or AICHAT_INDEX_KEYS. (A key keeps
// being used by its version of the other stemming setting.)
func (s *Service) RetiredKeyIDs(ctx context.Context) ([]string, error) {
	var ids []string
	if err := s.db.WithContext(ctx).Raw("SELECT key_id FROM search_keys k WHERE retired_at IS NOT NULL" +
		" AND NOT EXISTS (SELECT 1 FROM search_keys l WHERE l.key_id = k.key_id AND l.retired_at IS NULL)" +
		" GROUP BY key_id ORDER BY MAX(version)").
		Scan(&ids).Error; err != nil {
		return nil, fmt.Errorf("search: index keys: %w", err)
	}
	return ids, nil
}

// noRebuild returns ErrRebuilding while a rebuild is unfinished: one
// version change at a time.
func noRebuild(tx *gorm.DB) error {
	var running int64
	if err := tx.Raw("SELECT COUNT(*) FROM search_rebuilds WHERE finished_at IS NULL").Scan(&running).Error; err != nil {
		return err
	}
	if running > 0 {
		return ErrRebuilding
	}
	return nil
}

// startVersion makes a new index version of keyID, with this process's
// stemming setting, current in tx and records its rebuild: from the
// commit on, writers use it and the servers move every older row to it.
func (s *Service) startVersion(tx *gorm.DB, keyID string, now time.Time) (version int, err error) {
	if err := tx.Raw("SELECT COALESCE(MAX(version), 0) + 1 FROM search_keys").Scan(&version).Error; err != nil {
		return 0, err
	}
	if err := tx.Exec("INSERT INTO search_keys (version, key_id, stemmed, created_at) VALUES (?, ?, ?, ?)",
		version, keyID, s.stem, now).Error; err != nil {
		return 0, err
	}
	if err := tx.Exec("UPDATE search_index SET current_version = ? WHERE id = 1", version).Error; err != nil {
		return 0, err
	}
	return version, tx.Exec("INSERT INTO search_rebuilds (version, started_at) VALUES (?, ?)", version, now).Error
}

// matchStemming starts a new index version when the current one was
// written with the other stemming setting than this process's: the same
// key, words stemmed or not as the setting says, every older row moved
// to it by the background rebuild as after a key rotation (searches ask
// for both meanwhile, each with its own normalization). It returns
// ErrRebuilding while an earlier rebuild runs (RunRebuilds tries again
// once it is done).
func (s *Service) matchStemming(ctx context.Context) error {
	cur, err := s.currentVersion(s.db.WithContext(ctx), false)
	if err != nil || cur.Stemmed == s.stem {
		return err
	}
	now := time.Now().UTC()
	var version int
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		lock := ""
		if s.db.Dialect == store.Postgres {
			lock = " FOR UPDATE OF i"
		}
		var kv []keyVersion
		if err := tx.Raw("SELECT i.current_version AS version, k.key_id, k.stemmed FROM search_index i" +
			" JOIN search_keys k ON k.version = i.current_version WHERE i.id = 1" + lock).Scan(&kv).Error; err != nil {
			return err
		}
		if len(kv) == 0 || kv[0].Stemmed == s.stem {
			return nil // another instance switched first
		}
		if err := noRebuild(tx); err != nil {
			return err
		}
		version, err = s.startVersion(tx, kv[0].KeyID, now)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrRebuilding) {
			return err
		}
		return fmt.Errorf("search: switch stemming: %w", err)
	}
	if version > 0 {
		s.log.Info("search: stemming setting changed; rebuilding the index", "stemming", s.stem, "version", version)
	}
	_, err = s.currentVersion(s.db.WithContext(ctx), false)
	return err
}
