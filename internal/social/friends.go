package social

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/auth"
	"github.com/aichat/aichat/internal/chat"
	"github.com/aichat/aichat/internal/store"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Request states (friend_requests.state). The requester always sees their
// request as pending; the addressee sees only StatePending.
const (
	StatePending  = "pending"
	StateDeclined = "declined" // the addressee said no
	StateDropped  = "dropped"  // the addressee had blocked the requester
)

const requestWindow = time.Hour

// noUser stands in for an address without an account, so a request to it
// runs the same queries as one to a known address.
const noUser = "00000000-0000-0000-0000-000000000000"

type requestRow struct {
	ID             string
	RequesterID    string
	AddresseeEmail string
	State          string
	CreatedAt      time.Time
}

func (requestRow) TableName() string { return "friend_requests" }

type friendshipRow struct {
	UserID    string
	FriendID  string
	CreatedAt time.Time
}

func (friendshipRow) TableName() string { return "friendships" }

type blockRow struct {
	BlockerID string
	BlockedID string
	CreatedAt time.Time
}

func (blockRow) TableName() string { return "user_blocks" }

type quotaRow struct {
	UserID      string `gorm:"primaryKey"`
	WindowStart time.Time
	Sent        int
}

func (quotaRow) TableName() string { return "friend_request_quota" }

// Friend is one of the user's friends.
type Friend struct {
	Person
	Online bool      `json:"online"`
	Since  time.Time `json:"since"`
}

// Incoming is a request someone sent the user.
type Incoming struct {
	ID        string    `json:"id"`
	From      Person    `json:"from"`
	CreatedAt time.Time `json:"created_at"`
}

// Outgoing is a request the user sent. It names only the address: whether
// the address has an account is not said.
type Outgoing struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
}

// BlockedUser is someone the user blocked.
type BlockedUser struct {
	Person
	Since time.Time `json:"since"`
}

// Friends is everything the friends screen shows.
type Friends struct {
	Friends  []Friend      `json:"friends"`
	Incoming []Incoming    `json:"incoming"`
	Outgoing []Outgoing    `json:"outgoing"`
	Blocked  []BlockedUser `json:"blocked"`
}

// SendRequest asks the owner of email to be userID's friend. The answer is
// the same whether or not the address has an account, and whether or not
// its owner blocked the sender (then the request is stored but never
// shown to them). Sending again to the same address changes nothing. When
// the addressee had already asked the sender, they become friends at once.
func (s *Service) SendRequest(ctx context.Context, userID, email string) (*Outgoing, error) {
	email, err := auth.NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	me, err := s.user(ctx, userID)
	if err != nil {
		return nil, err
	}
	if me == nil {
		return nil, apperr.New(apperr.CodeUserNotFound, "Account not found.")
	}
	if email == me.Email {
		return nil, apperr.Invalid("email", "That is your own address.")
	}
	if err := s.takeQuota(ctx, userID); err != nil {
		return nil, err
	}
	target, err := s.userByEmail(ctx, email)
	if err != nil {
		return nil, err
	}
	// Every path below costs the same queries for a known and an unknown
	// address; notifying happens after the answer.
	targetID := noUser
	if target != nil {
		targetID = target.ID
	}
	blockedBy, blocking, err := s.Blocks(ctx, userID, []string{targetID})
	if err != nil {
		return nil, err
	}
	if len(blocking) > 0 {
		return nil, apperr.New(apperr.CodeFriendBlocked, "You blocked this person; unblock them first.")
	}
	if len(blockedBy) == 0 {
		if friends, err := s.areFriends(ctx, userID, targetID); err != nil {
			return nil, err
		} else if friends {
			return nil, apperr.New(apperr.CodeAlreadyFriends, "You are already friends.")
		}
		// They asked first: this is a yes.
		var theirs []requestRow
		if err := s.db.WithContext(ctx).Where("requester_id = ? AND addressee_email = ?", targetID, me.Email).
			Limit(1).Find(&theirs).Error; err != nil {
			return nil, fmt.Errorf("read request: %w", err)
		}
		if len(theirs) > 0 && target != nil {
			if err := s.befriend(ctx, me, target); err != nil {
				return nil, err
			}
			s.accepted(theirs[0].ID, me, target)
			return &Outgoing{ID: theirs[0].ID, Email: email, CreatedAt: theirs[0].CreatedAt}, nil
		}
	}
	state := StatePending
	if len(blockedBy) > 0 {
		state = StateDropped
	}
	row := requestRow{ID: newID(), RequesterID: userID, AddresseeEmail: email, State: state, CreatedAt: s.opt.Now()}
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&row)
	if res.Error != nil {
		return nil, fmt.Errorf("store request: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		// Asked before: the first request stands, and nobody is told twice.
		var first requestRow
		if err := s.db.WithContext(ctx).Where("requester_id = ? AND addressee_email = ?", userID, email).
			Take(&first).Error; err != nil {
			return nil, fmt.Errorf("read request: %w", err)
		}
		return &Outgoing{ID: first.ID, Email: email, CreatedAt: first.CreatedAt}, nil
	}
	s.push.Send([]string{userID}, EventFriends, struct{}{})
	if target != nil && state == StatePending {
		actor, to, reqID := me.person(), target.ID, row.ID
		s.background("notify friend request", func(ctx context.Context) error {
			s.push.Send([]string{to}, EventFriends, struct{}{})
			return s.notify(ctx, note{user: to, kind: KindFriendRequest, actor: &actor,
				subjectType: SubjectRequest, subjectID: reqID, text: actor.Email + " wants to be your friend"})
		})
	}
	return &Outgoing{ID: row.ID, Email: email, CreatedAt: row.CreatedAt}, nil
}

