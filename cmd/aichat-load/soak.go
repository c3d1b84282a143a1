package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The soak scenario: a mixed load for --duration (default 10 min; not for
// CI), then a check that the server's memory and goroutines come back.
// The load is the reconnect scenario's (--clients in chats of --members,
// messages at --rate, every client resuming from seq 0 and counting what
// it receives), plus every --drop-every a drop of --drop-share of the
// sockets and their reconnect with resume, plus --churn short-lived
// sockets a second (ticket, upgrade, closed a second later).
//
// The baseline is taken after a warm-up: the same load for --warmup on
// other chats, every socket closed, --settle-after of quiet. Caches, pools
// and the database then hold what a steady server holds, so memory that
// the run leaves behind stands out. /metrics is sampled every --sample
// during the run; after it every socket is closed and the tool polls for
// up to --settle-after until every figure is back within --tolerance of
// the baseline (plus a small absolute slack per figure). With --pprof
// (the server's AICHAT_PPROF_ADDR) it asks the server to collect garbage
// (/debug/pprof/heap?gc=1) before the baseline and each check, so heap
// figures are live memory, not garbage waiting for the next cycle; without
// it Go collects at least every 2 minutes. Exits 1 if a figure did not
// come back, or a message was missed or doubled.

// SoakPoint is one scrape of a server during the soak.
type SoakPoint struct {
	AtSec      float64 `json:"at_seconds"` // since the baseline
	CPUSeconds float64 `json:"cpu_seconds"`
	RSS        float64 `json:"rss_bytes"`
	HeapAlloc  float64 `json:"heap_alloc_bytes"`
	HeapInuse  float64 `json:"heap_inuse_bytes"`
	Goroutines float64 `json:"goroutines"`
	OpenFDs    float64 `json:"open_fds"`
	Conns      float64 `json:"connections"`
}

func soakPoint(s serverSnap, t0 time.Time) SoakPoint {
	return SoakPoint{AtSec: s.At.Sub(t0).Seconds(), CPUSeconds: s.M.sum("process_cpu_seconds_total"),
		RSS: s.M.sum("process_resident_memory_bytes"), HeapAlloc: s.M.sum("go_memstats_heap_alloc_bytes"),
		HeapInuse: s.M.sum("go_memstats_heap_inuse_bytes"), Goroutines: s.M.sum("go_goroutines"),
		OpenFDs: s.M.sum("process_open_fds"), Conns: s.M.sum("aichat_ws_connections")}
}

// SoakCheck compares one figure after the settle with its baseline.
type SoakCheck struct {
	Metric   string  `json:"metric"`
	Baseline float64 `json:"baseline"`
	Peak     float64 `json:"peak"`
	After    float64 `json:"after"`
	Limit    float64 `json:"limit"` // baseline × (1 + tolerance) + slack
	OK       bool    `json:"ok"`
}

// SoakServer is one server's figures over the soak.
type SoakServer struct {
	URL         string      `json:"url"`
	Baseline    SoakPoint   `json:"baseline"`
	Samples     []SoakPoint `json:"samples"`
	After       SoakPoint   `json:"after"`
	Checks      []SoakCheck `json:"checks"`
	CPUPercent  float64     `json:"cpu_percent_during_load"`
	Returned    bool        `json:"returned"`
	ReturnedSec float64     `json:"returned_after_seconds"` // from the last socket closed
}

// SoakResult is what the soak scenario measured.
type SoakResult struct {
	Duration    time.Duration `json:"duration_ns"`
	Warmup      time.Duration `json:"warmup_ns"`
	SettleAfter time.Duration `json:"settle_after_ns"`
	Sample      time.Duration `json:"sample_ns"`
	Tolerance   float64       `json:"tolerance"`
	ForcedGC    bool          `json:"forced_gc"`
	DropEvery   time.Duration `json:"drop_every_ns"`
	Churn       int           `json:"churn_per_second"`

	Load        *ReconnectResult `json:"load"`
	Churned     int64            `json:"churned"`
	ChurnErrors map[string]int64 `json:"churn_errors"`

	Servers  []SoakServer `json:"servers_over_time"`
	Returned bool         `json:"returned_to_baseline"`
	Client   ClientReport `json:"client"`
	Machine  MachineCPU   `json:"machine_cpu"`
}

// soakSlack is the absolute slack per figure, on top of the tolerance.
var soakSlack = map[string]float64{
	"rss_bytes": 16 << 20, "heap_alloc_bytes": 8 << 20, "goroutines": 10, "open_fds": 10,
}

func soakChecks(base, after SoakPoint, peak SoakPoint, tol float64) []SoakCheck {
	mk := func(name string, b, a, p float64) SoakCheck {
		lim := b*(1+tol) + soakSlack[name]
		return SoakCheck{Metric: name, Baseline: b, After: a, Peak: p, Limit: lim, OK: a <= lim}
	}
	return []SoakCheck{
		mk("rss_bytes", base.RSS, after.RSS, peak.RSS),
		mk("heap_alloc_bytes", base.HeapAlloc, after.HeapAlloc, peak.HeapAlloc),
		mk("goroutines", base.Goroutines, after.Goroutines, peak.Goroutines),
		mk("open_fds", base.OpenFDs, after.OpenFDs, peak.OpenFDs),
	}
}

// forceGC asks the server's pprof listener to collect garbage.
func forceGC(ctx context.Context, hc *http.Client, pprof string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pprof+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", req.URL, resp.StatusCode)
	}
	return nil
}

