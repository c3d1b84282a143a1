package chat

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// Reseal re-encrypts, in batches, every chat and message not sealed with the
// current key, and returns how many rows it changed. Each row is updated only
// if its key id is still the one read, so it is safe beside a running server
// writing the same tables. Call it again until it returns 0.
func (s *Service) Reseal(ctx context.Context, batch int) (int, error) {
	if batch <= 0 {
		batch = 500
	}
	total := 0
	for _, step := range []func(context.Context, int) (int, error){s.resealMessages, s.resealVersions, s.resealChats} {
		for {
			n, err := step(ctx, batch)
			total += n
			if err != nil {
				return total, err
			}
			if n == 0 {
				break
			}
		}
	}
	return total, nil
}

// Stale counts the rows not yet sealed with the current key.
func (s *Service) Stale(ctx context.Context) (int64, error) {
	cur := s.sealer.CurrentKeyID()
	var m, c int64
	db := s.db.WithContext(ctx)
	if err := db.Model(&messageRow{}).Where("key_id <> ?", cur).Count(&m).Error; err != nil {
		return 0, err
	}
	var v int64
	if err := db.Table("message_versions").Where("key_id <> ?", cur).Count(&v).Error; err != nil {
		return 0, err
	}
	m += v
	if err := db.Model(&chatRow{}).Where("key_id <> ?", cur).Count(&c).Error; err != nil {
		return 0, err
	}
	return m + c, nil
}

func (s *Service) resealMessages(ctx context.Context, batch int) (int, error) {
	return s.resealContent(ctx, "messages", "id", batch)
}

// resealVersions re-encrypts earlier versions of regenerated answers; they
// keep the associated data of the message they belong to.
func (s *Service) resealVersions(ctx context.Context, batch int) (int, error) {
	return s.resealContent(ctx, "message_versions", "message_id", batch)
}

// resealContent re-encrypts content_ct of a table whose ciphertexts are
// bound to ("message", <msgCol>, chat_id).
func (s *Service) resealContent(ctx context.Context, table, msgCol string, batch int) (int, error) {
	cur := s.sealer.CurrentKeyID()
	var rows []struct {
		ID        string
		MessageID string
		ChatID    string
		ContentCt []byte
		KeyID     string
	}
	if err := s.db.WithContext(ctx).Table(table).Select("id", msgCol+" AS message_id", "chat_id", "content_ct", "key_id").
		Where("key_id <> ?", cur).Order("id").Limit(batch).Find(&rows).Error; err != nil {
		return 0, fmt.Errorf("reseal %s: %w", table, err)
	}
	n := 0
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, r := range rows {
			pt, err := s.sealer.Open(r.ContentCt, r.KeyID, "message", r.MessageID, r.ChatID)
			if err != nil {
				return fmt.Errorf("%s %s: %w", table, r.ID, err)
			}
			ct, key := s.sealer.Seal(pt, "message", r.MessageID, r.ChatID)
			res := tx.Table(table).Where("id = ? AND key_id = ?", r.ID, r.KeyID).
				Updates(map[string]any{"content_ct": ct, "key_id": key})
			if res.Error != nil {
				return res.Error
			}
			n += int(res.RowsAffected)
		}
		return nil
	})
	return n, err
}

func (s *Service) resealChats(ctx context.Context, batch int) (int, error) {
	cur := s.sealer.CurrentKeyID()
	var rows []chatRow
	if err := s.db.WithContext(ctx).Select("id", "title_ct", "settings_ct", "key_id").
		Where("key_id <> ?", cur).Order("id").Limit(batch).Find(&rows).Error; err != nil {
		return 0, fmt.Errorf("reseal chats: %w", err)
	}
	n := 0
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, r := range rows {
			title, err := s.sealer.Open(r.TitleCt, r.KeyID, "chat", r.ID, "title")
			if err != nil {
				return fmt.Errorf("chat %s: %w", r.ID, err)
			}
			settings, err := s.sealer.Open(r.SettingsCt, r.KeyID, "chat", r.ID, "settings")
			if err != nil {
				return fmt.Errorf("chat %s: %w", r.ID, err)
			}
			tct, key := s.sealer.Seal(title, "chat", r.ID, "title")
			sct, key2 := s.sealer.Seal(settings, "chat", r.ID, "settings")
			if key != key2 {
				return fmt.Errorf("chat %s: key changed during reseal; run again", r.ID)
			}
			res := tx.Model(&chatRow{}).Where("id = ? AND key_id = ?", r.ID, r.KeyID).
				Updates(map[string]any{"title_ct": tct, "settings_ct": sct, "key_id": key})
			if res.Error != nil {
				return res.Error
			}
			n += int(res.RowsAffected)
		}
		return nil
	})
	return n, err
}
