package search

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/aichat/aichat/internal/apperr"
	"github.com/aichat/aichat/internal/chat"
	"github.com/aichat/aichat/internal/store"
	"github.com/google/uuid"
)

// Limits on a search.
const (
	MaxQueryBytes = 512
	MaxWords      = 16
	DefaultLimit  = 20
	MaxLimit      = 50
	// maxScan bounds the candidates one request decrypts; past it the
	// page ends early with a cursor to go on from.
	maxScan = 2000
	// snippetRunes is the longest snippet.
	snippetRunes = 200
)

// Request is one search.
type Request struct {
	UserID string
	Query  string
	ChatID string // optional: only this chat
	Limit  int
	Cursor string // next_cursor of the previous page
}

// Range is a highlighted part of a snippet: [Start, End) in UTF-16 code
// units, the way JavaScript indexes strings.
type Range struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Result is one matching message.
type Result struct {
	ChatID     string    `json:"chat_id"`
	MessageID  string    `json:"message_id"`
	Seq        int64     `json:"seq"`
	Author     string    `json:"author"` // user id, "assistant", "system", or "deleted"
	AuthorKind string    `json:"author_kind"`
	CreatedAt  time.Time `json:"created_at"`
	Snippet    string    `json:"snippet"`
	Highlights []Range   `json:"highlights"`
}

// Page is a page of results, newest first. NextCursor, when set, fetches
// what comes after; a page may hold fewer than the limit and still have
// one (the search stopped after maxScan candidates).
type Page struct {
	Results    []Result `json:"results"`
	NextCursor string   `json:"next_cursor,omitempty"`
}

// Search returns the caller's messages matching r.Query, newest first,
// from the chats they are a member of at the moment of the query.
func (s *Service) Search(ctx context.Context, r Request) (*Page, error) {
	if strings.TrimSpace(r.Query) == "" {
		return nil, apperr.Invalid("q", "Type something to search for.")
	}
	if len(r.Query) > MaxQueryBytes || !utf8.ValidString(r.Query) {
		return nil, apperr.Invalid("q", "A search is at most %d bytes of UTF-8 text.", MaxQueryBytes)
	}
	q := ParseQuery(r.Query)
	if q.Empty() {
		return nil, apperr.Invalid("q", "Search for words or numbers.")
	}
	if len(q.Words) > MaxWords {
		return nil, apperr.Invalid("q", "At most %d words.", MaxWords)
	}
	if r.Limit == 0 {
		r.Limit = DefaultLimit
	}
	if r.Limit < 1 || r.Limit > MaxLimit {
		return nil, apperr.Invalid("limit", "limit must be between 1 and %d.", MaxLimit)
	}
	if r.Cursor != "" && !validID(r.Cursor) {
		return nil, apperr.Invalid("cursor", "cursor is not one this server gave.")
	}
	chats, err := s.chatsOf(ctx, r.UserID, r.ChatID)
	if err != nil {
		return nil, err
	}
	if len(chats) == 0 {
		return &Page{Results: []Result{}}, nil
	}
	// During a rebuild after a key rotation rows have one of several
	// versions (each message all of one): ask for every live one. If the
	// versions changed while searching (a rotation began or a rebuild
	// ended), search again with the new ones, so no message is missed
	// because it moved to a version this search did not ask for.
	live, err := s.liveVersions(ctx)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		page, err := s.search(ctx, r, q, chats, live)
		if err != nil {
			return nil, err
		}
		now, err := s.liveVersions(ctx)
		if err != nil {
			return nil, err
		}
		if slices.Equal(live, now) || attempt == 2 {
			return page, nil
		}
		live = now
	}
}

