package main

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// IdleResult is what the idle scenario measured.
type IdleResult struct {
	Target       int              `json:"target"`
	Users        int              `json:"users"`
	ConnsPerUser int              `json:"conns_per_user"`
	SourceIPs    int              `json:"source_ips"`
	Opened       int64            `json:"opened"`
	Failed       int64            `json:"failed"`
	FailReasons  map[string]int64 `json:"fail_reasons"`

	ConnectSeconds float64 `json:"connect_seconds"`
	ConnectRate    float64 `json:"connects_per_second"`
	Handshake      Summary `json:"handshake"` // TCP connect + upgrade
	Hello          Summary `json:"hello"`     // from dialing to the hello frame

	HoldSeconds float64          `json:"hold_seconds"`
	Dropped     int64            `json:"dropped_during_hold"`
	DropReasons map[string]int64 `json:"drop_reasons"`

	Servers []ServerReport `json:"servers"`
	Client  ClientReport   `json:"client"`
	PerConn PerConn        `json:"per_connection_bytes"`
	Kernel  KernelDelta    `json:"kernel"`
	Machine MachineCPU     `json:"machine_cpu"`
}

// PerConn is memory per open connection: (after − before) / opened.
type PerConn struct {
	ServerRSS       float64 `json:"server_rss"`
	ServerHeap      float64 `json:"server_heap_inuse"`
	ServerStack     float64 `json:"server_stack_inuse"`
	ServerHeapLive  float64 `json:"server_heap_live_est"`
	ServerGoSys     float64 `json:"server_go_sys"`
	KernelSlab      float64 `json:"kernel_slab_both_ends"`
	ClientRSS       float64 `json:"client_rss"`
	ClientHeapStack float64 `json:"client_heap_plus_stack"`
}

// KernelDelta is the machine-wide change in socket memory.
type KernelDelta struct {
	TCPInuseDelta    int64 `json:"tcp_sockets"`
	TCPMemPagesDelta int64 `json:"tcp_buffer_pages"`
	SlabDeltaKB      int64 `json:"slab_kib"`
}

