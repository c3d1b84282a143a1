package social

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/chat"
	"gorm.io/gorm"
)

// Notification kinds.
const (
	KindFriendRequest  = "friend_request"
	KindFriendAccepted = "friend_accepted"
	KindChatAdded      = "chat_added"
	KindChatRemoved    = "chat_removed"
	KindMention        = "mention"
	KindAnswerFinished = "answer_finished"
	KindChatInvite     = "chat_invite"
)

// Subject types: what a notification is about.
const (
	SubjectChat    = "chat"
	SubjectRequest = "friend_request"
	SubjectUser    = "user"
	SubjectInvite  = "invitation"
)

// Page sizes of GET /notifications.
const (
	DefaultPage = 20
	MaxPage     = 100
)

type notificationRow struct {
	ID          string
	UserID      string
	Kind        string
	ActorID     *string
	SubjectType string
	SubjectID   string
	TextCt      []byte
	KeyID       string
	ReadAt      *time.Time
	CreatedAt   time.Time
}

func (notificationRow) TableName() string { return "notifications" }

// Notification is one notification as its owner sees it; it is also the
// data of the notification frame.
type Notification struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Actor     *Person   `json:"actor"` // nil: the assistant or the system
	Subject   Subject   `json:"subject"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"`
	Read      bool      `json:"read"`
}

// Subject is what a notification is about.
type Subject struct {
	Type string `json:"type"` // chat, friend_request or user
	ID   string `json:"id"`
}

// Page is one page of notifications, unread first, then newest first.
type Page struct {
	Notifications []Notification `json:"notifications"`
	Unread        int64          `json:"unread"`
	// NextCursor asks for the next page; empty on the last one.
	NextCursor string `json:"next_cursor"`
}

type unreadData struct {
	Unread int64 `json:"unread"`
}

type note struct {
	user        string
	kind        string
	actor       *Person
	subjectType string
	subjectID   string
	text        string
}

// notify stores a notification and pushes it, and the user's new unread
// total, to every socket of theirs.
func (s *Service) notify(ctx context.Context, n note) error {
	id := newID()
	row := notificationRow{ID: id, UserID: n.user, Kind: n.kind, SubjectType: n.subjectType, SubjectID: n.subjectID,
		CreatedAt: s.opt.Now()}
	if n.actor != nil {
		a := n.actor.ID
		row.ActorID = &a
	}
	row.TextCt, row.KeyID = s.sealer.Seal([]byte(n.text), "notification", id, n.user)
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return fmt.Errorf("store notification: %w", err)
	}
	s.push.Send([]string{n.user}, EventNotification, Notification{ID: id, Kind: n.kind, Actor: n.actor,
		Subject: Subject{Type: n.subjectType, ID: n.subjectID}, Text: n.text, CreatedAt: row.CreatedAt})
	return s.pushUnread(ctx, n.user)
}

// pushUnread sends the user's unread total to their sockets.
func (s *Service) pushUnread(ctx context.Context, userID string) error {
	n, err := s.unread(ctx, userID)
	if err != nil {
		return err
	}
	s.push.Send([]string{userID}, EventUnread, unreadData{Unread: n})
	return nil
}

func (s *Service) unread(ctx context.Context, userID string) (int64, error) {
	var n int64
	if err := s.db.WithContext(ctx).Model(&notificationRow{}).Where("user_id = ? AND read_at IS NULL", userID).
		Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count notifications: %w", err)
	}
	return n, nil
}

// settleRequestNotes marks read (or, for a request that is gone for the
// user, deletes) userID's notifications about a friend request, once it
// has been answered, withdrawn or blocked.
func (s *Service) settleRequestNotes(ctx context.Context, userID, requestID string, remove bool) {
	q := s.db.WithContext(ctx).Where("user_id = ? AND subject_type = ? AND subject_id = ?", userID, SubjectRequest, requestID)
	var res *gorm.DB
	if remove {
		res = q.Delete(&notificationRow{})
	} else {
		res = q.Model(&notificationRow{}).Where("read_at IS NULL").Update("read_at", s.opt.Now())
	}
	if res.Error != nil {
		s.log.Warn("social: settle request notifications", "err", res.Error)
		return
	}
	if res.RowsAffected > 0 {
		if err := s.pushUnread(ctx, userID); err != nil {
			s.log.Warn("social: push unread", "err", err)
		}
	}
}

