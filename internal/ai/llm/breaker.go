package llm

import (
	"sync"
	"time"
)

// BreakerOptions configure the per-Client circuit breaker. When an upstream
// is down, failing fast spares users a wait for each retry and spares the
// upstream a flood while it restarts.
type BreakerOptions struct {
	Failures int           // consecutive upstream failures that open it (default 5; negative disables it)
	CoolDown time.Duration // how long it stays open before letting one trial through (default 30s)
}

type breakerState int

const (
	closed breakerState = iota
	open
	halfOpen
)

// outcome is what one attempt says about the upstream's health.
type outcome int

const (
	healthy   outcome = iota // it answered, even if with a 4xx
	unhealthy                // 5xx, unreachable, silent, cut off, error event
	unknown                  // canceled by the caller, or rate limited: says nothing
)

type breaker struct {
	opt BreakerOptions
	now func() time.Time

	mu       sync.Mutex
	state    breakerState
	failures int
	openedAt time.Time
	trial    bool // a half-open trial is in flight
}

// allow reports whether an attempt may go to the upstream; if not, it says
// how long until the next trial.
func (b *breaker) allow() (bool, time.Duration) {
	if b.opt.Failures < 0 {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case open:
		wait := b.openedAt.Add(b.opt.CoolDown).Sub(b.now())
		if wait > 0 {
			return false, wait
		}
		b.state = halfOpen
		fallthrough
	case halfOpen:
		if b.trial {
			return false, 0 // one trial at a time: the others fail fast
		}
		b.trial = true
	}
	return true, 0
}

// record feeds the outcome of an allowed attempt back.
func (b *breaker) record(o outcome) {
	if b.opt.Failures < 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch o {
	case healthy:
		b.state, b.failures, b.trial = closed, 0, false
	case unhealthy:
		b.failures++
		if b.state == halfOpen || b.failures >= b.opt.Failures {
			b.state, b.openedAt, b.trial = open, b.now(), false
		}
	case unknown:
		if b.state == halfOpen {
			b.trial = false // let the next caller try instead
		}
	}
}

// outcomeOf says what an attempt's error tells about the upstream's health.
func outcomeOf(err error) outcome {
	if err == nil {
		return healthy
	}
	e, ok := err.(*Error)
	if !ok {
		return unhealthy
	}
	switch e.Kind {
	case Unavailable, Truncated, Upstream:
		return unhealthy
	case Timeout:
		if e.Code == CodeIdleTimeout {
			return unhealthy
		}
		return unknown // the caller's deadline
	case Canceled, RateLimit:
		return unknown
	default:
		return healthy
	}
}
