package search

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
)

// RebuildStatus is how far the latest rebuild (after a key rotation) got.
type RebuildStatus struct {
	Version   int       // the index key version rows are moved to
	KeyID     string    // its key's id
	Stemmed   bool      // whether it stems words (AICHAT_SEARCH_STEMMING)
	Messages  int64     // messages re-indexed so far
	AfterID   string    // the last message walked (messages go in id order)
	StartedAt time.Time // when the rotation was recorded
	Finished  bool      // no row of an older version is left
	// Elsewhere: another instance holds the rebuild's lease (this call
	// did nothing).
	Elsewhere bool
	// Ran: this call held the lease and worked on the rebuild.
	Ran bool
}

// leaseTTL is how long a rebuild's lease lasts without being renewed
// (every batch renews it); past it, another instance takes the rebuild
// over where it stopped. Instances' clocks must agree to well within it.
var leaseTTL = 30 * time.Second

// rebuildBatchHook, when set (by tests), runs after each committed batch.
var rebuildBatchHook func()

var errLeaseLost = errors.New("search: rebuild lease taken over by another instance")

// Status returns the latest rebuild's progress; ok is false when the
// index key was never rotated.
func (s *Service) Status(ctx context.Context) (st RebuildStatus, ok bool, err error) {
	var rows []struct {
		Version    int
		KeyID      string
		Stemmed    bool
		AfterID    string
		Messages   int64
		LeaseOwner *string
		LeaseUntil int64
		StartedAt  time.Time
		FinishedAt *time.Time
	}
	if err := s.db.WithContext(ctx).Raw("SELECT r.version, k.key_id, k.stemmed, r.after_id, r.messages, r.lease_owner, r.lease_until, r.started_at, r.finished_at" +
		" FROM search_rebuilds r JOIN search_keys k ON k.version = r.version ORDER BY r.version DESC LIMIT 1").Scan(&rows).Error; err != nil {
		return st, false, fmt.Errorf("search: rebuild status: %w", err)
	}
	if len(rows) == 0 {
		return st, false, nil
	}
	r := rows[0]
	st = RebuildStatus{Version: r.Version, KeyID: r.KeyID, Stemmed: r.Stemmed, Messages: r.Messages, AfterID: r.AfterID,
		StartedAt: r.StartedAt.UTC(), Finished: r.FinishedAt != nil}
	st.Elsewhere = !st.Finished && r.LeaseOwner != nil && *r.LeaseOwner != s.owner && r.LeaseUntil >= time.Now().UnixMilli()
	return st, true, nil
}

// Rebuild works on the unfinished rebuild, if there is one and no other
// instance holds it: it takes the rebuild's lease and re-indexes the
// messages that still have rows of an older version with the current
// key, batch messages per transaction, each transaction also recording
// how far it got (so a stopped rebuild resumes there, here or on another
// instance). It returns when the rebuild is finished (the older versions
// are then retired: searches stop asking for them and their keys may be
// removed), after maxBatches batches (0: no limit), or when ctx ends.
func (s *Service) Rebuild(ctx context.Context, batch, maxBatches int) (RebuildStatus, error) {
	if batch <= 0 {
		batch = 500
	}
	st, ok, err := s.Status(ctx)
	if err != nil || !ok || st.Finished || st.Elsewhere {
		return st, err
	}
	root, has := s.secret(st.KeyID)
	if !has {
		return st, fmt.Errorf("%w: %q (version %d): cannot rebuild the index", errNoKey, st.KeyID, st.Version)
	}
	now := time.Now()
	res := s.db.WithContext(ctx).Exec("UPDATE search_rebuilds SET lease_owner = ?, lease_until = ? WHERE version = ? AND finished_at IS NULL"+
		" AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
		s.owner, now.Add(leaseTTL).UnixMilli(), st.Version, s.owner, now.UnixMilli())
	if res.Error != nil {
		return st, fmt.Errorf("search: rebuild lease: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		st.Elsewhere = true
		return st, nil
	}
	st.Ran = true
	defer func() {
		if st.Finished {
			return
		}
		// Let another instance (or the next start) go on at once.
		s.db.WithContext(context.WithoutCancel(ctx)).Exec("UPDATE search_rebuilds SET lease_owner = NULL, lease_until = 0 WHERE version = ? AND lease_owner = ?",
			st.Version, s.owner)
	}()
	for batches := 0; maxBatches <= 0 || batches < maxBatches; batches++ {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		var ids []string
		q := s.db.WithContext(ctx).Table("messages").Order("id").Limit(batch)
		if st.AfterID != "" {
			q = q.Where("id > ?", st.AfterID)
		}
		if err := q.Pluck("id", &ids).Error; err != nil {
			return st, fmt.Errorf("search: rebuild: %w", err)
		}
		if len(ids) == 0 {
			done, err := s.finishRebuild(ctx, &st, root, batch)
			if err != nil || done {
				return st, err
			}
			continue
		}
		var n int
		err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var err error
			if n, err = s.reindex(tx, ids, st.keyVersion(), root); err != nil {
				return err
			}
			return s.recordProgress(tx, st.Version, ids[len(ids)-1], n, false)
		})
		if err != nil {
			return st, fmt.Errorf("search: rebuild: %w", err)
		}
		st.AfterID = ids[len(ids)-1]
		st.Messages += int64(n)
		if rebuildBatchHook != nil {
			rebuildBatchHook()
		}
	}
	return st, nil
}

