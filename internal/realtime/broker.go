package realtime

import (
	"context"
	"sync"
	"time"
)

// Broker carries envelopes between the instances of a cluster and keeps
// presence across them. The hub delivers to its own sessions directly and
// publishes for the others, so a broker outage never stops local delivery;
// a broker never hands an instance back what that instance published.
//
// Two implementations: Local (one process, nothing to carry) and Redis
// (internal/realtime/redisbroker).
type Broker interface {
	// Publish sends payload to every other instance.
	Publish(ctx context.Context, payload []byte) error
	// Run delivers what other instances publish to h until ctx ends. After
	// the broker lost and regained its connection it calls h.Resync, since
	// envelopes published in between are gone: the hub then drops caches
	// and tells clients to resume from the database.
	Run(ctx context.Context, h Handler) error
	// Online records that userID has a session on this instance and
	// reports whether no instance had one before (the user came online).
	Online(ctx context.Context, userID string) (first bool, err error)
	// Offline records that this instance has no session of userID left and
	// reports whether no instance has one now (the user went offline).
	Offline(ctx context.Context, userID string) (last bool, err error)
	// AreOnline reports which of userIDs have a session on any instance.
	AreOnline(ctx context.Context, userIDs []string) (map[string]bool, error)
	// Refresh extends this instance's presence records for userIDs; the
	// hub calls it every PresenceRefresh so that the records of an instance
	// that died expire after PresenceTTL.
	Refresh(ctx context.Context, userIDs []string) error
	// Ping reports whether the broker is reachable, for /readyz.
	Ping(ctx context.Context) error
	// Name says which broker runs, for the start-up log.
	Name() string
}

// Handler receives what other instances publish.
type Handler interface {
	Deliver(payload []byte)
	Resync()
}

// Presence timing: records live PresenceTTL unless refreshed, and the hub
// refreshes them every PresenceRefresh.
const (
	PresenceTTL     = 60 * time.Second
	PresenceRefresh = 20 * time.Second
)

// Local is the broker of a single instance: there is nobody to publish to,
// and presence is this process's own count.
type Local struct {
	mu     sync.Mutex
	online map[string]bool
}

// NewLocal returns an in-process broker.
func NewLocal() *Local { return &Local{online: map[string]bool{}} }

func (*Local) Publish(context.Context, []byte) error { return nil }

func (*Local) Run(ctx context.Context, _ Handler) error {
	<-ctx.Done()
	return nil
}

func (l *Local) Online(_ context.Context, userID string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := !l.online[userID]
	l.online[userID] = true
	return first, nil
}

func (l *Local) Offline(_ context.Context, userID string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := l.online[userID]
	delete(l.online, userID)
	return last, nil
}

func (l *Local) AreOnline(_ context.Context, userIDs []string) (map[string]bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]bool, len(userIDs))
	for _, id := range userIDs {
		if l.online[id] {
			out[id] = true
		}
	}
	return out, nil
}

func (*Local) Refresh(context.Context, []string) error { return nil }
func (*Local) Ping(context.Context) error              { return nil }
func (*Local) Name() string                            { return "in-process" }
