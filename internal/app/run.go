package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/aichat/aichat/internal/auth"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/search"
	"github.com/aichat/aichat/internal/secrets"
	"github.com/aichat/aichat/internal/store"
)

const usage = `aichat: a self-hosted, real-time AI chat server.

Usage:
  aichat [serve] [flags]         run the server (default)
  aichat migrate [flags]         apply database migrations and exit
  aichat admin create --email E [--password P]
                                 create an admin (or promote E); prints a
                                 generated password when none is given
  aichat keys rotate [--batch N] [--max-wait D]
                                 add a new current encryption key and re-seal
                                 every stored text with it, in batches, while
                                 servers keep running
  aichat keys rotate --index [--wait] [--batch N]
                                 add a new search index key and make it
                                 current; running servers rebuild the index
                                 with it in the background while search
                                 keeps working (--wait: wait, and help,
                                 until the rebuild has finished)
  aichat healthcheck [--addr A | --url U]
                                 exit 0 when GET /healthz on the local
                                 server answers 200 (for container images
                                 without curl)
  aichat version                 print the version

Flags: --addr, --data, --database-url, --redis-url (each mirrors its
AICHAT_* variable; see the README for every setting).
`

// Version is set at build time with -ldflags "-X .../app.Version=...".
var Version = "dev"