func (st RebuildStatus) keyVersion() keyVersion {
	return keyVersion{Version: st.Version, KeyID: st.KeyID, Stemmed: st.Stemmed}
}

// recordProgress moves the rebuild's cursor and renews the lease, in the
// transaction that re-indexed the batch; if another instance has taken
// the lease, the batch is rolled back.
func (s *Service) recordProgress(tx *gorm.DB, version int, afterID string, n int, finished bool) error {
	q := "UPDATE search_rebuilds SET after_id = ?, messages = messages + ?, lease_until = ? WHERE version = ? AND lease_owner = ?"
	args := []any{afterID, n, time.Now().Add(leaseTTL).UnixMilli(), version, s.owner}
	if finished {
		q = "UPDATE search_rebuilds SET after_id = ?, messages = messages + ?, lease_owner = NULL, lease_until = 0, finished_at = ? WHERE version = ? AND lease_owner = ?"
		args[2] = time.Now().UTC()
	}
	res := tx.Exec(q, args...)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return errLeaseLost
	}
	return nil
}

// finishRebuild runs once the walk over the messages has ended. Rows of
// an older version left (written by a process that had read the version
// before the rotation committed and wrote after the walk passed) are
// re-indexed; when none is left, the older versions are retired and the
// rebuild is finished.
func (s *Service) finishRebuild(ctx context.Context, st *RebuildStatus, root []byte, batch int) (bool, error) {
	done := false
	n := 0
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var left []string
		if err := tx.Raw("SELECT DISTINCT message_id FROM message_tokens WHERE key_version <> ? LIMIT ?", st.Version, batch).
			Scan(&left).Error; err != nil {
			return err
		}
		if len(left) > 0 {
			s.log.Warn("search: rebuild: re-indexing messages written with an older index key after the walk passed them",
				"messages", len(left))
			var err error
			if n, err = s.reindex(tx, left, st.keyVersion(), root); err != nil {
				return err
			}
			return s.recordProgress(tx, st.Version, st.AfterID, n, false)
		}
		if err := tx.Exec("UPDATE search_keys SET retired_at = ? WHERE version <> ? AND retired_at IS NULL",
			time.Now().UTC(), st.Version).Error; err != nil {
			return err
		}
		// The retired versions have no row left: their counters are all 0.
		if err := tx.Exec("DELETE FROM message_token_counts WHERE key_version <> ?", st.Version).Error; err != nil {
			return err
		}
		done = true
		return s.recordProgress(tx, st.Version, st.AfterID, 0, true)
	})
	if err != nil {
		return false, fmt.Errorf("search: rebuild: %w", err)
	}
	st.Messages += int64(n)
	st.Finished = done
	if done {
		s.log.Info("search: index rebuilt; older index versions retired",
			"key_id", st.KeyID, "version", st.Version, "messages", st.Messages)
	}
	return done, nil
}

// reindex moves the messages among ids that have rows of a version other
// than version to it: their rows are deleted and written again from
// their decrypted text, in tx, so each message has rows of one version
// at any moment a search can see. It returns how many it moved.
func (s *Service) reindex(tx *gorm.DB, ids []string, kv keyVersion, root []byte) (int, error) {
	version := kv.Version
	var gone []struct {
		ChatID     string
		KeyVersion int
		Token      int
		MessageID  string
	}
	if err := tx.Raw("DELETE FROM message_tokens WHERE message_id IN ? AND key_version <> ? RETURNING chat_id, key_version, token, message_id", ids, version).
		Scan(&gone).Error; err != nil {
		return 0, err
	}
	if len(gone) == 0 {
		return 0, nil
	}
	c := counts{}
	stale := make([]string, 0, len(gone))
	for _, g := range gone {
		c[countKey{ChatID: g.ChatID, KeyVersion: g.KeyVersion, Token: g.Token}]--
		stale = append(stale, g.MessageID)
	}
	slices.Sort(stale)
	stale = slices.Compact(stale)
	var rows []struct {
		ID        string
		ChatID    string
		ContentCt []byte
		KeyID     string
	}
	if err := tx.Table("messages").Select("id, chat_id, content_ct, key_id").Where("id IN ?", stale).
		Scan(&rows).Error; err != nil {
		return 0, err
	}
	jobs := make([]job, 0, len(rows))
	for _, r := range rows {
		pt, err := s.sealer.Open(r.ContentCt, r.KeyID, "message", r.ID, r.ChatID)
		if err != nil {
			return 0, fmt.Errorf("open message %s: %w", r.ID, err)
		}
		jobs = append(jobs, job{chatID: r.ChatID, messageID: r.ID, text: string(pt)})
	}
	if err := s.writeJobs(tx, jobs, kv, root, c); err != nil {
		return 0, err
	}
	if err := applyCounts(tx, s.sql, c); err != nil {
		return 0, err
	}
	return len(jobs), nil
}

// RunRebuilds looks for an unfinished rebuild at once and then every
// poll, and works on it whenever no other instance holds it, until ctx
// ends. Every server runs it: a rotation recorded by "aichat keys rotate
// --index" is rebuilt by whichever takes the lease first, and taken over
// by another if that one stops.
func (s *Service) RunRebuilds(ctx context.Context, poll time.Duration, batch int) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if err := s.matchStemming(ctx); err != nil && !errors.Is(err, ErrRebuilding) && ctx.Err() == nil {
			s.log.Error("search: switch stemming", "err", err)
		}
		st, err := s.Rebuild(ctx, batch, 0)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.Error("search: rebuild", "err", err, "version", st.Version, "messages", st.Messages)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
