// Package app wires aichat together: it reads the configuration, opens the
// database, loads the keys, builds every service and the HTTP handler, and
// runs the server until its context ends. Every dependency is built here,
// explicitly and in reading order, so a test can start the whole program
// in-process.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	adminsvc "github.com/aichat/aichat/internal/admin"
	"github.com/aichat/aichat/internal/ai"
	"github.com/aichat/aichat/internal/ai/llm"
	"github.com/aichat/aichat/internal/auth"
	"github.com/aichat/aichat/internal/chat"
	"github.com/aichat/aichat/internal/config"
	"github.com/aichat/aichat/internal/httpapi"
	"github.com/aichat/aichat/internal/netstamp"
	"github.com/aichat/aichat/internal/realtime"
	"github.com/aichat/aichat/internal/realtime/redisbroker"
	"github.com/aichat/aichat/internal/render"
	"github.com/aichat/aichat/internal/seal"
	"github.com/aichat/aichat/internal/search"
	"github.com/aichat/aichat/internal/secrets"
	"github.com/aichat/aichat/internal/social"
	"github.com/aichat/aichat/internal/store"
	"github.com/aichat/aichat/internal/web"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// App is a built aichat: its services and its HTTP handler.
type App struct {
	Config  config.Config
	Log     *slog.Logger
	DB      *store.DB
	Keys    secrets.Set
	Auth    *auth.Service
	Chats   *chat.Service
	Sealer  *seal.Sealer
	Broker  realtime.Broker
	Hub     *realtime.Hub
	AI      *ai.Service
	Social  *social.Service
	Search  *search.Service
	Metrics *prometheus.Registry
	Handler http.Handler
	// MetricsHandler serves /metrics (token-checked when configured).
	MetricsHandler http.Handler

	stopBackground context.CancelFunc
	background     sync.WaitGroup
}

// Options change how New builds the app; tests use them, production does not.
type Options struct {
	// Argon2 overrides the password hashing cost (tests use a cheap one).
	Argon2 *auth.Argon2Params
	// Now overrides the clock.
	Now func() time.Time
	// Hub overrides real-time timings (tests shorten pings and grace periods).
	Hub realtime.Options
	// BrokerPrefix namespaces Redis keys and channels (tests isolate runs).
	BrokerPrefix string
	// LLM overrides the AI providers' client options (tests shorten the
	// idle timeout and retries).
	LLM *llm.Options
	// AnswerNotifyDelay is how long after an answer finished its unread
	// readers get answer_finished (tests shorten it; default 5 s).
	AnswerNotifyDelay time.Duration
	// SearchRebuildPoll is how often the server looks for a search index
	// rebuild to work on (default 5 s; negative: never, for tests that
	// drive Search.Rebuild themselves and for commands).
	SearchRebuildPoll time.Duration
}

