//go:build race

package netstamp

// raceEnabled: see conn.Read.
const raceEnabled = true