// takeQuota counts one request against the user's hourly allowance, or
// refuses with rateLimit.exceeded and when to try again.
func (s *Service) takeQuota(ctx context.Context, userID string) error {
	now := s.opt.Now()
	var wait time.Duration
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).
			Create(&quotaRow{UserID: userID, WindowStart: now}).Error; err != nil {
			return err
		}
		q := tx.Where("user_id = ?", userID)
		if s.db.Dialect == store.Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		var row quotaRow
		if err := q.Take(&row).Error; err != nil {
			return err
		}
		if now.Sub(row.WindowStart) >= requestWindow || row.WindowStart.After(now) {
			row.WindowStart, row.Sent = now, 0
		}
		if row.Sent >= s.opt.RequestsPerHour {
			wait = row.WindowStart.Add(requestWindow).Sub(now)
			return nil
		}
		return tx.Model(&quotaRow{}).Where("user_id = ?", userID).
			Updates(map[string]any{"window_start": row.WindowStart, "sent": row.Sent + 1}).Error
	})
	if err != nil {
		return fmt.Errorf("friend request quota: %w", err)
	}
	if wait > 0 {
		return &apperr.Error{Code: apperr.CodeRateLimited, Retry: int(math.Ceil(wait.Seconds())),
			Message: fmt.Sprintf("You can send %d friend requests an hour; try again later.", s.opt.RequestsPerHour)}
	}
	return nil
}

// befriend makes a and b friends and forgets the requests between them.
func (s *Service) befriend(ctx context.Context, a, b *userRow) error {
	now := s.opt.Now()
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		rows := []friendshipRow{{UserID: a.ID, FriendID: b.ID, CreatedAt: now}, {UserID: b.ID, FriendID: a.ID, CreatedAt: now}}
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&rows).Error; err != nil {
			return err
		}
		return tx.Where("(requester_id = ? AND addressee_email = ?) OR (requester_id = ? AND addressee_email = ?)",
			a.ID, b.Email, b.ID, a.Email).Delete(&requestRow{}).Error
	})
	if err != nil {
		return fmt.Errorf("befriend: %w", err)
	}
	return nil
}

// accepted tells both sides: the requester gets friend_accepted, both
// lists change, and each learns whether the other is online.
func (s *Service) accepted(requestID string, accepter, requester *userRow) {
	actor, to, me := accepter.person(), requester.ID, accepter.ID
	s.push.Send([]string{to, me}, EventFriends, struct{}{})
	s.background("notify accepted", func(ctx context.Context) error {
		s.settleRequestNotes(ctx, me, requestID, false)
		if online, err := s.presence.AreOnline(ctx, []string{to, me}); err == nil {
			if online[to] {
				s.push.Send([]string{me}, EventPresence, presenceData{UserID: to, Online: true})
			}
			if online[me] {
				s.push.Send([]string{to}, EventPresence, presenceData{UserID: me, Online: true})
			}
		}
		return s.notify(ctx, note{user: to, kind: KindFriendAccepted, actor: &actor,
			subjectType: SubjectUser, subjectID: me, text: actor.Email + " accepted your request"})
	})
}

