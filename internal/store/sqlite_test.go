package store_test

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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

// TestSQLiteWriteGate: this process's writers wait for SQLite's one
// writer in a queue of their own, in the order they came (transactions
// and writes outside one alike); a waiter whose context ends leaves the
// queue; reads are never held up; WritersWaiting counts the queue.
func TestSQLiteWriteGate(t *testing.T) {
	ctx := context.Background()
	db, sqlDB := gateDB(t)
	waitFor := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); db.WritersWaiting() != n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d writers waiting, want %d", db.WritersWaiting(), n)
			}
		}
	}
	held, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 4)
	for i := range 3 {
		go func() {
			tx, err := sqlDB.BeginTx(ctx, nil)
			if err != nil {
				t.Errorf("begin %d: %v", i, err)
				order <- -1
				return
			}
			tx.Exec("INSERT INTO c VALUES (?)", i)
			if err := tx.Commit(); err != nil {
				t.Errorf("commit %d: %v", i, err)
			}
			order <- i
		}()
		waitFor(i + 1)
	}
	go func() {
		if _, err := sqlDB.ExecContext(ctx, "INSERT INTO c VALUES (9)"); err != nil {
			t.Errorf("insert outside a transaction: %v", err)
		}
		order <- 9
	}()
	waitFor(4)

	cctx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() {
		tx, err := sqlDB.BeginTx(cctx, nil)
		if err == nil {
			tx.Rollback()
		}
		gaveUp <- err
	}()
	waitFor(5)
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("a waiter whose context ended: %v", err)
	}
	waitFor(4)

	var n int
	if err := sqlDB.QueryRowContext(ctx, "SELECT count(*) FROM c").Scan(&n); err != nil || n != 0 {
		t.Fatalf("a read while a writer holds the lock: %d %v", n, err)
	}
	if _, err := held.Exec("INSERT INTO c VALUES (100)"); err != nil {
		t.Fatal(err)
	}
	if err := held.Commit(); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		<-order
	}
	waitFor(0)
	// The rows went in in the order their writers took the lock.
	var got []int
	if err := db.Raw("SELECT n FROM c ORDER BY rowid").Scan(&got).Error; err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[100 0 1 2 9]" {
		t.Fatalf("writers went in the order %v, want the order they came: [100 0 1 2 9]", got)
	}
}

// TestSQLiteWriteGateUrgent: a write a person waits for (store.Urgent)
// goes before the background writers already waiting, after the urgent
// ones before it, never before the writer holding the lock.
func TestSQLiteWriteGateUrgent(t *testing.T) {
	ctx := context.Background()
	db, sqlDB := gateDB(t)
	held, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i, urgent := range []bool{false, false, true, false, true} {
		wctx := ctx
		if urgent {
			wctx = store.Urgent(ctx)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := sqlDB.ExecContext(wctx, "INSERT INTO c VALUES (?)", i); err != nil {
				t.Errorf("insert %d: %v", i, err)
			}
		}()
		for deadline := time.Now().Add(5 * time.Second); db.WritersWaiting() != i+1; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d writers waiting, want %d", db.WritersWaiting(), i+1)
			}
		}
	}
	if _, err := held.Exec("INSERT INTO c VALUES (100)"); err != nil {
		t.Fatal(err)
	}
	if err := held.Commit(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	var got []int
	if err := db.Raw("SELECT n FROM c ORDER BY rowid").Scan(&got).Error; err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[100 2 4 0 1 3]" {
		t.Fatalf("writes went in the order %v, want [100 2 4 0 1 3]: urgent ones first, each kind in arrival order", got)
	}
}

// gateDB opens a SQLite database of its own with one table c (n INTEGER).
func gateDB(t *testing.T) (*store.DB, *sql.DB) {
	t.Helper()
	db := openSQLite(t, filepath.Join(t.TempDir(), "gate.db"), "CREATE TABLE c (n INTEGER)")
	sqlDB, err := db.DB.DB()
	if err != nil {
		t.Fatal(err)
	}
	return db, sqlDB
}

