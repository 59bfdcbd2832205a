package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/envoy"
	"github.com/jwtguard/jwtguard/sync/embedded"
)

// Mode is what `loadgen serve` runs.
type Mode string

// Server modes.
const (
	// ModeJWTGuard is the real stack: authz.Checker over an embedded store
	// and a Bloom filter, behind envoy's gRPC and forward-auth adapters.
	ModeJWTGuard Mode = "jwtguard"
	// ModeBaseline is the same gRPC server allowing every request unchecked.
	ModeBaseline Mode = "baseline"
)

// ForwardAuthPrefix is where the HTTP forward-auth check is served.
const ForwardAuthPrefix = "/authz/"

// ServerConfig configures a server under test.
type ServerConfig struct {
	Mode               Mode
	GRPCAddr, HTTPAddr string
	// KeysDir holds the shared keys; they are created when missing.
	KeysDir string
	// DataDir holds the embedded store; "" uses a temporary directory
	// removed when the server stops.
	DataDir string
	// Revocations random token records are stored (through the store's
	// Put, in batches) before serving.
	Revocations int
	// FilterKeys random keys are added to the Bloom filter only, with no
	// record behind them: a stand-in for a store too slow to fill.
	FilterKeys int
	// RevokeMix stores and applies RevokedSet.
	RevokeMix bool
	// CacheSize bounds the verified-token cache (authz.Config.CacheSize).
	CacheSize int
	// BallastMB, for the baseline, keeps a pointer-free buffer of that
	// many MiB live: with a heap of about jwtguard's size it is paced by
	// the garbage collector alike (a near-empty heap collects far more often).
	BallastMB int
	Log       *slog.Logger
}

// Validate says which field is wrong.
func (c *ServerConfig) Validate() error {
	switch {
	case c.Mode != ModeJWTGuard && c.Mode != ModeBaseline:
		return fmt.Errorf("mode: %q, want jwtguard or baseline", c.Mode)
	case c.GRPCAddr == "":
		return errors.New("grpc-addr: empty")
	case c.KeysDir == "":
		return errors.New("keys: a directory is needed")
	case c.Revocations < 0 || c.FilterKeys < 0:
		return errors.New("revocations and filter-keys: want zero or more")
	case c.Mode == ModeBaseline && (c.Revocations > 0 || c.FilterKeys > 0 || c.RevokeMix):
		return errors.New("revocations, filter-keys and revoke-mix: the baseline has no revocation state")
	case c.BallastMB < 0 || c.BallastMB > 4096:
		return fmt.Errorf("ballast-mb: %d, want 0..4096", c.BallastMB)
	case c.Mode == ModeJWTGuard && c.BallastMB > 0:
		return errors.New("ballast-mb: only for the baseline")
	case c.CacheSize < 0:
		return fmt.Errorf("cache-size: %d, want zero (the default) or more", c.CacheSize)
	}
	return nil
}

// ServerInfo is what a started server reports.
type ServerInfo struct {
	GRPCAddr, HTTPAddr net.Addr
	// Notes say what was loaded, and how (for the benchmark record).
	Notes []string
}

// bulkBatch is how many records one Put stores while preloading.
const bulkBatch = 10_000