// search runs r over chats, asking the index for the versions in live.
func (s *Service) search(ctx context.Context, r Request, q Query, chats []string, live []keyVersion) (*Page, error) {
	page := &Page{Results: []Result{}}
	type versionKey struct {
		version int
		stemmed bool
		root    []byte
	}
	var roots []versionKey
	for _, kv := range live {
		root, ok := s.secret(kv.KeyID)
		if !ok {
			s.log.Error("search: this server lacks an index key still in use: results may be missing",
				"key_id", kv.KeyID, "version", kv.Version)
			continue
		}
		roots = append(roots, versionKey{kv.Version, kv.Stemmed, root})
	}
	if len(roots) == 0 {
		return nil, fmt.Errorf("search: none of the index keys in use (%v) is known to this server", live)
	}
	// A version's words are stemmed or not (AICHAT_SEARCH_STEMMING; both
	// kinds are live during the rebuild after switching it): the query
	// is read once per kind, the current version's first, and a candidate
	// is checked against each (a match under either is a result).
	var modes []queryMode
	for _, vk := range roots {
		if !slices.ContainsFunc(modes, func(m queryMode) bool { return m.stemmed == vk.stemmed }) {
			qm := q
			if vk.stemmed {
				qm = parseQuery(r.Query, true)
			}
			// Longest word first: longer words tend to be rarer, which
			// decides the walk when counts do not (equal counts, or
			// countOrder off).
			words := slices.Clone(qm.Words)
			slices.SortStableFunc(words, func(a, b string) int { return len(b) - len(a) })
			modes = append(modes, queryMode{stemmed: vk.stemmed, q: qm, words: words})
		}
	}
	// Each chat has its own key: the query's words hash differently in
	// each (and under each index key).
	cqs := make([]chatQuery, 0, len(chats)*len(roots))
	for _, c := range chats {
		for _, vk := range roots {
			h := newHasher(vk.root, c, vk.stemmed)
			cq := chatQuery{chat: c, version: vk.version}
			words := modes[slices.IndexFunc(modes, func(m queryMode) bool { return m.stemmed == vk.stemmed })].words
			for _, w := range words {
				if v := h.sum(w); !slices.Contains(cq.vals, v) {
					cq.vals = append(cq.vals, v)
				}
			}
			cqs = append(cqs, cq)
		}
	}
	cqs, err := s.rarestFirst(ctx, cqs)
	if err != nil {
		return nil, err
	}
	if len(cqs) == 0 {
		return page, nil
	}
	cursor, scanned := r.Cursor, 0
	batch := max(3*r.Limit, 50)
	for {
		ids, more, err := s.candidates(ctx, r.UserID, cqs, cursor, batch)
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			return page, nil
		}
		msgs, err := s.messages(ctx, ids)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			cursor = id
			scanned++
			m, ok := msgs[id]
			if !ok {
				continue // deleted since
			}
			var res *Result
			for _, qm := range modes {
				if toks := tokenize(m.text, qm.stemmed); qm.q.Match(toks) {
					r := m.result(qm.q, toks)
					res = &r
					break
				}
			}
			if res == nil {
				continue // a coincidence of truncated hashes
			}
			page.Results = append(page.Results, *res)
			if len(page.Results) == r.Limit {
				page.NextCursor = id
				return page, nil
			}
		}
		if !more {
			return page, nil
		}
		if scanned >= maxScan {
			page.NextCursor = cursor
			return page, nil
		}
		// Each statement groups the query's whole buckets: when most
		// candidates were coincidences (a phrase, a word sharing its value
		// with a common one), ask for more at once.
		batch = min(2*batch, 500)
	}
}

// queryMode is a search's query as read for versions that stem words, or
// for those that do not.
type queryMode struct {
	stemmed bool
	q       Query
	words   []string // q.Words, longest first
}

// maxChatsPerStatement bounds the chats one statement searches; a user in
// more is searched in several statements (a variable for tests). During a
// rebuild each chat counts once per index key version.
var maxChatsPerStatement = 100

// chatQuery is a search's index values in one chat under one index key
// version.
type chatQuery struct {
	chat    string
	version int
	vals    []int // distinct
}

// countTriples bounds the counters one statement reads.
const countTriples = 2000

// rarestFirst orders each chat's values by how many index rows they have
// (message_token_counts), rarest first: the rarest drives the walk over
// the index, so a search of words that are each common but rarely
// together reads the fewest rows per hit. A chat where a value has no row
// cannot match and is left out. Each statement asks for exactly the
// (chat, version, value) counters it needs, as one JSON array looked up
// on the primary key: every chat hashes the words to values of its own,
// so "these chats × these values" would read most of each chat's
// counters for a user in many chats.
func (s *Service) rarestFirst(ctx context.Context, cqs []chatQuery) ([]chatQuery, error) {
	if !countOrder {
		return cqs, nil
	}
	n := make(map[countKey]int)
	var keys []countKey
	read := func() error {
		r, err := s.db.WithContext(ctx).Raw(s.sql.readCounts, jsonCountKeys(keys)).Rows()
		if err != nil {
			return fmt.Errorf("search: token counts: %w", err)
		}
		defer r.Close()
		for r.Next() {
			var k countKey
			var c int
			if err := r.Scan(&k.ChatID, &k.KeyVersion, &k.Token, &c); err != nil {
				return fmt.Errorf("search: token counts: %w", err)
			}
			n[k] = c
		}
		keys = keys[:0]
		return r.Err()
	}
	for _, cq := range cqs {
		for _, v := range cq.vals {
			keys = append(keys, countKey{ChatID: cq.chat, KeyVersion: cq.version, Token: v})
			if len(keys) == countTriples {
				if err := read(); err != nil {
					return nil, err
				}
			}
		}
	}
	if len(keys) > 0 {
		if err := read(); err != nil {
			return nil, err
		}
	}
	out := cqs[:0]
	for _, cq := range cqs {
		count := func(v int) int { return n[countKey{ChatID: cq.chat, KeyVersion: cq.version, Token: v}] }
		if slices.ContainsFunc(cq.vals, func(v int) bool { return count(v) <= 0 }) {
			continue
		}
		slices.SortStableFunc(cq.vals, func(a, b int) int { return count(a) - count(b) })
		out = append(out, cq)
	}
	return out, nil
}