// TestSQLiteCheckpointer: no commit checkpoints the log (that held the
// write lock 10–20 ms), yet under a steady stream of writes the log is
// copied back and starts over (the WAL header's checkpoint counter moves
// on), so it does not grow without end.
func TestSQLiteCheckpointer(t *testing.T) {
	defer store.SetRestartPages(100)()
	defer store.SetPassivePages(20)()
	dir := t.TempDir()
	db := openSQLite(t, filepath.Join(dir, "cp.db"), "")
	var auto int
	if err := db.Raw("PRAGMA wal_autocheckpoint").Scan(&auto).Error; err != nil || auto != 0 {
		t.Fatalf("wal_autocheckpoint = %d (%v), want 0: commits would checkpoint", auto, err)
	}
	if err := db.Exec("CREATE TABLE c (b BLOB)").Error; err != nil {
		t.Fatal(err)
	}
	restarts := walRestarts(t, filepath.Join(dir, "cp.db-wal"))
	deadline := time.Now().Add(20 * time.Second)
	for n := 0; ; n++ {
		if err := db.Exec("INSERT INTO c VALUES (randomblob(3000))").Error; err != nil {
			t.Fatal(err)
		}
		if n%50 == 0 && restarts() >= 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d commits the log never started over twice", n)
		}
	}
}

// TestSQLiteCheckpointerNeverWaitsForThePool: the checkpointer finishes a
// checkpoint holding the write gate; writers waiting for the gate hold
// every pooled connection meanwhile, so it must not need one of them (it
// keeps its own). Many writers and a gated checkpoint every tick: no
// write waits anywhere near the busy timeout.
func TestSQLiteCheckpointerNeverWaitsForThePool(t *testing.T) {
	defer store.SetRestartPages(-1)()
	defer store.SetPassivePages(0)()
	db, sqlDB := gateDB(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := time.Now().Add(2 * time.Second)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				start := time.Now()
				_, err := sqlDB.ExecContext(ctx, "INSERT INTO c VALUES (?)", w*100000+i)
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("writer %d waited %v for one insert", w, d)
					return
				}
			}
		}()
	}
	wg.Wait()
	var n int
	if err := db.Raw("SELECT count(*) FROM c").Scan(&n).Error; err != nil || n == 0 {
		t.Fatalf("%d rows, %v", n, err)
	}
}

// walRestarts returns a function reading the log's checkpoint sequence
// number from its header, which moves on each time the log starts over.
func walRestarts(t *testing.T, walPath string) func() uint32 {
	return func() uint32 {
		t.Helper()
		b, err := os.ReadFile(walPath)
		if err != nil || len(b) < 32 {
			t.Fatalf("the log: %d bytes, %v", len(b), err)
		}
		return binary.BigEndian.Uint32(b[12:16])
	}
}

// TestSQLiteCheckpointerLeavesShortLog: a log shorter than the passive
// threshold is not checkpointed, so it does not start over (SQLite syncs a
// new log's header inside the next writer's commit: 5–15 ms there); once
// it is long enough, it is copied back and starts over.
func TestSQLiteCheckpointerLeavesShortLog(t *testing.T) {
	defer store.SetPassivePages(1 << 30)()
	dir := t.TempDir()
	path := filepath.Join(dir, "short.db")
	db := openSQLite(t, path, "CREATE TABLE c (b BLOB)")
	restarts := walRestarts(t, path+"-wal")
	before, _ := store.WALFrames(db)
	first := restarts()
	// A light load across four of the checkpointer's ticks.
	for range 20 {
		if err := db.Exec("INSERT INTO c VALUES (randomblob(3000))").Error; err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	frames, ok := store.WALFrames(db)
	if !ok || frames < before+20 {
		t.Fatalf("the log holds %d frames (%v), %d before 20 commits of a page each: it was checkpointed and restarted, or not read", frames, ok, before)
	}
	if got := restarts(); got != first {
		t.Fatalf("a short log started over %d times", got-first)
	}
	store.SetPassivePages(frames - 5)
	deadline := time.Now().Add(10 * time.Second)
	for restarts() == first {
		if time.Now().After(deadline) {
			t.Fatal("a log past the threshold never started over")
		}
		time.Sleep(100 * time.Millisecond)
		if err := db.Exec("INSERT INTO c VALUES (1)").Error; err != nil {
			t.Fatal(err)
		}
	}
	if frames, _ := store.WALFrames(db); frames > 5 {
		t.Fatalf("after starting over the log holds %d frames", frames)
	}
}

// TestSQLiteTimeText: a time is stored as the text every earlier build
// wrote ("2006-01-02 15:04:05.999999999-07:00" in UTC), so rows already on
// disk keep comparing equal and in order with new ones, and it reads back
// in UTC.
func TestSQLiteTimeText(t *testing.T) {
	db, sqlDB := gateDB(t)
	ctx := context.Background()
	if err := db.Exec("CREATE TABLE tt (id INTEGER, at DATETIME)").Error; err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 1, 14, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))
	if _, err := sqlDB.ExecContext(ctx, "INSERT INTO tt VALUES (1, ?)", at); err != nil {
		t.Fatal(err)
	}
	// A row as the previous driver stored it.
	if _, err := sqlDB.ExecContext(ctx, "INSERT INTO tt VALUES (2, '2026-05-01 12:00:00.123456789+00:00')"); err != nil {
		t.Fatal(err)
	}
	var text string
	if err := sqlDB.QueryRowContext(ctx, "SELECT CAST(at AS TEXT) FROM tt WHERE id = 1").Scan(&text); err != nil {
		t.Fatal(err)
	}
	if text != "2026-05-01 12:00:00.123456789+00:00" {
		t.Fatalf("stored as %q", text)
	}
	var n int
	if err := sqlDB.QueryRowContext(ctx, "SELECT count(*) FROM tt WHERE at = ?", at).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d rows equal to the same instant (%v), want both", n, err)
	}
	var got time.Time
	if err := sqlDB.QueryRowContext(ctx, "SELECT at FROM tt WHERE id = 2").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if !got.Equal(at) || got.Location() != time.UTC {
		t.Fatalf("read back %v (%v), want %v in UTC", got, got.Location(), at)
	}
}

