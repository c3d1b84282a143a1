// Command aichat-load drives a running aichat server (or several sharing
// one Redis) over real sockets and reports what it measured.
//
// Scenarios:
//
//	idle      open N WebSocket connections and hold them: connect rate,
//	          handshake percentiles, and the server's memory per connection
//	          (RSS, Go heap and stacks from /metrics, before and after).
//	storm     connect storm with auth: N sockets as fast as allowed or at a
//	          set arrival rate, each signing in (--login, once per user) or
//	          using its saved token, taking a ticket, upgrading with it and
//	          waiting for hello; percentiles per step, errors by kind.
//	fanout    one chat of M members, one socket each; senders send at a fixed
//	          rate (open loop: messages are sent when due, whatever the
//	          answers) and every member times each chat_message from its due
//	          time, carried in the text, to its arrival (send→deliver).
//	          --members 2,10,100 runs one phase per chat size, with a table
//	          per size and one comparing them.
//	redis     fanout twice over two servers sharing Redis: all members on the
//	          first, then members alternating between them; the difference,
//	          and same-instance against other-instance deliveries within the
//	          second run, is the cost of the Redis hop.
//	ai        assistant answers: users each in a personal chat ask questions
//	          at a fixed rate (open loop); the tool's own fake model streams
//	          the answers with every token stamped with its write time, and
//	          the tool times send → upstream request, each token's relay to
//	          the asker's socket, and the added time to first token.
//	reconnect clients in chats receive a steady stream; a share of their
//	          sockets is dropped at once and reconnects with resume from the
//	          last seq seen; every client counts missed and doubled messages
//	          by seq (exit 1 unless both are 0); reconnect percentiles.
//	slow      fanout without, then with, one member's extra socket that
//	          stops reading (or reads slowly): the fast members' percentiles
//	          against the baseline, the slow socket's drop (close code, last
//	          frame) and its resume without loss.
//	soak      a mixed load (reconnect's stream, periodic drops, socket churn)
//	          for --duration (10 min): memory and goroutines sampled from
//	          /metrics, and whether they return to the warm baseline within
//	          a tolerance after a settle (exit 1 if not).
//	users     register accounts into --users-file and exit, so the server
//	          can be restarted before a run (password hashing inflates its
//	          memory for a while).
//
// Latencies go into HDR histograms (1 µs to 120 s, 3 significant digits)
// and are reported as p50, p90, p99, p99.9 and max; --json writes the
// whole report, which always holds the servers' CPU seconds, RSS, heap and
// goroutines before and after (from /metrics) and the tool's own
// RLIMIT_NOFILE as found and as raised. Run with --help for every flag.
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
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
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

	members        int   // the largest of memberSizes
	memberSizes    []int // fanout: one phase per size
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
	aiAnswer      string
	aiWaitServer  time.Duration

	login       bool
	arrivalRate float64

	clients      int
	clientsGiven bool
	dropShare    float64
	jitter       time.Duration

	slowMode   string
	slowAfter  time.Duration
	slowStall  time.Duration
	slowDelay  time.Duration
	slowRcvBuf int
	slowMSS    int
	baseline   bool

	dropEvery   time.Duration
	churn       int
	sample      time.Duration
	settleAfter time.Duration
	tolerance   float64
	pprof       string

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
  idle      open --conns sockets, hold them --hold; connect rate, handshake
            p99, server memory per connection (from /metrics before/after)
  storm     open --conns sockets (--conns-per-user each) as fast as
            --connect-concurrency allows, or at --arrival-rate; each: --login
            (once per user) or the saved token, POST /ws/ticket, upgrade with
            ?ticket=, hello; percentiles per step, errors by kind
  fanout    one chat of --members, one socket each; --rate messages/s for
            --duration; send→deliver percentiles, deliveries/s, losses;
            --members 2,10,100 runs each size in turn
  redis     fanout with every member on the first --url, then with members
            alternating over two --url servers (sharing Redis): the Redis hop
  ai        --streams assistant answers at once, each in its own user's personal
            chat (with --history earlier messages), streamed by the tool's own
            fake model (--upstream) at --token-rate; send→upstream request,
            per-token relay, added time to first token, tokens/s, server CPU
  reconnect --clients sockets in chats of --members get --rate messages/s;
            after --warmup, --drop-share of them are dropped at once and
            reconnect (within --jitter) with resume; missed and doubled
            messages counted by seq (exit 1 unless 0), reconnect percentiles
  slow      fanout, then fanout with one extra socket that stops reading
            (--slow-mode stop) or reads a frame per --slow-delay (slow) after
            --slow-after: the others' percentiles against the first run, the
            slow one's close code and its resume without loss
  soak      reconnect's load plus drops every --drop-every and --churn
            sockets/s for --duration (default 10m) after a --warmup; server
            memory and goroutines sampled every --sample; exit 1 unless they
            return within --tolerance of the warm baseline in --settle-after
  users     register --conns/--conns-per-user (idle, storm), --members or
            --clients accounts into --users-file, then exit

