package store_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/aichat/aichat/internal/store"
	"github.com/aichat/aichat/internal/store/storetest"
)

func TestMigrationsMatchAcrossDialects(t *testing.T) {
	lite, err := store.Migrations(store.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := store.Migrations(store.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) != len(pg) {
		t.Fatalf("sqlite has %d migrations, postgres %d: every schema change needs both", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].Name != pg[i].Name {
			t.Errorf("migration %d: sqlite %q, postgres %q", i+1, lite[i].Name, pg[i].Name)
		}
	}
}

// TestMigrateConcurrently starts several "replicas" migrating one database at
// the same moment: every migration must run exactly once and all must succeed.
func TestMigrateConcurrently(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		ctx := context.Background()
		const replicas = 4
		dbs := make([]*store.DB, replicas)
		for i := range dbs {
			db, err := store.Open(ctx, e.URL, "", log)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			dbs[i] = db
		}
		var wg sync.WaitGroup
		applied := make([]int, replicas)
		errs := make([]error, replicas)
		for i, db := range dbs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				applied[i], errs[i] = db.Migrate(ctx, log)
			}()
		}
		wg.Wait()
		total := 0
		for i := range dbs {
			if errs[i] != nil {
				t.Fatalf("replica %d: %v", i, errs[i])
			}
			total += applied[i]
		}
		migs, _ := store.Migrations(dbs[0].Dialect)
		if total != len(migs) {
			t.Fatalf("applied %d migrations in total, want each of %d exactly once", total, len(migs))
		}
		v, err := dbs[0].SchemaVersion(ctx)
		if err != nil || v != len(migs) {
			t.Fatalf("schema version = %d, %v; want %d", v, err, len(migs))
		}
		// Running again is a no-op.
		if n, err := dbs[0].Migrate(ctx, log); n != 0 || err != nil {
			t.Fatalf("second migrate: applied %d, %v", n, err)
		}
	})
}

func TestUniqueViolationClassified(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		ctx := context.Background()
		db, err := store.Open(ctx, e.URL, "", log)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Migrate(ctx, log); err != nil {
			t.Fatal(err)
		}
		ins := func() error {
			return db.Exec(`INSERT INTO login_throttles (email, failures, window_start) VALUES (?, 1, ?)`, "x@example.com", "2026-01-01 00:00:00").Error
		}
		if err := ins(); err != nil {
			t.Fatal(err)
		}
		err = ins()
		if err == nil || !store.IsUniqueViolation(err) {
			t.Fatalf("duplicate insert: %v, want a unique violation", err)
		}
	})
}
