package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is everything a run measured; --json writes it as is.
type Report struct {
	Tool     string          `json:"tool"`
	Scenario string          `json:"scenario"`
	Started  time.Time       `json:"started"`
	Machine  Machine         `json:"machine"`
	Settings map[string]any  `json:"settings"`
	Idle     *IdleResult     `json:"idle,omitempty"`
	Fanout   []*FanoutResult `json:"fanout,omitempty"`
	RedisHop *HopResult      `json:"redis_hop,omitempty"`
	AI       *AIResult       `json:"ai,omitempty"`

	Storm     *StormResult     `json:"storm,omitempty"`
	Reconnect *ReconnectResult `json:"reconnect,omitempty"`
	Slow      *SlowResult      `json:"slow,omitempty"`
	Soak      *SoakResult      `json:"soak,omitempty"`

	// The generator's file descriptor limits, as found and as raised.
	Limits FDLimits `json:"fd_limits"`
	// Checks that failed (the tool then exits with status 1).
	Failures []string `json:"failures,omitempty"`
}

// nofile is one RLIMIT_NOFILE.
type nofile struct {
	Soft uint64 `json:"soft"`
	Hard uint64 `json:"hard"`
}

// FDLimits is the generator's RLIMIT_NOFILE before and after it raised
// the soft limit to the hard one (the most it may without privileges).
type FDLimits struct {
	Found  nofile `json:"found"`
	Raised nofile `json:"raised_to"`
	Error  string `json:"error,omitempty"`
}

// namedSummary is one row of a latency table.
type namedSummary struct {
	Name string
	S    Summary
}

// fmtUS prints microseconds as a short duration: 87µs, 1.24ms, 12.3ms,
// 1.234s.
func fmtUS(us int64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%dµs", us)
	case us < 10_000:
		return fmt.Sprintf("%.2fms", float64(us)/1e3)
	case us < 1_000_000:
		return fmt.Sprintf("%.1fms", float64(us)/1e3)
	default:
		return fmt.Sprintf("%.3fs", float64(us)/1e6)
	}
}

// fmtBytes prints a byte count in binary units.
func fmtBytes(b float64) string {
	neg := b < 0
	if neg {
		b = -b
	}
	var s string
	switch {
	case b < 1<<10:
		s = fmt.Sprintf("%.0f B", b)
	case b < 1<<20:
		s = fmt.Sprintf("%.1f KiB", b/(1<<10))
	case b < 1<<30:
		s = fmt.Sprintf("%.1f MiB", b/(1<<20))
	default:
		s = fmt.Sprintf("%.2f GiB", b/(1<<30))
	}
	if neg {
		return "-" + s
	}
	return s
}

// latencyTable prints rows as an aligned table with count and percentiles.
func latencyTable(w io.Writer, rows []namedSummary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tcount\tp50\tp90\tp99\tp99.9\tmax\t")
	for _, r := range rows {
		if r.S.Count == 0 {
			fmt.Fprintf(tw, "%s\t0\t-\t-\t-\t-\t-\t\n", r.Name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", r.Name, r.S.Count,
			fmtUS(r.S.P50US), fmtUS(r.S.P90US), fmtUS(r.S.P99US), fmtUS(r.S.P999US), fmtUS(r.S.MaxUS))
	}
	tw.Flush()
}

// fmtCounts prints a map as "a 1, b 2" in key order.
func fmtCounts[V int64 | float64](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %v", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func printServers(w io.Writer, servers []ServerReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tCPU\tRSS before\tRSS after\theap before\theap after\tstack after\tgoroutines\tconns\tqueue drops\t")
	for _, s := range servers {
		fmt.Fprintf(tw, "%s\t%.0f%%\t%s\t%s\t%s\t%s\t%s\t%.0f→%.0f\t%.0f→%.0f\t%.0f\t\n", s.URL, s.CPUPercent,
			fmtBytes(s.RSSBefore), fmtBytes(s.RSSAfter), fmtBytes(s.HeapInuseBefore), fmtBytes(s.HeapInuseAfter),
			fmtBytes(s.StackInuseAfter), s.GoroutinesBefore, s.GoroutinesAfter, s.ConnsBefore, s.ConnsAfter, s.QueueDrops)
	}
	tw.Flush()
	for _, s := range servers {
		if len(s.Disconnects) > 0 {
			fmt.Fprintf(w, "  %s disconnects: %s\n", s.URL, fmtCounts(s.Disconnects))
		}
		if s.PublishCount > 0 {
			fmt.Fprintf(w, "  %s broker publishes: %.0f, mean %.0fµs, errors %.0f\n", s.URL, s.PublishCount, s.PublishMeanUS, s.PublishErrors)
		}
	}
}

func printClient(w io.Writer, c ClientReport) {
	fmt.Fprintf(w, "generator: CPU %.0f%% (%.1f s), RSS %s → %s, heap %s, stacks %s, goroutines %d, GOMAXPROCS %d, RLIMIT_NOFILE %d/%d\n",
		c.CPUPercent, c.CPUSeconds, fmtBytes(float64(c.RSSBefore)), fmtBytes(float64(c.RSSAfter)),
		fmtBytes(float64(c.HeapInuseAfter)), fmtBytes(float64(c.StackInuseAfter)), c.GoroutinesAfter, c.GOMAXPROCS,
		c.NofileSoft, c.NofileHard)
}

