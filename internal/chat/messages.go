package chat

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/store"
	"github.com/jackc/pgx/v5"
)

// errDirectBlocked rolls back a send to a direct chat with a block
// between its two members; Send asks checkDirect for the error to return.
var errDirectBlocked = errors.New("direct chat blocked")

// MaxClientIDLen bounds the client's idempotency key.
const MaxClientIDLen = 64

// Sent is the result of a send: the stored message, whether it was a retry
// of one already stored, and who is in the chat (for delivery).
type Sent struct {
	Message   *Message
	Duplicate bool
	Members   []string
}

// Send stores a message from userID. It assigns the next seq and bumps every
// other member's unread count in one transaction, so a message is either
// fully stored or not at all. Sending the same clientID again returns the
// stored message; the same clientID with other content is
// message.idempotencyConflict.
func (s *Service) Send(ctx context.Context, userID, chatID, content, clientID string) (*Sent, error) {
	received, ok := ctx.Value(arrivalKey{}).(time.Time)
	if !ok || received.IsZero() {
		received = time.Now()
	}
	if err := s.checkContent(content); err != nil {
		return nil, err
	}
	if len(clientID) > MaxClientIDLen || strings.ContainsFunc(clientID, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return nil, apperr.Invalid("client_id", "client_id must be up to %d printable ASCII characters.", MaxClientIDLen)
	}
	// On SQLite the members are read by the transaction that stores the
	// message (one statement fewer on the way to the model); the sender's
	// membership and a direct chat's blocks are checked there, before the
	// commit.
	var members []string
	if s.db.Dialect == store.Postgres {
		var err error
		if members, err = s.Members(ctx, userID, chatID); err != nil {
			return nil, err
		}
		if err := s.checkDirect(ctx, userID, members); err != nil {
			return nil, err
		}
	} else if !validIDs([]string{chatID}) {
		return nil, notFound()
	}
	// No look-up of client_id first: the unique index catches a retry, and
	// the failed insert rolls back whole, so the common case costs nothing.
	uid, cid := userID, clientID
	row := messageRow{ID: newID(), ChatID: chatID, AuthorID: &uid, AuthorKind: AuthorUser,
		Status: StatusComplete, CreatedAt: s.opt.Now()}
	if clientID != "" {
		row.ClientID = &cid
	}
	var (
		check   func(tx *sql.Tx, members []string) error
		checked []string
	)
	if members == nil {
		check = func(tx *sql.Tx, got []string) error {
			checked = got
			if !slices.Contains(got, userID) {
				return notFound()
			}
			if s.rel == nil || len(got) != 2 {
				return nil
			}
			// A direct chat: any block between the two refuses the send.
			// Asked on the transaction's own connection (the relations
			// service would take a second one while this holds SQLite's
			// write lock); checkDirect then says which way it goes.
			other := got[0]
			if other == userID {
				other = got[1]
			}
			var n int
			err := tx.QueryRowContext(ctx, `SELECT count(*) FROM user_blocks
				WHERE (blocker_id = ? AND blocked_id = ?) OR (blocker_id = ? AND blocked_id = ?)`,
				userID, other, other, userID).Scan(&n)
			if err != nil {
				return fmt.Errorf("check blocks: %w", err)
			}
			if n > 0 {
				return errDirectBlocked
			}
			return nil
		}
	}
	// A person waits for this write (and the assistant's answer to it):
	// on SQLite it goes before the background writers waiting.
	wctx := store.Urgent(ctx)
	unread, state, got, err := s.insert(wctx, &row, content, userID, members, check)
	if errors.Is(err, errDirectBlocked) {
		members = checked
		if err = s.checkDirect(ctx, userID, members); err == nil {
			// Unblocked in between: store it the ordinary way.
			unread, state, got, err = s.insert(wctx, &row, content, userID, members, nil)
		}
	}
	if err == nil {
		members = got
	}
	if err != nil {
		if clientID != "" && store.IsUniqueViolation(err) {
			// A concurrent retry with the same client_id won the race.
			if members == nil { // SQLite: the rolled-back transaction read them
				if members, err = s.Members(ctx, userID, chatID); err != nil {
					return nil, err
				}
			}
			prev, err := s.byClientID(ctx, chatID, userID, clientID, content)
			if err != nil {
				return nil, err
			}
			if prev != nil {
				return &Sent{Message: prev, Duplicate: true, Members: members}, nil
			}
		}
		return nil, err
	}
	m, err := s.openMessage(&row)
	if err != nil {
		return nil, err
	}
	m.sentIn, m.received = state, received
	s.created(m, members, unread)
	return &Sent{Message: m, Members: members}, nil
}

