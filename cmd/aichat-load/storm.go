package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The storm scenario: --conns sockets opened as fast as the server lets
// them (--arrival-rate 0, bounded by --connect-concurrency) or at a fixed
// arrival rate (open loop: socket i is due at start + i/rate). Each socket
// goes the way a browser tab does: sign in (with --login, once per user;
// otherwise the token saved in --users-file), ask for a single-use ticket
// (POST /api/v1/ws/ticket), upgrade with /ws?ticket=, wait for hello. Each
// step is timed on its own, and the whole from the socket's due time, so
// queueing in the generator counts too.

// StormResult is what the storm scenario measured.
type StormResult struct {
	Conns        int     `json:"conns"`
	Users        int     `json:"users"`
	ConnsPerUser int     `json:"conns_per_user"`
	Login        bool    `json:"login"`
	ArrivalRate  float64 `json:"arrival_rate"` // 0: as fast as allowed
	Concurrency  int     `json:"connect_concurrency"`
	SourceIPs    int     `json:"source_ips"`

	Opened      int64            `json:"opened"`
	Failed      int64            `json:"failed"`
	Errors      map[string]int64 `json:"errors"` // "step: kind"
	Seconds     float64          `json:"seconds"`
	ConnectRate float64          `json:"connects_per_second"`
	Dropped     int64            `json:"dropped_after_hello"`

	LoginLat   Summary `json:"login_latency"`
	TicketLat  Summary `json:"ticket"`
	UpgradeLat Summary `json:"upgrade"` // TCP connect + HTTP upgrade (ticket redeemed)
	HelloLat   Summary `json:"hello"`   // upgrade done → hello frame
	TotalLat   Summary `json:"total"`   // due → hello, steps and waiting included
	Lag        Summary `json:"generator_lag"`

	Servers []ServerReport `json:"servers"`
	Client  ClientReport   `json:"client"`
	Machine MachineCPU     `json:"machine_cpu"`
}

// stormUser signs one user in once for all of its sockets.
type stormUser struct {
	once  sync.Once
	token string
	err   error
}

