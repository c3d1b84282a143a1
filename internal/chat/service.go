package chat

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/seal"
	"github.com/aichat/aichat/internal/store"
	"github.com/google/uuid"
	"gorm.io/gorm"
)

// Limits on chats.
const (
	MaxTitleLen        = 200
	MaxParticipants    = 500
	DefaultMessageSize = 16 << 10
)

// Options configure a Service.
type Options struct {
	Defaults        Settings // settings of a new chat where the creator gave none
	MaxMessageBytes int
	Now             func() time.Time
}

// Service manages chats and messages.
type Service struct {
	db     *store.DB
	sealer *seal.Sealer
	opt    Options
	unread *unreadCache
	events Events
	rel    Relations // blocks, friends, membership notices (relations.go)
	// answerDue says whether a person's message gets an assistant's
	// answer (SetAnswerDue); nil: never asked.
	answerDue func(st Settings, content string) bool
}

// NewService returns a Service over db, sealing with sealer.
func NewService(db *store.DB, sealer *seal.Sealer, opt Options) *Service {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	// PostgreSQL keeps microseconds; truncating here makes what Send
	// returns equal to what a later read returns, on both databases.
	now := opt.Now
	opt.Now = func() time.Time { return now().UTC().Truncate(time.Microsecond) }
	if opt.MaxMessageBytes <= 0 {
		opt.MaxMessageBytes = DefaultMessageSize
	}
	return &Service{db: db, sealer: sealer, opt: opt, unread: newUnreadCache(), events: noEvents{}}
}

// NewChat is what a user asks for when creating a chat.
type NewChat struct {
	Title        string         `json:"title"`
	Participants []string       `json:"participants"` // emails, besides the creator
	Settings     *SettingsPatch `json:"settings"`
}

// Create makes a chat owned by ownerID. With no participants it is a
// personal chat with the assistant (AI mode "always" unless set); with
// participants a group chat (AI mode "mention" unless set).
func (s *Service) Create(ctx context.Context, ownerID string, in NewChat) (*Chat, error) {
	title, err := cleanTitle(in.Title)
	if err != nil {
		return nil, err
	}
	if len(in.Participants) > MaxParticipants {
		return nil, apperr.Invalid("participants", "At most %d participants.", MaxParticipants)
	}
	var members []userRow
	if len(in.Participants) > 0 {
		found, err := s.usersByEmail(ctx, "participants", in.Participants)
		if err != nil {
			return nil, err
		}
		// Naming yourself adds no one: such a chat is still personal.
		for _, m := range found {
			if m.ID != ownerID {
				members = append(members, m)
			}
		}
		if err := s.checkAddable(ctx, ownerID, "participants", members); err != nil {
			return nil, err
		}
	}
	kind := KindPersonal
	defaults := s.opt.Defaults
	defaults.AIMode = ModeAlways
	if len(members) > 0 {
		kind = KindGroup
		defaults.AIMode = ModeMention
	}
	settings := in.Settings.Apply(defaults)
	if err := settings.Validate(); err != nil {
		return nil, err
	}
	now := s.opt.Now()
	id := newID()
	row := chatRow{ID: id, OwnerID: ownerID, Kind: kind, CreatedAt: now, UpdatedAt: now}
	row.TitleCt, row.KeyID = s.sealer.Seal([]byte(title), "chat", id, "title")
	row.SettingsCt = s.sealSettings(id, settings)
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		rows := []memberRow{{ChatID: id, UserID: ownerID, Role: RoleOwner, JoinedAt: now}}
		if !settings.RequireAcceptance {
			for _, m := range members {
				rows = append(rows, memberRow{ChatID: id, UserID: m.ID, Role: RoleMember, JoinedAt: now})
			}
		}
		return tx.Create(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("create chat: %w", err)
	}
	c, err := s.Get(ctx, ownerID, id)
	if err != nil {
		return nil, err
	}
	s.events.ChatChanged(id, memberIDs(c), nil)
	if settings.RequireAcceptance {
		// The people named are invited: they join when they accept.
		for _, m := range members {
			if _, err := s.invite(ctx, c, ownerID, m); err != nil {
				return nil, err
			}
		}
		return c, nil
	}
	if len(members) > 0 {
		added := make([]string, len(members))
		for i, m := range members {
			added[i] = m.ID
		}
		s.relations().MembersAdded(c, ownerID, added)
	}
	return c, nil
}

// Get returns a chat the user is a member of. For anyone else the chat does
// not exist (chat.notFound), whether or not it does.
func (s *Service) Get(ctx context.Context, userID, chatID string) (*Chat, error) {
	list, err := s.load(ctx, userID, []string{chatID})
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, notFound()
	}
	return list[0], nil
}

