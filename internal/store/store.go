// Package store opens aichat's database (SQLite or PostgreSQL, chosen by the
// URL), applies the versioned schema migrations, and classifies driver errors.
// Services own their GORM queries; this package owns only the connection, the
// schema and what differs between the two engines.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
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
		g, err := gorm.Open(sqlite.Open(sqliteDSN(path)), gcfg)
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		sqlDB, err := g.DB()
		if err != nil {
			return nil, err
		}
		// WAL lets readers run beside the one writer; a handful of connections
		// is plenty, since SQLite serializes writes anyway.
		sqlDB.SetMaxOpenConns(8)
		sqlDB.SetMaxIdleConns(8)
		db = &DB{DB: g, Dialect: SQLite, Where: path}
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
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// Not _time_format: glebarez/go-sqlite v1.21 returns early after it and
	// silently ignores _txlock (TestSQLiteWritersSerialize catches that).
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
	sqlDB, err := db.DB.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
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
