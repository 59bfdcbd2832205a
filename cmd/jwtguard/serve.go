package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/envoy"
	"github.com/jwtguard/jwtguard/sync/admin"
	"github.com/jwtguard/jwtguard/sync/embedded"
	"github.com/jwtguard/jwtguard/sync/redis"
	"github.com/jwtguard/jwtguard/sync/source"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg, err := loadServeConfig(args, os.Getenv, fs)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	slog.SetDefault(log)
	return serve(ctx, cfg, log, stdout)
}

func newLogger(cfg *serveConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// node is one running jwtguard: its state and its listeners.
type node struct {
	cfg       *serveConfig
	log       *slog.Logger
	src       source.Source
	rev       *authz.Revocations
	checker   *authz.Checker
	follower  *source.Follower
	health    *health.Server
	dev       *devSetup
	publisher *redis.Publisher // nil unless the source is Redis
}

// ready reports whether decisions may be made: keys and revocation state
// loaded, and (only if the operator chose it) the source read recently.
func (n *node) ready() bool {
	if !n.checker.Ready() {
		return false
	}
	if n.cfg.MaxStaleness > 0 && time.Since(n.follower.LastSync()) > n.cfg.MaxStaleness {
		return false
	}
	return true
}

func serve(ctx context.Context, cfg *serveConfig, log *slog.Logger, stdout io.Writer) error {
	adminToken, err := readAdminToken(cfg.AdminTokenFile)
	if err != nil {
		return err
	}
	if err := admin.CheckBind(cfg.AdminAddr, adminToken != ""); err != nil {
		return fmt.Errorf("admin-addr: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data-dir: %w", err)
	}
	n := &node{cfg: cfg, log: log, health: health.NewServer()}
	if cfg.Dev {
		if n.dev, err = setupDev(cfg); err != nil {
			return err
		}
	}
	if n.src, err = openSource(cfg); err != nil {
		return err
	}
	defer n.src.Close()

	filter, err := bloom.New(cfg.Bloom)
	if err != nil {
		return fmt.Errorf("bloom: %w", err)
	}
	if n.rev, err = authz.NewRevocations(filter, n.src, cfg.Revocation); err != nil {
		return err
	}
	if n.checker, err = authz.NewChecker(cfg.Authz, n.rev, authz.WithLogger(log)); err != nil {
		return err
	}
	fcfg := source.DefaultFollowerConfig()
	fcfg.DataDir, fcfg.Bloom = cfg.DataDir, cfg.Bloom
	n.follower = source.NewFollower(n.src, n.rev, fcfg, log)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.registerMetrics(reg)
	authzSvc := envoy.NewAuthorization(n.checker,
		envoy.WithMetrics(envoy.NewMetrics(reg)), envoy.WithLogger(log), envoy.WithRemoveAuthorization(cfg.RemoveAuthorization))

	grpcSrv, err := envoy.NewGRPCServer(authzSvc, n.health, cfg.TLS)
	if err != nil {
		return err
	}
	n.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	n.health.SetServingStatus(authzServiceName, healthpb.HealthCheckResponse_NOT_SERVING)

	grpcLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("grpc-addr: %w", err)
	}
	httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("http-addr: %w", err)
	}
	adminLis, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		grpcLis.Close()
		httpLis.Close()
		return fmt.Errorf("admin-addr: %w", err)
	}
	httpSrv := forwardAuthLimits.server(n.httpMux(reg, authzSvc))
	var issuers []string
	for _, ic := range cfg.Authz.Issuers {
		issuers = append(issuers, ic.Issuer)
	}
	adminSrv := adminLimits.server(admin.NewHandler(n.src, n.rev, admin.Config{
		Token: adminToken, MaxTokenLifetime: cfg.Authz.MaxTokenLifetime, Leeway: cfg.Authz.Leeway,
		Issuers: issuers, Addr: cfg.AdminAddr,
	}, admin.WithLogger(log), admin.WithStatus(n.status)))
	httpLis, adminLis = forwardAuthLimits.listener(httpLis), adminLimits.listener(adminLis)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	for _, s := range []struct {
		name  string
		serve func() error
	}{
		{"grpc", func() error { return grpcSrv.Serve(grpcLis) }},
		{"http", func() error { return httpSrv.Serve(httpLis) }},
		{"admin", func() error { return adminSrv.Serve(adminLis) }},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s server: %w", s.name, err)
			}
		}()
	}
	log.Info("jwtguard listening", "grpc", grpcLis.Addr().String(), "http", httpLis.Addr().String(), "admin", adminLis.Addr().String(), "source", redactURL(cfg.Source))

	if err := n.checker.LoadKeys(ctx); err != nil {
		log.Warn("key sets not loaded yet; not ready until they are", "err", err)
	}
	startErr := n.follower.Start(ctx)
	if startErr == nil {
		wg.Add(4)
		go func() { defer wg.Done(); n.checker.Run(ctx) }()
		go func() { defer wg.Done(); n.follower.Run(ctx) }()
		go func() { defer wg.Done(); n.maintain(ctx) }()
		go func() { defer wg.Done(); n.watchReadiness(ctx) }()
		if rs, ok := n.src.(*redis.Source); ok && cfg.PublishInterval > 0 {
			pub, err := redis.NewPublisher(rs, redis.PublisherConfig{Interval: cfg.PublishInterval, Bloom: cfg.Bloom, Log: log})
			if err != nil {
				return err
			}
			n.publisher = pub
			wg.Add(1)
			go func() { defer wg.Done(); pub.Run(ctx) }()
		}
		if n.dev != nil {
			n.dev.printHowTo(stdout, grpcLis.Addr(), httpLis.Addr(), adminLis.Addr())
		}
	}

	var runErr error
	if startErr != nil {
		runErr = startErr
	} else {
		select {
		case <-ctx.Done():
		case runErr = <-errc:
		}
	}
	log.Info("shutting down: draining in-flight checks", "grace", cfg.ShutdownGrace)
	n.health.Shutdown()
	cancel()
	shutdownCtx, done := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer done()
	stopped := make(chan struct{})
	go func() { grpcSrv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-shutdownCtx.Done():
		grpcSrv.Stop()
	}
	_ = httpSrv.Shutdown(shutdownCtx)
	_ = adminSrv.Shutdown(shutdownCtx)
	wg.Wait()
	if startErr == nil {
		if err := n.follower.SaveSnapshot(); err != nil {
			log.Error("saving the node snapshot failed", "err", err)
		}
	}
	return runErr
}

