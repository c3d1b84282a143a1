// Package redisbroker is the realtime.Broker of a cluster: instances exchange
// envelopes over Redis pub/sub and keep presence in Redis sorted sets.
//
// # Envelopes
//
// Every instance publishes to, and subscribes to, one channel:
// Prefix+"events". Each instance therefore receives every envelope of the
// cluster and its hub drops what none of its sessions is addressed to. That is
// deliberate: aichat runs a few replicas, not hundreds, and envelopes are
// small, so the wasted fan-out is cheap, while per-user or per-chat channels
// would cost a SUBSCRIBE/UNSUBSCRIBE round trip on every connect, disconnect
// and membership change, races between them, and a resubscription storm after
// every reconnect. Should the cluster grow large, sharding the one channel by
// recipient is the next step.
//
// A published message is framed as instance id + '\n' + payload so that an
// instance can drop its own envelopes (Redis hands them back to the publisher
// like to everybody else): the hub already delivered them locally.
//
// Redis pub/sub is fire-and-forget: what is published while a subscriber is
// disconnected (or while Redis restarts, or after Redis dropped a subscriber
// that fell too far behind) is gone. go-redis reconnects and resubscribes by
// itself; Run notices every resubscription and calls Handler.Resync, so the
// hub can tell its clients to resume from the database.
//
// # Presence
//
// Per user, the sorted set Prefix+"presence:"+userID holds one member per
// instance with a session of that user, scored with the record's expiry time
// (Unix milliseconds). A user is online while any member's score lies in the
// future. Instances refresh their records every realtime.PresenceRefresh, so
// the records of an instance that died without calling Offline stop counting
// after realtime.PresenceTTL; the key itself carries a TTL too, so keys of
// users nobody refreshes vanish.
package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aichat/aichat/internal/realtime"
	"github.com/aichat/aichat/internal/secrets"
	"github.com/redis/go-redis/v9"
)

// Options configure a Broker. The zero value is usable.
type Options struct {
	// Prefix starts every key and channel name; default "aichat:".
	Prefix string
	// Instance identifies this process in the cluster; it must be unique
	// and must not contain a newline. Default: host name plus a random id.
	Instance string
	// Log receives outage and protocol warnings; default slog.Default().
	Log *slog.Logger
	// Now is the clock presence expiry is computed with; default time.Now.
	Now func() time.Time
	// HealthCheck is how long the subscription may stay silent before Run
	// sends a PING; when no answer comes within another HealthCheck, the
	// connection is taken for dead (say, a NAT forgot it) and replaced.
	// Default 5s.
	HealthCheck time.Duration
}

// Timing of the subscription's health check and reconnect loop.
const (
	defaultHealthCheck = 5 * time.Second
	pingTimeout        = 2 * time.Second
	minBackoff         = 50 * time.Millisecond
	maxBackoff         = 2 * time.Second
	// maxPooledFrame bounds the publish buffers kept for reuse.
	maxPooledFrame = 64 << 10
	// refreshChunk bounds the commands of one Refresh pipeline.
	refreshChunk = 500
)

// Broker is a realtime.Broker over Redis. It is safe for concurrent use.
type Broker struct {
	client   *redis.Client
	addr     string
	prefix   string
	channel  string
	instance string
	head     string // instance + "\n", the frame header of what we publish
	log      *slog.Logger
	now      func() time.Time
	health   time.Duration

	frames sync.Pool // *[]byte

	// live is true while the subscription is confirmed: before it, or
	// during an outage, envelopes from other instances are missed, so the
	// instance is not ready.
	live atomic.Bool

	closed    context.Context // done once Close was called
	close     context.CancelFunc
	closeOnce sync.Once
	closeErr  error
}

var _ realtime.Broker = (*Broker)(nil)

// New connects to the Redis at url (redis://[user:password@]host:port/db or
// rediss://...) and checks that it answers PING, so that a wrong URL fails at
// start-up rather than at the first message.
func New(ctx context.Context, url string, opt Options) (*Broker, error) {
	ropt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: invalid Redis URL: %s", redact(err, url))
	}
	// Let the caller's context bound every command, not only the default
	// read and write timeouts.
	ropt.ContextTimeoutEnabled = true
	// Fail fast while Redis is down: the hub keeps delivering locally and
	// resyncs its clients once Redis is back, so a publish that waits for
	// go-redis's default 5 dial attempts times 4 command attempts (seconds)
	// helps nobody. One command retry still covers a pooled connection that
	// died with a Redis restart. max_retries in the URL overrides this.
	ropt.DialerRetries = 1
	if ropt.MaxRetries == 0 {
		ropt.MaxRetries = 1
	}

	if opt.Prefix == "" {
		opt.Prefix = "aichat:"
	}
	if opt.Instance == "" {
		opt.Instance = newInstanceID()
	}
	if strings.ContainsAny(opt.Instance, "\r\n") {
		return nil, fmt.Errorf("redisbroker: instance id %q contains a line break", opt.Instance)
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.HealthCheck <= 0 {
		opt.HealthCheck = defaultHealthCheck
	}

	b := &Broker{
		client:   redis.NewClient(ropt),
		addr:     ropt.Addr,
		prefix:   opt.Prefix,
		channel:  opt.Prefix + "events",
		instance: opt.Instance,
		head:     opt.Instance + "\n",
		log:      opt.Log.With("broker", "redis", "addr", ropt.Addr, "instance", opt.Instance),
		now:      opt.Now,
		health:   opt.HealthCheck,
	}
	b.closed, b.close = context.WithCancel(context.Background())
	if err := b.client.Ping(ctx).Err(); err != nil {
		b.Close()
		return nil, fmt.Errorf("redisbroker: ping %s: %w", b.addr, err)
	}
	return b, nil
}