// Notifications returns a page of the user's notifications: unread first,
// then read, newest first in each. cursor is the previous page's
// NextCursor ("" for the first page).
func (s *Service) Notifications(ctx context.Context, userID, cursor string, limit int) (*Page, error) {
	if limit <= 0 {
		limit = DefaultPage
	}
	if limit > MaxPage {
		return nil, apperr.Invalid("limit", "limit must be between 1 and %d.", MaxPage)
	}
	unreadSection, after := true, ""
	if cursor != "" {
		sec, id, ok := strings.Cut(cursor, ".")
		if !ok || (sec != "u" && sec != "r") || !validID(id) {
			return nil, apperr.Invalid("cursor", "cursor is not one this server gave out.")
		}
		unreadSection, after = sec == "u", id
	}
	db := s.db.WithContext(ctx)
	fetch := func(unread bool, before string, n int) ([]notificationRow, error) {
		q := db.Where("user_id = ?", userID)
		if unread {
			q = q.Where("read_at IS NULL")
		} else {
			q = q.Where("read_at IS NOT NULL")
		}
		if before != "" {
			q = q.Where("id < ?", before)
		}
		var rows []notificationRow
		if err := q.Order("id DESC").Limit(n).Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("list notifications: %w", err)
		}
		return rows, nil
	}
	var rows []notificationRow
	var err error
	if unreadSection {
		if rows, err = fetch(true, after, limit+1); err != nil {
			return nil, err
		}
		if len(rows) <= limit {
			more, err := fetch(false, "", limit+1-len(rows))
			if err != nil {
				return nil, err
			}
			rows = append(rows, more...)
		}
	} else if rows, err = fetch(false, after, limit+1); err != nil {
		return nil, err
	}
	page := &Page{Notifications: []Notification{}}
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[limit-1]
		sec := "r"
		if last.ReadAt == nil {
			sec = "u"
		}
		page.NextCursor = sec + "." + last.ID
	}
	var actorIDs []string
	for _, r := range rows {
		if r.ActorID != nil {
			actorIDs = append(actorIDs, *r.ActorID)
		}
	}
	actors, err := s.users(ctx, actorIDs)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		text, err := s.sealer.Open(r.TextCt, r.KeyID, "notification", r.ID, r.UserID)
		if err != nil {
			return nil, fmt.Errorf("open notification %s: %w", r.ID, err)
		}
		n := Notification{ID: r.ID, Kind: r.Kind, Subject: Subject{Type: r.SubjectType, ID: r.SubjectID},
			Text: string(text), CreatedAt: r.CreatedAt, Read: r.ReadAt != nil}
		if r.ActorID != nil {
			if a, ok := actors[*r.ActorID]; ok {
				p := a.person()
				n.Actor = &p
			}
		}
		page.Notifications = append(page.Notifications, n)
	}
	if page.Unread, err = s.unread(ctx, userID); err != nil {
		return nil, err
	}
	return page, nil
}