func printMachine(w io.Writer, m MachineCPU) {
	fmt.Fprintf(w, "machine: %.0f%% CPU busy (of %d00%%): softirq %.0f%%, other processes %.0f%%; load average %.2f → %.2f\n",
		m.BusyPercent, machineCPUs(), m.SoftIRQPercent, m.OthersPercent, m.Load1Before, m.Load1After)
}

func (r *IdleResult) print(w io.Writer) {
	fmt.Fprintf(w, "\n== idle: %d connections to %d server(s), %d users (%d per user), %d source IPs\n",
		r.Target, len(r.Servers), r.Users, r.ConnsPerUser, r.SourceIPs)
	fmt.Fprintf(w, "opened %d, failed %d (%s) in %.1f s: %.0f connections/s\n",
		r.Opened, r.Failed, fmtCounts(r.FailReasons), r.ConnectSeconds, r.ConnectRate)
	latencyTable(w, []namedSummary{{"handshake", r.Handshake}, {"hello", r.Hello}})
	fmt.Fprintf(w, "held %.0f s: %d dropped by the server (%s)\n", r.HoldSeconds, r.Dropped, fmtCounts(r.DropReasons))
	printServers(w, r.Servers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "per connection\tserver RSS\tserver heap inuse\tserver heap live\tserver stacks\theap+stacks\tGo sys\tkernel slab\tclient RSS\tclient heap+stacks\t")
	p := r.PerConn
	fmt.Fprintf(tw, "bytes\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t\n", p.ServerRSS, p.ServerHeap, p.ServerHeapLive,
		p.ServerStack, p.ServerHeap+p.ServerStack, p.ServerGoSys, p.KernelSlab, p.ClientRSS, p.ClientHeapStack)
	tw.Flush()
	fmt.Fprintf(w, "kernel: TCP sockets %+d, socket buffer pages %+d, slab %+d KiB (server and generator sockets together)\n",
		r.Kernel.TCPInuseDelta, r.Kernel.TCPMemPagesDelta, r.Kernel.SlabDeltaKB)
	printClient(w, r.Client)
	printMachine(w, r.Machine)
}

func (r *FanoutResult) print(w io.Writer) {
	fmt.Fprintf(w, "\n== fanout (%s): %d members on %d instance(s) %v, %d senders, %.0f msg/s for %s (+%s warm-up) via %s, %d-byte texts\n",
		r.Name, r.Members, r.Instances, r.Placement, r.Senders, r.Rate, r.Duration, r.Warmup, r.Via, r.Size)
	rows := []namedSummary{{"send→deliver", r.Latency}}
	if r.Local != nil {
		rows = append(rows, namedSummary{"  same instance", *r.Local}, namedSummary{"  other instance", *r.Remote})
	}
	rows = append(rows, namedSummary{"send→ack", r.Ack}, namedSummary{"generator lag", r.Lag})
	latencyTable(w, rows)
	fmt.Fprintf(w, "messages: due %d, sent %d, acked %d, send errors %d (%s), generator drops %d, write errors %d\n",
		r.Due, r.Sent, r.Acked, r.SendErrors, fmtCounts(r.ErrorCodes), r.GeneratorDrops, r.WriteErrors)
	fmt.Fprintf(w, "deliveries (measured window): %d of %d expected (%d per acked message, the sender's own included), missing %d, duplicates %d; %.0f deliveries/s arrived during the window\n",
		r.Delivered, r.Expected, r.Members, r.Missing, r.Duplicates, r.DeliveriesPerSec)
	fmt.Fprintf(w, "disconnects: %d (%s); frames received: %s\n", r.Disconnects, fmtCounts(r.DisconnectReasons), fmtCounts(r.FramesByType))
	printServers(w, r.Servers)
	printClient(w, r.Client)
	printMachine(w, r.Machine)
}

func (h *HopResult) print(w io.Writer) {
	fmt.Fprintf(w, "\n== Redis hop\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tp50\tp99\tp99.9\t")
	row := func(name string, s Summary) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, fmtUS(s.P50US), fmtUS(s.P99US), fmtUS(s.P999US))
	}
	row("one instance (all deliveries)", h.One)
	row("two instances, same instance", h.Local)
	row("two instances, other instance", h.Remote)
	tw.Flush()
	fmt.Fprintf(w, "added by the hop (other − same instance, same run): p50 %s, p99 %s\n", fmtSignedUS(h.AddedP50US), fmtSignedUS(h.AddedP99US))
	fmt.Fprintf(w, "added vs one instance (other instance − one instance): p50 %s, p99 %s\n", fmtSignedUS(h.VsOneP50US), fmtSignedUS(h.VsOneP99US))
}

func fmtSignedUS(us int64) string {
	if us < 0 {
		return "-" + fmtUS(-us)
	}
	return "+" + fmtUS(us)
}

func writeJSON(path string, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
