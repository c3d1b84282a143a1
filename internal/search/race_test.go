//go:build race

package search_test

// raceBuild: the race detector slows the pure-Go SQLite about twentyfold,
// so the corpus test uses a smaller corpus under -race (it hunts data
// races there, not volume); without -race it checks 10,000 messages.
const raceBuild = true