// MarkRead marks one of the user's notifications read and returns their
// unread total. Another user's notification does not exist
// (notification.notFound).
func (s *Service) MarkRead(ctx context.Context, userID, id string) (int64, error) {
	if !validID(id) {
		return 0, errNotificationNotFound()
	}
	db := s.db.WithContext(ctx)
	res := db.Model(&notificationRow{}).Where("id = ? AND user_id = ? AND read_at IS NULL", id, userID).
		Update("read_at", s.opt.Now())
	if res.Error != nil {
		return 0, fmt.Errorf("mark notification read: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		var n int64
		if err := db.Model(&notificationRow{}).Where("id = ? AND user_id = ?", id, userID).Count(&n).Error; err != nil {
			return 0, fmt.Errorf("read notification: %w", err)
		}
		if n == 0 {
			return 0, errNotificationNotFound()
		}
		return s.unread(ctx, userID) // already read: nothing changed
	}
	n, err := s.unread(ctx, userID)
	if err != nil {
		return 0, err
	}
	s.push.Send([]string{userID}, EventUnread, unreadData{Unread: n})
	return n, nil
}

// MarkAllRead marks every notification of the user read.
func (s *Service) MarkAllRead(ctx context.Context, userID string) error {
	res := s.db.WithContext(ctx).Model(&notificationRow{}).Where("user_id = ? AND read_at IS NULL", userID).
		Update("read_at", s.opt.Now())
	if res.Error != nil {
		return fmt.Errorf("mark notifications read: %w", res.Error)
	}
	if res.RowsAffected > 0 {
		return s.pushUnread(ctx, userID)
	}
	return nil
}

// Unread returns the user's unread notification total.
func (s *Service) Unread(ctx context.Context, userID string) (int64, error) {
	return s.unread(ctx, userID)
}

func errNotificationNotFound() error {
	return apperr.New(apperr.CodeNotificationNotFound, "Notification not found.")
}

// MembersAdded implements chat.Relations: everyone added gets chat_added.
func (s *Service) MembersAdded(c *chat.Chat, by string, added []string) {
	chatID, title := c.ID, c.Title
	s.background("notify chat added", func(ctx context.Context) error {
		actor, err := s.user(ctx, by)
		if err != nil || actor == nil {
			return err
		}
		p := actor.person()
		for _, u := range added {
			if u == by {
				continue
			}
			if err := s.notify(ctx, note{user: u, kind: KindChatAdded, actor: &p, subjectType: SubjectChat,
				subjectID: chatID, text: p.Email + " added you to " + title}); err != nil {
				return err
			}
		}
		return nil
	})
}

// Invited implements chat.Relations: the invitee gets chat_invite, whose
// subject is the invitation (accept or decline it from there).
func (s *Service) Invited(c *chat.Chat, by, userID, invitationID string) {
	title := c.Title
	s.background("notify chat invite", func(ctx context.Context) error {
		actor, err := s.user(ctx, by)
		if err != nil || actor == nil {
			return err
		}
		p := actor.person()
		return s.notify(ctx, note{user: userID, kind: KindChatInvite, actor: &p, subjectType: SubjectInvite,
			subjectID: invitationID, text: p.Email + " invited you to " + title})
	})
}

// MembersRemoved implements chat.Relations: everyone removed (or every
// other member of a deleted chat) gets chat_removed.
func (s *Service) MembersRemoved(c *chat.Chat, by string, removed []string, deleted bool) {
	chatID, title := c.ID, c.Title
	s.background("notify chat removed", func(ctx context.Context) error {
		actor, err := s.user(ctx, by)
		if err != nil || actor == nil {
			return err
		}
		p := actor.person()
		text := p.Email + " removed you from " + title
		if deleted {
			text = p.Email + " deleted " + title
		}
		for _, u := range removed {
			if u == by {
				continue
			}
			if err := s.notify(ctx, note{user: u, kind: KindChatRemoved, actor: &p, subjectType: SubjectChat,
				subjectID: chatID, text: text}); err != nil {
				return err
			}
		}
		return nil
	})
}

// MessageCreated implements chat.Events: members mentioned by @name or by
// the part of their email before the @ in a group chat get a mention
// notification (not the author, not for @ai).
func (s *Service) MessageCreated(m *chat.Message, members []string, _ []chat.UnreadChange) {
	if m.AuthorKind != chat.AuthorUser || len(members) < 2 || !strings.Contains(m.Content, "@") {
		return
	}
	chatID, author, content := m.ChatID, m.Author, m.Content
	s.background("notify mentions", func(ctx context.Context) error {
		parts, err := s.chats.Participants(ctx, chatID)
		if err != nil {
			return err
		}
		var actor *Person
		var mentioned []string
		for _, p := range parts {
			if p.ID == author {
				actor = &Person{ID: p.ID, Email: p.Email, Name: p.Name}
				continue
			}
			if Mentions(content, p.Name, p.Email) {
				mentioned = append(mentioned, p.ID)
			}
		}
		if actor == nil || len(mentioned) == 0 {
			return nil
		}
		c, err := s.chats.Get(ctx, author, chatID)
		if err != nil {
			return err
		}
		for _, u := range mentioned {
			if err := s.notify(ctx, note{user: u, kind: KindMention, actor: actor, subjectType: SubjectChat,
				subjectID: chatID, text: actor.Email + " mentioned you in " + c.Title}); err != nil {
				return err
			}
		}
		return nil
	})
}

// UnreadChanged implements chat.Events; notifications do not need it.
func (s *Service) UnreadChanged(...chat.UnreadChange) {}

// ChatChanged implements chat.Events; membership notices come through
// MembersAdded and MembersRemoved, which know who acted.
func (s *Service) ChatChanged(string, []string, []string) {}

// Mentions reports whether text mentions someone called name with this
// email: "@" then their name or the part of their email before the @,
// in any case, not inside a longer word ("@bob" is not "@bobby", nor is
// "me@bob"). "@ai" calls the assistant and mentions nobody.
func Mentions(text, name, email string) bool {
	local, _, _ := strings.Cut(email, "@")
	lower := strings.ToLower(text)
	for _, cand := range []string{strings.ToLower(strings.TrimSpace(name)), strings.ToLower(local)} {
		if cand == "" || cand == "ai" {
			continue
		}
		for i := 0; ; {
			j := strings.Index(lower[i:], "@"+cand)
			if j < 0 {
				break
			}
			at := i + j
			end := at + 1 + len(cand)
			if (at == 0 || !wordRune(lastRune(lower[:at]))) && (end == len(lower) || !continues(lower[end:])) {
				return true
			}
			i = at + 1
		}
	}
	return false
}

func wordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '.' || r == '-' || r == '@'
}