func newInstanceID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return -1
		}
		return r
	}, host)
	if host == "" {
		host = "aichat"
	}
	return host + "-" + secrets.NewID()
}

// Instance is this broker's instance id.
func (b *Broker) Instance() string { return b.instance }

// Name is "redis host:port"; it never holds credentials.
func (b *Broker) Name() string { return "redis " + b.addr }

// Ping checks that Redis answers.
func (b *Broker) Ping(ctx context.Context) error {
	if err := b.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisbroker: ping %s: %w", b.addr, err)
	}
	if !b.live.Load() {
		return fmt.Errorf("redisbroker: %s answers but the events subscription is not confirmed yet", b.addr)
	}
	return nil
}

// Close closes the connections to Redis and makes every Run return.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.close()
		b.closeErr = b.client.Close()
	})
	return b.closeErr
}

// Publish sends payload to every other instance with one PUBLISH.
func (b *Broker) Publish(ctx context.Context, payload []byte) error {
	bp, _ := b.frames.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	frame := append(append((*bp)[:0], b.head...), payload...)
	// go-redis has written the frame by the time Publish returns: the
	// buffer can be reused.
	err := b.client.Publish(ctx, b.channel, frame).Err()
	if cap(frame) <= maxPooledFrame {
		*bp = frame
		b.frames.Put(bp)
	}
	if err != nil {
		return fmt.Errorf("redisbroker: publish to %s: %w", b.addr, err)
	}
	return nil
}

// Run subscribes and hands h every payload that other instances publish, in
// the order Redis received them, until ctx ends or the broker is closed; it
// then returns nil. It never gives up while Redis is unreachable: it retries
// with backoff, logs once per outage, and calls h.Resync after every
// resubscription. The first subscription calls h.Resync only when an outage
// delayed it.
func (b *Broker) Run(ctx context.Context, h realtime.Handler) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(b.closed, cancel)()

	st := runState{backoff: minBackoff}
	for {
		// The first SUBSCRIBE is sent here; should it fail, go-redis sends
		// it again on the next receive, which is where errors surface.
		ps := b.client.Subscribe(ctx, b.channel)
		// Receive does not watch ctx: closing the PubSub unblocks it.
		stop := context.AfterFunc(ctx, func() { ps.Close() })
		err := b.receive(ctx, ps, h, &st)
		stop()
		ps.Close()
		b.live.Store(false)
		if b.done(ctx) {
			return nil
		}
		// The connection went silent: start over on a fresh one.
		st.lost(b.log, err)
	}
}

// runState follows the subscription across reconnects.
type runState struct {
	subscribed bool          // a subscription was confirmed before
	downSince  time.Time     // start of the current outage; zero while up
	backoff    time.Duration // next wait after a failed receive
}

// lost records a failure; only the first of an outage is logged.
func (st *runState) lost(log *slog.Logger, err error) {
	if st.downSince.IsZero() {
		st.downSince = time.Now()
		log.Warn("redis broker: subscription lost, envelopes from other instances are missed until it is back; retrying", "err", err)
	}
}

// receive reads ps until ctx ends (it then returns nil) or the connection
// stops answering PING (it then returns why).
func (b *Broker) receive(ctx context.Context, ps *redis.PubSub, h realtime.Handler, st *runState) error {
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, b.health)
		if b.done(ctx) {
			return nil
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Silence: ask for a PONG, and give up on the connection
				// when the previous PING went unanswered.
				if pinged {
					return fmt.Errorf("no answer to PING within %s", b.health)
				}
				pctx, pcancel := context.WithTimeout(ctx, min(pingTimeout, b.health))
				err = ps.Ping(pctx)
				pcancel()
				if err == nil {
					pinged = true
					continue
				}
			}
			// go-redis has dropped the connection (it redials, and
			// resubscribes, on the next receive). Wait before that so a
			// Redis that is down is not hammered.
			st.lost(b.log, err)
			b.live.Store(false)
			if !sleep(ctx, jitter(st.backoff)) {
				return nil
			}
			st.backoff = min(2*st.backoff, maxBackoff)
			continue
		}
		pinged = false // anything received proves the connection
		switch m := msg.(type) {
		case *redis.Message:
			b.deliver(h, m.Payload)
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			// The first confirmation is our own SUBSCRIBE; any later one
			// is go-redis resubscribing on a new connection, or a new
			// PubSub after a dead one: envelopes may have been lost. So
			// may they when an outage delayed the first one.
			if st.subscribed || !st.downSince.IsZero() {
				h.Resync()
			}
			st.subscribed = true
			b.live.Store(true)
			if !st.downSince.IsZero() {
				b.log.Info("redis broker: subscription restored", "down", time.Since(st.downSince).Round(time.Millisecond))
				st.downSince = time.Time{}
			}
			st.backoff = minBackoff
		}
	}
}

