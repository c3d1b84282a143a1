package store

// SetRestartPages lowers the log size past which the checkpointer makes
// the log start over; it returns the function that restores it.
func SetRestartPages(n int) func() {
	old := restartPages
	restartPages = n
	return func() { restartPages = old }
}
