package store_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aichat/aichat/internal/store"
)

// TestSQLiteWritersSerialize proves transactions that read then write do not
// fail with SQLITE_BUSY when several connection pools (replicas, or the pool
// of one process) write at once: BEGIN IMMEDIATE plus the busy timeout make
// them wait their turn, and no increment is lost.
func TestSQLiteWritersSerialize(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	path := "sqlite:" + filepath.Join(t.TempDir(), "x.db")
	ctx := context.Background()
	var dbs []*store.DB
	for i := 0; i < 4; i++ {
		db, err := store.Open(ctx, path, "", log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs = append(dbs, db)
	}
	dbs[0].Exec("CREATE TABLE c (n INTEGER)")
	dbs[0].Exec("INSERT INTO c VALUES (0)")
	var wg sync.WaitGroup
	for _, db := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				sqlDB, _ := db.DB.DB()
				tx, err := sqlDB.BeginTx(ctx, nil)
				if err != nil {
					t.Errorf("begin: %v", err)
					return
				}
				var n int
				if err := tx.QueryRow("SELECT n FROM c").Scan(&n); err != nil {
					t.Errorf("select: %v", err)
				}
				if _, err := tx.Exec("UPDATE c SET n = ?", n+1); err != nil {
					t.Errorf("update: %v", err)
				}
				if err := tx.Commit(); err != nil {
					t.Errorf("commit: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	var n int
	dbs[0].Raw("SELECT n FROM c").Scan(&n)
	if n != 4*50 {
		t.Fatalf("counter = %d, want %d: increments were lost", n, 4*50)
	}
}
