package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// SQLite in WAL mode copies the log back into the database file at a
// checkpoint. By default the commit that takes the log past 1,000 pages
// runs it, while it still holds the one write lock: that commit (a
// person's message, as likely as any) then takes 10–20 ms instead of one,
// and every writer queued behind it waits as long; under a steady load of
// answers it happened about once a second. Here no commit checkpoints
// (wal_autocheckpoint(0) in the DSN); a goroutine the DB owns does, in
// two steps:
//
//  1. Every checkpointEvery, once the log holds passivePages, a PASSIVE
//     checkpoint on a connection of its own, beside the writers: it
//     copies what the log holds and syncs the database file, the slow
//     part, while writers go on appending. A shorter log is left alone:
//     once a checkpoint has copied all of the log, the next writer starts
//     it over, and SQLite syncs the new log header inside that writer's
//     commit (5–15 ms on this project's machine). Checkpointing a short
//     log twice a second put that sync into one commit in six at a light
//     load (send → model request p99 ~10 ms at 10 answers streaming).
//  2. The log only starts over from its beginning once a checkpoint has
//     copied all of it, which a checkpoint running beside writers never
//     does under a steady load: the log would grow without end. So when
//     it holds more than restartPages, the goroutine takes the write gate
//     (writers of this process wait) and checkpoints again: only the
//     pages appended since step 1 are left to copy, and the next writer
//     starts the log over.

// checkpointEvery is how often the log is copied back.
const checkpointEvery = 500 * time.Millisecond

// passivePages is the log size (pages of 4 KiB) from which a checkpoint
// runs: 16 MiB, so the log starts over (and a commit pays for the sync of
// its header) once per 16 MiB written, not twice a second.
var passivePages = pages(4000)

// restartPages is the log size (pages of 4 KiB) past which a checkpoint
// finishes behind the write gate so the log starts over: 64 MiB (tests
// lower it). That pass holds the writers for as long as it takes to sync
// the database file (~15 ms measured here, however little is left to
// copy), so it should be rare: every ~10 s at 200 answers streaming.
var restartPages = pages(16000)

// pages is a threshold tests change while a checkpointer runs.
func pages(n int64) *atomic.Int64 {
	var p atomic.Int64
	p.Store(n)
	return &p
}

// checkpointer runs until ctx ends, then closes done. It keeps a
// connection of its own: holding the write gate, it must not wait for the
// pool, whose connections may all belong to writers waiting for the gate.
func checkpointer(ctx context.Context, db *sql.DB, conn *sql.Conn, gate *writeGate, wal *walIndex, log *slog.Logger, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, ok := wal.frames(); ok && int64(n) < passivePages.Load() {
			continue
		}
		var err error
		if conn == nil {
			conn, err = db.Conn(ctx) // not holding the gate: waiting here is safe
		}
		if err == nil {
			var logPages int
			logPages, err = checkpoint(ctx, conn)
			if err == nil && int64(logPages) > restartPages.Load() {
				if err = gate.acquire(ctx); err == nil {
					_, err = checkpoint(ctx, conn)
					gate.release()
				}
			}
		}
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			log.Warn("sqlite checkpoint failed", "err", err)
			failing = true
		case err == nil && failing:
			log.Info("sqlite checkpoint works again")
			failing = false
		}
		if err != nil && conn != nil {
			conn.Close() // a fresh one next time
			conn = nil
		}
	}
}

// checkpoint runs a PASSIVE checkpoint and returns how many pages the log
// holds. It is a query, not an Exec, so the write gate does not hold it.
func checkpoint(ctx context.Context, conn *sql.Conn) (logPages int, err error) {
	var busy, copied int
	err = conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logPages, &copied)
	return logPages, err
}

// walIndex reads how many frames the log holds from the wal-index header
// at the start of the database's -shm file (SQLite's own format, in native
// byte order: mxFrame at byte 16; https://www.sqlite.org/walformat.html).
// Reading it takes no lock and starts no transaction; a value torn by a
// concurrent commit only moves a checkpoint by a tick.
//
// It opens the file once and keeps it open until close, which DB.Close
// calls after every connection is closed: closing any descriptor of a file
// drops every POSIX lock the process holds on it, SQLite's locks on the
// -shm among them, and those keep another process (aichat migrate, admin,
// a backup) from resetting the index or writing beside this one.
type walIndex struct {
	path string // the -shm file
	mu   sync.Mutex
	f    *os.File
}

// frames returns the log's length; ok is false when it cannot be read.
func (w *walIndex) frames() (n int, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		f, err := os.Open(w.path)
		if err != nil {
			return 0, false
		}
		w.f = f
	}
	var hdr [20]byte
	if _, err := w.f.ReadAt(hdr[:], 0); err != nil {
		return 0, false
	}
	if binary.NativeEndian.Uint32(hdr[0:4]) != walIndexVersion {
		return 0, false
	}
	return int(binary.NativeEndian.Uint32(hdr[16:20])), true
}

// close closes the file; call it only once no connection is open.
func (w *walIndex) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

// walIndexVersion is the wal-index header's iVersion (3007000 since SQLite
// 3.7.0); another value means a format walFrames does not know.
const walIndexVersion = 3007000