// List returns the user's chats, most recent activity first.
func (s *Service) List(ctx context.Context, userID string) ([]*Chat, error) {
	return s.load(ctx, userID, nil)
}

// load reads the user's chats (all, or those in ids) with participants, the
// user's unread counts and the last messages, in four queries whatever the
// number of chats.
func (s *Service) load(ctx context.Context, userID string, ids []string) ([]*Chat, error) {
	db := s.db.WithContext(ctx)
	var rows []struct {
		Row         chatRow `gorm:"embedded"` // exported: GORM skips unexported fields
		UnreadCount int
	}
	q := db.Table("chats").Select("chats.*, chats.last_seq - m.last_read_seq AS unread_count").
		Joins("JOIN chat_members m ON m.chat_id = chats.id AND m.user_id = ?", userID)
	if ids != nil {
		if !validIDs(ids) {
			return nil, nil
		}
		q = q.Where("chats.id IN ?", ids)
	}
	if err := q.Order("COALESCE(chats.last_message_at, chats.created_at) DESC, chats.id DESC").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list chats: %w", err)
	}
	if len(rows) == 0 {
		return []*Chat{}, nil
	}
	chatIDs := make([]string, len(rows))
	byID := make(map[string]*Chat, len(rows))
	out := make([]*Chat, len(rows))
	for i, r := range rows {
		c, err := s.openChat(&r.Row)
		if err != nil {
			return nil, err
		}
		c.UnreadCount = r.UnreadCount
		chatIDs[i], byID[c.ID], out[i] = c.ID, c, c
	}
	var parts []struct {
		ChatID string
		ID     string
		Email  string
		Name   string
		Role   string
	}
	if err := s.participantsQuery(db, chatIDs).Find(&parts).Error; err != nil {
		return nil, fmt.Errorf("list participants: %w", err)
	}
	for _, p := range parts {
		c := byID[p.ChatID]
		c.Participants = append(c.Participants, Participant{ID: p.ID, Email: p.Email, Name: p.Name, Role: p.Role})
	}
	var last []messageRow
	if err := db.Table("messages").Select("messages.*").
		Joins("JOIN chats ON chats.id = messages.chat_id AND messages.seq = chats.last_seq").
		Where("messages.chat_id IN ?", chatIDs).Find(&last).Error; err != nil {
		return nil, fmt.Errorf("last messages: %w", err)
	}
	for i := range last {
		m, err := s.openMessage(&last[i])
		if err != nil {
			return nil, err
		}
		byID[m.ChatID].LastMessage = m
	}
	return out, nil
}

// Update is a change to a chat's title or settings; nil fields stay.
type Update struct {
	Title    *string        `json:"title"`
	Settings *SettingsPatch `json:"settings"`
}

// Update renames a chat or changes its settings. Any member may rename; only
// the owner changes AI settings (they cost the owner's quota).
func (s *Service) Update(ctx context.Context, userID, chatID string, up Update) (*Chat, error) {
	c, err := s.Get(ctx, userID, chatID)
	if err != nil {
		return nil, err
	}
	if up.Settings != nil && c.OwnerID != userID {
		return nil, apperr.New(apperr.CodeChatForbidden, "Only the chat's owner can change its AI settings.")
	}
	var title string
	if up.Title != nil {
		if title, err = cleanTitle(*up.Title); err != nil {
			return nil, err
		}
	}
	// Title and settings are sealed together (they share key_id), so a
	// change to one rewrites both. The row is locked and read again inside
	// the transaction: a concurrent rename and settings change must not
	// undo each other.
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Exec("UPDATE chats SET updated_at = ? WHERE id = ?", s.opt.Now(), chatID)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return notFound()
		}
		var row chatRow
		if err := tx.Where("id = ?", chatID).Take(&row).Error; err != nil {
			return err
		}
		cur, err := s.openChat(&row)
		if err != nil {
			return err
		}
		if up.Title == nil {
			title = cur.Title
		}
		settings := cur.Settings
		if up.Settings != nil {
			settings = up.Settings.Apply(cur.Settings)
			if err := settings.Validate(); err != nil {
				return err
			}
		}
		ct, key := s.sealer.Seal([]byte(title), "chat", chatID, "title")
		return tx.Model(&chatRow{}).Where("id = ?", chatID).Updates(map[string]any{
			"title_ct": ct, "key_id": key, "settings_ct": s.sealSettings(chatID, settings)}).Error
	})
	if err != nil {
		if _, ok := apperr.As(err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("update chat: %w", err)
	}
	c, err = s.Get(ctx, userID, chatID)
	if err != nil {
		return nil, err
	}
	s.events.ChatChanged(chatID, memberIDs(c), nil)
	return c, nil
}

