package auth

import (
	"context"
	"math"
	"time"

	"github.com/aichat/aichat/internal/apperr"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Login throttling follows the OWASP Authentication Cheat Sheet: failures are
// counted per account (the email as typed, whether or not it exists, so the
// throttle itself does not reveal accounts), never per source address, and
// the lock grows exponentially: 30 s after MaxFails failures, doubling with
// each further failure, capped at maxLock. Counted in the database, so every
// replica sees the same count.
const (
	baseLock = 30 * time.Second
	maxLock  = 15 * time.Minute
)

type loginThrottle struct {
	Email       string `gorm:"primaryKey"`
	Failures    int
	WindowStart time.Time
	LockedUntil *time.Time
}

func (loginThrottle) TableName() string { return "login_throttles" }

// checkThrottle refuses the attempt while the account is locked.
func (s *Service) checkThrottle(ctx context.Context, email string) error {
	var t loginThrottle
	err := s.db.WithContext(ctx).Where("email = ?", email).Limit(1).Find(&t).Error
	if err != nil || t.LockedUntil == nil {
		return nil // a throttle lookup failure must not lock everyone out
	}
	now := s.opt.Now()
	if wait := t.LockedUntil.Sub(now); wait > 0 {
		return &apperr.Error{Code: apperr.CodeTooManyAttempts, Retry: int(math.Ceil(wait.Seconds())),
			Message: "Too many failed sign-in attempts. Try again later."}
	}
	return nil
}

// recordFailure counts a failed attempt and locks the account when the count
// in the current window reaches the limit.
func (s *Service) recordFailure(ctx context.Context, email string) {
	now := s.opt.Now()
	db := s.db.WithContext(ctx)
	err := db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).
			Create(&loginThrottle{Email: email, Failures: 0, WindowStart: now}).Error; err != nil {
			return err
		}
		var t loginThrottle
		if err := tx.Where("email = ?", email).Take(&t).Error; err != nil {
			return err
		}
		// A stale window starts over; after a lock, only once the lock has
		// been over for a whole window, so the back-off keeps growing while an
		// attacker keeps trying.
		stale := now.Sub(t.WindowStart) > s.opt.FailWindow &&
			(t.LockedUntil == nil || now.Sub(*t.LockedUntil) > s.opt.FailWindow)
		if stale {
			t.Failures, t.WindowStart, t.LockedUntil = 0, now, nil
		}
		t.Failures++
		if over := t.Failures - s.opt.MaxFails; over >= 0 {
			lock := baseLock << min(over, 10)
			lock = min(lock, maxLock)
			until := now.Add(lock)
			t.LockedUntil = &until
			s.opt.Log.Warn("login throttled", "failures", t.Failures, "lock", lock.String())
		}
		return tx.Model(&loginThrottle{}).Where("email = ?", email).Updates(map[string]any{
			"failures": t.Failures, "window_start": t.WindowStart, "locked_until": t.LockedUntil,
		}).Error
	})
	if err != nil {
		s.opt.Log.Error("record login failure", "err", err)
	}
}

// clearFailures forgets the failures after a successful sign-in.
func (s *Service) clearFailures(ctx context.Context, email string) {
	s.db.WithContext(ctx).Where("email = ?", email).Delete(&loginThrottle{})
}
