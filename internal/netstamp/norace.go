//go:build !race

package netstamp

const raceEnabled = false
