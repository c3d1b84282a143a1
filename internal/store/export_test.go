package store

// SetRestartPages lowers the log size past which the checkpointer makes
// the log start over; it returns the function that restores it.
func SetRestartPages(n int) func() {
	old := restartPages.Swap(int64(n))
	return func() { restartPages.Store(old) }
}

// SetPassivePages sets the log size from which the checkpointer runs; it
// returns the function that restores it.
func SetPassivePages(n int) func() {
	old := passivePages.Swap(int64(n))
	return func() { passivePages.Store(old) }
}

// WALFrames reads the log's length as the checkpointer does.
func WALFrames(db *DB) (int, bool) { return db.wal.frames() }
