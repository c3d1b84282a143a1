// Command aichat-load drives a running aichat server (or several sharing
// one Redis) over real sockets and reports what it measured.
//
// Scenarios:
//
//	idle    open N WebSocket connections and hold them: connect rate,
//	        handshake percentiles, and the server's memory per connection
//	        (RSS, Go heap and stacks from /metrics, before and after).
//	fanout  one chat of M members, one socket each; senders send at a fixed
//	        rate (open loop: messages are sent when due, whatever the
//	        answers) and every member times each chat_message from its due
//	        time, carried in the text, to its arrival (send→deliver).
//	redis   fanout twice over two servers sharing Redis: all members on the
//	        first, then members alternating between them; the difference,
//	        and same-instance against other-instance deliveries within the
//	        second run, is the cost of the Redis hop.
//	ai      assistant answers: users each in a personal chat ask questions
//	        at a fixed rate (open loop); the tool's own fake model streams
//	        the answers with every token stamped with its write time, and
//	        the tool times send → upstream request, each token's relay to
//	        the asker's socket, and the added time to first token.
//	users   register accounts into --users-file and exit, so the server
//	        can be restarted before a run (password hashing inflates its
//	        memory for a while).
//
// Latencies go into HDR histograms (1 µs to 120 s, 3 significant digits)
// and are reported as p50, p90, p99, p99.9 and max; --json writes the
// whole report. Run with --help for every flag.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

// options are the command-line settings.
type options struct {
	scenario  string
	urls      []string
	jsonOut   string
	usersFile string
	sourceIPs int
	timeout   time.Duration
	regConc   int

	connectConc int
	settle      time.Duration

	conns        int
	connsPerUser int
	hold         time.Duration

	members        int
	senders        int
	rate           float64
	duration       time.Duration
	warmup         time.Duration
	drain          time.Duration
	size           int
	via            string
	restInflight   int
	serverCmdLimit int
	repeat         int

	aiStreams     int
	aiUsers       int
	aiRate        float64 // 0: --streams / stream length
	aiTokens      int
	aiTokenRate   float64
	aiTTFT        time.Duration
	aiHistory     int
	aiHistorySize int
	aiDepth       int
	aiModel       string
	aiUpstream    string
	aiWaitServer  time.Duration

	logf func(format string, args ...any)
}

type urlList []string

func (u *urlList) String() string { return strings.Join(*u, ",") }
func (u *urlList) Set(v string) error {
	*u = append(*u, strings.TrimRight(v, "/"))
	return nil
}

