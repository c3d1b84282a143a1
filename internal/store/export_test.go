package store

// SetRestartPages lowers the log size past which the checkpointer makes
// the log start over; it returns the function that restores it.
func SetRestartPages(n int) func() {
	old := restartPages
	restartPages = n
	return func() { restartPages = old }
}

// SetPassivePages sets the log size from which the checkpointer runs; it
// returns the function that restores it.
func SetPassivePages(n int) func() {
	old := passivePages
	passivePages = n
	return func() { passivePages = old }
}

// WALFrames reads the log's length as the checkpointer does.
func WALFrames(db *DB) (int, bool) { return db.wal.frames() }