func runStorm(ctx context.Context, o *options, rep *Report) error {
	nUsers := (o.conns + o.connsPerUser - 1) / o.connsPerUser
	hc := newHTTPClient(o.timeout)
	a := &api{base: o.urls[0], hc: hc}
	need := o.settle + time.Duration(o.conns/50+120)*time.Second
	accs, err := accounts(ctx, a, nUsers, o.usersFile, o.regConc, need, o.logf)
	if err != nil {
		return err
	}
	res := &StormResult{Conns: o.conns, Users: nUsers, ConnsPerUser: o.connsPerUser, Login: o.login,
		ArrivalRate: o.arrivalRate, Concurrency: o.connectConc, SourceIPs: o.sourceIPs}
	rep.Storm = res
	apis := make([]*api, len(o.urls))
	targets := make([]string, len(o.urls))
	for i, u := range o.urls {
		apis[i] = &api{base: u, hc: hc}
		if targets[i], err = wsURL(u); err != nil {
			return err
		}
	}
	users := make([]stormUser, nUsers)

	o.logf("storm: %d sockets of %d users; settling %s", o.conns, nUsers, o.settle)
	sleepCtx(ctx, o.settle)
	before, err := scrapeAll(ctx, hc, o.urls)
	if err != nil {
		return err
	}
	cBefore, mBefore := clientNow(), cpuNow()

	d := newDialer(o.sourceIPs, o.timeout)
	var (
		mu                           sync.Mutex
		conns                        = make([]*websocket.Conn, 0, o.conns)
		loginH, ticketH, upH, helloH = newStripedHist(8), newStripedHist(8), newStripedHist(8), newStripedHist(8)
		totalH                       = newStripedHist(8)
		lagMu                        sync.Mutex
		lagH                         = newHist()
		errs                         counterMap
		failed, dropped              atomic.Int64
		closing                      atomic.Bool
		firstErr                     atomic.Pointer[string]
		noteErr                      = func(step string, err error) {
			k := step + ": " + errorKey(err)
			if ae, ok := err.(*apiError); ok {
				k = fmt.Sprintf("%s: HTTP %d %s", step, ae.Status, ae.Code)
			}
			errs.add(k, 1)
			failed.Add(1)
			firstErr.CompareAndSwap(nil, &k)
		}
	)
	type job struct {
		i   int
		due time.Time
	}
	jobs := make(chan job, o.conns)
	var wg sync.WaitGroup
	for w := 0; w < o.connectConc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for j := range jobs {
				u := j.i / o.connsPerUser
				inst := j.i % len(o.urls)
				token := accs[u].Token
				if o.login {
					su := &users[u]
					su.once.Do(func() {
						t0 := time.Now()
						acc, err := apis[inst].login(ctx, accs[u].Email, accs[u].Password)
						if err != nil {
							su.err = err
							return
						}
						loginH.record(w, time.Since(t0))
						su.token = acc.Token
					})
					if su.err != nil {
						noteErr("login", su.err)
						continue
					}
					token = su.token
				}
				t0 := time.Now()
				ticket, err := apis[inst].ticket(ctx, token)
				if err != nil {
					noteErr("ticket", err)
					continue
				}
				ticketH.record(w, time.Since(t0))
				c, took, err := d.dialWS(ctx, targets[inst]+"?ticket="+url.QueryEscape(ticket), "")
				if err != nil {
					noteErr("upgrade", err)
					continue
				}
				upH.record(w, took)
				t1 := time.Now()
				hello := make(chan struct{}) // closed at the first frame, or when the socket ends before one
				var greeted atomic.Bool
				go func() {
					first := true
					for {
						_, r, err := c.NextReader()
						if err != nil {
							if first {
								close(hello)
							} else if !closing.Load() {
								dropped.Add(1)
							}
							return
						}
						io.Copy(io.Discard, r)
						if first {
							first = false
							greeted.Store(true)
							close(hello)
						}
					}
				}()
				select {
				case <-hello:
				case <-time.After(o.timeout):
				case <-ctx.Done():
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				if !greeted.Load() {
					// Closed or silent: not a hello to time.
					noteErr("hello", errNoHello)
					continue
				}
				helloH.record(w, time.Since(t1))
				totalH.record(w, time.Since(j.due))
			}
		}(w)
	}
	start := time.Now().Add(10 * time.Millisecond)
	if o.arrivalRate > 0 {
		p := pacer{rate: o.arrivalRate, total: int64(o.conns)}
		p.run(ctx, start, func(i int64, due time.Time) {
			lagMu.Lock()
			recordDur(lagH, time.Since(due))
			lagMu.Unlock()
			jobs <- job{int(i), due}
		})
	} else {
		for i := 0; i < o.conns && ctx.Err() == nil; i++ {
			jobs <- job{i, start}
		}
	}
	close(jobs)
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.Opened, res.Failed, res.Errors = int64(len(conns)), failed.Load(), errs.snapshot()
	res.ConnectRate = float64(res.Opened) / res.Seconds
	res.LoginLat, res.TicketLat, res.UpgradeLat = loginH.summary(), ticketH.summary(), upH.summary()
	res.HelloLat, res.TotalLat, res.Lag = helloH.summary(), totalH.summary(), summarize(lagH)
	o.logf("storm: %d open, %d failed in %.1f s", res.Opened, res.Failed, res.Seconds)

	// Let the server finish what the storm queued (presence, unread
	// look-ups) before the 'after' scrape; the sockets stay open.
	sleepCtx(ctx, time.Second)
	after, err := scrapeAll(context.WithoutCancel(ctx), hc, o.urls)
	if err != nil {
		return err
	}
	cAfter, mAfter := clientNow(), cpuNow()
	res.Dropped = dropped.Load()
	res.Servers = compareAll(before, after)
	res.Client = compareClient(cBefore, cAfter)
	res.Machine = compareCPU(mBefore, mAfter, res.Servers, res.Client)
	closing.Store(true)
	closeAll(conns)
	if res.Opened == 0 && res.Failed > 0 {
		return fmt.Errorf("storm: no socket opened; first error: %s", *firstErr.Load())
	}
	return nil
}

func (r *StormResult) print(w io.Writer) {
	rate := "as fast as allowed"
	if r.ArrivalRate > 0 {
		rate = fmt.Sprintf("%.0f/s", r.ArrivalRate)
	}
	fmt.Fprintf(w, "\n== storm: %d sockets of %d users (%d each), arrivals %s, %d in parallel, login %v, %d source IPs\n",
		r.Conns, r.Users, r.ConnsPerUser, rate, r.Concurrency, r.Login, r.SourceIPs)
	fmt.Fprintf(w, "opened %d, failed %d in %.1f s: %.0f connections/s; dropped after hello %d\n",
		r.Opened, r.Failed, r.Seconds, r.ConnectRate, r.Dropped)
	fmt.Fprintf(w, "errors: %s\n", fmtCounts(r.Errors))
	rows := []namedSummary{}
	if r.Login {
		rows = append(rows, namedSummary{"login (once per user)", r.LoginLat})
	}
	rows = append(rows, namedSummary{"ticket", r.TicketLat}, namedSummary{"upgrade", r.UpgradeLat},
		namedSummary{"upgrade→hello", r.HelloLat}, namedSummary{"due→hello (all)", r.TotalLat})
	if r.ArrivalRate > 0 {
		rows = append(rows, namedSummary{"generator lag", r.Lag})
	}
	latencyTable(w, rows)
	printServers(w, r.Servers)
	printClient(w, r.Client)
	printMachine(w, r.Machine)
}

// errNoHello: the socket closed, or sent nothing within --timeout, after
// its upgrade.
var errNoHello = errors.New("no hello frame")