const usageHead = `aichat-load: load generator for a running aichat server.

Usage:
  aichat-load SCENARIO [flags]      (or: aichat-load --scenario SCENARIO [flags])

Scenarios:
  idle     open --conns sockets, hold them --hold; connect rate, handshake
           p99, server memory per connection (from /metrics before/after)
  fanout   one chat of --members, one socket each; --rate messages/s for
           --duration; send→deliver percentiles, deliveries/s, losses
  redis    fanout with every member on the first --url, then with members
           alternating over two --url servers (sharing Redis): the Redis hop
  ai       --streams assistant answers at once, each in its own user's personal
           chat (with --history earlier messages), streamed by the tool's own
           fake model (--upstream) at --token-rate; send→upstream request,
           per-token relay, added time to first token, tokens/s, server CPU
  users    register --conns/--conns-per-user (idle) or --members accounts
           into --users-file, then exit

Server settings that matter (environment of the server):
  AICHAT_WS_MAX_CONNS_PER_USER (20)   sockets per user: idle uses one user per
                                      --conns-per-user sockets
  AICHAT_WS_COMMANDS_PER_MINUTE (600) per socket: --rate/--senders*60 must stay
                                      under it (fanout sends from every member
                                      by default: 1000/s over 100 = 600/min)
  AICHAT_ACCESS_TTL (15m)             tokens in --users-file are re-issued when
                                      they would expire during the run
  The server's own RLIMIT_NOFILE bounds its sockets (Go raises soft to hard).
  ai: AICHAT_AI_PROVIDERS=fake=http://<--upstream>/v1, AICHAT_AI_COALESCE=0 (no
      coalescing), AICHAT_AI_DAILY_TOKENS=0, AICHAT_AI_MAX_CONCURRENT
      and AICHAT_WS_COMMANDS_PER_MINUTE high

Flags:
`

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("aichat-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var urls urlList
	fs.Var(&urls, "url", "server base URL; repeat for several servers, clients are spread over them in turn (default http://127.0.0.1:8080)")
	fs.StringVar(&o.scenario, "scenario", "", "idle, fanout, redis, ai or users (or give it as the first argument)")
	fs.StringVar(&o.jsonOut, "json", "", "write the full report as JSON to this file")
	fs.StringVar(&o.usersFile, "users-file", "", "reuse and save accounts here (JSON with passwords and tokens: test accounts only)")
	fs.IntVar(&o.sourceIPs, "source-ips", 0, "bind client sockets to 127.0.0.2 .. 127.0.0.(N+1) in turn, for more than ~28k sockets to one listener (0: the kernel picks)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "timeout of one HTTP request, handshake or socket write")
	fs.IntVar(&o.regConc, "reg-concurrency", 4, "parallel registrations (each costs the server an argon2id hash: 19 MiB, ~tens of ms)")
	fs.IntVar(&o.connectConc, "connect-concurrency", 64, "parallel WebSocket handshakes")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "wait before the 'before' scrape (and, in fanout, after connecting)")

	fs.IntVar(&o.conns, "conns", 20000, "idle: sockets to open")
	fs.IntVar(&o.connsPerUser, "conns-per-user", 20, "idle: sockets per account; keep it <= AICHAT_WS_MAX_CONNS_PER_USER")
	fs.DurationVar(&o.hold, "hold", 30*time.Second, "idle: how long to hold the sockets open before the 'after' scrape (the server pings every 25 s)")

	fs.IntVar(&o.members, "members", 100, "fanout: chat members, one socket each")
	fs.IntVar(&o.senders, "senders", 0, "fanout: members that send, spread over the members (0: all)")
	fs.Float64Var(&o.rate, "rate", 1000, "fanout: messages per second, all senders together; ai: questions per second (default: --streams / answer length)")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "fanout: measured sending time")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "fanout: sending time before the measured window (not in the percentiles)")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "fanout: how long to wait after the last send for acks and deliveries")
	fs.IntVar(&o.size, "size", 100, "fanout: message text size in bytes (the marker with the send time is at its start)")
	fs.StringVar(&o.via, "via", "ws", "fanout: send with the socket command send_message (ws) or POST /chats/{id}/messages (rest)")
	fs.IntVar(&o.restInflight, "rest-inflight", 256, "fanout --via rest: requests in flight per sender before messages are dropped")
	fs.IntVar(&o.serverCmdLimit, "server-cmd-limit", 600, "fanout: the server's AICHAT_WS_COMMANDS_PER_MINUTE, to warn before the run trips it")
	fs.IntVar(&o.repeat, "repeat", 1, "fanout, redis: run this many times and also print the median p50/p99")

	fs.IntVar(&o.aiStreams, "streams", 200, "ai: answers streaming at once (sets the start rate: --streams / stream length, unless --rate is given)")
	fs.IntVar(&o.aiUsers, "chats", 0, "ai: users, each with one personal chat and one socket (0: --streams + 25 %; a chat has one answer at a time)")
	fs.IntVar(&o.aiTokens, "tokens", 250, "ai: tokens per answer")
	fs.Float64Var(&o.aiTokenRate, "token-rate", 50, "ai: tokens per second of each answer")
	fs.DurationVar(&o.aiTTFT, "ttft", 0, "ai: the fake model's time to first token")
	fs.IntVar(&o.aiHistory, "history", 20, "ai: earlier messages stored in each chat before the run")
	fs.IntVar(&o.aiHistorySize, "history-size", 200, "ai: bytes of each earlier message")
	fs.IntVar(&o.aiDepth, "depth", 20, "ai: the chats' depth setting (past messages sent to the model)")
	fs.StringVar(&o.aiModel, "model", "fake/gpt-4o-mini", "ai: the chats' model setting (provider/model routes to AICHAT_AI_PROVIDERS' provider of that name)")
	fs.StringVar(&o.aiUpstream, "upstream", "127.0.0.1:18181", "ai: where the fake model listens")
	fs.DurationVar(&o.aiWaitServer, "wait-server", time.Minute, "ai: wait this long for the server's /healthz (so it may be started after the tool)")
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		o.scenario, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "rate" {
			o.aiRate = o.rate
		}
	})
	if o.scenario == "" && fs.NArg() > 0 {
		o.scenario = fs.Arg(0)
	}
	o.urls = urls
	if len(o.urls) == 0 {
		o.urls = []string{"http://127.0.0.1:8080"}
	}
	if !slices.Contains([]string{"idle", "fanout", "redis", "ai", "users"}, o.scenario) {
		fs.Usage()
		return nil, fmt.Errorf("want a scenario: idle, fanout, redis, ai or users (got %q)", o.scenario)
	}
	switch {
	case o.conns < 1 || o.connsPerUser < 1 || o.connectConc < 1 || o.regConc < 1:
		return nil, fmt.Errorf("--conns, --conns-per-user, --connect-concurrency and --reg-concurrency must be positive")
	case o.members < 2:
		return nil, fmt.Errorf("--members must be at least 2")
	case o.rate <= 0 || o.duration <= 0 || o.warmup < 0:
		return nil, fmt.Errorf("--rate and --duration must be positive")
	case o.via != "ws" && o.via != "rest":
		return nil, fmt.Errorf("--via: want ws or rest")
	case o.scenario == "redis" && len(o.urls) < 2:
		return nil, fmt.Errorf("redis: give two servers sharing Redis: --url A --url B")
	case o.sourceIPs < 0 || o.sourceIPs > 250:
		return nil, fmt.Errorf("--source-ips: 0 to 250")
	case o.scenario == "ai" && (o.aiStreams < 1 || o.aiTokens < 1 || o.aiTokenRate <= 0 || o.aiTTFT < 0):
		return nil, fmt.Errorf("ai: --streams, --tokens and --token-rate must be positive, --ttft not negative")
	case o.scenario == "ai" && (o.aiUsers < 0 || o.aiHistory < 0 || o.aiHistorySize < 1 || o.aiDepth < 0):
		return nil, fmt.Errorf("ai: --chats, --history and --depth must not be negative, --history-size positive")
	}
	o.repeat = max(o.repeat, 1)
	return o, nil
}