func runSoak(ctx context.Context, o *options, rep *Report) error {
	hc := newHTTPClient(o.timeout)
	need := o.warmup + o.duration + 2*o.settleAfter + o.drain + 5*time.Minute
	accs, members, err := rcAccounts(ctx, o, o.clients, need)
	if err != nil {
		return err
	}
	res := &SoakResult{Duration: o.duration, Warmup: o.warmup, SettleAfter: o.settleAfter, Sample: o.sample,
		Tolerance: o.tolerance, ForcedGC: o.pprof != "", DropEvery: o.dropEvery, Churn: o.churn}
	rep.Soak = res
	scrapeGC := func(ctx context.Context) ([]serverSnap, error) {
		if o.pprof != "" {
			if err := forceGC(ctx, hc, o.pprof); err != nil {
				o.logf("soak: forcing a collection: %v", err)
			}
		}
		return scrapeAll(ctx, hc, o.urls)
	}
	// mixed runs the load for d on fresh chats; sample, if set, is called
	// every --sample meanwhile.
	mixed := func(d time.Duration, sample func()) (*ReconnectResult, int64, map[string]int64, error) {
		r, err := newRCRun(o)
		if err != nil {
			return nil, 0, nil, err
		}
		defer r.close()
		if err := r.setup(ctx, accs, members); err != nil {
			return nil, 0, nil, err
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var churned atomic.Int64
		var churnErrs counterMap
		wg.Add(1)
		go func() {
			defer wg.Done()
			soakChurn(ctx, o, accs, stop, &churned, &churnErrs)
		}()
		if sample != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t := time.NewTicker(o.sample)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						sample()
					}
				}
			}()
		}
		r.send(ctx, d, o.dropEvery, func(ctx context.Context) { r.dropRound(ctx, o.dropShare) })
		r.drain(ctx, o.drain)
		close(stop)
		wg.Wait()
		out := &ReconnectResult{Clients: len(r.clients), Chats: len(r.chats), Members: members, Instances: len(o.urls),
			Rate: o.rate, Duration: d, DropShare: o.dropShare, Jitter: o.jitter}
		r.closing.Store(true)
		r.result(out)
		return out, churned.Load(), churnErrs.snapshot(), nil
	}

	if o.warmup > 0 {
		o.logf("soak: warm-up %s", o.warmup)
		if _, _, _, err := mixed(o.warmup, nil); err != nil {
			return err
		}
	}
	o.logf("soak: settling %s before the baseline", o.settleAfter)
	sleepCtx(ctx, o.settleAfter)
	base, err := scrapeGC(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	res.Servers = make([]SoakServer, len(base))
	for i, s := range base {
		res.Servers[i] = SoakServer{URL: s.URL, Baseline: soakPoint(s, t0)}
	}
	cBefore, mBefore := clientNow(), cpuNow()
	var sMu sync.Mutex
	sample := func() {
		snaps, err := scrapeAll(ctx, hc, o.urls)
		if err != nil {
			o.logf("soak: sample: %v", err)
			return
		}
		sMu.Lock()
		defer sMu.Unlock()
		for i, s := range snaps {
			p := soakPoint(s, t0)
			res.Servers[i].Samples = append(res.Servers[i].Samples, p)
			o.logf("soak: %s at %.0f s: RSS %s, heap %s, goroutines %.0f, fds %.0f, sockets %.0f", s.URL, p.AtSec,
				fmtBytes(p.RSS), fmtBytes(p.HeapAlloc), p.Goroutines, p.OpenFDs, p.Conns)
		}
	}
	o.logf("soak: mixed load for %s", o.duration)
	load, churned, churnErrs, err := mixed(o.duration, sample)
	if err != nil {
		return err
	}
	res.Load, res.Churned, res.ChurnErrors = load, churned, churnErrs
	loadEnd := time.Now()
	if len(res.Servers[0].Samples) > 0 {
		for i := range res.Servers {
			sv := &res.Servers[i]
			last := sv.Samples[len(sv.Samples)-1]
			if dt := last.AtSec - sv.Baseline.AtSec; dt > 0 {
				sv.CPUPercent = 100 * (last.CPUSeconds - sv.Baseline.CPUSeconds) / dt
			}
		}
	}

	// Every socket is closed: wait for the figures to come back.
	o.logf("soak: load over; waiting up to %s for the baseline", o.settleAfter)
	deadline := loadEnd.Add(o.settleAfter)
	var after []serverSnap
	for {
		sleepCtx(ctx, min(2*time.Second, max(time.Until(deadline), 0)))
		after, err = scrapeGC(context.WithoutCancel(ctx))
		if err != nil {
			return err
		}
		all := true
		for i, s := range after {
			sv := &res.Servers[i]
			sv.After = soakPoint(s, t0)
			sv.Checks = soakChecks(sv.Baseline, sv.After, peakOf(sv.Samples), o.tolerance)
			ok := true
			for _, c := range sv.Checks {
				ok = ok && c.OK
			}
			if ok && !sv.Returned {
				sv.Returned, sv.ReturnedSec = true, time.Since(loadEnd).Seconds()
			}
			all = all && ok
		}
		if all || !time.Now().Before(deadline) || ctx.Err() != nil {
			break
		}
	}
	res.Returned = true
	for i := range res.Servers {
		sv := &res.Servers[i]
		for _, c := range sv.Checks {
			if !c.OK {
				sv.Returned = false
				res.Returned = false
				rep.Failures = append(rep.Failures, fmt.Sprintf("soak: %s %s %.0f after settling, baseline %.0f, limit %.0f",
					sv.URL, c.Metric, c.After, c.Baseline, c.Limit))
			}
		}
	}
	cAfter, mAfter := clientNow(), cpuNow()
	res.Client = compareClient(cBefore, cAfter)
	var srv []ServerReport
	for i := range base {
		srv = append(srv, compareSnaps(base[i], after[i]))
	}
	res.Machine = compareCPU(mBefore, mAfter, srv, res.Client)
	load.Servers = srv
	if load.Missed > 0 || load.Doubled > 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("soak: %d missed and %d doubled deliveries (want 0)", load.Missed, load.Doubled))
	}
	return nil
}