// Run is the whole program: it parses args (without the program name),
// reads settings through getenv, and writes logs to stdout and usage errors
// to stderr. It returns when ctx ends or the command is done.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout)
	case "migrate":
		return migrate(ctx, args, getenv, stdout)
	case "admin":
		return admin(ctx, args, getenv, stdout, stderr)
	case "keys":
		return keys(ctx, args, getenv, stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, args, getenv, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "aichat %s (%s)\n", Version, runtime.Version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	start := time.Now()
	cfg, err := config.Load(args, getenv)
	if err != nil {
		return err
	}
	log := NewLogger(stdout, cfg.LogFormat, cfg.LogLevel)
	procs, restoreProcs := setProcs(getenv)
	defer restoreProcs()
	log.Info("starting aichat", append([]any{"version", Version, "gomaxprocs", procs}, cfg.LogAttrs()...)...)
	a, err := New(ctx, cfg, log, Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if cfg.MetricsAddr != "" {
		stop, err := serveMetrics(cfg.MetricsAddr, a.MetricsHandler, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	if cfg.PprofAddr != "" {
		stop, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	log.Info("listening",
		"addr", ln.Addr().String(),
		"url", "http://"+ln.Addr().String(),
		"database", cfg.Database(),
		"database_at", a.DB.Where,
		"broker", a.Broker.Name(),
		"data_dir", cfg.DataDir,
		"startup_ms", time.Since(start).Milliseconds())
	return a.Serve(ctx, ln)
}

func migrate(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(args, getenv)
	if err != nil {
		return err
	}
	log := NewLogger(stdout, cfg.LogFormat, cfg.LogLevel)
	db, err := store.Open(ctx, cfg.DatabaseURL, cfg.DataDir, log)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.Migrate(ctx, log)
	if err != nil {
		return err
	}
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	log.Info("database migrated", "applied", n, "schema_version", v, "database", db.Where)
	return nil
}

func admin(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("admin: want 'admin create --email E'")
	}
	fs := flag.NewFlagSet("admin create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	email := fs.String("email", "", "the admin's email")
	password := fs.String("password", "", "the admin's password (generated when empty)")
	// Config flags (--data, --database-url) may be mixed in; pass them on.
	known, cfgArgs := splitFlags(args[1:], "email", "password")
	if err := fs.Parse(known); err != nil {
		return err
	}
	if *email == "" {
		return fmt.Errorf("admin create: --email is required")
	}
	cfg, err := config.Load(cfgArgs, getenv)
	if err != nil {
		return err
	}
	cfg.AdminEmail, cfg.AdminPassword = "", ""
	log := NewLogger(stderr, cfg.LogFormat, "warn")
	a, err := New(ctx, cfg, log, Options{SearchRebuildPoll: -1}) // a command: no background index rebuild
	if err != nil {
		return err
	}
	defer a.Close()
	pw, generated := *password, false
	if pw == "" {
		pw, generated = generatePassword(), true
	}
	u, res, err := a.Auth.EnsureAdmin(ctx, *email, pw)
	if err != nil {
		return err
	}
	switch {
	case res == auth.AdminCreated && generated:
		fmt.Fprintf(stdout, "created admin %s with password: %s\n", u.Email, pw)
	case res == auth.AdminCreated:
		fmt.Fprintf(stdout, "created admin %s\n", u.Email)
	case res == auth.AdminPromoted:
		fmt.Fprintf(stdout, "%s is now an admin (password unchanged)\n", u.Email)
	default:
		fmt.Fprintf(stdout, "%s is already an admin\n", u.Email)
	}
	return nil
}

func keys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("keys: want 'keys rotate'")
	}
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	batch := fs.Int("batch", 500, "rows re-sealed (messages re-indexed) per transaction")
	maxWait := fs.Duration("max-wait", 30*time.Second, "how long to keep re-sealing rows that running servers still write with the old key")
	index, rest := takeBool(args[1:], "index")
	wait, rest := takeBool(rest, "wait")
	known, cfgArgs := splitFlags(rest, "batch", "max-wait")
	if err := fs.Parse(known); err != nil {
		return err
	}
	cfg, err := config.Load(cfgArgs, getenv)
	if err != nil {
		return err
	}
	cfg.AdminEmail, cfg.AdminPassword = "", ""
	if index {
		return rotateIndex(ctx, cfg, *batch, wait, stdout, stderr)
	}
	if wait {
		return fmt.Errorf("keys rotate: --wait goes with --index (the encryption rotation always waits)")
	}
	if cfg.EncryptionKeys == "" {
		k, err := secrets.AddEncryptionKey(cfg.DataDir)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added encryption key %s to %s (now current)\n", k.ID, filepath.Join(cfg.DataDir, secrets.FileName))
	} else {
		fmt.Fprintln(stdout, "AICHAT_ENCRYPTION_KEYS is set: re-sealing with its first key; to rotate, put a new key first in it on every server, then run this")
	}
	log := NewLogger(stderr, cfg.LogFormat, "warn")
	a, err := New(ctx, cfg, log, Options{SearchRebuildPoll: -1}) // a command: no background index rebuild
	if err != nil {
		return err
	}
	defer a.Close()
	start := time.Now()
	total := 0
	for {
		n, err := a.Chats.Reseal(ctx, *batch)
		total += n
		if err == nil {
			n, err = a.Social.Reseal(ctx, *batch) // notification texts
			total += n
		}
		if err != nil {
			return fmt.Errorf("re-seal: %w (%d rows done; run again to continue)", err, total)
		}
		stale, err := a.Chats.Stale(ctx)
		if err != nil {
			return err
		}
		more, err := a.Social.Stale(ctx)
		if err != nil {
			return err
		}
		stale += more
		if stale == 0 {
			break
		}
		// Servers that have not yet reloaded the key file still seal new
		// rows with the old key; they pick the new one up within seconds.
		if time.Since(start) > *maxWait {
			return fmt.Errorf("%d rows still use an old key after %s; run again once every server has reloaded its keys", stale, *maxWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	fmt.Fprintf(stdout, "re-sealed %d rows with key %s in %s\n", total, a.Sealer.CurrentKeyID(), time.Since(start).Round(time.Millisecond))
	return nil
}

// rotateIndex is "aichat keys rotate --index": a new index key becomes
// current (recorded in the database, which every server reads), and the
// servers rebuild the index with it in the background. With keys from the
// data folder the key is added to its key file; with AICHAT_INDEX_KEYS
// the operator puts the new key first on every server, and this records
// it (printing the value to set when it is not there yet).
func rotateIndex(ctx context.Context, cfg config.Config, batch int, wait bool, stdout, stderr io.Writer) error {
	log := NewLogger(stderr, cfg.LogFormat, "warn")
	// This process rebuilds only with --wait, in the foreground.
	a, err := New(ctx, cfg, log, Options{SearchRebuildPoll: -1})
	if err != nil {
		return err
	}
	defer a.Close()
	start := time.Now()
	st, ok, err := a.Search.Status(ctx)
	if err != nil {
		return err
	}
	if ok && !st.Finished {
		fmt.Fprintf(stdout, "the search index is being rebuilt with key %s (%d messages re-indexed so far)\n", st.KeyID, st.Messages)
		if !wait {
			return fmt.Errorf("keys rotate --index: %w; run again once it has finished (--wait waits for it)", search.ErrRebuilding)
		}
	} else {
		keyID := ""
		if cfg.IndexKeys == "" {
			if err := removeRetiredIndexKeys(ctx, a, cfg, stdout); err != nil {
				return err
			}
			k, err := secrets.AddIndexKey(cfg.DataDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "added index key %s to %s\n", k.ID, filepath.Join(cfg.DataDir, secrets.FileName))
			keyID = k.ID
		} else {
			keyID = a.Keys.Index.Current().ID
			if keyID == a.Search.CurrentKeyID() {
				k := secrets.NewKey()
				fmt.Fprintf(stdout, "AICHAT_INDEX_KEYS is set and its first key, %s, is already the current index key.\n"+
					"To rotate, set this on every server (the new key first; keep the others until the rebuild has finished):\n\n"+
					"  AICHAT_INDEX_KEYS=%s=%s,%s\n\n"+
					"restart the servers one by one, then run \"aichat keys rotate --index\" again with that value.\n",
					keyID, k.ID, base64.StdEncoding.EncodeToString(k.Secret), cfg.IndexKeys)
				return nil
			}
		}
		v, err := a.Search.Rotate(ctx, keyID)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "index key %s is current (version %d): new messages are indexed with it, and searches ask for old and new keys until the rebuild has finished\n", keyID, v)
	}
	if !wait {
		fmt.Fprintln(stdout, "running servers rebuild the index in the background (one at a time; progress is kept in the database); run with --wait to wait for it")
		return nil
	}
	for {
		st, err = a.Search.Rebuild(ctx, batch, 0)
		if err != nil {
			return fmt.Errorf("rebuild: %w (%d messages done; a server or the next run goes on from there)", err, st.Messages)
		}
		if st.Finished {
			break
		}
		// Another instance holds the rebuild: wait for it (or take over
		// if it stops).
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	fmt.Fprintf(stdout, "search index rebuilt with key %s: %d messages re-indexed, in %s\n", st.KeyID, st.Messages, time.Since(start).Round(time.Millisecond))
	if cfg.IndexKeys == "" {
		return removeRetiredIndexKeys(ctx, a, cfg, stdout)
	}
	retired, err := a.Search.RetiredKeyIDs(ctx)
	if err != nil {
		return err
	}
	var still []string
	for _, id := range retired {
		if _, ok := a.Keys.Index.Find(id); ok {
			still = append(still, id)
		}
	}
	if len(still) > 0 {
		fmt.Fprintf(stdout, "no index row uses key(s) %s any more: remove them from AICHAT_INDEX_KEYS at the next restart\n", strings.Join(still, ", "))
	}
	return nil
}

// removeRetiredIndexKeys removes from the key file the index keys no row
// uses any more (their rebuild finished).
func removeRetiredIndexKeys(ctx context.Context, a *App, cfg config.Config, stdout io.Writer) error {
	retired, err := a.Search.RetiredKeyIDs(ctx)
	if err != nil || len(retired) == 0 {
		return err
	}
	removed, err := secrets.RemoveIndexKeys(cfg.DataDir, retired...)
	if err != nil {
		return err
	}
	if len(removed) > 0 {
		fmt.Fprintf(stdout, "removed index key(s) %s, which no index row uses any more, from %s\n",
			strings.Join(removed, ", "), filepath.Join(cfg.DataDir, secrets.FileName))
	}
	return nil
}

// takeBool removes the boolean flag name (--name, -name, --name=true or
// --name=false) from args and reports whether it was set.
func takeBool(args []string, name string) (bool, []string) {
	set := false
	var rest []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			rest = append(rest, a)
			continue
		}
		switch strings.TrimLeft(a, "-") {
		case name, name + "=true":
			set = true
			continue
		case name + "=false":
			set = false
			continue
		}
		rest = append(rest, a)
	}
	return set, rest
}

// splitFlags separates the named flags (and their values) from the rest.
func splitFlags(args []string, names ...string) (mine, rest []string) {
	isMine := func(a string) (bool, bool) {
		a = strings.TrimLeft(a, "-")
		name, _, hasValue := strings.Cut(a, "=")
		for _, n := range names {
			if name == n {
				return true, hasValue
			}
		}
		return false, false
	}
	for i := 0; i < len(args); i++ {
		ok, inline := isMine(args[i])
		if !ok {
			rest = append(rest, args[i])
			continue
		}
		mine = append(mine, args[i])
		if !inline && i+1 < len(args) {
			mine = append(mine, args[i+1])
			i++
		}
	}
	return mine, rest
}

// generatePassword returns 26 random base32 characters (130 bits).
func generatePassword() string { return rand.Text() }

// servePprof serves net/http/pprof on its own loopback listener (never on
// the public one: profiles reveal internals), for the load tests.
func servePprof(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("profiler listening", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}

// serveMetrics serves /metrics on a listener of its own (a private network
// address the scraper reaches, not the public one).
func serveMetrics(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("metrics listening", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}