// RLIMIT_NOFILE after raising, for the report.
var nofileSoft, nofileHard uint64

func main() {
	o, err := parseOptions(os.Args[1:], os.Stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return
		}
		fmt.Fprintln(os.Stderr, "aichat-load:", err)
		os.Exit(2)
	}
	o.logf = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "aichat-load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options, stdout io.Writer) error {
	var err error
	nofileSoft, nofileHard, err = raiseNofile()
	if err != nil {
		o.logf("RLIMIT_NOFILE: %v (soft %d, hard %d)", err, nofileSoft, nofileHard)
	} else {
		o.logf("RLIMIT_NOFILE raised to soft %d, hard %d", nofileSoft, nofileHard)
	}
	if o.scenario == "idle" && uint64(o.conns)+64 > nofileSoft && nofileSoft > 0 {
		o.logf("warning: %d sockets need more file descriptors than RLIMIT_NOFILE %d allows; expect 'too many open files'", o.conns, nofileSoft)
	}
	rep := &Report{Tool: "aichat-load", Scenario: o.scenario, Started: time.Now().UTC(), Machine: machineNow(),
		Settings: o.settings()}
	switch o.scenario {
	case "users":
		n := max((o.conns+o.connsPerUser-1)/o.connsPerUser, o.members)
		a := &api{base: o.urls[0], hc: newHTTPClient(o.timeout)}
		accs, err := accounts(ctx, a, n, o.usersFile, o.regConc, time.Hour, o.logf)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d accounts ready in %s\n", len(accs), o.usersFile)
		return nil
	case "idle":
		if err := runIdle(ctx, o, rep); err != nil {
			return err
		}
		rep.Idle.print(stdout)
	case "ai":
		res, err := runAI(ctx, o)
		if err != nil {
			return err
		}
		res.print(stdout)
		rep.AI = res
	case "fanout", "redis":
		a := &api{base: o.urls[0], hc: newHTTPClient(o.timeout)}
		need := time.Duration(o.repeat) * 2 * (o.warmup + o.duration + o.drain + o.settle + time.Minute)
		accs, err := accounts(ctx, a, o.members, o.usersFile, o.regConc, need, o.logf)
		if err != nil {
			return err
		}
		for r := 0; r < o.repeat; r++ {
			if o.scenario == "fanout" {
				n := len(o.urls)
				res, err := runFanout(ctx, o, rep, accs, fmt.Sprintf("%d instance(s)", n), func(i int) int { return i % n })
				if err != nil {
					return err
				}
				res.print(stdout)
				rep.Fanout = append(rep.Fanout, res)
				continue
			}
			one, err := runFanout(ctx, o, rep, accs, "one instance", func(int) int { return 0 })
			if err != nil {
				return err
			}
			one.print(stdout)
			two, err := runFanout(ctx, o, rep, accs, "two instances", func(i int) int { return i % 2 })
			if err != nil {
				return err
			}
			two.print(stdout)
			rep.Fanout = append(rep.Fanout, one, two)
			hop := &HopResult{One: one.Latency, Local: *two.Local, Remote: *two.Remote}
			hop.AddedP50US = hop.Remote.P50US - hop.Local.P50US
			hop.AddedP99US = hop.Remote.P99US - hop.Local.P99US
			hop.VsOneP50US = hop.Remote.P50US - hop.One.P50US
			hop.VsOneP99US = hop.Remote.P99US - hop.One.P99US
			hop.print(stdout)
			rep.RedisHop = hop
		}
		if o.repeat > 1 {
			printMedians(stdout, rep.Fanout)
		}
	}
	if o.jsonOut != "" {
		if err := writeJSON(o.jsonOut, rep); err != nil {
			return err
		}
		o.logf("wrote %s", o.jsonOut)
	}
	return nil
}