// done reports whether Run should return: its context ended or Close was
// called (Close closes the connections before Run's context follows).
func (b *Broker) done(ctx context.Context) bool {
	return ctx.Err() != nil || b.closed.Err() != nil
}

// deliver unframes one message and hands it on unless this instance sent it.
func (b *Broker) deliver(h realtime.Handler, msg string) {
	from, payload, ok := strings.Cut(msg, "\n")
	if !ok {
		b.log.Warn("redis broker: dropped a message without instance header", "channel", b.channel, "len", len(msg))
		return
	}
	if from == b.instance {
		return
	}
	h.Deliver([]byte(payload))
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// jitter spreads d by ±20% so that instances do not reconnect in lockstep.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + rand.N(d*2/5+1)
}

func (b *Broker) presenceKey(userID string) string { return b.prefix + "presence:" + userID }

// onlineScript adds this instance's record and counts the live ones, in one
// atomic round trip. It also drops expired records, and reports whether this
// instance already had a live record (then the user was online already).
//
// KEYS[1] presence key; ARGV: instance, now (ms), expiry (ms), key TTL (ms).
var onlineScript = redis.NewScript(`
local was = 0
local prev = redis.call('ZSCORE', KEYS[1], ARGV[1])
if prev and tonumber(prev) > tonumber(ARGV[2]) then was = 1 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[2], '+inf'), was}
`)

// Online records a session of userID on this instance; first reports that
// no instance had a live one before.
func (b *Broker) Online(ctx context.Context, userID string) (bool, error) {
	now := b.now().UnixMilli()
	res, err := onlineScript.Run(ctx, b.client, []string{b.presenceKey(userID)},
		b.instance, now, now+realtime.PresenceTTL.Milliseconds(), realtime.PresenceTTL.Milliseconds()).Int64Slice()
	if err != nil {
		return false, fmt.Errorf("redisbroker: record %s online: %w", userID, err)
	}
	if len(res) != 2 {
		return false, fmt.Errorf("redisbroker: record %s online: unexpected reply %v", userID, res)
	}
	return res[0] == 1 && res[1] == 0, nil
}

// Offline removes this instance's record of userID; last reports that no
// instance has a live one now.
func (b *Broker) Offline(ctx context.Context, userID string) (bool, error) {
	key := b.presenceKey(userID)
	var n *redis.IntCmd
	_, err := b.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, key, b.instance)
		n = p.ZCount(ctx, key, b.alive(), "+inf")
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("redisbroker: record %s offline: %w", userID, err)
	}
	return n.Val() == 0, nil
}

// AreOnline reports which of userIDs have a live record on any instance;
// those who have none are absent from the map.
func (b *Broker) AreOnline(ctx context.Context, userIDs []string) (map[string]bool, error) {
	out := make(map[string]bool, len(userIDs))
	if len(userIDs) == 0 {
		return out, nil
	}
	alive := b.alive()
	counts := make([]*redis.IntCmd, len(userIDs))
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range userIDs {
			counts[i] = p.ZCount(ctx, b.presenceKey(id), alive, "+inf")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisbroker: presence of %d users: %w", len(userIDs), err)
	}
	for i, id := range userIDs {
		if counts[i].Val() > 0 {
			out[id] = true
		}
	}
	return out, nil
}

// Refresh extends this instance's records of userIDs by PresenceTTL,
// creating them if they are gone (say, Redis restarted empty).
func (b *Broker) Refresh(ctx context.Context, userIDs []string) error {
	exp := float64(b.now().UnixMilli() + realtime.PresenceTTL.Milliseconds())
	for len(userIDs) > 0 {
		chunk := userIDs[:min(len(userIDs), refreshChunk)]
		userIDs = userIDs[len(chunk):]
		_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, id := range chunk {
				key := b.presenceKey(id)
				p.ZAdd(ctx, key, redis.Z{Score: exp, Member: b.instance})
				p.PExpire(ctx, key, realtime.PresenceTTL)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("redisbroker: refresh presence: %w", err)
		}
	}
	return nil
}

// alive is the ZCOUNT lower bound of live records: scores after now.
func (b *Broker) alive() string {
	return "(" + strconv.FormatInt(b.now().UnixMilli(), 10)
}

// redact keeps a URL's password out of an error: net/url quotes the whole
// URL in its errors, so keep only the reason, and blank the password
// wherever else it might appear.
func redact(err error, rawURL string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if _, rest, ok := strings.Cut(rawURL, "://"); ok {
		host, _, _ := strings.Cut(rest, "/")
		if i := strings.LastIndex(host, "@"); i >= 0 {
			if _, pw, ok := strings.Cut(host[:i], ":"); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "xxxxx")
			}
		}
	}
	return msg
}