// insert seals content into row and stores it with the chat's next seq,
// and moves reader's read mark (the author's: writing means having read)
// to it. Nobody else's row is written: a member's unread count is the
// chat's last seq minus their mark, so a message in a chat of a hundred
// costs the same as in a chat of two. The UPDATE ... RETURNING takes the
// chat row's lock on PostgreSQL (SQLite's BEGIN IMMEDIATE serializes
// writers anyway), so concurrent senders get consecutive numbers with no
// gaps. It returns the members' unread changes and, for a person's
// message, the chat's kind and settings as that statement found them (nil
// if they cannot be opened: listeners then read them themselves).
//
// With check set (SQLite only, members nil), the transaction reads the
// members itself and calls check with them before it commits; an error
// from check rolls the message back. The members are returned.
func (s *Service) insert(ctx context.Context, row *messageRow, content, reader string, members []string,
	check func(tx *sql.Tx, members []string) error) ([]UnreadChange, *ChatState, []string, error) {
	row.ContentCt, row.KeyID = s.sealer.Seal([]byte(content), "message", row.ID, row.ChatID)
	var (
		cr  chatAtInsert
		err error
	)
	if s.db.Dialect == store.Postgres {
		err = s.insertPostgres(ctx, row, reader, &cr)
	} else {
		ctx = uncanceled(ctx)
		err = s.insertSQLite(ctx, row, reader, &cr, check)
		if check != nil {
			members = cr.Members
		}
	}
	if err != nil {
		return nil, nil, nil, err
	}
	var state *ChatState
	if row.AuthorKind == AuthorUser {
		if st, err := s.openSettings(row.ChatID, cr.SettingsCt, cr.KeyID); err == nil {
			state = &ChatState{Kind: cr.Kind, Settings: st}
			if s.db.Dialect == store.SQLite && s.answerDue != nil && s.answerDue(st, content) {
				s.prefetch(ctx, row, state)
			}
		}
	}
	changes := make([]UnreadChange, 0, len(members))
	for _, m := range members {
		c := UnreadChange{UserID: m, ChatID: row.ChatID, LastSeq: row.Seq}
		if m == reader {
			c.LastRead = row.Seq
		}
		changes = append(changes, c)
	}
	return changes, state, members, nil
}

// chatAtInsert is the chat row as the statement that numbers a message
// leaves it.
type chatAtInsert struct {
	LastSeq    int64
	Kind       string
	SettingsCt []byte
	KeyID      string
	Members    []string // SQLite, when insert was given a check
}

// prefetch reads what the answer to the person's message row needs (the
// depth messages before it and the participants) into st, right after the
// message's commit: on the sender's goroutine while its caches are warm,
// with no hand-off to another goroutine on the way to the model. A failed
// read only means the assistant reads them itself.
func (s *Service) prefetch(ctx context.Context, row *messageRow, st *ChatState) {
	hist, herr := s.recent(ctx, row.ChatID, row.Seq, st.Settings.Depth)
	parts, perr := s.participants(ctx, row.ChatID)
	if herr == nil && perr == nil {
		st.Prefetched, st.History, st.Participants = true, hist, parts
	}
}