type presenceData struct {
	UserID string `json:"user_id"`
	Online bool   `json:"online"`
}

// incoming reads a pending request addressed to userID; nil for anything
// else (another's request, a missing one, a malformed id).
func (s *Service) incoming(ctx context.Context, me *userRow, requestID string) (*requestRow, error) {
	if !validID(requestID) {
		return nil, nil
	}
	var rows []requestRow
	if err := s.db.WithContext(ctx).Where("id = ? AND addressee_email = ? AND state = ?", requestID, me.Email, StatePending).
		Limit(1).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read request: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return &rows[0], nil
}

func errRequestNotFound() error {
	return apperr.New(apperr.CodeFriendRequestMissing, "Friend request not found.")
}

// Accept accepts a request addressed to userID: they become friends.
func (s *Service) Accept(ctx context.Context, userID, requestID string) (*Friend, error) {
	me, err := s.user(ctx, userID)
	if err != nil || me == nil {
		return nil, errOr(err, errRequestNotFound())
	}
	req, err := s.incoming(ctx, me, requestID)
	if err != nil || req == nil {
		return nil, errOr(err, errRequestNotFound())
	}
	requester, err := s.user(ctx, req.RequesterID)
	if err != nil || requester == nil {
		return nil, errOr(err, errRequestNotFound())
	}
	if err := s.befriend(ctx, me, requester); err != nil {
		return nil, err
	}
	s.accepted(req.ID, me, requester)
	f := &Friend{Person: requester.person(), Since: s.opt.Now()}
	if online, err := s.presence.AreOnline(ctx, []string{requester.ID}); err == nil {
		f.Online = online[requester.ID]
	}
	return f, nil
}

// Decline turns down a request addressed to userID. The requester is not
// told: their request stays pending for them, and asking again changes
// nothing.
func (s *Service) Decline(ctx context.Context, userID, requestID string) error {
	me, err := s.user(ctx, userID)
	if err != nil || me == nil {
		return errOr(err, errRequestNotFound())
	}
	req, err := s.incoming(ctx, me, requestID)
	if err != nil || req == nil {
		return errOr(err, errRequestNotFound())
	}
	if err := s.db.WithContext(ctx).Model(&requestRow{}).Where("id = ? AND state = ?", req.ID, StatePending).
		Update("state", StateDeclined).Error; err != nil {
		return fmt.Errorf("decline request: %w", err)
	}
	s.push.Send([]string{userID}, EventFriends, struct{}{})
	s.settleRequestNotes(ctx, userID, req.ID, false)
	return nil
}

// Cancel withdraws a request userID sent.
func (s *Service) Cancel(ctx context.Context, userID, requestID string) error {
	if !validID(requestID) {
		return errRequestNotFound()
	}
	var rows []requestRow
	if err := s.db.WithContext(ctx).Clauses(clause.Returning{}).
		Where("id = ? AND requester_id = ?", requestID, userID).Delete(&rows).Error; err != nil {
		return fmt.Errorf("cancel request: %w", err)
	}
	if len(rows) == 0 {
		return errRequestNotFound()
	}
	s.push.Send([]string{userID}, EventFriends, struct{}{})
	if rows[0].State == StatePending {
		target, err := s.userByEmail(ctx, rows[0].AddresseeEmail)
		if err == nil && target != nil {
			s.push.Send([]string{target.ID}, EventFriends, struct{}{})
			s.settleRequestNotes(ctx, target.ID, requestID, true)
		}
	}
	return nil
}

