package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/cmd/jwtguard/console"
	"github.com/jwtguard/jwtguard/envoy"
	"github.com/jwtguard/jwtguard/envoy/decisionlog"
	"github.com/jwtguard/jwtguard/envoy/detect"
	"github.com/jwtguard/jwtguard/envoy/keywatch"
	"github.com/jwtguard/jwtguard/envoy/scope"
	"github.com/jwtguard/jwtguard/sync/admin"
	"github.com/jwtguard/jwtguard/sync/audit"
	"github.com/jwtguard/jwtguard/sync/embedded"
	"github.com/jwtguard/jwtguard/sync/idp"
	"github.com/jwtguard/jwtguard/sync/redis"
	"github.com/jwtguard/jwtguard/sync/source"
)

// Node is one running jwtguard: the checker over its revocation state, the
// source and the follower that keep that state current, the listeners and
// the maintenance. New assembles it, Run serves until its context ends.
type Node struct {
	cfg       *Config
	id        string // the node's name (see nodeID)
	log       *slog.Logger
	out       io.Writer // where --dev prints how to try it
	src       source.Source
	rev       *authz.Revocations
	checker   atomic.Pointer[authz.Checker] // swapped by Reload
	authzSvc  *envoy.Authorization
	follower  *source.Follower
	health    *health.Server
	dev       *devSetup
	publisher *redis.Publisher // nil unless the source is Redis and publishing is on
	providers []*idp.Provider  // identity providers whose events become revocations
	audit     *audit.Log       // the audit trail, kept with the source
	failures  *audit.Throttle  // admin authentication failures, bounded
	// keyChanges queues key set changes for the audit trail.
	keyChanges chan audit.Entry
	detectors  *detect.Engine   // nil unless detectors are configured
	scope      *scope.Table     // the tokens recently seen (GET /v1/tokens)
	keys       *keywatch.Watch  // the key-rotation watch
	name       string           // the node's name in mesh answers
	decisions  *decisionlog.Log // nil when --decision-log is off

	reloadState

	grpcSrv                    *grpc.Server
	httpSrv, adminSrv          *http.Server
	grpcLis, httpLis, adminLis net.Listener
}

// Option configures a Node.
type Option func(*Node)

// WithLogger sets the node's logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(n *Node) { n.log = l } }

// WithOutput sets the node's standard output: where --dev prints its token
// and the commands to try it, and where --decision-log stdout writes
// (default io.Discard; jwtguard serve passes the process's stdout).
func WithOutput(w io.Writer) Option { return func(n *Node) { n.out = w } }

// Addrs are the addresses a node listens on.
type Addrs struct {
	GRPC, HTTP, Admin net.Addr
}

// Run assembles a node from cfg and serves until ctx ends (see Node.Run).
func Run(ctx context.Context, cfg *Config, opts ...Option) error {
	n, err := New(cfg, opts...)
	if err != nil {
		return err
	}
	return n.Run(ctx)
}