// insertSQLite runs the message's transaction with raw statements (no
// GORM scan or reflection: this is on the path from a question to the
// model), each prepared once (store.DB.Stmt). _txlock=immediate makes
// BEGIN take the write lock.
func (s *Service) insertSQLite(ctx context.Context, row *messageRow, reader string, cr *chatAtInsert,
	check func(tx *sql.Tx, members []string) error) (err error) {
	q := sqliteNextSeq
	if check != nil {
		q = sqliteNextSeqMembers
	}
	next, err := s.db.Stmt(ctx, q)
	if err != nil {
		return err
	}
	insert, err := s.db.Stmt(ctx, sqliteInsertMessage)
	if err != nil {
		return err
	}
	markRead, err := s.db.Stmt(ctx, sqliteMarkRead)
	if err != nil {
		return err
	}
	sqlDB, err := s.db.DB.DB()
	if err != nil {
		return err
	}
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	var members sql.NullString
	dest := []any{&cr.LastSeq, &cr.Kind, &cr.SettingsCt, &cr.KeyID}
	if check != nil {
		dest = append(dest, &members)
	}
	if err = tx.StmtContext(ctx, next).QueryRowContext(ctx, row.CreatedAt, row.CreatedAt, row.ChatID).Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return notFound()
		}
		return fmt.Errorf("next seq: %w", err)
	}
	if check != nil {
		if members.String != "" {
			cr.Members = strings.Split(members.String, ",")
		}
		if err = check(tx, cr.Members); err != nil {
			return err
		}
	}
	row.Seq = cr.LastSeq
	if _, err = tx.StmtContext(ctx, insert).ExecContext(ctx, row.ID, row.ChatID, row.Seq, row.AuthorID, row.AuthorKind,
		row.ClientID, row.ContentCt, row.KeyID, row.Status, row.CreatedAt, row.EditedAt, row.RequestedBy,
		row.Model, row.Provider); err != nil {
		return err
	}
	if reader != "" {
		if _, err = tx.StmtContext(ctx, markRead).ExecContext(ctx, row.Seq, row.ChatID, reader); err != nil {
			return err
		}
	}
	return tx.Commit()
}