// Serve runs a server under test until ctx ends, then stops gracefully.
// ready is called once it is listening with its state loaded.
func Serve(ctx context.Context, cfg ServerConfig, ready func(ServerInfo)) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("serve config: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	keys, err := OpenKeys(cfg.KeysDir)
	if err != nil {
		return err
	}
	var info ServerInfo
	var grpcSrv *grpc.Server
	var httpHandler http.Handler
	hs := health.NewServer()
	if cfg.Mode == ModeBaseline {
		grpcSrv, httpHandler = newBaselineGRPCServer(hs), baseline{}
		info.Notes = append(info.Notes, "baseline: every request allowed unchecked")
		if cfg.BallastMB > 0 {
			ballast := make([]byte, cfg.BallastMB<<20)
			defer runtime.KeepAlive(ballast)
			info.Notes = append(info.Notes, fmt.Sprintf("baseline: %d MiB ballast kept live", cfg.BallastMB))
		}
	} else {
		dataDir := cfg.DataDir
		if dataDir == "" {
			if dataDir, err = os.MkdirTemp("", "loadgen-data-"); err != nil {
				return fmt.Errorf("data dir: %w", err)
			}
			defer os.RemoveAll(dataDir)
		}
		store, err := embedded.Open(dataDir, embedded.Options{})
		if err != nil {
			return fmt.Errorf("embedded store: %w", err)
		}
		defer store.Close()
		reg := prometheus.NewRegistry()
		svc, notes, err := newJWTGuard(ctx, &cfg, keys, store, reg, log)
		if err != nil {
			return err
		}
		info.Notes = append(info.Notes, notes...)
		if grpcSrv, err = envoy.NewGRPCServer(svc, hs, envoy.TLSConfig{}); err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle(ForwardAuthPrefix, svc)
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		httpHandler = mux
	}
	return serveListeners(ctx, &cfg, grpcSrv, httpHandler, info, ready, log)
}

// newJWTGuard builds the real stack over store: preloaded revocations, the
// filter, the checker and the ext_authz service with its metrics in reg.
func newJWTGuard(ctx context.Context, cfg *ServerConfig, keys *Keys, store *embedded.Store, reg *prometheus.Registry, log *slog.Logger) (*envoy.Authorization, []string, error) {
	var notes []string
	start := time.Now()
	if cfg.Revocations > 0 {
		if err := putBulk(ctx, store, cfg.Revocations, start); err != nil {
			return nil, nil, err
		}
		notes = append(notes, fmt.Sprintf("%d random token revocations stored through the embedded store in %s",
			cfg.Revocations, time.Since(start).Round(time.Millisecond)))
	}
	held, err := store.Stats(ctx)
	if err != nil {
		return nil, nil, err
	}
	bcfg := bloom.DefaultConfig()
	if n := uint(held.Records + cfg.FilterKeys + len(RevokedSet(start))); n > bcfg.Entries {
		bcfg.Entries = n
	}
	var filter *bloom.Filter
	if cfg.FilterKeys == 0 {
		// The real start: a snapshot of the store's live records.
		if filter, err = store.Snapshot(ctx, bcfg); err != nil {
			return nil, nil, err
		}
	} else {
		t := time.Now()
		if filter, err = filterWithRandomKeys(ctx, store, bcfg, cfg.FilterKeys); err != nil {
			return nil, nil, err
		}
		notes = append(notes, fmt.Sprintf("%d random keys added to the Bloom filter only (no record in the store) in %s",
			cfg.FilterKeys, time.Since(t).Round(time.Millisecond)))
	}
	st, err := store.Stats(ctx)
	if err != nil {
		return nil, nil, err
	}
	notes = append(notes,
		fmt.Sprintf("embedded store holds %d revocation records", st.Records),
		fmt.Sprintf("Bloom filter sized for %d entries at %g false positives", bcfg.Entries, bcfg.FPRate))
	rev, err := authz.NewRevocations(filter, store, authz.DefaultRevocationConfig())
	if err != nil {
		return nil, nil, err
	}
	if cfg.RevokeMix {
		recs, err := store.Put(ctx, RevokedSet(start))
		if err != nil {
			return nil, nil, fmt.Errorf("store the revoke mix: %w", err)
		}
		rev.Apply(recs...)
		notes = append(notes, fmt.Sprintf("revoke mix: %d records stored and applied", len(recs)))
	}
	rev.SetReady(true)

	acfg := authz.DefaultConfig()
	if cfg.CacheSize > 0 {
		acfg.CacheSize = cfg.CacheSize
	}
	for _, iss := range []string{Issuer, OldIssuer} {
		ic := authz.DefaultIssuerConfig(iss)
		ic.JWKSFile, ic.Audiences, ic.Algs = keys.JWKSFile, []string{Audience}, []string{Alg}
		acfg.Issuers = append(acfg.Issuers, ic)
	}
	checker, err := authz.NewChecker(acfg, rev, authz.WithLogger(log))
	if err != nil {
		return nil, nil, err
	}
	if err := checker.LoadKeys(ctx); err != nil {
		return nil, nil, fmt.Errorf("load keys: %w", err)
	}
	notes = append(notes, fmt.Sprintf("verified-token cache: %d entries", acfg.CacheSize))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "jwtguard_cached_tokens", Help: "Tokens in the verified-token cache.",
	}, func() float64 { return float64(checker.CachedTokens()) }))
	svc := envoy.NewAuthorization(checker, envoy.WithMetrics(envoy.NewMetrics(reg)), envoy.WithLogger(log))
	return svc, notes, nil
}

