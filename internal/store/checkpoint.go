package store

import (
	"context"
	"database/sql"
	"log/slog"
	"time"
)

// SQLite in WAL mode copies the log back into the database file at a
// checkpoint. By default the commit that takes the log past 1,000 pages
// runs it, while it still holds the one write lock: that commit (a
// person's message, as likely as any) then takes 10–20 ms instead of one,
// and every writer queued behind it waits as long; under a steady load of
// answers it happened about once a second. Here no commit checkpoints
// (wal_autocheckpoint(0) in the DSN): a goroutine the DB owns runs a
// PASSIVE checkpoint every checkpointEvery on a connection of its own,
// which needs no write lock, so writers go on meanwhile.

// checkpointEvery is how often the log is copied back; at the heaviest
// load measured (~1,500 pages a second) that keeps it around the 1,000
// pages SQLite's default allows.
const checkpointEvery = 500 * time.Millisecond

// checkpointer runs until ctx ends, then closes done.
func checkpointer(ctx context.Context, db *sql.DB, log *slog.Logger, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A query, not an Exec: the write gate lets it run beside a writer.
		var busy, logPages, copied int
		err := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logPages, &copied)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			log.Warn("sqlite checkpoint failed", "err", err)
			failing = true
		case err == nil && failing:
			log.Info("sqlite checkpoint works again")
			failing = false
		}
	}
}
