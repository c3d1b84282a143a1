package main

import "time"

// Send timestamps travel inside message text from the sending connection
// to every receiving one, possibly in another process on the same machine,
// so they must come from a clock every process shares and that no NTP
// step moves: CLOCK_MONOTONIC on Linux (see clock_linux.go). Reading it
// through a system call per message would cost more than the message, so
// the process reads it once and adds Go's own monotonic time since then,
// which is the same clock.
var (
	clockStart = time.Now()
	clockBase  = monotonicBase()
)

// monoNow returns CLOCK_MONOTONIC in nanoseconds (Unix time elsewhere).
func monoNow() int64 { return clockBase + int64(time.Since(clockStart)) }
