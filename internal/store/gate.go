package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// SQLite has one writer. Left to itself, a connection that finds the write
// lock taken sleeps in SQLite's busy handler (1, 2, 5, 10, 15, 20 ms ...)
// and tries again, so a short insert queued behind a 5 ms transaction
// waits 8 ms or more, and the order of waiters is luck. A writeGate in
// front of the driver makes the process's writers queue in Go instead:
// each waiter is woken the moment the writer before it finishes, in the
// order they came, and a long background writer (the search index) can
// see that someone waits and let them go first (WritersWaiting).
// SQLite's own lock and busy handler still order this process against
// other processes using the same file.

// writeGate is a queue lock around write transactions (every BEGIN, which
// is BEGIN IMMEDIATE here) and writes outside one. The lock passes from
// one writer straight to the next in line, so no newcomer overtakes a
// waiter, except that urgent writers (Urgent) line up before the others.
type writeGate struct {
	mu      sync.Mutex
	busy    bool
	queue   []waiter      // urgent ones first, then the others, each first come first
	waiting atomic.Int32  // len(queue), readable without the mutex
	timeout time.Duration // SQLite's busy_timeout: how long to wait before failing
}

type waiter struct {
	ch     chan struct{} // closed to hand the waiter the lock
	urgent bool
}

type urgentKey struct{}

// Urgent marks the writes made with ctx as ones a person is waiting for
// (their message's acknowledgement, the assistant's answer to it): on
// SQLite they go before the background writers (saves of answers, the
// search index) queued in this process, though never before one that
// already holds the lock. Elsewhere it changes nothing.
func Urgent(ctx context.Context) context.Context {
	return context.WithValue(ctx, urgentKey{}, true)
}

func isUrgent(ctx context.Context) bool {
	u, _ := ctx.Value(urgentKey{}).(bool)
	return u
}

func newWriteGate(timeout time.Duration) *writeGate {
	return &writeGate{timeout: timeout}
}

// errGateTimeout is what a writer gets after waiting as long as SQLite's
// busy timeout would have let it: the same failure, "database is locked".
var errGateTimeout = errors.New("database is locked: waited for the write lock in this process (SQLITE_BUSY)")

func (g *writeGate) acquire(ctx context.Context) error {
	g.mu.Lock()
	if !g.busy {
		g.busy = true
		g.mu.Unlock()
		return nil
	}
	w := waiter{ch: make(chan struct{}), urgent: isUrgent(ctx)}
	i := len(g.queue)
	if w.urgent {
		i = slices.IndexFunc(g.queue, func(o waiter) bool { return !o.urgent })
		if i < 0 {
			i = len(g.queue)
		}
	}
	g.queue = slices.Insert(g.queue, i, w)
	g.waiting.Add(1)
	g.mu.Unlock()
	t := time.NewTimer(g.timeout)
	defer t.Stop()
	var err error
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = errGateTimeout
	}
	g.mu.Lock()
	if i := slices.IndexFunc(g.queue, func(o waiter) bool { return o.ch == w.ch }); i >= 0 {
		g.queue = slices.Delete(g.queue, i, i+1)
		g.waiting.Add(-1)
		g.mu.Unlock()
		return err
	}
	g.mu.Unlock()
	// The lock was handed over as we gave up: pass it on.
	g.release()
	return err
}

// release hands the lock to the first waiter, or frees it.
func (g *writeGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) == 0 {
		g.busy = false
		return
	}
	next := g.queue[0]
	g.queue = slices.Delete(g.queue, 0, 1)
	g.waiting.Add(-1)
	close(next.ch)
}

// gatedConnector opens the driver's connections behind the gate.
type gatedConnector struct {
	drv  driver.Driver
	dsn  string
	gate *writeGate
}

func (c gatedConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(sqliteConn)
	if !ok {
		conn.Close()
		return nil, errors.New("store: the SQLite driver's connection lacks the context methods")
	}
	return &gatedConn{sqliteConn: sc, gate: c.gate}, nil
}

func (c gatedConnector) Driver() driver.Driver { return c.drv }

// sqliteConn is what modernc.org/sqlite's connection implements; the
// wrapper keeps these methods, so database/sql takes the same paths (it
// does not pass on ResetSession and IsValid: database/sql then keeps a
// pooled connection as it is).
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
}

// gatedConn holds the gate from BEGIN to COMMIT or ROLLBACK, and around
// an Exec outside a transaction. Queries outside a transaction are reads
// and are not gated (WAL lets them run beside the writer). database/sql
// uses a connection from one goroutine at a time, so inTx needs no lock.
type gatedConn struct {
	sqliteConn
	gate *writeGate
	inTx bool
}

func (c *gatedConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *gatedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if err := c.gate.acquire(ctx); err != nil {
		return nil, err
	}
	tx, err := c.sqliteConn.BeginTx(ctx, opts)
	if err != nil {
		c.gate.release()
		return nil, err
	}
	c.inTx = true
	return &gatedTx{Tx: tx, c: c}, nil
}

func (c *gatedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.write(ctx, func() (driver.Result, error) { return c.sqliteConn.ExecContext(ctx, query, args) })
}

// write runs exec holding the gate, unless a transaction holds it already.
func (c *gatedConn) write(ctx context.Context, exec func() (driver.Result, error)) (driver.Result, error) {
	if c.inTx {
		return exec()
	}
	if err := c.gate.acquire(ctx); err != nil {
		return nil, err
	}
	defer c.gate.release()
	return exec()
}

// gatedTx releases the gate once, when the transaction ends either way
// (a failed COMMIT still ends it for database/sql).
type gatedTx struct {
	driver.Tx
	c *gatedConn
}

func (t *gatedTx) Commit() error {
	err := t.Tx.Commit()
	t.end()
	return err
}

func (t *gatedTx) Rollback() error {
	err := t.Tx.Rollback()
	t.end()
	return err
}

func (t *gatedTx) end() {
	if t.c != nil {
		t.c.inTx = false
		t.c.gate.release()
		t.c = nil
	}
}