// printMedians prints, per phase name, the median and range of p50 and p99
// over the repetitions.
func printMedians(w io.Writer, results []*FanoutResult) {
	byName := map[string][]*FanoutResult{}
	var names []string
	for _, r := range results {
		if _, ok := byName[r.Name]; !ok {
			names = append(names, r.Name)
		}
		byName[r.Name] = append(byName[r.Name], r)
	}
	fmt.Fprintf(w, "\n== medians over repetitions\n")
	for _, n := range names {
		rs := byName[n]
		p50 := make([]int64, len(rs))
		p99 := make([]int64, len(rs))
		for i, r := range rs {
			p50[i], p99[i] = r.Latency.P50US, r.Latency.P99US
		}
		fmt.Fprintf(w, "%s (%d runs): p50 %s, p99 %s\n", n, len(rs), medianRange(p50), medianRange(p99))
	}
}

// medianRange prints "median (min–max)".
func medianRange(v []int64) string {
	s := slices.Clone(v)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("%s (%s–%s)", fmtUS(s[len(s)/2]), fmtUS(s[0]), fmtUS(s[len(s)-1]))
}

// settings lists the options for the JSON report.
func (o *options) settings() map[string]any {
	return map[string]any{
		"urls": o.urls, "source_ips": o.sourceIPs, "conns": o.conns, "conns_per_user": o.connsPerUser,
		"hold": o.hold.String(), "members": o.members, "senders": o.senders, "rate": o.rate,
		"duration": o.duration.String(), "warmup": o.warmup.String(), "drain": o.drain.String(),
		"size": o.size, "via": o.via, "connect_concurrency": o.connectConc, "repeat": o.repeat,
		"streams": o.aiStreams, "chats": o.aiUsers, "tokens": o.aiTokens, "token_rate": o.aiTokenRate,
		"ttft": o.aiTTFT.String(), "history": o.aiHistory, "history_size": o.aiHistorySize, "depth": o.aiDepth,
		"model": o.aiModel, "upstream": o.aiUpstream,
	}
}