Scenario defaults (when the flag is not given):
  storm:     --conns 1000 --conns-per-user 1
  reconnect: --members 10 --rate 100 --warmup 5s --duration 20s
  slow:      --members 20 --rate 200 --warmup 3s --duration 20s
  soak:      --members 10 --clients 200 --rate 20 --duration 10m --warmup 1m

Server settings that matter (environment of the server):
  AICHAT_WS_MAX_CONNS_PER_USER (20)   sockets per user: idle uses one user per
                                      --conns-per-user sockets
  AICHAT_WS_COMMANDS_PER_MINUTE (600) per socket: --rate/--senders*60 must stay
                                      under it (fanout sends from every member
                                      by default: 1000/s over 100 = 600/min)
  AICHAT_ACCESS_TTL (15m)             tokens in --users-file are re-issued when
                                      they would expire during the run
  AICHAT_WS_QUEUE_SIZE (256)          slow: frames queued for one socket (after
                                      the kernel's buffers) before it is dropped
  The server's own RLIMIT_NOFILE bounds its sockets (Go raises soft to hard).
  storm --login: login is an argon2id hash (19 MiB, tens of ms of CPU) each.
  soak --pprof: the server's AICHAT_PPROF_ADDR, to force a GC before checks.
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
	fs.StringVar(&o.scenario, "scenario", "", "idle, storm, fanout, redis, ai, reconnect, slow, soak or users (or give it as the first argument)")
	fs.StringVar(&o.jsonOut, "json", "", "write the full report as JSON to this file")
	fs.StringVar(&o.usersFile, "users-file", "", "reuse and save accounts here (JSON with passwords and tokens: test accounts only)")
	fs.IntVar(&o.sourceIPs, "source-ips", 0, "bind client sockets to 127.0.0.2 .. 127.0.0.(N+1) in turn, for more than ~28k sockets to one listener (0: the kernel picks)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "timeout of one HTTP request, handshake or socket write")
	fs.IntVar(&o.regConc, "reg-concurrency", 4, "parallel registrations (each costs the server an argon2id hash: 19 MiB, ~tens of ms)")
	fs.IntVar(&o.connectConc, "connect-concurrency", 64, "parallel WebSocket handshakes")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "wait before the 'before' scrape (and, in fanout, after connecting)")

	fs.IntVar(&o.conns, "conns", 20000, "idle, storm: sockets to open")
	fs.IntVar(&o.connsPerUser, "conns-per-user", 20, "idle, storm: sockets per account; keep it <= AICHAT_WS_MAX_CONNS_PER_USER")
	fs.DurationVar(&o.hold, "hold", 30*time.Second, "idle: how long to hold the sockets open before the 'after' scrape (the server pings every 25 s)")

	var sizes string
	fs.StringVar(&sizes, "members", "100", "fanout, slow: chat members, one socket each; fanout takes a list (2,10,100: one phase per size); reconnect, soak: members per chat")
	fs.IntVar(&o.senders, "senders", 0, "fanout: members that send, spread over the members (0: all)")
	fs.Float64Var(&o.rate, "rate", 1000, "fanout, slow, reconnect, soak: messages per second, all senders together; ai: questions per second (default: --streams / answer length)")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "fanout, slow: measured sending time; reconnect: sending time after the drop; soak: the whole load")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "fanout, slow: sending time before the measured window (not in the percentiles); reconnect: before the drop; soak: the warm-up load before the baseline")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "fanout, slow, reconnect, soak: how long to wait after the last send for acks and deliveries")
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
	fs.StringVar(&o.aiAnswer, "answer", "words", "ai: the answers' text: words (prose, one word per token, each token's write time kept by the tool) or stamps (each token is ' <k>:<write time ns>', a new number to index every time)")
	fs.DurationVar(&o.aiWaitServer, "wait-server", time.Minute, "ai: wait this long for the server's /healthz (so it may be started after the tool)")

	fs.BoolVar(&o.login, "login", false, "storm: sign in (POST /auth/login, one per user, timed) instead of using the tokens of --users-file")
	fs.Float64Var(&o.arrivalRate, "arrival-rate", 0, "storm: sockets started per second, open loop (0: as fast as --connect-concurrency allows)")

	fs.IntVar(&o.clients, "clients", 1000, "reconnect, soak: member sockets (one per user), in chats of --members")
	fs.Float64Var(&o.dropShare, "drop-share", 0.5, "reconnect, soak: share of the sockets dropped at once")
	fs.DurationVar(&o.jitter, "jitter", 0, "reconnect, soak: each dropped socket waits a random time up to this before reconnecting")

	fs.StringVar(&o.slowMode, "slow-mode", "stop", "slow: stop (stop reading) or slow (read one frame per --slow-delay)")
	fs.DurationVar(&o.slowAfter, "slow-after", 2*time.Second, "slow: read normally this long first")
	fs.DurationVar(&o.slowStall, "slow-stall", 20*time.Second, "slow --slow-mode stop: read again after this long if the server has not dropped the socket")
	fs.DurationVar(&o.slowDelay, "slow-delay", 50*time.Millisecond, "slow --slow-mode slow: time between two reads")
	fs.IntVar(&o.slowRcvBuf, "slow-rcvbuf", 0, "slow: the slow socket's SO_RCVBUF in bytes (0: the kernel's; below loopback's 64 KiB MSS a reader that resumes crawls on zero-window probes)")
	fs.IntVar(&o.slowMSS, "slow-mss", 1460, "slow: the TCP MSS the slow socket offers (0: loopback's 64 KiB, with which the server's send buffer grows to MiBs before its queue fills)")
	fs.BoolVar(&o.baseline, "baseline", true, "slow: first run without the slow consumer, to compare with")

	fs.DurationVar(&o.dropEvery, "drop-every", time.Minute, "soak: drop --drop-share of the sockets this often")
	fs.IntVar(&o.churn, "churn", 5, "soak: short-lived sockets opened (and closed a second later) per second")
	fs.DurationVar(&o.sample, "sample", 10*time.Second, "soak: /metrics sampling period")
	fs.DurationVar(&o.settleAfter, "settle-after", time.Minute, "soak: quiet time before the baseline, and the longest wait for the figures to return after the load")
	fs.Float64Var(&o.tolerance, "tolerance", 0.2, "soak: a figure is back when within baseline × (1 + tolerance) plus a small slack (16 MiB RSS, 8 MiB heap, 10 goroutines, 10 fds)")
	fs.StringVar(&o.pprof, "pprof", "", "soak: the server's AICHAT_PPROF_ADDR as http://host:port, to force a GC before the baseline and each check")
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
	if !slices.Contains(scenarios, o.scenario) {
		fs.Usage()
		return nil, fmt.Errorf("want a scenario: %s (got %q)", strings.Join(scenarios, ", "), o.scenario)
	}
	// Defaults that suit the scenario, for the flags not given.
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, kv := range scenarioDefaults[o.scenario] {
		if !given[kv[0]] {
			fs.Set(kv[0], kv[1])
		}
	}
	o.clientsGiven = given["clients"]
	o.memberSizes = nil
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("--members: want a number or a list like 2,10,100 (got %q)", sizes)
		}
		if n < 2 {
			return nil, fmt.Errorf("--members must be at least 2")
		}
		o.memberSizes = append(o.memberSizes, n)
		o.members = max(o.members, n)
	}
	if len(o.memberSizes) > 1 && o.scenario != "fanout" && o.scenario != "users" {
		return nil, fmt.Errorf("--members: a list of sizes is for fanout only")
	}
	switch {
	case o.conns < 1 || o.connsPerUser < 1 || o.connectConc < 1 || o.regConc < 1:
		return nil, fmt.Errorf("--conns, --conns-per-user, --connect-concurrency and --reg-concurrency must be positive")
	case o.rate <= 0 || o.duration <= 0 || o.warmup < 0:
		return nil, fmt.Errorf("--rate and --duration must be positive")
	case o.via != "ws" && o.via != "rest":
		return nil, fmt.Errorf("--via: want ws or rest")
	case o.scenario == "redis" && len(o.urls) < 2:
		return nil, fmt.Errorf("redis: give two servers sharing Redis: --url A --url B")
	case o.sourceIPs < 0 || o.sourceIPs > 250:
		return nil, fmt.Errorf("--source-ips: 0 to 250")
	case o.scenario == "ai" && o.aiAnswer != "words" && o.aiAnswer != "stamps":
		return nil, fmt.Errorf("--answer: words or stamps, not %q", o.aiAnswer)
	case o.scenario == "ai" && (o.aiStreams < 1 || o.aiTokens < 1 || o.aiTokenRate <= 0 || o.aiTTFT < 0):
		return nil, fmt.Errorf("ai: --streams, --tokens and --token-rate must be positive, --ttft not negative")
	case o.arrivalRate < 0 || o.clients < 1 || o.dropShare < 0 || o.dropShare > 1 || o.jitter < 0:
		return nil, fmt.Errorf("--arrival-rate, --clients, --jitter must not be negative, --drop-share 0 to 1")
	case o.scenario == "reconnect" && o.warmup <= 0:
		return nil, fmt.Errorf("reconnect: --warmup (the time before the drop) must be positive")
	case o.scenario == "slow" && o.slowMode != "stop" && o.slowMode != "slow":
		return nil, fmt.Errorf("--slow-mode: want stop or slow")
	case o.scenario == "slow" && o.members < 3:
		return nil, fmt.Errorf("slow: --members at least 3")
	case o.scenario == "soak" && (o.sample <= 0 || o.dropEvery <= 0 || o.tolerance < 0 || o.churn < 0):
		return nil, fmt.Errorf("soak: --sample and --drop-every must be positive, --tolerance and --churn not negative")
	case o.scenario == "ai" && (o.aiUsers < 0 || o.aiHistory < 0 || o.aiHistorySize < 1 || o.aiDepth < 0):
		return nil, fmt.Errorf("ai: --chats, --history and --depth must not be negative, --history-size positive")
	}
	o.repeat = max(o.repeat, 1)
	return o, nil
}

