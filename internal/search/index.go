package search

import (
	"cmp"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aichat/aichat/internal/chat"
	"github.com/aichat/aichat/internal/seal"
	"github.com/aichat/aichat/internal/secrets"
	"github.com/aichat/aichat/internal/store"
	"gorm.io/gorm"
)

// Bits is how much of a token's keyed hash is stored: 12 bits, 4,096
// values per chat, so every value stands for many words once a chat has a
// few thousand distinct ones (docs/security.md, "Search").
const Bits = 12

// Options configure a Service.
type Options struct {
	Log *slog.Logger
	// QueueSize is how many messages may wait to be indexed; past it,
	// indexing runs on the caller (default 4096).
	QueueSize int
	// Reload reads the index keyring again from where it came from (the
	// data folder's key file); nil when the keys are fixed (from
	// AICHAT_INDEX_KEYS). A key the database names and this process
	// lacks is looked for there.
	Reload func() (secrets.Keyring, error)
	// Stem: index and search words stemmed (English and Russian by
	// script). An index written with the other setting is rebuilt in the
	// background, as after a key rotation; every instance must agree.
	Stem bool
}

// Service indexes messages as they are written and answers searches.
// It implements chat.Events (new messages) and hears finished answers
// through AnswerDone.
type Service struct {
	db     *store.DB
	sealer *seal.Sealer
	log    *slog.Logger

	keysMu     sync.Mutex
	keys       secrets.Keyring
	reload     func() (secrets.Keyring, error)
	lastReload time.Time
	cur        atomic.Pointer[keyVersion] // as last read from the database

	owner string     // this process's name on a rebuild lease
	sql   statements // the index's writes in db's dialect
	stem  bool       // Options.Stem
	// waiting is how many other writers of this process wait for the
	// database's one writer (store.DB.WritersWaiting; tests replace it).
	waiting func() int

	queue chan job
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

type job struct {
	chatID, messageID, text string
	replace                 bool          // the message may already have tokens
	flushed                 chan struct{} // a Flush marker, nothing to index
}

// New returns a Service over db, opening messages with sealer and hashing
// words with the keys of index: the database records which of them is
// current (the first of index on a database that has none recorded). It
// starts the indexing goroutine; Close stops it.
func New(db *store.DB, sealer *seal.Sealer, index secrets.Keyring, opt Options) (*Service, error) {
	if err := index.Validate(); err != nil {
		return nil, fmt.Errorf("search: index keys: %w", err)
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.QueueSize <= 0 {
		opt.QueueSize = 4096
	}
	s := &Service{db: db, sealer: sealer, keys: index, reload: opt.Reload, log: opt.Log, owner: secrets.NewID() + secrets.NewID(), stem: opt.Stem,
		queue: make(chan job, opt.QueueSize), stop: make(chan struct{}), done: make(chan struct{})}
	s.waiting = db.WritersWaiting
	s.sql = sqliteStatements
	if db.Dialect == store.Postgres {
		s.sql = postgresStatements
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.bootstrap(ctx, index.Current()); err != nil {
		return nil, err
	}
	go s.run()
	return s, nil
}

// Close indexes what is queued and stops the indexing goroutine.
func (s *Service) Close() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

// chatKey derives a chat's index key from an index key (root): the same
// word hashes differently in every chat, so index values cannot be
// compared across chats, and differently under every index key. A
// stemmed index has keys of its own: during the rebuild after switching
// stemming, a word's values in the two versions cannot be linked.
func chatKey(root []byte, chatID string, stemmed bool) []byte {
	info := "aichat search index v1\x00"
	if stemmed {
		info = "aichat search index v1 stemmed\x00"
	}
	k, err := hkdf.Key(sha256.New, root, nil, info+chatID, 32)
	if err != nil {
		panic(err) // only for lengths HKDF cannot give; 32 always works
	}
	return k
}

// hasher hashes tokens under one chat's key.
type hasher struct {
	mac hash.Hash
	buf [sha256.Size]byte
}

func newHasher(root []byte, chatID string, stemmed bool) *hasher {
	return &hasher{mac: hmac.New(sha256.New, chatKey(root, chatID, stemmed))}
}

func (h *hasher) sum(token string) int {
	h.mac.Reset()
	h.mac.Write([]byte(token))
	b := h.mac.Sum(h.buf[:0])
	return int(binary.BigEndian.Uint16(b) >> (16 - Bits))
}

// Values returns the distinct index values of text's words in chatID
// under the current index key, in first-seen order.
func (s *Service) Values(chatID, text string) []int {
	cur := s.cur.Load()
	root, ok := s.secret(cur.KeyID)
	if !ok {
		return nil
	}
	return values(root, chatID, text, cur.Stemmed)
}

func values(root []byte, chatID, text string, stemmed bool) []int {
	h := newHasher(root, chatID, stemmed)
	var seen [1 << Bits]bool
	var out []int
	for _, t := range tokenize(text, stemmed) {
		v := h.sum(t.Text)
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// MessageCreated queues a person's new message for indexing. Assistant
// answers start empty; AnswerDone indexes them when they end.
func (s *Service) MessageCreated(m *chat.Message, _ []string, _ []chat.UnreadChange) {
	if m.AuthorKind != chat.AuthorUser || m.Content == "" {
		return
	}
	s.enqueue(job{chatID: m.ChatID, messageID: m.ID, text: m.Content})
}

// UnreadChanged is part of chat.Events; reads change no index.
func (s *Service) UnreadChanged(...chat.UnreadChange) {}

// ChatChanged is part of chat.Events; membership is checked by every
// search, and a deleted chat's tokens go with it (ON DELETE CASCADE).
func (s *Service) ChatChanged(string, []string, []string) {}

// AnswerDone queues an assistant answer that ended with text, replacing
// whatever the message had indexed before (a regenerated answer).
func (s *Service) AnswerDone(chatID, messageID, text string) {
	s.enqueue(job{chatID: chatID, messageID: messageID, text: text, replace: true})
}

// enqueue never drops a message: with the queue full, the caller indexes
// it itself.
func (s *Service) enqueue(j job) {
	select {
	case s.queue <- j:
	default:
		s.write(context.Background(), []job{j})
	}
}

// Flush waits until everything queued before it is indexed.
func (s *Service) Flush(ctx context.Context) error {
	ch := make(chan struct{})
	select {
	case s.queue <- job{flushed: ch}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return nil
	}
}

// maxBatch is how many messages one transaction indexes.
const maxBatch = 128

func (s *Service) run() {
	defer close(s.done)
	batch := make([]job, 0, maxBatch)
	for {
		var j job
		select {
		case j = <-s.queue:
		case <-s.stop:
			// Index what is left, then stop.
			for {
				select {
				case j := <-s.queue:
					batch = s.add(batch, j)
				default:
					s.write(context.Background(), batch)
					return
				}
			}
		}
		batch = s.add(batch, j)
		// Take what else is waiting, up to a batch, without waiting.
	more:
		for len(batch) < maxBatch {
			select {
			case j := <-s.queue:
				batch = s.add(batch, j)
			default:
				break more
			}
		}
		s.write(context.Background(), batch)
		batch = batch[:0]
	}
}

// add appends j to batch; a flush marker writes the batch first and then
// signals.
func (s *Service) add(batch []job, j job) []job {
	if j.flushed == nil {
		return append(batch, j)
	}
	s.write(context.Background(), batch)
	close(j.flushed)
	return batch[:0]
}

// write stores the tokens of jobs, as many as it can in one transaction:
// when another writer of this process waits for SQLite's one writer (a
// person's message), it commits after the message at hand and goes on in
// a new transaction behind it, so a batch of long answers never holds up
// a send. If a transaction fails (a message deleted meanwhile), each of
// its jobs is tried alone so one bad message does not lose the others.
func (s *Service) write(ctx context.Context, jobs []job) {
	for len(jobs) > 0 {
		n := len(jobs)
		err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			cur, err := s.currentVersion(tx, true)
			if err != nil {
				return err
			}
			root, ok := s.secret(cur.KeyID)
			if !ok {
				return fmt.Errorf("%w: %q (version %d)", errNoKey, cur.KeyID, cur.Version)
			}
			c := counts{}
			for i := range jobs {
				if err := s.writeJobs(tx, jobs[i:i+1], cur, root, c); err != nil {
					return err
				}
				if i+1 < len(jobs) && s.waiting() > 0 {
					n = i + 1
					break
				}
			}
			return applyCounts(tx, s.sql, c)
		})
		done := jobs[:n]
		jobs = jobs[n:]
		switch {
		case errors.Is(err, errNoKey):
			// Not written: the next start with the key indexes them (Backfill).
			s.log.Error("search: cannot index messages without the current index key", "messages", len(done)+len(jobs), "err", err)
			return
		case err == nil:
		case len(done) == 1:
			if !isGone(err) {
				s.log.Error("search: index message", "message_id", done[0].messageID, "err", err)
			}
		default:
			for _, j := range done {
				s.write(ctx, []job{j})
			}
		}
	}
}

// isGone: the message or chat was deleted before its tokens were written.
func isGone(err error) bool {
	if errors.Is(err, gorm.ErrForeignKeyViolated) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "FOREIGN KEY constraint failed") || strings.Contains(msg, "SQLSTATE 23503")
}

// writeJobs writes the jobs' tokens as rows of version kv, hashed under
// root (its key) and stemmed if it is. A replaced message loses its rows of every
// version first, so a message always has rows of one version only. The
// rows it deletes and inserts are added to c, which the caller applies
// in the same transaction (applyCounts).
func (s *Service) writeJobs(tx *gorm.DB, jobs []job, kv keyVersion, root []byte, c counts) error {
	version := kv.Version
	for _, j := range jobs {
		if j.replace {
			var gone []countKey
			if err := tx.Raw("DELETE FROM message_tokens WHERE message_id = ? RETURNING chat_id, key_version, token", j.messageID).
				Scan(&gone).Error; err != nil {
				return err
			}
			for _, k := range gone {
				c[k]--
			}
		}
		vals := values(root, j.chatID, j.text, kv.Stemmed)
		if len(vals) == 0 {
			continue
		}
		// Every value counts as added. ON CONFLICT skips rows a message
		// already has (a backfill racing the queue): its counters then
		// run high, which only changes which value a search walks first;
		// a counter never reaches 0 while the value has rows.
		if err := tx.Exec(s.sql.insertTokens, j.chatID, version, j.messageID, jsonInts(vals)).Error; err != nil {
			return err
		}
		for _, v := range vals {
			c[countKey{ChatID: j.chatID, KeyVersion: version, Token: v}]++
		}
	}
	return nil
}

// countKey names a row of message_token_counts: how many index rows a
// value has in a chat under a key version.
type countKey struct {
	ChatID     string
	KeyVersion int
	Token      int
}

// counts are changes to message_token_counts gathered over a transaction.
// Many messages of one chat change the same few counters: adding them up
// per batch makes one update of each counter per transaction.
type counts map[countKey]int

// statements are the index's writes in a database's dialect. Each takes
// its rows as one JSON array, so the statement's text is the same for every
// message: a multi-row VALUES list was parsed afresh for every message
// (the SQLite driver of the time compiled each statement on every call),
// 11 % of the server's CPU when answers ended. On SQLite, OR IGNORE (with
// the deferred references of migration 0012) spares each statement a
// statement journal (see that migration), and an INSERT ... SELECT wants a
// WHERE before ON CONFLICT; PostgreSQL inserts the counters in key order
// (WITH ORDINALITY), so writers lock them in the same order.
type statements struct {
	insertTokens string // chat, version, message, JSON array of values
	addCounts    string // JSON array of [chat, version, value, delta]
	readCounts   string // JSON array of [chat, version, value] → chat, version, value, n
}

var sqliteStatements = statements{
	insertTokens: `INSERT OR IGNORE INTO message_tokens (chat_id, key_version, message_id, token)
		SELECT ?, ?, ?, value FROM json_each(?)`,
	addCounts: `INSERT OR IGNORE INTO message_token_counts (chat_id, key_version, token, n)
		SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]')
		FROM json_each(?) WHERE true
		ON CONFLICT (chat_id, key_version, token) DO UPDATE SET n = message_token_counts.n + excluded.n`,
	// CROSS JOIN keeps the array outside: each element is one look-up on
	// the primary key.
	readCounts: `SELECT c.chat_id, c.key_version, c.token, c.n FROM json_each(?) AS j
		CROSS JOIN message_token_counts AS c
		WHERE c.chat_id = json_extract(j.value, '$[0]') AND c.key_version = json_extract(j.value, '$[1]')
			AND c.token = json_extract(j.value, '$[2]')`,
}

var postgresStatements = statements{
	insertTokens: `INSERT INTO message_tokens (chat_id, key_version, message_id, token)
		SELECT ?::uuid, ?::smallint, ?::uuid, value::smallint FROM json_array_elements_text(?::json)
		ON CONFLICT DO NOTHING`,
	addCounts: `INSERT INTO message_token_counts (chat_id, key_version, token, n)
		SELECT (e.value->>0)::uuid, (e.value->>1)::smallint, (e.value->>2)::smallint, (e.value->>3)::int
		FROM json_array_elements(?::json) WITH ORDINALITY AS e(value, i) ORDER BY e.i
		ON CONFLICT (chat_id, key_version, token) DO UPDATE SET n = message_token_counts.n + excluded.n`,
	readCounts: `SELECT c.chat_id::text, c.key_version, c.token, c.n FROM json_array_elements(?::json) AS e
		JOIN message_token_counts AS c ON c.chat_id = (e.value->>0)::uuid
			AND c.key_version = (e.value->>1)::smallint AND c.token = (e.value->>2)::smallint`,
}

// jsonInts is vals as a JSON array.
func jsonInts(vals []int) string {
	b := make([]byte, 0, 6*len(vals)+2)
	b = append(b, '[')
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(v), 10)
	}
	return string(append(b, ']'))
}