// TestSQLiteStmt: a statement prepared once runs in transactions and
// outside them; outside one, its write waits for the write gate like any
// Exec (it would otherwise fail with "database is locked" or sleep in
// SQLite's busy handler while a transaction holds the lock).
func TestSQLiteStmt(t *testing.T) {
	db, sqlDB := gateDB(t)
	ctx := context.Background()
	ins, err := db.Stmt(ctx, "INSERT INTO c VALUES (?)")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := db.Stmt(ctx, "INSERT INTO c VALUES (?)"); err != nil || again != ins {
		t.Fatalf("prepared again: %v, %v", again == ins, err)
	}
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.StmtContext(ctx, ins).ExecContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ins.ExecContext(ctx, 2)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("wrote beside an open transaction: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if w := db.WritersWaiting(); w != 1 {
		t.Fatalf("%d writers wait for the gate, want the statement's", w)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the write after the transaction: %v", err)
	}
	var n int
	if err := db.Raw("SELECT count(*) FROM c").Scan(&n).Error; err != nil || n != 2 {
		t.Fatalf("%d rows (%v), want 2", n, err)
	}
}

// TestSQLiteKeepsShmLocks: SQLite holds a shared lock on the -shm file's
// "DMS" byte while the database is open, so another process (aichat
// migrate, a backup) cannot reset the shared index under it. Closing any
// descriptor of a file drops every POSIX lock the process holds on it, so
// the checkpointer, which reads the -shm, must never close one while
// connections are open. Another process (this test binary again) tries to
// take that byte exclusively after several of the checkpointer's ticks.
func TestSQLiteKeepsShmLocks(t *testing.T) {
	if path := os.Getenv("AICHAT_TEST_SHM_PROBE"); path != "" {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 128, Len: 1} // UNIX_SHM_DMS
		if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
			fmt.Println("probe: held")
			return
		}
		fmt.Println("probe: free")
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "locks.db")
	db := openSQLite(t, path, "CREATE TABLE c (n INTEGER)")
	for i := range 15 { // across three of the checkpointer's ticks
		if err := db.Exec("INSERT INTO c VALUES (?)", i).Error; err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSQLiteKeepsShmLocks$", "-test.count=1")
	cmd.Env = append(os.Environ(), "AICHAT_TEST_SHM_PROBE="+path+"-shm")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "probe: held") {
		t.Fatalf("another process could lock the -shm's DMS byte: SQLite's lock on it was dropped\n%s", out)
	}
}

// openSQLite opens a SQLite database at path for the test (closed at its
// end) and runs ddl in it unless empty.
func openSQLite(t *testing.T, path, ddl string) *store.DB {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := store.Open(context.Background(), "sqlite:"+path, "", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if ddl != "" {
		if err := db.Exec(ddl).Error; err != nil {
			t.Fatal(err)
		}
	}
	return db
}