// Delete removes a chat and everything in it; only its owner may.
func (s *Service) Delete(ctx context.Context, userID, chatID string) ([]string, error) {
	c, err := s.Get(ctx, userID, chatID)
	if err != nil {
		return nil, err
	}
	if c.OwnerID != userID {
		return nil, apperr.New(apperr.CodeChatForbidden, "Only the chat's owner can delete it; you can leave it.")
	}
	if err := s.db.WithContext(ctx).Where("id = ?", chatID).Delete(&chatRow{}).Error; err != nil {
		return nil, fmt.Errorf("delete chat: %w", err)
	}
	ids := memberIDs(c)
	s.unread.invalidate(ids...)
	s.events.ChatChanged(chatID, nil, ids)
	s.relations().MembersRemoved(c, userID, slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == userID }), true)
	return ids, nil
}

// AddParticipant adds the user with the given email; only the owner may.
// A personal chat becomes a group chat.
func (s *Service) AddParticipant(ctx context.Context, userID, chatID, email string) (*Chat, *Invitation, error) {
	c, err := s.Get(ctx, userID, chatID)
	if err != nil {
		return nil, nil, err
	}
	if c.OwnerID != userID {
		return nil, nil, apperr.New(apperr.CodeChatForbidden, "Only the chat's owner can add participants.")
	}
	if len(c.Participants) >= MaxParticipants+1 {
		return nil, nil, apperr.Invalid("email", "A chat has at most %d participants.", MaxParticipants)
	}
	users, err := s.usersByEmail(ctx, "email", []string{email})
	if err != nil {
		return nil, nil, err
	}
	u := users[0]
	if slices.ContainsFunc(c.Participants, func(p Participant) bool { return p.ID == u.ID }) {
		return nil, nil, &apperr.Error{Code: apperr.CodeAlreadyMember, Field: "email", Message: "They are already in this chat."}
	}
	if err := s.checkAddable(ctx, userID, "email", users); err != nil {
		return nil, nil, err
	}
	if c.Settings.RequireAcceptance {
		inv, err := s.invite(ctx, c, userID, u)
		return c, inv, err
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return s.join(tx, chatID, u.ID) })
	if err != nil {
		if store.IsUniqueViolation(err) {
			return nil, nil, &apperr.Error{Code: apperr.CodeAlreadyMember, Field: "email", Message: "They are already in this chat."}
		}
		return nil, nil, fmt.Errorf("add participant: %w", err)
	}
	s.unread.invalidate(u.ID)
	c, err = s.Get(ctx, userID, chatID)
	if err != nil {
		return nil, nil, err
	}
	s.events.ChatChanged(chatID, memberIDs(c), nil)
	s.relations().MembersAdded(c, userID, []string{u.ID})
	return c, nil, nil
}