// New builds the app from cfg: opens and migrates the database and builds
// every service. Close releases what it opened.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opt Options) (*App, error) {
	now := opt.Now
	if now == nil {
		now = func() time.Time { return time.Now().UTC() }
	}
	keys, src, err := secrets.Load(cfg.DataDir, cfg.JWTKeys, cfg.EncryptionKeys, cfg.IndexKeys)
	if err != nil {
		return nil, err
	}
	if src.Generated {
		log.Info("generated secrets", "file", src.File)
	}

	db, err := store.Open(ctx, cfg.DatabaseURL, cfg.DataDir, log)
	if err != nil {
		return nil, err
	}
	if _, err := db.Migrate(ctx, log); err != nil {
		db.Close()
		return nil, err
	}

	argon := auth.OWASPArgon2
	if opt.Argon2 != nil {
		argon = *opt.Argon2
	}
	authSvc, err := auth.NewService(db, auth.Options{
		Hasher:        auth.Hasher{Algorithm: cfg.PasswordHash, Argon2: argon},
		Tokens:        &auth.Tokens{Keys: keys.JWT, Issuer: cfg.Issuer, TTL: cfg.AccessTTL, Now: now},
		RefreshTTL:    cfg.RefreshTTL,
		SessionMaxAge: cfg.SessionMaxAge,
		MaxFails:      cfg.LoginMaxFails,
		FailWindow:    cfg.LoginFailWindow,
		Now:           now,
		Log:           log,
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	if cfg.AdminEmail != "" {
		u, res, err := authSvc.EnsureAdmin(ctx, cfg.AdminEmail, cfg.AdminPassword)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("create admin from AICHAT_ADMIN_EMAIL: %w", err)
		}
		if res != auth.AdminUnchanged {
			log.Info("admin account ready", "email", u.Email, "result", string(res))
		}
	}

	sealer, err := seal.New(keys.Encryption)
	if err != nil {
		db.Close()
		return nil, err
	}
	chatSvc := chat.NewService(db, sealer, chat.Options{
		Defaults: chat.Settings{Model: cfg.AIModel, Temperature: cfg.AITemperature, Depth: int(cfg.AIDepth),
			Persona: "assistant", Stop: []string{}},
		MaxMessageBytes: int(cfg.MaxMessageBytes),
		Now:             now,
	})

	var broker realtime.Broker = realtime.NewLocal()
	if cfg.RedisURL != "" {
		prefix := cfg.RedisPrefix
		if opt.BrokerPrefix != "" {
			prefix = opt.BrokerPrefix
		}
		rb, err := redisbroker.New(ctx, cfg.RedisURL, redisbroker.Options{Prefix: prefix, Log: log})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("connect to Redis (AICHAT_REDIS_URL): %w", err)
		}
		broker = rb
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if sqlDB, err := db.DB.DB(); err == nil {
		// go_sql_* : open, in use and idle connections, waits for one.
		reg.MustRegister(collectors.NewDBStatsCollector(sqlDB, string(db.Dialect)))
	}
	hubOpt := opt.Hub
	hubOpt.Chats, hubOpt.Broker, hubOpt.Log, hubOpt.Metrics = chatSvc, broker, log, realtime.NewMetrics(reg)
	hubOpt.Verify = authSvc.Verify
	hubOpt.MaxConnsPerUser = int(cfg.WSMaxConnsPerUser)
	hubOpt.MaxFrameBytes = cfg.WSMaxFrameBytes
	hubOpt.CommandsPerMinute = int(cfg.WSCommandsPerMin)
	hubOpt.QueueSize = int(cfg.WSQueueSize)
	hub := realtime.NewHub(hubOpt)
	socialSvc := social.New(db, sealer, chatSvc, hub, broker, social.Options{Now: now, Log: log, AnswerDelay: opt.AnswerNotifyDelay})
	chatSvc.SetRelations(socialSvc)

	searchOpt := search.Options{Log: log, Stem: cfg.SearchStemming}
	if cfg.IndexKeys == "" {
		// Keys live in the data folder's file: a key added there by
		// "aichat keys rotate --index" is read when the database names it.
		searchOpt.Reload = func() (secrets.Keyring, error) {
			set, err := secrets.LoadFile(cfg.DataDir)
			return set.Index, err
		}
	}
	searchSvc, err := search.New(db, sealer, keys.Index, searchOpt)
	if err != nil {
		hub.Shutdown()
		db.Close()
		return nil, err
	}
	aiSvc, err := newAI(ctx, cfg, opt, log, db, chatSvc, authSvc,
		answerBus{Bus: searchBus{Bus: hub, ix: searchSvc}, finished: socialSvc.AnswerFinished}, reg)
	if err != nil {
		searchSvc.Close()
		hub.Shutdown()
		db.Close()
		return nil, err
	}
	chatSvc.SetEvents(hub, aiSvc, socialSvc, searchSvc)
	chatSvc.SetAnswerDue(aiSvc.AnswerDue)
	hub.SetAI(aiSvc)

	a := &App{Config: cfg, Log: log, DB: db, Keys: keys, Auth: authSvc, Chats: chatSvc, Sealer: sealer,
		Broker: broker, Hub: hub, AI: aiSvc, Social: socialSvc, Search: searchSvc, Metrics: reg}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	a.stopBackground = stop
	a.background.Add(2)
	go func() {
		defer a.background.Done()
		a.aiHousekeeping(bg)
	}()
	go func() {
		defer a.background.Done()
		if err := hub.Run(bg); err != nil {
			log.Error("real-time hub stopped", "err", err)
		}
	}()
	a.background.Add(1)
	go func() {
		defer a.background.Done()
		// History from before search, and messages whose indexing a
		// stopped process lost, become searchable.
		n, err := searchSvc.Backfill(bg, 500)
		if err != nil && bg.Err() == nil {
			log.Error("search: backfill", "err", err)
		} else if n > 0 {
			log.Info("search: indexed stored messages", "messages", n)
		}
	}()
	if opt.SearchRebuildPoll >= 0 {
		poll := opt.SearchRebuildPoll
		if poll == 0 {
			poll = 5 * time.Second
		}
		a.background.Add(1)
		go func() {
			defer a.background.Done()
			// After "aichat keys rotate --index": one instance at a time
			// moves the index to the new key, resuming where another
			// stopped.
			searchSvc.RunRebuilds(bg, poll, searchRebuildBatch)
		}()
	}
	if cfg.EncryptionKeys == "" {
		// Keys live in the data folder's file: follow it, so a rotation by
		// "aichat keys rotate" reaches this running server.
		reload := func() (secrets.Keyring, error) {
			set, err := secrets.LoadFile(cfg.DataDir)
			return set.Encryption, err
		}
		sealer.OnUnknownKey(reload)
		a.background.Add(1)
		go func() {
			defer a.background.Done()
			a.watchKeyFile(bg, reload)
		}()
	}
	// Moderation refusals go to the admin moderation queue.
	aiSvc.SetFlagRecorder(adminsvc.FlagRecorder(db, log))
	webApp, err := web.New(web.Options{HighlightCSS: render.CSS(render.DefaultStyle)})
	if err != nil {
		return nil, err
	}
	// /metrics needs AICHAT_METRICS_TOKEN when set; with AICHAT_METRICS_ADDR
	// it is served there (by Run) instead of on the public listener.
	a.MetricsHandler = httpapi.ProtectMetrics(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), cfg.MetricsToken)
	mainMetrics := a.MetricsHandler
	if cfg.MetricsAddr != "" {
		mainMetrics = nil
	}
	a.Handler = httpapi.NewServer(httpapi.Deps{
		Admin: adminsvc.New(adminsvc.Options{DB: db, Auth: authSvc, Chats: chatSvc, Hub: hub, AI: aiSvc, Broker: broker,
			Log: log, Version: Version, Now: now}),
		Render:         render.NewCache(render.New(), 16<<20),
		Web:            webApp,
		Log:            log,
		Auth:           authSvc,
		Chats:          chatSvc,
		Hub:            hub,
		AI:             aiSvc,
		Ready:          a.ready,
		Metrics:        mainMetrics,
		Registerer:     reg,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		AllowedOrigins: cfg.AllowedOrigins,
		Social:         socialSvc,
		Search:         searchSvc,
	})
	return a, nil
}