// New validates cfg, opens the revocation source, assembles the checker
// and binds the listeners (so Addrs is known, and an address in use fails
// here). Nothing is served until Run; on error everything taken is
// released.
func New(cfg *Config, opts ...Option) (n *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := *cfg // the dev issuer is added to a copy
	c.Authz.Issuers = slices.Clone(cfg.Authz.Issuers)
	n = &Node{cfg: &c, log: slog.Default(), out: io.Discard, health: health.NewServer()}
	for _, o := range opts {
		o(n)
	}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	adminToken, err := admin.LoadToken(c.AdminTokenFile, os.Getenv("JWTGUARD_ADMIN_TOKEN"))
	if err != nil {
		return n, err
	}
	if err := admin.CheckBind(c.AdminAddr, adminToken != ""); err != nil {
		return n, fmt.Errorf("admin-addr: %w", err)
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return n, fmt.Errorf("data-dir: %w", err)
	}
	if c.Dev {
		if n.dev, err = setupDev(&c); err != nil {
			return n, err
		}
		n.dev.adminTokenFile, n.dev.adminTokenEnv = c.AdminTokenFile, c.AdminTokenFile == "" && adminToken != ""
	}
	// The gRPC listener first: the node's default name holds its port.
	if n.grpcLis, err = net.Listen("tcp", c.GRPCAddr); err != nil {
		return n, fmt.Errorf("grpc-addr: %w", err)
	}
	n.id = n.nodeID()
	if n.src, err = openSource(&c); err != nil {
		return n, err
	}
	if err := n.openAudit(); err != nil {
		return n, err
	}
	filter, err := bloom.New(c.Bloom)
	if err != nil {
		return n, fmt.Errorf("bloom: %w", err)
	}
	if n.rev, err = authz.NewRevocations(filter, n.src, c.Revocation); err != nil {
		return n, err
	}
	checker, err := authz.NewChecker(c.Authz, n.rev, authz.WithLogger(n.log), authz.WithKeySetChange(n.keySetChanged))
	if err != nil {
		return n, err
	}
	n.checker.Store(checker)
	if err := n.newProviders(); err != nil {
		return n, err
	}
	fcfg := source.DefaultFollowerConfig()
	fcfg.DataDir, fcfg.Bloom = c.DataDir, c.Bloom
	followed := n.src
	if st, ok := n.src.(*embedded.Store); ok {
		// The node enforces the records it writes at once: its follower
		// reads their feed copies without decoding them.
		followed = embedded.AheadFeed{Store: st, Rev: n.rev}
	}
	if rs, ok := n.src.(*redis.Source); ok && c.PublishInterval > 0 {
		if n.publisher, err = redis.NewPublisher(rs, redis.PublisherConfig{Interval: c.PublishInterval, Bloom: c.Bloom, Log: n.log, Filter: n.rev.Filter}); err != nil {
			return n, err
		}
		fcfg.Publishing = n.publisher.Holding // the lease holder makes the snapshots others wait for
	}
	n.follower = source.NewFollower(followed, n.rev, fcfg, n.log)

	if err := n.newScope(); err != nil {
		return n, err
	}
	if n.keys, err = keywatch.New(c.KeyWatch, liveKeySets{n}, keywatch.WithLogger(n.log), keywatch.WithRevoker(purger{n}), keywatch.WithAlarm(n.keyAlarm)); err != nil {
		return n, fmt.Errorf("key watch: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.registerMetrics(reg)
	reg.MustRegister(n.keys)
	rates := console.NewRates()
	trusted, err := trustedProxies(c.TrustedProxies)
	if err != nil {
		return n, err
	}
	authzOpts := []envoy.AuthorizationOption{
		envoy.WithMetrics(envoy.NewMetrics(reg)), envoy.WithLogger(n.log), envoy.WithRemoveAuthorization(c.RemoveAuthorization),
		envoy.WithTrustedProxies(trusted), envoy.WithObserver(rates), envoy.WithObserver(n.scope), envoy.WithObserver(n.keys),
	}
	if err := n.openDecisionLog(reg); err != nil {
		return n, err
	}
	if n.decisions != nil {
		authzOpts = append(authzOpts, envoy.WithObserver(n.decisions))
	}
	if len(c.Detectors.Detectors) > 0 {
		dc := c.Detectors
		dc.Node = n.id
		// Revocations are recorded in the audit trail by the write path,
		// blocks by the auditor.
		dopts := []detect.Option{detect.WithLogger(n.log), detect.WithRegisterer(reg),
			detect.WithRevoker(sourceRevoker{admin.SourceRevoker{Source: n.src, Config: admin.Config{
				MaxTokenLifetime: c.Authz.MaxTokenLifetime, Leeway: c.Authz.Leeway, Audit: n.audit}}}),
			detect.WithAuditor(trailAuditor{trail: n.audit, log: n.log}), detect.WithKeySets(liveKeySets{n}.KeySets)}
		if rs, ok := n.src.(*redis.Source); ok {
			dopts = append(dopts, detect.WithShared(redisShared{rs}))
		}
		n.detectors, err = detect.New(dc, dopts...)
		if err != nil {
			return n, err
		}
		authzOpts = append(authzOpts, envoy.WithObserver(n.detectors), envoy.WithBlocker(n.detectors))
	}
	authzSvc := envoy.NewAuthorization(checker, authzOpts...)
	n.authzSvc = authzSvc
	if n.grpcSrv, err = envoy.NewGRPCServer(authzSvc, n.health, c.TLS); err != nil {
		return n, err
	}
	n.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	n.health.SetServingStatus(authzServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	var issuers []string
	for _, ic := range c.Authz.Issuers {
		issuers = append(issuers, ic.Issuer)
	}
	n.httpSrv = forwardAuthLimits.server(n.httpMux(reg, authzSvc))
	api := admin.NewHandler(n.src, n.rev, admin.Config{
		Token: adminToken, MaxTokenLifetime: c.Authz.MaxTokenLifetime, Leeway: c.Authz.Leeway,
		Issuers: issuers, Addr: c.AdminAddr, Audit: n.audit, AuthFailures: n.failures,
	}, admin.WithLogger(n.log), admin.WithStatus(n.status), admin.WithAuditTrail(n.audit), admin.WithTokens(n.tokens),
		admin.WithView("keys", n.keysView), admin.WithView("detectors", n.detectorsView))
	n.adminSrv = adminLimits.server(console.Mount(console.New(api, rates, console.Config{Token: adminToken, Log: n.log}), api))

	if n.httpLis, err = net.Listen("tcp", c.HTTPAddr); err != nil {
		return n, fmt.Errorf("http-addr: %w", err)
	}
	if n.adminLis, err = net.Listen("tcp", c.AdminAddr); err != nil {
		return n, fmt.Errorf("admin-addr: %w", err)
	}
	n.httpLis, n.adminLis = forwardAuthLimits.listener(n.httpLis), adminLimits.listener(n.adminLis)
	return n, nil
}

// Ready reports whether decisions may be made: keys and revocation state
// loaded, and (only if the operator chose it) the source read recently.
func (n *Node) Ready() bool {
	if !n.checker.Load().Ready() {
		return false
	}
	if n.cfg.MaxStaleness > 0 && time.Since(n.follower.LastSync()) > n.cfg.MaxStaleness {
		return false
	}
	return true
}

// Addrs returns the addresses the node listens on.
func (n *Node) Addrs() Addrs {
	return Addrs{GRPC: n.grpcLis.Addr(), HTTP: n.httpLis.Addr(), Admin: n.adminLis.Addr()}
}

// close releases what New took, for a node that never ran.
func (n *Node) close() {
	for _, l := range []net.Listener{n.grpcLis, n.httpLis, n.adminLis} {
		if l != nil {
			l.Close()
		}
	}
	if n.src != nil {
		n.src.Close()
	}
	n.closeDecisionLog()
}

// Run serves until ctx ends or a listener fails, then shuts down along one
// path whatever happened: not ready, drain in-flight checks within
// ShutdownGrace, write out the decision log, save the node snapshot (when
// state was loaded), release the source. It is called once.
func (n *Node) Run(ctx context.Context) error {
	defer n.src.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	for _, s := range []struct {
		name  string
		serve func() error
	}{
		{"grpc", func() error { return n.grpcSrv.Serve(n.grpcLis) }},
		{"http", func() error { return n.httpSrv.Serve(n.httpLis) }},
		{"admin", func() error { return n.adminSrv.Serve(n.adminLis) }},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s server: %w", s.name, err)
			}
		}()
	}
	a := n.Addrs()
	n.log.Info("jwtguard listening", "grpc", a.GRPC.String(), "http", a.HTTP.String(), "admin", a.Admin.String(), "source", RedactURL(n.cfg.Source))

	if err := n.checker.Load().LoadKeys(ctx); err != nil {
		n.log.Warn("key sets not loaded yet; not ready until they are", "err", err)
	}
	n.loadProviderKeys(ctx)
	runErr := n.follower.Start(ctx)
	loaded := runErr == nil
	if loaded {
		n.keysMu.Lock()
		n.keysCtx = ctx
		n.keysMu.Unlock()
		n.refreshKeys(n.checker.Load())
		wg.Add(9)
		go func() { defer wg.Done(); n.report(ctx) }()
		go func() { defer wg.Done(); n.watchReloads(ctx) }()
		go func() { defer wg.Done(); n.flushAudit(ctx) }()
		go func() { defer wg.Done(); n.keys.Run(ctx) }()
		go func() { defer wg.Done(); n.scope.Run(ctx) }()
		go func() { defer wg.Done(); n.runProviders(ctx) }()
		go func() { defer wg.Done(); n.follower.Run(ctx) }()
		go func() { defer wg.Done(); n.maintain(ctx) }()
		go func() { defer wg.Done(); n.watchReadiness(ctx) }()
		if n.detectors != nil {
			wg.Add(1)
			go func() { defer wg.Done(); n.detectors.Run(ctx) }()
		}
		if n.publisher != nil {
			wg.Add(1)
			go func() { defer wg.Done(); n.publisher.Run(ctx) }()
		}
		if n.dev != nil {
			n.dev.printHowTo(n.out, a.GRPC, a.HTTP, a.Admin)
		}
		select {
		case <-ctx.Done():
		case runErr = <-errc:
		}
	}
	n.log.Info("shutting down: draining in-flight checks", "grace", n.cfg.ShutdownGrace)
	n.health.Shutdown()
	cancel()
	shutdownCtx, done := context.WithTimeout(context.Background(), n.cfg.ShutdownGrace)
	defer done()
	stopped := make(chan struct{})
	go func() { n.grpcSrv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-shutdownCtx.Done():
		n.grpcSrv.Stop()
	}
	_ = n.httpSrv.Shutdown(shutdownCtx)
	_ = n.adminSrv.Shutdown(shutdownCtx)
	wg.Wait()
	n.keysWG.Wait()
	n.closeDecisionLog()
	if loaded {
		if err := n.follower.SaveSnapshot(); err != nil {
			n.log.Error("saving the node snapshot failed", "err", err)
		}
	}
	return runErr
}

const authzServiceName = "envoy.service.auth.v3.Authorization"

// openSource opens the revocation source cfg names.
func openSource(cfg *Config) (source.Source, error) {
	if IsRedisURL(cfg.Source) {
		s, err := cfg.Redis.Open(cfg.Source)
		if err != nil {
			return nil, err // not a nil *redis.Source in a non-nil Source
		}
		return s, nil
	}
	s, err := embedded.Open(cfg.DataDir, embedded.Options{})
	if err != nil {
		return nil, fmt.Errorf("embedded source: %w", err)
	}
	return s, nil
}

func (n *Node) httpMux(reg *prometheus.Registry, authzSvc *envoy.Authorization) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !n.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle(n.cfg.ForwardAuthPrefix, authzSvc)
	n.handleProviders(mux)
	if n.dev != nil {
		mux.HandleFunc("GET "+devJWKSPath, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(n.dev.jwks)
		})
	}
	return mux
}