const authzServiceName = "envoy.service.auth.v3.Authorization"

// minAdminToken is the shortest admin token accepted, from a file or the
// environment.
const minAdminToken = 16

// readAdminToken reads the admin token from path, else from
// JWTGUARD_ADMIN_TOKEN; "" when neither is set.
func readAdminToken(path string) (string, error) {
	if path == "" {
		tok := strings.TrimSpace(os.Getenv("JWTGUARD_ADMIN_TOKEN"))
		if tok != "" && len(tok) < minAdminToken {
			return "", fmt.Errorf("JWTGUARD_ADMIN_TOKEN: token shorter than %d characters", minAdminToken)
		}
		return tok, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin-token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < minAdminToken {
		return "", fmt.Errorf("admin-token-file %s: token shorter than %d characters", path, minAdminToken)
	}
	return tok, nil
}

func openSource(cfg *serveConfig) (source.Source, error) {
	if isRedisURL(cfg.Source) {
		return cfg.Redis.open(cfg.Source)
	}
	s, err := embedded.Open(cfg.DataDir, embedded.Options{})
	if err != nil {
		return nil, fmt.Errorf("embedded source: %w", err)
	}
	return s, nil
}

func (n *node) httpMux(reg *prometheus.Registry, authzSvc *envoy.Authorization) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !n.ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle(n.cfg.ForwardAuthPrefix, authzSvc)
	if n.dev != nil {
		mux.HandleFunc("GET "+devJWKSPath, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(n.dev.jwks)
		})
	}
	return mux
}