// countOrder: walk each chat's rarest value (off only in benchmarks, to
// compare with the walk from the longest word, as before the counts).
var countOrder = true

// chatsOf returns the chats userID is a member of (only chatID when set:
// chat.notFound if they are not in it).
func (s *Service) chatsOf(ctx context.Context, userID, chatID string) ([]string, error) {
	q := s.db.WithContext(ctx).Table("chat_members").Where("user_id = ?", userID)
	if chatID != "" {
		if !validID(chatID) {
			return nil, notFound()
		}
		q = q.Where("chat_id = ?", chatID)
	}
	var ids []string
	if err := q.Order("chat_id").Pluck("chat_id", &ids).Error; err != nil {
		return nil, fmt.Errorf("search: chats: %w", err)
	}
	if chatID != "" && len(ids) == 0 {
		return nil, notFound()
	}
	return ids, nil
}

// candidates returns up to n message ids below cursor, newest first, that
// have every query value of their chat, in chats userID is a member of at
// the moment the statement runs; more reports that there may be others
// past them. Per chat, the statement walks the first (rarest) value's rows
// backwards on the primary key and looks the others up for each, so it
// reads about as many rows as it returns when the words often go
// together, and stops at n.
func (s *Service) candidates(ctx context.Context, userID string, cqs []chatQuery, cursor string, n int) (all []string, more bool, err error) {
	for start := 0; start < len(cqs); start += maxChatsPerStatement {
		ids, full, err := s.candidatesIn(ctx, userID, cqs[start:min(start+maxChatsPerStatement, len(cqs))], cursor, n)
		if err != nil {
			return nil, false, err
		}
		all = append(all, ids...)
		more = more || full
	}
	if len(cqs) > maxChatsPerStatement {
		// Several statements: merge their newest (once each, should a
		// chat's versions have gone to two statements).
		slices.Sort(all)
		all = slices.Compact(all)
		slices.Reverse(all)
		if len(all) > n {
			all, more = all[:n], true
		}
	}
	return all, more, nil
}

func (s *Service) candidatesIn(ctx context.Context, userID string, cqs []chatQuery, cursor string, n int) (ids []string, full bool, err error) {
	var b strings.Builder
	var args []any
	// On PostgreSQL, OFFSET 0 keeps each EXISTS a lookup per row on the
	// primary key: without it the planner turns the EXISTS into a join,
	// and when its statistics are missing or stale (a new table, an index
	// just rebuilt after a key rotation, autovacuum off) it may scan the
	// other value's whole range for every row of the first: 2.5 s instead
	// of 15 ms for three common words in a chat of 10,000 messages.
	// SQLite runs correlated EXISTS per row anyway (and has no bare OFFSET).
	lookup := ")"
	if s.db.Dialect == store.Postgres {
		lookup = " OFFSET 0)"
	}
	// One walk per chat, each in message order (the primary key
	// backwards), merged under one ORDER BY ... LIMIT: the walks are
	// merged lazily, so each chat's stops once the newest n of all chats
	// together are known, instead of finding n in every chat (ten times
	// fewer rows read for a user in ten chats). PostgreSQL does it (a
	// Merge Append over Limits) when each walk is its own ordered, limited
	// subquery; given bare walks it reads them whole and sorts. SQLite does
	// it for bare walks (a co-routine per arm) and allows no other form.
	// UNION ALL: a message has rows of one version at any moment, so no
	// message comes twice (a duplicate is dropped below all the same);
	// UNION would read every walk whole to remove duplicates. (One walk
	// alone needs no subquery, and PostgreSQL allows none in that case.)
	pg := s.db.Dialect == store.Postgres && len(cqs) > 1
	for i, cq := range cqs {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		if pg {
			b.WriteString("(")
		}
		b.WriteString("SELECT t.message_id FROM message_tokens t WHERE t.chat_id = ? AND t.key_version = ? AND t.token = ?")
		args = append(args, cq.chat, cq.version, cq.vals[0])
		if cursor != "" {
			b.WriteString(" AND t.message_id < ?")
			args = append(args, cursor)
		}
		for _, v := range cq.vals[1:] {
			b.WriteString(" AND EXISTS (SELECT 1 FROM message_tokens u WHERE u.chat_id = ? AND u.key_version = ? AND u.token = ? AND u.message_id = t.message_id" + lookup)
			args = append(args, cq.chat, cq.version, v)
		}
		b.WriteString(" AND EXISTS (SELECT 1 FROM chat_members m WHERE m.chat_id = ? AND m.user_id = ?)")
		args = append(args, cq.chat, userID)
		if pg {
			b.WriteString(" ORDER BY t.message_id DESC LIMIT ?)")
			args = append(args, n)
		}
	}
	b.WriteString(" ORDER BY message_id DESC LIMIT ?")
	args = append(args, n)
	if err := s.db.WithContext(ctx).Raw(b.String(), args...).Scan(&ids).Error; err != nil {
		return nil, false, fmt.Errorf("search: candidates: %w", err)
	}
	return slices.Compact(ids), len(ids) == n, nil
}

