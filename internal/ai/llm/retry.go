package llm

import (
	"context"
	"math/rand/v2"
	"time"
)

// maxRetryDelay caps one wait between attempts. A chat user is waiting: if
// the upstream's Retry-After asks for longer, the error is returned at once
// with RetryAfter set, so the UI can say when to try again.
const maxRetryDelay = 20 * time.Second

// retry runs attempt through the breaker until it succeeds, fails for good,
// or the retries run out. openai-go's own retries are off (WithMaxRetries(0))
// because it cannot know whether tokens were delivered, and the breaker has
// to see every attempt.
func (c *Client) retry(ctx context.Context, attempt func() error) error {
	var last *Error
	for n := 0; ; n++ {
		if ok, wait := c.br.allow(); !ok {
			if last != nil {
				return last // the breaker opened during our retries: the real failure says more
			}
			e := c.newError(Unavailable, CodeCircuitOpen, "too many consecutive upstream failures; not calling it for now", nil)
			e.RetryAfter = wait
			return e
		}
		err := attempt()
		c.br.record(outcomeOf(err))
		if err == nil {
			return nil
		}
		e, ok := err.(*Error)
		if !ok || n >= c.opt.MaxRetries || !retryable(e) {
			return err
		}
		last = e
		delay, ok := c.delay(n, e)
		if !ok {
			return e
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return c.transportError(ctx, ctx.Err(), false)
		}
	}
}

// retryable: only failures before the stream started (so nothing reached the
// user) that another try may fix: 429 rate limits (never insufficient_quota,
// which is Kind Quota), 408, 409, 5xx and connection errors.
func retryable(e *Error) bool {
	switch {
	case e.Partial:
		return false
	case e.Kind == RateLimit:
		return true
	case e.Kind == Unavailable:
		return e.Code != CodeCircuitOpen
	default:
		return e.Status == 408 || e.Status == 409
	}
}

// delay is the wait before retry n+1: the upstream's Retry-After if it gave
// one, else exponential backoff with "equal jitter" (half fixed, half
// random) so that clients failing together do not retry together.
func (c *Client) delay(n int, e *Error) (time.Duration, bool) {
	if e.RetryAfter > 0 {
		return e.RetryAfter, e.RetryAfter <= maxRetryDelay
	}
	d := c.backoff << n
	if d <= 0 || d > maxRetryDelay {
		d = maxRetryDelay
	}
	return d/2 + rand.N(d/2+1), true
}