func peakOf(ps []SoakPoint) SoakPoint {
	var p SoakPoint
	for _, s := range ps {
		p.RSS, p.HeapAlloc, p.Goroutines, p.OpenFDs = max(p.RSS, s.RSS), max(p.HeapAlloc, s.HeapAlloc), max(p.Goroutines, s.Goroutines), max(p.OpenFDs, s.OpenFDs)
	}
	return p
}

// soakChurn opens --churn sockets a second with a ticket each and closes
// them a second later, until stop.
func soakChurn(ctx context.Context, o *options, accs []account, stop chan struct{}, n *atomic.Int64, errs *counterMap) {
	if o.churn <= 0 {
		return
	}
	hc := newHTTPClient(o.timeout)
	d := newDialer(o.sourceIPs, o.timeout)
	var prev []*websocket.Conn
	t := time.NewTicker(time.Second)
	defer t.Stop()
	defer func() { closeAll(prev) }()
	for k := 0; ; k++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		closeAll(prev)
		prev = prev[:0]
		for j := 0; j < o.churn; j++ {
			i := rand.N(len(o.urls))
			acc := accs[rand.N(len(accs))]
			a := &api{base: o.urls[i], hc: hc}
			ticket, err := a.ticket(ctx, acc.Token)
			if err != nil {
				errs.add("ticket: "+errorKey(err), 1)
				continue
			}
			target, _ := wsURL(o.urls[i])
			c, _, err := d.dialWS(ctx, target+"?ticket="+url.QueryEscape(ticket), "")
			if err != nil {
				errs.add("upgrade: "+errorKey(err), 1)
				continue
			}
			go readFrames(c, nil)
			prev = append(prev, c)
			n.Add(1)
		}
	}
}