func lastRune(s string) rune {
	r, _ := utf8.DecodeLastRuneInString(s)
	return r
}

// continues reports whether rest (what follows a candidate) carries the
// word on: a letter, digit, _ or -, or a dot followed by one ("@bob." ends
// a sentence, "@bob.smith" is someone else).
func continues(rest string) bool {
	r, n := utf8.DecodeRuneInString(rest)
	if r == '.' {
		next, _ := utf8.DecodeRuneInString(rest[n:])
		return unicode.IsLetter(next) || unicode.IsDigit(next)
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-'
}

// AnswerFinished is told that an assistant answer with this seq finished
// in a chat with these members; after AnswerDelay, every member who has
// not read it gets answer_finished, unless an unread one for that chat is
// already waiting. The web app marks a chat read while it is on screen, so
// "not read" means "not looking at it" — including the member who asked,
// whose read mark the answer does not move. Read marks are shared, so this
// works whichever instance the members' sockets are on.
func (s *Service) AnswerFinished(chatID string, seq int64, members []string) {
	members = slices.Clone(members)
	s.after(s.opt.AnswerDelay, "notify answer", func(ctx context.Context) error {
		unread, err := s.chats.UnreadBelow(ctx, chatID, seq)
		if err != nil {
			return err
		}
		// Only those who were members when it finished.
		var users []string
		for _, m := range unread {
			if slices.Contains(members, m) {
				users = append(users, m)
			}
		}
		if len(users) == 0 {
			return nil
		}
		var waiting []string
		if err := s.db.WithContext(ctx).Model(&notificationRow{}).
			Where("user_id IN ? AND kind = ? AND subject_id = ? AND read_at IS NULL", users, KindAnswerFinished, chatID).
			Pluck("user_id", &waiting).Error; err != nil {
			return fmt.Errorf("read notifications: %w", err)
		}
		title := ""
		for _, u := range users {
			if slices.Contains(waiting, u) {
				continue
			}
			if title == "" {
				c, err := s.chats.Get(ctx, u, chatID)
				if err != nil {
					if apperr.Is(err, apperr.CodeChatNotFound) {
						continue
					}
					return err
				}
				title = c.Title
			}
			if err := s.notify(ctx, note{user: u, kind: KindAnswerFinished, subjectType: SubjectChat, subjectID: chatID,
				text: "The assistant answered in " + title}); err != nil {
				return err
			}
		}
		return nil
	})
}

// Reseal re-encrypts, in batches, notification texts not sealed with the
// current key (aichat keys rotate), and returns how many it changed. Each
// row is updated only if its key id is still the one read.
func (s *Service) Reseal(ctx context.Context, batch int) (int, error) {
	if batch <= 0 {
		batch = 500
	}
	total := 0
	for {
		cur := s.sealer.CurrentKeyID()
		var rows []notificationRow
		if err := s.db.WithContext(ctx).Select("id", "user_id", "text_ct", "key_id").Where("key_id <> ?", cur).
			Order("id").Limit(batch).Find(&rows).Error; err != nil {
			return total, fmt.Errorf("reseal notifications: %w", err)
		}
		if len(rows) == 0 {
			return total, nil
		}
		n := 0
		err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			for _, r := range rows {
				pt, err := s.sealer.Open(r.TextCt, r.KeyID, "notification", r.ID, r.UserID)
				if err != nil {
					return fmt.Errorf("notification %s: %w", r.ID, err)
				}
				ct, key := s.sealer.Seal(pt, "notification", r.ID, r.UserID)
				res := tx.Model(&notificationRow{}).Where("id = ? AND key_id = ?", r.ID, r.KeyID).
					Updates(map[string]any{"text_ct": ct, "key_id": key})
				if res.Error != nil {
					return res.Error
				}
				n += int(res.RowsAffected)
			}
			return nil
		})
		total += n
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, nil // rows changed under us; the next call retries
		}
	}
}

// Stale counts notifications not yet sealed with the current key.
func (s *Service) Stale(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&notificationRow{}).Where("key_id <> ?", s.sealer.CurrentKeyID()).Count(&n).Error
	return n, err
}