// ready reports whether the app can serve: the database and the broker
// answer.
func (a *App) ready(ctx context.Context) error {
	if err := a.DB.Ping(ctx); err != nil {
		a.Log.Warn("readiness: database unreachable", "err", err)
		return errors.New("database unreachable")
	}
	if err := a.Broker.Ping(ctx); err != nil {
		a.Log.Warn("readiness: broker unreachable", "err", err)
		return errors.New("broker unreachable")
	}
	return nil
}

// Close closes every socket, stops background work and releases the
// database and the broker.
func (a *App) Close() error {
	a.Hub.Shutdown()
	a.AI.Close()
	a.Social.Close()
	a.Search.Close() // after the assistant: its last answers are indexed
	a.stopBackground()
	a.background.Wait()
	if c, ok := a.Broker.(interface{ Close() error }); ok {
		c.Close()
	}
	return a.DB.Close()
}

// searchRebuildBatch is how many messages one transaction of a search
// index rebuild re-indexes.
const searchRebuildBatch = 500

// keyFilePoll is how often a running server looks for a rotated key file.
const keyFilePoll = 5 * time.Second

// watchKeyFile reloads the encryption keyring when the key file changes, so
// new data is sealed with a key added by a rotation.
func (a *App) watchKeyFile(ctx context.Context, reload func() (secrets.Keyring, error)) {
	path := filepath.Join(a.Config.DataDir, secrets.FileName)
	var last time.Time
	if fi, err := os.Stat(path); err == nil {
		last = fi.ModTime()
	}
	t := time.NewTicker(keyFilePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(path)
		if err != nil || fi.ModTime().Equal(last) {
			continue
		}
		last = fi.ModTime()
		ring, err := reload()
		if err == nil {
			err = a.Sealer.SetKeys(ring)
		}
		if err != nil {
			a.Log.Error("reload encryption keys", "err", err)
			continue
		}
		a.Log.Info("encryption keys reloaded", "current", a.Sealer.CurrentKeyID(), "keys", len(ring))
	}
}

// Serve accepts connections on ln until ctx ends, then shuts down gracefully:
// it stops accepting and waits up to the configured timeout for requests in
// flight. Requests do not inherit ctx: a request already running when the
// signal arrives gets to finish, not a cancelled database call.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}
	// Sockets are hijacked, so Shutdown does not wait for them: tell their
	// clients to reconnect elsewhere (1001) as soon as shutdown starts.
	srv.RegisterOnShutdown(a.Hub.Shutdown)
	errc := make(chan error, 1)
	// Stamped connections: a socket's frame is timed from its arrival in the
	// kernel (the question's way to the model, aichat_ai_request_delay_seconds).
	go func() { errc <- srv.Serve(netstamp.Listener(ln)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.Log.Info("shutting down", "timeout", a.Config.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.Config.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// NewLogger returns the structured logger for the configured format and level.
func NewLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