// RemoveParticipant takes a member out of a chat: the owner may remove
// anyone else, and any member may remove themselves (leave). Their access
// ends at once.
func (s *Service) RemoveParticipant(ctx context.Context, userID, chatID, memberID string) error {
	c, err := s.Get(ctx, userID, chatID)
	if err != nil {
		return err
	}
	if !validIDs([]string{memberID}) {
		return apperr.New(apperr.CodeUserNotFound, "They are not in this chat.")
	}
	if memberID == userID && c.OwnerID == userID {
		return apperr.New(apperr.CodeOwnerCannotLeave, "The owner cannot leave the chat; delete it instead.")
	}
	if memberID != userID && c.OwnerID != userID {
		return apperr.New(apperr.CodeChatForbidden, "Only the chat's owner can remove participants.")
	}
	res := s.db.WithContext(ctx).Where("chat_id = ? AND user_id = ?", chatID, memberID).Delete(&memberRow{})
	if res.Error != nil {
		return fmt.Errorf("remove participant: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return apperr.New(apperr.CodeUserNotFound, "They are not in this chat.")
	}
	s.unread.invalidate(memberID)
	rest := slices.DeleteFunc(memberIDs(c), func(id string) bool { return id == memberID })
	s.events.ChatChanged(chatID, rest, []string{memberID})
	if memberID != userID {
		s.relations().MembersRemoved(c, userID, []string{memberID}, false)
	}
	return nil
}

// SettingsOf returns a chat's AI settings without checking membership or
// loading members: one row read, for deciding cheaply whether a message
// calls for an answer. The caller must know the chat is the user's.
func (s *Service) SettingsOf(ctx context.Context, chatID string) (Settings, error) {
	var row chatRow
	if err := s.db.WithContext(ctx).Select("id", "settings_ct", "key_id").Where("id = ?", chatID).Take(&row).Error; err != nil {
		if store.IsNotFound(err) {
			return Settings{}, notFound()
		}
		return Settings{}, fmt.Errorf("chat settings: %w", err)
	}
	return s.openSettings(row.ID, row.SettingsCt, row.KeyID)
}

func (s *Service) openSettings(chatID string, ct []byte, keyID string) (Settings, error) {
	sb, err := s.sealer.Open(ct, keyID, "chat", chatID, "settings")
	if err != nil {
		return Settings{}, fmt.Errorf("open chat %s settings: %w", chatID, err)
	}
	var st Settings
	if err := json.Unmarshal(sb, &st); err != nil {
		return Settings{}, fmt.Errorf("chat %s settings: %w", chatID, err)
	}
	if st.Stop == nil {
		st.Stop = []string{}
	}
	return st, nil
}

// Participants returns a chat's members with their names and roles, in
// the order they joined, without checking who asks: the caller knows the
// chat is the user's.
func (s *Service) Participants(ctx context.Context, chatID string) ([]Participant, error) {
	// One raw statement (no GORM builder or reflective scan): the
	// assistant reads this on the way from a question to the model.
	return s.participants(ctx, chatID)
}

// query runs a read on the assistant's way (to the model, or while an
// answer streams): on SQLite as a statement prepared once (store.DB.Stmt),
// else as a raw query.
func (s *Service) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if s.db.Dialect == store.SQLite {
		st, err := s.db.Stmt(ctx, q)
		if err != nil {
			return nil, err
		}
		return st.QueryContext(ctx, args...)
	}
	sqlDB, err := s.db.DB.DB()
	if err != nil {
		return nil, err
	}
	return sqlDB.QueryContext(ctx, s.rebind(q), args...)
}

// exec is query's write: on SQLite the prepared statement's Exec still
// waits for the write gate, and holds SQLite's lock for less time than one
// compiled on every call.
func (s *Service) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if s.db.Dialect == store.SQLite {
		st, err := s.db.Stmt(ctx, q)
		if err != nil {
			return nil, err
		}
		return st.ExecContext(ctx, args...)
	}
	sqlDB, err := s.db.DB.DB()
	if err != nil {
		return nil, err
	}
	return sqlDB.ExecContext(ctx, s.rebind(q), args...)
}