// RemoveFriend ends a friendship, for both.
func (s *Service) RemoveFriend(ctx context.Context, userID, friendID string) error {
	if !validID(friendID) {
		return errFriendNotFound()
	}
	res := s.db.WithContext(ctx).Where("(user_id = ? AND friend_id = ?) OR (user_id = ? AND friend_id = ?)",
		userID, friendID, friendID, userID).Delete(&friendshipRow{})
	if res.Error != nil {
		return fmt.Errorf("remove friend: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return errFriendNotFound()
	}
	s.push.Send([]string{userID, friendID}, EventFriends, struct{}{})
	return nil
}

func errFriendNotFound() error {
	return apperr.New(apperr.CodeFriendNotFound, "Not one of your friends.")
}

func (s *Service) areFriends(ctx context.Context, a, b string) (bool, error) {
	var n int64
	if err := s.db.WithContext(ctx).Model(&friendshipRow{}).Where("user_id = ? AND friend_id = ?", a, b).
		Count(&n).Error; err != nil {
		return false, fmt.Errorf("read friendship: %w", err)
	}
	return n > 0, nil
}

// Block blocks targetID for userID: any friendship between them ends, the
// requests between them are dropped, and from now on the blocked person's
// requests are never shown, they cannot add userID to a chat, and neither
// can write to the other in a direct chat. Blocking twice is one block.
func (s *Service) Block(ctx context.Context, userID, targetID string) error {
	if targetID == userID {
		return apperr.Invalid("user_id", "You cannot block yourself.")
	}
	target, err := s.user(ctx, targetID)
	if err != nil {
		return err
	}
	if target == nil {
		return apperr.New(apperr.CodeUserNotFound, "User not found.")
	}
	me, err := s.user(ctx, userID)
	if err != nil || me == nil {
		return errOr(err, apperr.New(apperr.CodeUserNotFound, "Account not found."))
	}
	var dropped []string
	wereFriends := false
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).
			Create(&blockRow{BlockerID: userID, BlockedID: targetID, CreatedAt: s.opt.Now()}).Error; err != nil {
			return err
		}
		res := tx.Where("(user_id = ? AND friend_id = ?) OR (user_id = ? AND friend_id = ?)",
			userID, targetID, targetID, userID).Delete(&friendshipRow{})
		if res.Error != nil {
			return res.Error
		}
		wereFriends = res.RowsAffected > 0
		// Their requests to me stay pending for them, unseen by me.
		if err := tx.Model(&requestRow{}).Where("requester_id = ? AND addressee_email = ?", targetID, me.Email).
			Pluck("id", &dropped).Error; err != nil {
			return err
		}
		if err := tx.Model(&requestRow{}).Where("requester_id = ? AND addressee_email = ?", targetID, me.Email).
			Update("state", StateDropped).Error; err != nil {
			return err
		}
		// Mine to them are withdrawn.
		return tx.Where("requester_id = ? AND addressee_email = ?", userID, target.Email).Delete(&requestRow{}).Error
	})
	if err != nil {
		return fmt.Errorf("block: %w", err)
	}
	for _, id := range dropped {
		s.settleRequestNotes(ctx, userID, id, true)
	}
	s.push.Send([]string{userID}, EventFriends, struct{}{})
	if wereFriends {
		s.push.Send([]string{targetID}, EventFriends, struct{}{})
	}
	return nil
}

// Unblock lifts userID's block of targetID. Dropped requests stay dropped.
func (s *Service) Unblock(ctx context.Context, userID, targetID string) error {
	if !validID(targetID) {
		return apperr.New(apperr.CodeUserNotFound, "User not found.")
	}
	res := s.db.WithContext(ctx).Where("blocker_id = ? AND blocked_id = ?", userID, targetID).Delete(&blockRow{})
	if res.Error != nil {
		return fmt.Errorf("unblock: %w", res.Error)
	}
	if res.RowsAffected > 0 {
		s.push.Send([]string{userID}, EventFriends, struct{}{})
	}
	return nil
}