// watchReadiness keeps gRPC health in step with readiness.
func (n *Node) watchReadiness(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := healthpb.HealthCheckResponse_UNKNOWN
	for {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if n.Ready() {
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
func (n *Node) maintain(ctx context.Context) {
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
			if p, ok := n.src.(source.Pruner); ok {
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
func (n *Node) status(context.Context) map[string]any {
	last := n.follower.LastSync()
	st := map[string]any{
		"ready":           n.Ready(),
		"node_position":   n.follower.Position(),
		"cached_tokens":   n.checker.Load().CachedTokens(),
		"snapshot_reload": n.follower.Reloads(),
		"scope_tokens":    n.scope.Stats().Entries,
		"key_alarms":      n.keys.Active(),
	}
	if !last.IsZero() {
		st["last_sync"] = last.UTC().Format(time.RFC3339Nano)
		st["staleness_seconds"] = time.Since(last).Seconds()
	}
	return st
}

// liveKeySets are the key sets of the node's checker of the moment: a
// reload swaps the checker (its unchanged issuers' key sets are taken over,
// first-seen times included).
type liveKeySets struct{ n *Node }

// KeySets implements keywatch.KeySets.
func (k liveKeySets) KeySets() []authz.KeySetInfo { return k.n.checker.Load().KeySets() }