// uncanceled is ctx for a few short SQLite statements: with a context
// that can end, the driver starts a goroutine per statement to watch it,
// and database/sql one per query outside a transaction (about eight for a
// question, its history and participants), and each takes a turn on a
// processor the question's way to the model waits for. The statements
// take microseconds, and the write gate's wait still ends (at the busy
// timeout). SQLite only: a PostgreSQL call can wait on a lock or the
// network, and must end with its context.
func uncanceled(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

func (s *Service) participants(ctx context.Context, chatID string) ([]Participant, error) {
	rows, err := s.query(ctx, participantsSQL, chatID)
	if err != nil {
		return nil, fmt.Errorf("list participants: %w", err)
	}
	defer rows.Close()
	parts := []Participant{}
	for rows.Next() {
		var p Participant
		var name sql.NullString
		if err := rows.Scan(&p.ID, &p.Email, &name, &p.Role); err != nil {
			return nil, fmt.Errorf("list participants: %w", err)
		}
		p.Name = name.String
		parts = append(parts, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list participants: %w", err)
	}
	return parts, nil
}

// participantsSQL is participantsQuery for one chat.
const participantsSQL = "SELECT " + participantColumns + " FROM chat_members " + participantJoin +
	" WHERE chat_members.chat_id = ? ORDER BY " + participantOrder

func (s *Service) participantsQuery(db *gorm.DB, chatIDs []string) *gorm.DB {
	return db.Table("chat_members").Select("chat_members.chat_id, "+participantColumns).
		Joins(participantJoin).Where("chat_members.chat_id IN ?", chatIDs).Order(participantOrder)
}

// The participants' columns, join and order, shared by participantsQuery
// (many chats, GORM) and participantsSQL (one chat, raw).
const (
	participantColumns = "users.id, users.email, users.name, chat_members.role"
	participantJoin    = "JOIN users ON users.id = chat_members.user_id"
	participantOrder   = "chat_members.joined_at, users.email"
)

// Contacts returns the users who share at least one chat with userID, and
// userID's friends: the people who see userID's presence.
func (s *Service) Contacts(ctx context.Context, userID string) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Raw(`SELECT DISTINCT o.user_id FROM chat_members m
		JOIN chat_members o ON o.chat_id = m.chat_id
		WHERE m.user_id = ? AND o.user_id <> ?`, userID, userID).Scan(&ids).Error
	if err != nil {
		return nil, fmt.Errorf("contacts: %w", err)
	}
	// Friends see each other's presence too, chat or no chat.
	friends, err := s.relations().Friends(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("contacts: %w", err)
	}
	if len(friends) > 0 {
		seen := make(map[string]bool, len(ids))
		for _, id := range ids {
			seen[id] = true
		}
		for _, f := range friends {
			if !seen[f] {
				ids = append(ids, f)
			}
		}
	}
	return ids, nil
}

// Members returns the ids of the chat's members, or chat.notFound when
// userID is not one of them.
func (s *Service) Members(ctx context.Context, userID, chatID string) ([]string, error) {
	if !validIDs([]string{chatID}) {
		return nil, notFound()
	}
	var ids []string
	if err := s.db.WithContext(ctx).Model(&memberRow{}).Where("chat_id = ?", chatID).Pluck("user_id", &ids).Error; err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	if !slices.Contains(ids, userID) {
		return nil, notFound()
	}
	return ids, nil
}

func (s *Service) usersByEmail(ctx context.Context, field string, emails []string) ([]userRow, error) {
	norm := make([]string, 0, len(emails))
	for _, e := range emails {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" || len(e) > 254 {
			return nil, apperr.Invalid(field, "Participant email %q is not valid.", e)
		}
		if !slices.Contains(norm, e) {
			norm = append(norm, e)
		}
	}
	var users []userRow
	if err := s.db.WithContext(ctx).Where("email IN ?", norm).Find(&users).Error; err != nil {
		return nil, fmt.Errorf("find users: %w", err)
	}
	if len(users) != len(norm) {
		for _, e := range norm {
			if !slices.ContainsFunc(users, func(u userRow) bool { return u.Email == e }) {
				return nil, &apperr.Error{Code: apperr.CodeUserNotFound, Field: field,
					Message: fmt.Sprintf("No account with email %s.", e)}
			}
		}
	}
	return users, nil
}

func (s *Service) sealSettings(chatID string, st Settings) []byte {
	b, _ := json.Marshal(st)
	ct, _ := s.sealer.Seal(b, "chat", chatID, "settings")
	return ct
}

func (s *Service) openChat(r *chatRow) (*Chat, error) {
	title, err := s.sealer.Open(r.TitleCt, r.KeyID, "chat", r.ID, "title")
	if err != nil {
		return nil, fmt.Errorf("open chat %s title: %w", r.ID, err)
	}
	sb, err := s.sealer.Open(r.SettingsCt, r.KeyID, "chat", r.ID, "settings")
	if err != nil {
		return nil, fmt.Errorf("open chat %s settings: %w", r.ID, err)
	}
	var st Settings
	if err := json.Unmarshal(sb, &st); err != nil {
		return nil, fmt.Errorf("chat %s settings: %w", r.ID, err)
	}
	if st.Stop == nil {
		st.Stop = []string{}
	}
	activity := r.CreatedAt
	if r.LastMessageAt != nil {
		activity = *r.LastMessageAt
	}
	return &Chat{ID: r.ID, Title: string(title), Kind: r.Kind, OwnerID: r.OwnerID, Settings: st,
		Participants: []Participant{}, LastSeq: r.LastSeq, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		LastActivity: activity}, nil
}

func cleanTitle(s string) (string, error) {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return -1
		}
		return r
	}, s))
	if !utf8.ValidString(s) {
		return "", apperr.Invalid("title", "Title must be valid UTF-8 text.")
	}
	if utf8.RuneCountInString(s) > MaxTitleLen {
		return "", apperr.Invalid("title", "Title must be at most %d characters.", MaxTitleLen)
	}
	if s == "" {
		s = "New chat"
	}
	return s, nil
}

func memberIDs(c *Chat) []string {
	ids := make([]string, len(c.Participants))
	for i, p := range c.Participants {
		ids[i] = p.ID
	}
	return ids
}

var errInvalidSeq = apperr.Invalid("seq", "seq must be a positive number.")

func notFound() error { return apperr.New(apperr.CodeChatNotFound, "Chat not found.") }

// validIDs reports whether every id is a UUID; anything else cannot name a
// row, and PostgreSQL would reject it with an error rather than no rows.
func validIDs(ids []string) bool {
	for _, id := range ids {
		if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
			return false
		}
	}
	return true
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }
