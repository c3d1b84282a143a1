package search

import (
	"context"
	"fmt"
)

// Backfill indexes stored messages that have no index rows: history
// written before search existed, and messages whose indexing was lost
// when a process stopped between their commit and the index write. It
// walks the messages once, newest first, in batches, and returns how many
// it indexed. Messages without a word have no rows either and are looked
// at again by the next Backfill; they cost a decryption each.
func (s *Service) Backfill(ctx context.Context, batch int) (int, error) {
	if batch <= 0 {
		batch = 500
	}
	total, cursor := 0, ""
	for {
		q := s.db.WithContext(ctx).Table("messages m").
			Select("m.id, m.chat_id, m.content_ct, m.key_id").
			Where("m.status <> ?", "streaming").
			Where("NOT EXISTS (SELECT 1 FROM message_tokens t WHERE t.message_id = m.id)")
		if cursor != "" {
			q = q.Where("m.id < ?", cursor)
		}
		var rows []struct {
			ID        string
			ChatID    string
			ContentCt []byte
			KeyID     string
		}
		if err := q.Order("m.id DESC").Limit(batch).Scan(&rows).Error; err != nil {
			return total, fmt.Errorf("search: backfill: %w", err)
		}
		if len(rows) == 0 {
			return total, nil
		}
		jobs := make([]job, 0, len(rows))
		for _, r := range rows {
			cursor = r.ID
			pt, err := s.sealer.Open(r.ContentCt, r.KeyID, "message", r.ID, r.ChatID)
			if err != nil {
				return total, fmt.Errorf("search: backfill: open message %s: %w", r.ID, err)
			}
			if len(Tokenize(string(pt))) == 0 {
				continue
			}
			jobs = append(jobs, job{chatID: r.ChatID, messageID: r.ID, text: string(pt)})
		}
		s.write(ctx, jobs)
		total += len(jobs)
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}