const (
	sqliteNextSeq = `UPDATE chats SET last_seq = last_seq + 1, last_message_at = ?, updated_at = ? WHERE id = ?
		RETURNING last_seq, kind, settings_ct, key_id`
	// The same, with the members (ids are UUIDs: no comma in them).
	sqliteNextSeqMembers = `UPDATE chats SET last_seq = last_seq + 1, last_message_at = ?, updated_at = ? WHERE id = ?
		RETURNING last_seq, kind, settings_ct, key_id,
			(SELECT group_concat(user_id, ',') FROM chat_members WHERE chat_id = chats.id)`
	sqliteInsertMessage = `INSERT INTO messages (id, chat_id, seq, author_id, author_kind, client_id, content_ct, key_id,
		status, created_at, edited_at, requested_by, model, provider) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqliteMarkRead = "UPDATE chat_members SET last_read_seq = ? WHERE chat_id = ? AND user_id = ?"
)

// insertPostgres sends two statements in one round trip (a pgx batch runs
// in one implicit transaction). The first bumps the chat's seq and so
// takes its row lock, which orders concurrent senders; the second inserts
// the message and moves the reader's mark. A failure rolls both back.
func (s *Service) insertPostgres(ctx context.Context, row *messageRow, reader string, cr *chatAtInsert) error {
	sqlDB, err := s.db.DB.DB()
	if err != nil {
		return err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var seq []int64
	err = conn.Raw(func(dc any) error {
		pc, ok := dc.(interface{ Conn() *pgx.Conn })
		if !ok {
			return fmt.Errorf("insert message: driver connection %T is not pgx", dc)
		}
		b := &pgx.Batch{}
		b.Queue("UPDATE chats SET last_seq = last_seq + 1, last_message_at = $1, updated_at = $1 WHERE id = $2 RETURNING kind, settings_ct, key_id",
			row.CreatedAt, row.ChatID)
		b.Queue(`WITH m AS (
				INSERT INTO messages (id, chat_id, seq, author_id, author_kind, client_id, content_ct, key_id, status, created_at,
					requested_by, model, provider)
				SELECT $1, c.id, c.last_seq, $3, $4, $5, $6, $7, $8, $9, $11, $12, $13 FROM chats c WHERE c.id = $2
				RETURNING seq
			), u AS (
				UPDATE chat_members SET last_read_seq = (SELECT seq FROM m)
				WHERE chat_id = $2 AND user_id::text = $10 AND EXISTS (SELECT 1 FROM m)
			)
			SELECT seq FROM m`,
			row.ID, row.ChatID, row.AuthorID, row.AuthorKind, row.ClientID, row.ContentCt, row.KeyID, row.Status,
			row.CreatedAt, reader, row.RequestedBy, row.Model, row.Provider)
		br := pc.Conn().SendBatch(ctx, b)
		defer br.Close()
		chatRows, err := br.Query()
		if err != nil {
			return err
		}
		for chatRows.Next() {
			if err := chatRows.Scan(&cr.Kind, &cr.SettingsCt, &cr.KeyID); err != nil {
				chatRows.Close()
				return err
			}
		}
		chatRows.Close()
		if err := chatRows.Err(); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var n int64
			if err := rows.Scan(&n); err != nil {
				return err
			}
			seq = append(seq, n)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return br.Close()
	})
	if err != nil {
		return err
	}
	if len(seq) == 0 {
		return notFound()
	}
	row.Seq = seq[0]
	return nil
}

func (s *Service) byClientID(ctx context.Context, chatID, userID, clientID, content string) (*Message, error) {
	var prev messageRow
	err := s.db.WithContext(ctx).Where("chat_id = ? AND author_id = ? AND client_id = ?", chatID, userID, clientID).Limit(1).Find(&prev).Error
	if err != nil {
		return nil, fmt.Errorf("find by client_id: %w", err)
	}
	if prev.ID == "" {
		return nil, nil
	}
	m, err := s.openMessage(&prev)
	if err != nil {
		return nil, err
	}
	if m.Content != content {
		return nil, &apperr.Error{Code: apperr.CodeIdempotency, Field: "client_id",
			Message: "A different message was already sent with this client_id."}
	}
	return m, nil
}

func (s *Service) checkContent(content string) error {
	if strings.TrimSpace(content) == "" {
		return apperr.Invalid("content", "Message is empty.")
	}
	if len(content) > s.opt.MaxMessageBytes {
		return apperr.Invalid("content", "Message is longer than %d bytes.", s.opt.MaxMessageBytes)
	}
	if !utf8.ValidString(content) {
		return apperr.Invalid("content", "Message must be valid UTF-8 text.")
	}
	return nil
}

// Page asks for part of a chat's history by seq. With After set, messages
// after it come oldest first; otherwise messages before Before (or the
// newest) come newest first.
type Page struct {
	Before int64
	After  int64
	// FromAfter: After was given, even as 0 — oldest first from it (After
	// 0 alone cannot say "from the start").
	FromAfter bool
	Since     time.Time // with After unset: messages created after it, oldest first
	Limit     int
}

// History returns a page of messages and whether there are more beyond it.
func (s *Service) History(ctx context.Context, userID, chatID string, p Page) ([]*Message, bool, error) {
	if _, err := s.Members(ctx, userID, chatID); err != nil {
		return nil, false, err
	}
	if p.Limit <= 0 {
		p.Limit = 50
	}
	if p.Limit > 200 {
		p.Limit = 200
	}
	if p.Before < 0 || p.After < 0 {
		return nil, false, apperr.Invalid("before", "before and after must be positive seq numbers.")
	}
	q := s.db.WithContext(ctx).Where("chat_id = ?", chatID).Limit(p.Limit + 1)
	switch {
	case p.After > 0 || p.FromAfter:
		q = q.Where("seq > ?", p.After).Order("seq ASC")
		if p.Before > 0 {
			q = q.Where("seq < ?", p.Before)
		}
	case !p.Since.IsZero():
		// UTC: SQLite compares times as text, so the zone must match the stored one.
		q = q.Where("created_at > ?", p.Since.UTC()).Order("seq ASC")
	case p.Before > 0:
		q = q.Where("seq < ?", p.Before).Order("seq DESC")
	default:
		q = q.Order("seq DESC")
	}
	var rows []messageRow
	if err := q.Find(&rows).Error; err != nil {
		return nil, false, fmt.Errorf("history: %w", err)
	}
	more := len(rows) > p.Limit
	if more {
		rows = rows[:p.Limit]
	}
	out := make([]*Message, len(rows))
	for i := range rows {
		m, err := s.openMessage(&rows[i])
		if err != nil {
			return nil, false, err
		}
		out[i] = m
	}
	return out, more, nil
}

func (s *Service) openMessage(r *messageRow) (*Message, error) {
	pt, err := s.sealer.Open(r.ContentCt, r.KeyID, "message", r.ID, r.ChatID)
	if err != nil {
		return nil, fmt.Errorf("open message %s: %w", r.ID, err)
	}
	m := &Message{ID: r.ID, ChatID: r.ChatID, Seq: r.Seq, AuthorKind: r.AuthorKind, Content: string(pt),
		Status: r.Status, CreatedAt: r.CreatedAt, EditedAt: r.EditedAt}
	switch {
	case r.AuthorKind != AuthorUser:
		m.Author = r.AuthorKind
	case r.AuthorID != nil:
		m.Author = *r.AuthorID
	default:
		m.Author = "deleted"
	}
	if r.ClientID != nil {
		m.ClientID = *r.ClientID
	}
	if r.Model != nil {
		m.Model = *r.Model
	}
	return m, nil
}
