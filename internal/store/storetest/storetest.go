// Package storetest gives tests a fresh, empty database on every engine
// aichat supports: SQLite always, and PostgreSQL when
// AICHAT_TEST_POSTGRES_URL is set. With CI=true a missing PostgreSQL fails the
// test instead of skipping it, so CI can never pass on SQLite alone.
package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aichat/aichat/internal/secrets"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for schema set-up
)

// Engine is one database a test runs against.
type Engine struct {
	Name string // "sqlite" or "postgres"
	URL  string // a fresh, empty database for this test
}

// Each runs fn as a subtest once per available engine, each with its own
// empty database that is removed when the subtest ends.
func Each(t *testing.T, fn func(t *testing.T, e Engine)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// SQLite returns a fresh SQLite database file in the test's temp folder.
func SQLite(t testing.TB) Engine {
	t.Helper()
	return Engine{Name: "sqlite", URL: "sqlite:" + filepath.Join(t.TempDir(), "aichat.db")}
}

// Postgres returns a URL to a fresh schema in the test PostgreSQL database;
// the schema is dropped when the test ends. Without AICHAT_TEST_POSTGRES_URL
// the test is skipped, or fails when CI=true.
func Postgres(t testing.TB) Engine {
	t.Helper()
	base := os.Getenv("AICHAT_TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("AICHAT_TEST_POSTGRES_URL is not set but CI=true: PostgreSQL tests must run in CI")
		}
		t.Skip("PostgreSQL tests skipped: set AICHAT_TEST_POSTGRES_URL=postgres://... to run them")
	}
	schema := "t_" + secrets.NewID() + secrets.NewID()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open %s: %v", base, err)
	}
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema (is PostgreSQL running at AICHAT_TEST_POSTGRES_URL?): %v", err)
	}
	t.Cleanup(func() {
		admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	})
	return Engine{Name: "postgres", URL: withSearchPath(t, base, schema)}
}

func withSearchPath(t testing.TB, base, schema string) string {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("AICHAT_TEST_POSTGRES_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Dump returns every value of every user table as text, for tests that
// prove no secret reaches the database in the clear.
func Dump(t testing.TB, db *sql.DB, dialect string) string {
	t.Helper()
	var tables []string
	q := "SELECT name FROM sqlite_master WHERE type = 'table'"
	if dialect == "postgres" {
		q = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
	}
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	var b strings.Builder
	for _, tbl := range tables {
		r, err := db.Query("SELECT * FROM " + tbl)
		if err != nil {
			t.Fatalf("dump %s: %v", tbl, err)
		}
		cols, _ := r.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for r.Next() {
			if err := r.Scan(ptrs...); err != nil {
				t.Fatalf("dump %s: %v", tbl, err)
			}
			fmt.Fprintf(&b, "%s:", tbl)
			for _, v := range vals {
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprintf(&b, " %v", v)
			}
			b.WriteByte('\n')
		}
		r.Close()
	}
	return b.String()
}