var scenarios = []string{"idle", "storm", "fanout", "redis", "ai", "reconnect", "slow", "soak", "users"}

// scenarioDefaults are flag values a scenario uses unless they are given:
// the shared flags' defaults suit fanout and idle.
var scenarioDefaults = map[string][][2]string{
	"storm":     {{"conns", "1000"}, {"conns-per-user", "1"}},
	"reconnect": {{"members", "10"}, {"rate", "100"}, {"warmup", "5s"}, {"duration", "20s"}},
	"slow":      {{"members", "20"}, {"rate", "200"}, {"warmup", "3s"}, {"duration", "20s"}},
	"soak":      {{"members", "10"}, {"clients", "200"}, {"rate", "20"}, {"duration", "10m"}, {"warmup", "1m"}},
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
	was, now, err := raiseNofile()
	limits := FDLimits{Found: was, Raised: now}
	nofileSoft, nofileHard = now.Soft, now.Hard
	if err != nil {
		limits.Error = err.Error()
		o.logf("RLIMIT_NOFILE: %v (soft %d, hard %d)", err, nofileSoft, nofileHard)
	} else {
		o.logf("RLIMIT_NOFILE: soft %d, hard %d; raised to soft %d, hard %d", was.Soft, was.Hard, nofileSoft, nofileHard)
	}
	if (o.scenario == "idle" || o.scenario == "storm") && uint64(o.conns)+64 > nofileSoft && nofileSoft > 0 {
		o.logf("warning: %d sockets need more file descriptors than RLIMIT_NOFILE %d allows; expect 'too many open files'", o.conns, nofileSoft)
	}
	rep := &Report{Tool: "aichat-load", Scenario: o.scenario, Started: time.Now().UTC(), Machine: machineNow(),
		Settings: o.settings(), Limits: limits}
	switch o.scenario {
	case "users":
		n := max((o.conns+o.connsPerUser-1)/o.connsPerUser, o.members)
		if o.clientsGiven {
			n = max(n, (o.clients+o.members-1)/o.members*o.members)
		}
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
	case "storm":
		if err := runStorm(ctx, o, rep); err != nil {
			return err
		}
		rep.Storm.print(stdout)
	case "reconnect":
		if err := runReconnect(ctx, o, rep); err != nil {
			return err
		}
		rep.Reconnect.print(stdout)
	case "soak":
		if err := runSoak(ctx, o, rep); err != nil {
			return err
		}
		rep.Soak.print(stdout)
	case "slow":
		a := &api{base: o.urls[0], hc: newHTTPClient(o.timeout)}
		need := 2*(o.warmup+o.duration+o.drain+o.settle+o.slowStall) + 2*time.Minute
		accs, err := accounts(ctx, a, o.members, o.usersFile, o.regConc, need, o.logf)
		if err != nil {
			return err
		}
		if err := runSlow(ctx, o, rep, accs); err != nil {
			return err
		}
		rep.Slow.print(stdout)
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
				for _, size := range o.memberSizes {
					name := fmt.Sprintf("%d instance(s)", n)
					if len(o.memberSizes) > 1 {
						name = fmt.Sprintf("%d members, %d instance(s)", size, n)
					}
					res, err := runFanout(ctx, o, rep, accs[:size], name, func(i int) int { return i % n }, nil)
					if err != nil {
						return err
					}
					res.print(stdout)
					rep.Fanout = append(rep.Fanout, res)
				}
				continue
			}
			one, err := runFanout(ctx, o, rep, accs, "one instance", func(int) int { return 0 }, nil)
			if err != nil {
				return err
			}
			one.print(stdout)
			two, err := runFanout(ctx, o, rep, accs, "two instances", func(i int) int { return i % 2 }, nil)
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
		if len(o.memberSizes) > 1 {
			printSizes(stdout, rep.Fanout)
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
	if len(rep.Failures) > 0 {
		return fmt.Errorf("failed: %s", strings.Join(rep.Failures, "; "))
	}
	return nil
}

// printSizes compares the fan-out phases by chat size.
func printSizes(w io.Writer, results []*FanoutResult) {
	fmt.Fprintf(w, "\n== fanout by chat size\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "members\tmsg/s\tacked/due\tdeliveries/s\tp50\tp99\tp99.9\tmax\tmissing\tdup\tserver CPU\t")
	for _, r := range results {
		var cpu float64
		for _, s := range r.Servers {
			cpu += s.CPUPercent
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%d/%d\t%.0f\t%s\t%s\t%s\t%s\t%d\t%d\t%.0f%%\t\n", r.Members, r.Rate, r.Acked, r.Due,
			r.DeliveriesPerSec, fmtUS(r.Latency.P50US), fmtUS(r.Latency.P99US), fmtUS(r.Latency.P999US), fmtUS(r.Latency.MaxUS),
			r.Missing, r.Duplicates, cpu)
	}
	tw.Flush()
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
		"ttft": o.aiTTFT.String(), "answer": o.aiAnswer, "history": o.aiHistory, "history_size": o.aiHistorySize, "depth": o.aiDepth,
		"model": o.aiModel, "upstream": o.aiUpstream, "member_sizes": o.memberSizes,
		"login": o.login, "arrival_rate": o.arrivalRate, "clients": o.clients, "drop_share": o.dropShare,
		"jitter": o.jitter.String(), "slow_mode": o.slowMode, "slow_after": o.slowAfter.String(),
		"slow_stall": o.slowStall.String(), "slow_delay": o.slowDelay.String(), "slow_rcvbuf": o.slowRcvBuf, "slow_mss": o.slowMSS,
		"baseline": o.baseline, "drop_every": o.dropEvery.String(), "churn": o.churn, "sample": o.sample.String(),
		"settle_after": o.settleAfter.String(), "tolerance": o.tolerance, "pprof": o.pprof,
	}
}
