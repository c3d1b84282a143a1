package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations
var migrationFiles embed.FS

// migrationLockID is the PostgreSQL advisory lock key that serializes
// migrations when several replicas start at once ("aichat" in ASCII).
const migrationLockID = 0x61696368617400

// Migration is one numbered schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the dialect's migrations in version order.
func Migrations(d Dialect) ([]Migration, error) {
	dir := path.Join("migrations", string(d))
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("migration %s: want NNNN_name.sql", name)
		}
		b, err := migrationFiles.ReadFile(path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(name, ".sql"), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: versions must run 1, 2, 3... without gaps", m.Name)
		}
	}
	return out, nil
}

// Migrate applies every migration not yet applied, each in its own
// transaction, and returns how many it applied. Concurrent callers (replicas
// starting together) are serialized: on PostgreSQL by an advisory lock held
// on one connection, on SQLite by the database write lock (BEGIN IMMEDIATE).
func (db *DB) Migrate(ctx context.Context, log *slog.Logger) (int, error) {
	migs, err := Migrations(db.Dialect)
	if err != nil {
		return 0, err
	}
	sqlDB, err := db.DB.DB()
	if err != nil {
		return 0, err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()

	if db.Dialect == Postgres {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrationLockID); err != nil {
			return 0, fmt.Errorf("take migration lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLockID)
	}
	applied := 0
	for _, m := range migs {
		done, err := db.applyOne(ctx, conn, m)
		if err != nil {
			return applied, fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if done {
			applied++
			log.Info("migration applied", "version", m.Version, "name", m.Name)
		}
	}
	return applied, nil
}

// applyOne runs m unless it is already recorded, checking inside the same
// transaction that records it so two racing SQLite processes cannot both run it.
func (db *DB) applyOne(ctx context.Context, conn *sql.Conn, m Migration) (bool, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return false, err
	}
	var n int
	q := "SELECT count(*) FROM schema_migrations WHERE version = " + db.placeholder(1)
	if err := tx.QueryRowContext(ctx, q, m.Version).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, err
	}
	ins := fmt.Sprintf("INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
		db.placeholder(1), db.placeholder(2), db.placeholder(3))
	if _, err := tx.ExecContext(ctx, ins, m.Version, m.Name, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// SchemaVersion returns the highest applied migration, 0 for an empty database.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := db.WithContext(ctx).Raw("SELECT max(version) FROM schema_migrations").Scan(&v).Error
	if err != nil {
		return 0, err
	}
	return int(v.Int64), nil
}

func (db *DB) placeholder(i int) string {
	if db.Dialect == Postgres {
		return "$" + strconv.Itoa(i)
	}
	return "?"
}