// watchReadiness keeps gRPC health in step with readiness.
func (n *node) watchReadiness(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := healthpb.HealthCheckResponse_UNKNOWN
	for {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if n.ready() {
			st = healthpb.HealthCheckResponse_SERVING
		}
		if st != last {
			n.health.SetServingStatus("", st)
			n.health.SetServingStatus(authzServiceName, st)
			n.log.Info("readiness changed", "status", st.String())
			last = st
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// maintain saves the node snapshot and drops expired revocations, off the
// hot path.
func (n *node) maintain(ctx context.Context) {
	snap := time.NewTicker(n.cfg.SnapshotInterval)
	rebuild := time.NewTicker(n.cfg.RebuildInterval)
	defer snap.Stop()
	defer rebuild.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-snap.C:
			if err := n.follower.SaveSnapshot(); err != nil {
				n.log.Error("saving the node snapshot failed", "err", err)
			}
		case <-rebuild.C:
			if p, ok := n.src.(interface {
				Prune(time.Time) (int, error)
			}); ok {
				if dropped, err := p.Prune(time.Now()); err != nil {
					n.log.Error("pruning expired revocations failed", "err", err)
				} else if dropped > 0 {
					n.log.Info("pruned expired revocations", "count", dropped)
				}
			}
			if err := n.follower.Refresh(ctx); err != nil {
				n.log.Error("filter refresh failed; keeping the current filter", "err", err)
			}
		}
	}
}

// status is the node part of the admin API's /v1/status.
func (n *node) status(context.Context) map[string]any {
	last := n.follower.LastSync()
	st := map[string]any{
		"ready":           n.ready(),
		"node_position":   n.follower.Position(),
		"cached_tokens":   n.checker.CachedTokens(),
		"snapshot_reload": n.follower.Reloads(),
	}
	if !last.IsZero() {
		st["last_sync"] = last.UTC().Format(time.RFC3339Nano)
		st["staleness_seconds"] = time.Since(last).Seconds()
	}
	return st
}

func (n *node) registerMetrics(reg *prometheus.Registry) {
	gauge := func(name, help string, fn func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
	}
	counter := func(name, help string, fn func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	gauge("jwtguard_ready", "1 when keys and revocation state are loaded.", func() float64 { return b2f(n.ready()) })
	gauge("jwtguard_feed_position", "Feed position the node's revocation state reflects.", func() float64 { return float64(n.follower.Position()) })
	gauge("jwtguard_feed_lag", "Feed positions the node is behind the revocation source, as of its last read.", func() float64 { return float64(n.follower.Lag()) })
	gauge("jwtguard_snapshot_age_seconds", "Seconds since the node's filter was loaded from a snapshot or refreshed from the source.", func() float64 { return n.follower.SnapshotAge().Seconds() })
	gauge("jwtguard_source_staleness_seconds", "Seconds since the revocation source was last read successfully.", func() float64 {
		if l := n.follower.LastSync(); !l.IsZero() {
			return time.Since(l).Seconds()
		}
		return -1
	})
	gauge("jwtguard_filter_entries", "Revocation keys in the Bloom filter.", func() float64 { return float64(n.rev.Filter().Stats().Entries) })
	gauge("jwtguard_filter_fill_ratio", "Share of the filter's bits set.", func() float64 { return n.rev.Filter().Stats().FillRatio })
	gauge("jwtguard_filter_estimated_fp_rate", "Estimated false-positive rate of the filter.", func() float64 { return n.rev.Filter().Stats().EstimatedFPRate })
	gauge("jwtguard_cached_tokens", "Tokens in the verified-token cache.", func() float64 { return float64(n.checker.CachedTokens()) })
	counter("jwtguard_filter_maybes_total", "Filter matches that needed confirmation.", func() float64 { return float64(n.rev.Stats().Maybes) })
	counter("jwtguard_confirm_cache_hits_total", "Filter matches answered by the confirm cache.", func() float64 { return float64(n.rev.Stats().ConfirmHits) })
	counter("jwtguard_confirm_lookups_total", "Exact lookups at the revocation source.", func() float64 { return float64(n.rev.Stats().Lookups) })
	counter("jwtguard_confirm_shared_lookups_total", "Filter matches answered by a source lookup shared with other checks of the same key.", func() float64 { return float64(n.rev.Stats().SharedLookups) })
	gauge("jwtguard_confirm_lookups_waiting", "Checks waiting for a source lookup now.", func() float64 { return float64(n.rev.Stats().Waiting) })
	counter("jwtguard_confirm_lookup_errors_total", "Exact lookups that failed.", func() float64 { return float64(n.rev.Stats().LookupErrors) })
	counter("jwtguard_confirm_lookup_seconds_total", "Time spent in exact lookups.", func() float64 { return n.rev.Stats().LookupTime.Seconds() })
	gauge("jwtguard_snapshot_publisher", "1 while this node holds the Redis publisher lease.", func() float64 {
		return b2f(n.publisher != nil && n.publisher.Holding())
	})
	gauge("jwtguard_source_diverged", "1 when the revocation source is behind this node (it lost data): an operator must look.", func() float64 {
		return b2f(n.follower.Diverged())
	})
	counter("jwtguard_snapshot_reloads_total", "Snapshot reloads after falling behind the feed.", func() float64 { return float64(n.follower.Reloads()) })
	counter("jwtguard_feed_bad_entries_total", "Feed entries that did not decode and were skipped (a revocation may be lost): alert when it rises.", func() float64 { return float64(n.follower.BadEntries()) })
}