// List returns the user's friends (with presence), the requests they
// received and sent, and the people they blocked.
func (s *Service) List(ctx context.Context, userID string) (*Friends, error) {
	me, err := s.user(ctx, userID)
	if err != nil || me == nil {
		return nil, errOr(err, apperr.New(apperr.CodeUserNotFound, "Account not found."))
	}
	db := s.db.WithContext(ctx)
	out := &Friends{Friends: []Friend{}, Incoming: []Incoming{}, Outgoing: []Outgoing{}, Blocked: []BlockedUser{}}
	var friends []struct {
		ID, Email, Name string
		CreatedAt       time.Time
	}
	if err := db.Table("friendships f").Select("users.id, users.email, users.name, f.created_at").
		Joins("JOIN users ON users.id = f.friend_id").Where("f.user_id = ?", userID).
		Order("users.name, users.email").Find(&friends).Error; err != nil {
		return nil, fmt.Errorf("list friends: %w", err)
	}
	ids := make([]string, len(friends))
	for i, f := range friends {
		ids[i] = f.ID
	}
	online := map[string]bool{}
	if len(ids) > 0 {
		if online, err = s.presence.AreOnline(ctx, ids); err != nil {
			s.log.Warn("friends: presence", "err", err)
			online = map[string]bool{}
		}
	}
	for _, f := range friends {
		out.Friends = append(out.Friends, Friend{Person: Person{ID: f.ID, Email: f.Email, Name: f.Name},
			Online: online[f.ID], Since: f.CreatedAt})
	}
	var in []struct {
		ID, UserID, Email, Name string
		CreatedAt               time.Time
	}
	if err := db.Table("friend_requests r").Select("r.id, users.id AS user_id, users.email, users.name, r.created_at").
		Joins("JOIN users ON users.id = r.requester_id").Where("r.addressee_email = ? AND r.state = ?", me.Email, StatePending).
		Order("r.created_at DESC, r.id DESC").Find(&in).Error; err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	for _, r := range in {
		out.Incoming = append(out.Incoming, Incoming{ID: r.ID, From: Person{ID: r.UserID, Email: r.Email, Name: r.Name}, CreatedAt: r.CreatedAt})
	}
	var sent []requestRow
	if err := db.Where("requester_id = ?", userID).Order("created_at DESC, id DESC").Find(&sent).Error; err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	for _, r := range sent {
		out.Outgoing = append(out.Outgoing, Outgoing{ID: r.ID, Email: r.AddresseeEmail, CreatedAt: r.CreatedAt})
	}
	var blocked []struct {
		ID, Email, Name string
		CreatedAt       time.Time
	}
	if err := db.Table("user_blocks b").Select("users.id, users.email, users.name, b.created_at").
		Joins("JOIN users ON users.id = b.blocked_id").Where("b.blocker_id = ?", userID).
		Order("users.email").Find(&blocked).Error; err != nil {
		return nil, fmt.Errorf("list blocks: %w", err)
	}
	for _, b := range blocked {
		out.Blocked = append(out.Blocked, BlockedUser{Person: Person{ID: b.ID, Email: b.Email, Name: b.Name}, Since: b.CreatedAt})
	}
	return out, nil
}

// DirectChat returns the direct chat between userID and their friend (the
// most recently active group chat of just the two of them), creating one
// when there is none; created says which.
func (s *Service) DirectChat(ctx context.Context, userID, friendID string) (*chat.Chat, bool, error) {
	if !validID(friendID) {
		return nil, false, errFriendNotFound()
	}
	ok, err := s.areFriends(ctx, userID, friendID)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		return nil, false, errFriendNotFound()
	}
	c, err := s.chats.FindDirect(ctx, userID, friendID)
	if err != nil || c != nil {
		return c, false, err
	}
	us, err := s.users(ctx, []string{userID, friendID})
	if err != nil {
		return nil, false, err
	}
	me, friend := us[userID], us[friendID]
	if friend.ID == "" {
		return nil, false, errFriendNotFound()
	}
	mode := chat.ModeMention
	c, err = s.chats.Create(ctx, userID, chat.NewChat{Title: me.Name + " & " + friend.Name,
		Participants: []string{friend.Email}, Settings: &chat.SettingsPatch{AIMode: &mode}})
	if err != nil {
		return nil, false, err
	}
	return c, true, nil
}

// Blocks implements chat.Relations: which of others have blocked userID,
// and which of others userID has blocked.
func (s *Service) Blocks(ctx context.Context, userID string, others []string) (blockedBy, blocking []string, err error) {
	others = slices.DeleteFunc(slices.Clone(others), func(id string) bool { return !validID(id) })
	if len(others) == 0 || !validID(userID) {
		return nil, nil, nil
	}
	var rows []blockRow
	if err := s.db.WithContext(ctx).Where("(blocked_id = ? AND blocker_id IN ?) OR (blocker_id = ? AND blocked_id IN ?)",
		userID, others, userID, others).Find(&rows).Error; err != nil {
		return nil, nil, fmt.Errorf("read blocks: %w", err)
	}
	for _, r := range rows {
		if r.BlockedID == userID {
			blockedBy = append(blockedBy, r.BlockerID)
		} else {
			blocking = append(blocking, r.BlockedID)
		}
	}
	return blockedBy, blocking, nil
}

// Friends implements chat.Relations: the ids of userID's friends.
func (s *Service) Friends(ctx context.Context, userID string) ([]string, error) {
	var ids []string
	if err := s.db.WithContext(ctx).Model(&friendshipRow{}).Where("user_id = ?", userID).
		Pluck("friend_id", &ids).Error; err != nil {
		return nil, fmt.Errorf("read friends: %w", err)
	}
	return ids, nil
}

// errOr returns err when set, else fallback.
func errOr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}