// putBulk stores n random token records in batches.
func putBulk(ctx context.Context, store *embedded.Store, n int, now time.Time) error {
	batch := make([]authz.Record, 0, bulkBatch)
	b := make([]byte, 12)
	for done := 0; done < n; {
		batch = batch[:0]
		for range min(bulkBatch, n-done) {
			if _, err := rand.Read(b); err != nil {
				return err
			}
			batch = append(batch, authz.Record{
				Kind: authz.KindToken, Issuer: Issuer, Value: "bulk-" + hex.EncodeToString(b),
				Reason: "loadgen bulk", Actor: "loadgen", CreatedAt: now, ExpiresAt: now.Add(revokedTTL),
			})
		}
		if _, err := store.Put(ctx, batch); err != nil {
			return fmt.Errorf("preload revocations (%d stored): %w", done, err)
		}
		done += len(batch)
	}
	return nil
}

// filterWithRandomKeys builds a filter holding n random keys and the key of
// every live record of store.
func filterWithRandomKeys(ctx context.Context, store *embedded.Store, cfg bloom.Config, n int) (*bloom.Filter, error) {
	f, err := bloom.New(cfg)
	if err != nil {
		return nil, err
	}
	st, err := store.Stats(ctx)
	if err != nil {
		return nil, err
	}
	err = f.Rebuild(cfg, st.Position, func(add func(bloom.Key)) error {
		buf := make([]byte, 16*4096)
		for left := n; left > 0; {
			m := min(left, 4096)
			if _, err := rand.Read(buf[:16*m]); err != nil {
				return err
			}
			for i := range m {
				add(bloom.Key{H1: binary.LittleEndian.Uint64(buf[16*i:]), H2: binary.LittleEndian.Uint64(buf[16*i+8:])})
			}
			left -= m
		}
		_, err := store.Range(ctx, time.Now(), func(r authz.Record) error {
			add(r.LookupKey().FilterKey())
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("filter with random keys: %w", err)
	}
	return f, nil
}

// serveListeners serves gRPC and (when HTTPAddr is set) HTTP until ctx
// ends, then drains in-flight requests.
func serveListeners(ctx context.Context, cfg *ServerConfig, grpcSrv *grpc.Server, h http.Handler, info ServerInfo, ready func(ServerInfo), log *slog.Logger) error {
	grpcLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("grpc-addr: %w", err)
	}
	info.GRPCAddr = grpcLis.Addr()
	errc := make(chan error, 2)
	go func() { errc <- grpcSrv.Serve(grpcLis) }()
	var httpSrv *http.Server
	if cfg.HTTPAddr != "" {
		httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			grpcSrv.Stop()
			return fmt.Errorf("http-addr: %w", err)
		}
		info.HTTPAddr = httpLis.Addr()
		httpSrv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := httpSrv.Serve(httpLis); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	log.Info("loadgen server listening", "mode", cfg.Mode, "grpc", info.GRPCAddr, "http", info.HTTPAddr)
	if ready != nil {
		ready(info)
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	stopped := make(chan struct{})
	go func() { grpcSrv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		grpcSrv.Stop()
	}
	if httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = httpSrv.Shutdown(sctx)
	}
	if runErr != nil {
		return fmt.Errorf("serve: %w", runErr)
	}
	return nil
}