type found struct {
	id, chatID, author, authorKind string
	seq                            int64
	createdAt                      time.Time
	text                           string
}

// messages reads and decrypts the messages with these ids.
func (s *Service) messages(ctx context.Context, ids []string) (map[string]*found, error) {
	var rows []struct {
		ID         string
		ChatID     string
		Seq        int64
		AuthorID   *string
		AuthorKind string
		ContentCt  []byte
		KeyID      string
		CreatedAt  time.Time
	}
	if err := s.db.WithContext(ctx).Table("messages").
		Select("id, chat_id, seq, author_id, author_kind, content_ct, key_id, created_at").
		Where("id IN ?", ids).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("search: messages: %w", err)
	}
	out := make(map[string]*found, len(rows))
	for _, r := range rows {
		pt, err := s.sealer.Open(r.ContentCt, r.KeyID, "message", r.ID, r.ChatID)
		if err != nil {
			return nil, fmt.Errorf("search: open message %s: %w", r.ID, err)
		}
		f := &found{id: r.ID, chatID: r.ChatID, seq: r.Seq, authorKind: r.AuthorKind,
			createdAt: r.CreatedAt.UTC(), text: string(pt)}
		switch {
		case r.AuthorKind != chat.AuthorUser:
			f.author = r.AuthorKind
		case r.AuthorID != nil:
			f.author = *r.AuthorID
		default:
			f.author = "deleted"
		}
		out[r.ID] = f
	}
	return out, nil
}

func (f *found) result(q Query, toks []Token) Result {
	snippet, hl := Snippet(f.text, q, toks)
	return Result{ChatID: f.chatID, MessageID: f.id, Seq: f.seq, Author: f.author, AuthorKind: f.authorKind,
		CreatedAt: f.createdAt, Snippet: snippet, Highlights: hl}
}

// Snippet cuts up to snippetRunes of text around the first matched word,
// with line breaks as spaces, and returns the ranges of matched words in
// it (UTF-16 code units).
func Snippet(text string, q Query, toks []Token) (string, []Range) {
	want := make(map[string]bool, len(q.Words))
	for _, w := range q.Words {
		want[w] = true
	}
	var hits [][2]int // byte ranges in text
	for _, t := range toks {
		if want[t.Text] && (len(hits) == 0 || hits[len(hits)-1][0] != t.Start) {
			hits = append(hits, [2]int{t.Start, t.End})
		}
	}
	from, to := 0, len(text)
	if utf8.RuneCountInString(text) > snippetRunes {
		first := 0
		if len(hits) > 0 {
			first = hits[0][0]
		}
		// Start about a quarter of the snippet before the first hit.
		from = first
		for i := 0; i < snippetRunes/4 && from > 0; i++ {
			_, size := utf8.DecodeLastRuneInString(text[:from])
			from -= size
		}
		to = from
		for i := 0; i < snippetRunes && to < len(text); i++ {
			_, size := utf8.DecodeRuneInString(text[to:])
			to += size
		}
	}
	var b strings.Builder
	if from > 0 {
		b.WriteString("…")
	}
	prefix := b.Len()
	b.WriteString(strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, text[from:to]))
	if to < len(text) {
		b.WriteString("…")
	}
	out := b.String()
	ranges := []Range{}
	for _, h := range hits {
		if h[0] < from || h[1] > to {
			continue
		}
		start := prefix + h[0] - from
		end := prefix + h[1] - from
		ranges = append(ranges, Range{Start: utf16Len(out[:start]), End: utf16Len(out[:end])})
	}
	return out, ranges
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

func notFound() error { return apperr.New(apperr.CodeChatNotFound, "Chat not found.") }

func validID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}