func (r *SoakResult) print(w io.Writer) {
	gc := "no forced GC"
	if r.ForcedGC {
		gc = "GC forced through pprof before each check"
	}
	fmt.Fprintf(w, "\n== soak: %s of mixed load after a %s warm-up; drops every %s, %d sockets/s churn; tolerance %.0f %% (%s)\n",
		r.Duration, r.Warmup, r.DropEvery, r.Churn, 100*r.Tolerance, gc)
	if r.Load != nil {
		l := r.Load
		fmt.Fprintf(w, "load: %d clients in %d chats, %.0f msg/s: sent %d, acked %d; %d drop rounds, %d dropped, %d reconnected (%d failed); churned sockets %d (errors: %s)\n",
			l.Clients, l.Chats, l.Rate, l.Sent, l.Acked, l.Rounds, l.Dropped, l.Reconnected, l.ReconnectFailed, r.Churned, fmtCounts(r.ChurnErrors))
		fmt.Fprintf(w, "deliveries: expected %d, received %d, MISSED %d, DOUBLED %d; unexpected disconnects %d (%s)\n",
			l.Expected, l.Received, l.Missed, l.Doubled, l.Disconnects, fmtCounts(l.DisconnectReasons))
		latencyTable(w, []namedSummary{{"send→deliver", l.Deliver}, {"drop→resumed", l.DropToResumed}})
	}
	for _, s := range r.Servers {
		fmt.Fprintf(w, "%s: CPU %.0f %% during the load; returned to baseline %v", s.URL, s.CPUPercent, s.Returned)
		if s.Returned {
			fmt.Fprintf(w, " after %.0f s", s.ReturnedSec)
		}
		fmt.Fprintln(w)
		for _, c := range s.Checks {
			f := func(v float64) string { return fmt.Sprintf("%.0f", v) }
			if c.Metric == "rss_bytes" || c.Metric == "heap_alloc_bytes" {
				f = fmtBytes
			}
			fmt.Fprintf(w, "  %-17s baseline %10s  peak %10s  after %10s  limit %10s  %s\n", c.Metric, f(c.Baseline), f(c.Peak), f(c.After), f(c.Limit),
				map[bool]string{true: "ok", false: "NOT BACK"}[c.OK])
		}
	}
	printClient(w, r.Client)
	printMachine(w, r.Machine)
}
