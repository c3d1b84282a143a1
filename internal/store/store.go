// Package store opens aichat's database (SQLite or PostgreSQL, chosen by the
// URL), applies the versioned schema migrations, and classifies driver errors.
// Services own their GORM queries; this package owns only the connection, the
// schema and what differs between the two engines.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/libtnb/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names a database engine.
type Dialect string

// The supported engines.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is an open database: the GORM handle services query through, and the
// engine it talks to.
type DB struct {
	*gorm.DB
	Dialect Dialect
	// Where describes the database for logs without credentials.
	Where string

	gate *writeGate // SQLite: this process's writers queue here (gate.go)
	// stopCheckpoints ends the SQLite checkpointer (checkpoint.go).
	stopCheckpoints func()
	stmts           sync.Map  // query → *sql.Stmt (stmt.go)
	wal             *walIndex // SQLite: the log's length, for the checkpointer
}

// WritersWaiting is how many of this process's transactions wait for
// SQLite's one writer; a long background writer commits early when some
// do. Always 0 on PostgreSQL, whose writers do not exclude each other.
func (db *DB) WritersWaiting() int {
	if db.gate == nil {
		return 0
	}
	return int(db.gate.waiting.Load())
}

// busyTimeout is how long a SQLite writer waits for the write lock before
// failing with "database is locked".
const busyTimeout = 10 * time.Second

// sqliteDriver is the pure-Go SQLite driver modernc.org/sqlite registers.
func sqliteDriver() (driver.Driver, error) {
	db, err := sql.Open(sqlite.DriverName, "")
	if err != nil {
		return nil, fmt.Errorf("sqlite driver: %w", err)
	}
	defer db.Close()
	return db.Driver(), nil
}

// Open connects to databaseURL, or to a SQLite file in dataDir when the URL
// is empty. It does not migrate; call Migrate.
func Open(ctx context.Context, databaseURL, dataDir string, log *slog.Logger) (*DB, error) {
	gcfg := &gorm.Config{
		TranslateError:         true,
		SkipDefaultTransaction: true,
		Logger:                 logger.Discard,
		NowFunc:                func() time.Time { return time.Now().UTC() },
	}
	var db *DB
	switch {
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		g, err := gorm.Open(postgres.Open(databaseURL), gcfg)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		sqlDB, err := g.DB()
		if err != nil {
			return nil, err
		}
		sqlDB.SetMaxOpenConns(25)
		sqlDB.SetMaxIdleConns(25)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
		db = &DB{DB: g, Dialect: Postgres, Where: redactURL(databaseURL)}
	default:
		path := strings.TrimPrefix(databaseURL, "sqlite:")
		if path == "" {
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return nil, fmt.Errorf("create data folder: %w", err)
			}
			path = filepath.Join(dataDir, "aichat.db")
		}
		if err := createPrivate(path); err != nil {
			return nil, err
		}
		dsn := sqliteDSN(path)
		drv, err := sqliteDriver()
		if err != nil {
			return nil, err
		}
		gate := newWriteGate(busyTimeout)
		sqlDB := sql.OpenDB(gatedConnector{drv: drv, dsn: dsn, gate: gate})
		g, err := gorm.Open(&sqlite.Dialector{DSN: dsn, Conn: sqlDB}, gcfg)
		if err != nil {
			sqlDB.Close()
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		// WAL lets readers run beside the one writer; a handful of connections
		// is plenty, since SQLite serializes writes anyway. One more is the
		// checkpointer's own.
		sqlDB.SetMaxOpenConns(9)
		sqlDB.SetMaxIdleConns(9)
		db = &DB{DB: g, Dialect: SQLite, Where: path, gate: gate}
		conn, err := sqlDB.Conn(ctx)
		if err != nil {
			sqlDB.Close()
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		cctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		db.stopCheckpoints = func() { stop(); <-done }
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		db.wal = &walIndex{path: path + "-shm"}
		go checkpointer(cctx, sqlDB, conn, gate, db.wal, log, done)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.Ping(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s: %w", db.Where, err)
	}
	return db, nil
}

// sqliteDSN sets the pragmas every connection needs: WAL for concurrent
// readers, foreign keys (off by default in SQLite), a busy timeout instead of
// instant SQLITE_BUSY, and BEGIN IMMEDIATE so a transaction that reads then
// writes takes the write lock up front and cannot deadlock on the upgrade.
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "synchronous(NORMAL)")
	// Checkpoints run beside the writers, not inside a commit (checkpoint.go).
	q.Add("_pragma", "wal_autocheckpoint(0)")
	// A log that grew during a burst is cut back to 64 MiB when it starts over.
	q.Add("_pragma", "journal_size_limit(67108864)")
	// time.Time as "2006-01-02 15:04:05.999999999-07:00", the text the
	// glebarez driver wrote: without it modernc.org/sqlite writes
	// t.String() ("... +0000 UTC m=+0.02"), which neither equals nor
	// always sorts with the rows already stored. (libtnb/sqlite would add
	// it, but only to a DSN it opens itself, not to our connector's.)
	q.Set("_time_format", "sqlite")
	// Read such text back in UTC as glebarez did (else a "+00:00" value
	// comes back in a nameless fixed zone when the host's zone is not UTC),
	// and write every time in UTC so that the text compares in time order.
	q.Set("_timezone", "UTC")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// createPrivate makes sure the SQLite file exists with mode 0600 before the
// driver creates it with the process umask.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	return f.Close()
}

// Ping reports whether the database answers.
func (db *DB) Ping(ctx context.Context) error {
	sqlDB, err := db.DB.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Close closes every connection.
func (db *DB) Close() error {
	if db.stopCheckpoints != nil {
		db.stopCheckpoints()
	}
	db.closeStmts()
	sqlDB, err := db.DB.DB()
	if err != nil {
		return err
	}
	err = sqlDB.Close()
	if db.wal != nil {
		db.wal.close() // after the connections: see walIndex
	}
	return err
}

// IsUniqueViolation reports whether err is a unique-constraint violation on
// either engine.
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	// Raw SQL paths do not go through GORM's translator.
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || strings.Contains(s, "SQLSTATE 23505")
}

// IsNotFound reports whether err means no row matched.
func IsNotFound(err error) bool { return errors.Is(err, gorm.ErrRecordNotFound) }

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "postgres"
	}
	u.User = nil
	u.RawQuery = ""
	return u.String()
}