// applyCounts adds c to message_token_counts in tx, in key order: writers
// that change the same counters lock them in the same order, so they
// wait for each other instead of deadlocking.
func applyCounts(tx *gorm.DB, q statements, c counts) error {
	keys := make([]countKey, 0, len(c))
	for k, d := range c {
		if d != 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b countKey) int {
		return cmp.Or(cmp.Compare(a.ChatID, b.ChatID), cmp.Compare(a.KeyVersion, b.KeyVersion), cmp.Compare(a.Token, b.Token))
	})
	if len(keys) == 0 {
		return nil
	}
	b := appendCountKeys(make([]byte, 0, 48*len(keys)), keys, c)
	if err := tx.Exec(q.addCounts, string(b)).Error; err != nil {
		return fmt.Errorf("search: token counts: %w", err)
	}
	return nil
}

// appendCountKeys appends keys as a JSON array of [chat, version, value]
// arrays, each with its change in deltas as a fourth element when deltas
// is not nil.
func appendCountKeys(b []byte, keys []countKey, deltas counts) []byte {
	b = append(b, '[')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(append(b, '['), k.ChatID)
		b = strconv.AppendInt(append(b, ','), int64(k.KeyVersion), 10)
		b = strconv.AppendInt(append(b, ','), int64(k.Token), 10)
		if deltas != nil {
			b = strconv.AppendInt(append(b, ','), int64(deltas[k]), 10)
		}
		b = append(b, ']')
	}
	return append(b, ']')
}

// jsonCountKeys is keys as readCounts takes them.
func jsonCountKeys(keys []countKey) string {
	return string(appendCountKeys(make([]byte, 0, 44*len(keys)), keys, nil))
}
