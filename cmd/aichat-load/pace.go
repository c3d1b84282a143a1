package main

import (
	"context"
	"math"
	"time"
)

// pacer releases message numbers 0..total-1 at a fixed arrival rate:
// message i is due at start + i/rate, whatever happened to the messages
// before it. That is an open loop: a slow server does not slow the
// generator down, so its stalls show up as latency instead of being hidden
// (no coordinated omission). When the generator itself falls behind (the
// machine is busy), it releases every overdue message at once and the
// latency, measured from the due time, still counts the delay.
type pacer struct {
	rate  float64 // messages per second
	total int64
}

// period is the time between two messages.
func (p pacer) period() float64 { return float64(time.Second) / p.rate }

// dueAt returns how long after the start message i is due.
func (p pacer) dueAt(i int64) time.Duration {
	return time.Duration(math.Ceil(float64(i) * p.period()))
}

// dueBy returns how many messages are due once elapsed has passed since
// the start (message 0 is due at once), at most total. It agrees exactly
// with dueAt: the float estimate is corrected against it.
func (p pacer) dueBy(elapsed time.Duration) int64 {
	if elapsed < 0 {
		return 0
	}
	n := int64(float64(elapsed) / p.period()) // last due message, roughly
	for n+1 < p.total && p.dueAt(n+1) <= elapsed {
		n++
	}
	for n > 0 && p.dueAt(n) > elapsed {
		n--
	}
	return min(n+1, p.total)
}

// run calls emit for every message as it becomes due, starting at start,
// until all were emitted or ctx ends. emit gets the message number and its
// due time; it must not block.
func (p pacer) run(ctx context.Context, start time.Time, emit func(i int64, due time.Time)) {
	var next int64
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for next < p.total {
		if wait := time.Until(start.Add(p.dueAt(next))); wait > 0 {
			t.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		for n := p.dueBy(time.Since(start)); next < n; next++ {
			emit(next, start.Add(p.dueAt(next)))
		}
	}
}