// runIdle opens o.conns sockets spread over the servers, holds them for
// o.hold and measures what they cost.
func runIdle(ctx context.Context, o *options, rep *Report) error {
	nUsers := (o.conns + o.connsPerUser - 1) / o.connsPerUser
	hc := newHTTPClient(o.timeout)
	a := &api{base: o.urls[0], hc: hc}
	need := o.hold + o.settle + time.Duration(o.conns/100+120)*time.Second
	accs, err := accounts(ctx, a, nUsers, o.usersFile, o.regConc, need, o.logf)
	if err != nil {
		return err
	}
	targets := make([]string, len(o.urls))
	for i, u := range o.urls {
		if targets[i], err = wsURL(u); err != nil {
			return err
		}
	}
	res := &IdleResult{Target: o.conns, Users: nUsers, ConnsPerUser: o.connsPerUser, SourceIPs: o.sourceIPs}
	rep.Idle = res

	o.logf("idle: before: waiting %s for the servers to settle", o.settle)
	sleepCtx(ctx, o.settle)
	before, err := scrapeAll(ctx, hc, o.urls)
	if err != nil {
		return err
	}
	cBefore, kBefore, mBefore := clientNow(), kernelNow(), cpuNow()

	d := newDialer(o.sourceIPs, o.timeout)
	var (
		mu        sync.Mutex
		conns     = make([]*websocket.Conn, 0, o.conns)
		hsHist    = newStripedHist(8)
		helloHist = newStripedHist(8)
		fails     counterMap
		drops     counterMap
		failed    atomic.Int64
		dropped   atomic.Int64
		holding   atomic.Bool
		closing   atomic.Bool
	)
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < o.connectConc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := range jobs {
				// Connections i*K.. of one user go to consecutive slots so a
				// user holds at most connsPerUser sockets.
				acc := accs[i/o.connsPerUser]
				t0 := time.Now()
				c, took, err := d.dialWS(ctx, targets[i%len(targets)], acc.Token)
				if err != nil {
					failed.Add(1)
					fails.add(errorKey(err), 1)
					continue
				}
				hsHist.record(w, took)
				hello := make(chan struct{})
				go func() {
					first := true
					for {
						_, r, err := c.NextReader()
						if err != nil {
							if first {
								close(hello)
							}
							if !closing.Load() {
								if holding.Load() {
									dropped.Add(1)
								}
								drops.add(errorKey(err), 1)
							}
							return
						}
						io.Copy(io.Discard, r)
						if first {
							first = false
							close(hello)
						}
					}
				}()
				select {
				case <-hello:
					helloHist.record(w, time.Since(t0))
				case <-time.After(o.timeout):
				case <-ctx.Done():
				}
				mu.Lock()
				conns = append(conns, c)
				n := len(conns)
				mu.Unlock()
				if n%2000 == 0 {
					o.logf("idle: %d open (%.0f/s)", n, float64(n)/time.Since(start).Seconds())
				}
			}
		}(w)
	}
	for i := 0; i < o.conns && ctx.Err() == nil; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	res.ConnectSeconds = time.Since(start).Seconds()
	res.Opened = int64(len(conns))
	res.Failed = failed.Load()
	res.FailReasons = fails.snapshot()
	res.ConnectRate = float64(res.Opened) / res.ConnectSeconds
	res.Handshake, res.Hello = hsHist.summary(), helloHist.summary()
	o.logf("idle: %d open, %d failed in %.1f s; holding %s", res.Opened, res.Failed, res.ConnectSeconds, o.hold)

	// Drops that happened while connecting (say, the server's limit) are
	// in drops already; count what the hold loses on its own.
	holding.Store(true)
	holdStart := time.Now()
	sleepCtx(ctx, o.hold)
	res.HoldSeconds = time.Since(holdStart).Seconds()
	res.Dropped = dropped.Load()
	after, err := scrapeAll(context.WithoutCancel(ctx), hc, o.urls)
	if err != nil {
		return err
	}
	cAfter, kAfter, mAfter := clientNow(), kernelNow(), cpuNow()
	res.DropReasons = drops.snapshot()
	res.Servers = compareAll(before, after)
	res.Client = compareClient(cBefore, cAfter)
	res.Machine = compareCPU(mBefore, mAfter, res.Servers, res.Client)
	res.Kernel = KernelDelta{TCPInuseDelta: kAfter.TCPInuse - kBefore.TCPInuse,
		TCPMemPagesDelta: kAfter.TCPMemPage - kBefore.TCPMemPage, SlabDeltaKB: kAfter.SlabKB - kBefore.SlabKB}
	if n := float64(res.Opened); n > 0 {
		var p PerConn
		for _, s := range res.Servers {
			p.ServerRSS += s.RSSAfter - s.RSSBefore
			p.ServerHeap += s.HeapInuseAfter - s.HeapInuseBefore
			p.ServerStack += s.StackInuseAfter - s.StackInuseBefore
			p.ServerHeapLive += s.HeapLiveAfter - s.HeapLiveBefore
			p.ServerGoSys += s.GoSysAfter - s.GoSysBefore
		}
		p.ServerRSS /= n
		p.ServerHeap /= n
		p.ServerStack /= n
		p.ServerHeapLive /= n
		p.ServerGoSys /= n
		p.KernelSlab = float64(res.Kernel.SlabDeltaKB) * 1024 / n
		p.ClientRSS = float64(cAfter.RSS-cBefore.RSS) / n
		p.ClientHeapStack = (float64(cAfter.HeapInuse+cAfter.StackInuse) - float64(cBefore.HeapInuse+cBefore.StackInuse)) / n
		res.PerConn = p
	}

	closing.Store(true)
	o.logf("idle: closing %d connections", len(conns))
	closeAll(conns)
	return nil
}

// closeAll closes sockets with a normal close frame, a few at a time.
func closeAll(conns []*websocket.Conn) {
	var wg sync.WaitGroup
	ch := make(chan *websocket.Conn)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
					time.Now().Add(time.Second))
				c.Close()
			}
		}()
	}
	for _, c := range conns {
		ch <- c
	}
	close(ch)
	wg.Wait()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
