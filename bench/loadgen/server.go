package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	"sigs.k8s.io/yaml"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/cmd/jwtguard/node"
	"github.com/jwtguard/jwtguard/sync/embedded"
	"github.com/jwtguard/jwtguard/sync/source"
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
	// DetectorsFile, for jwtguard, is a YAML file holding a "detectors"
	// section as the config file writes it (docs/detectors.md).
	DetectorsFile string
	// DecisionLog is a file for jwtguard's decision log ("": none; stdout
	// is never used, it carries the report), logging
	// DecisionLogAllowSample of the allows.
	DecisionLog            string
	DecisionLogAllowSample float64
	Log                    *slog.Logger
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
	case c.Mode == ModeBaseline && c.DetectorsFile != "":
		return errors.New("detectors: the baseline checks nothing")
	case c.Mode == ModeJWTGuard && c.BallastMB > 0:
		return errors.New("ballast-mb: only for the baseline")
	case c.CacheSize < 0:
		return fmt.Errorf("cache-size: %d, want zero (the default) or more", c.CacheSize)
	case c.DecisionLog == node.DecisionLogStdout:
		return errors.New("decision-log: stdout carries the report; give a file")
	case c.Mode == ModeBaseline && c.DecisionLog != "":
		return errors.New("decision-log: only for jwtguard")
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
	if cfg.Mode == ModeJWTGuard {
		return serveJWTGuard(ctx, &cfg, keys, ready, log)
	}
	info := ServerInfo{Notes: []string{"baseline: every request allowed unchecked"}}
	if cfg.BallastMB > 0 {
		ballast := make([]byte, cfg.BallastMB<<20)
		defer runtime.KeepAlive(ballast)
		info.Notes = append(info.Notes, fmt.Sprintf("baseline: %d MiB ballast kept live", cfg.BallastMB))
	}
	return serveListeners(ctx, &cfg, newBaselineGRPCServer(health.NewServer()), baseline{}, info, ready, log)
}

// serveJWTGuard runs a real node, exactly as `jwtguard serve` assembles it
// (embedded source, follower, maintenance, listeners), over a data
// directory prepared with the revocations the run asks for.
func serveJWTGuard(ctx context.Context, cfg *ServerConfig, keys *Keys, ready func(ServerInfo), log *slog.Logger) error {
	dataDir := cfg.DataDir
	if dataDir == "" {
		var err error
		if dataDir, err = os.MkdirTemp("", "loadgen-data-"); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		defer os.RemoveAll(dataDir)
	}
	bcfg, notes, err := prepareData(ctx, cfg, dataDir)
	if err != nil {
		return err
	}
	ncfg := node.DefaultConfig()
	ncfg.GRPCAddr, ncfg.HTTPAddr, ncfg.AdminAddr, ncfg.DataDir = cfg.GRPCAddr, cfg.HTTPAddr, "127.0.0.1:0", dataDir
	if ncfg.HTTPAddr == "" {
		ncfg.HTTPAddr = "127.0.0.1:0"
	}
	ncfg.ForwardAuthPrefix, ncfg.Bloom = ForwardAuthPrefix, bcfg
	// The load generator prints its report on stdout: no decision log there.
	ncfg.DecisionLog, ncfg.DecisionLogAllowSample = node.DecisionLogOff, cfg.DecisionLogAllowSample
	if cfg.DecisionLog != "" {
		ncfg.DecisionLog = cfg.DecisionLog
		notes = append(notes, fmt.Sprintf("decision log to a file, %g of allows", cfg.DecisionLogAllowSample))
	}
	if cfg.CacheSize > 0 {
		ncfg.Authz.CacheSize = cfg.CacheSize
	}
	for _, iss := range []string{Issuer, OldIssuer} {
		ic := authz.DefaultIssuerConfig(iss)
		ic.JWKSFile, ic.Audiences, ic.Algs = keys.JWKSFile, []string{Audience}, []string{Alg}
		ncfg.Authz.Issuers = append(ncfg.Authz.Issuers, ic)
	}
	mesh := authz.DefaultIssuerConfig(MeshIssuer)
	mesh.RevocationOnly, mesh.PayloadKey, mesh.HeaderKey, mesh.Audiences = true, PayloadKey, HeaderKey, []string{Audience}
	ncfg.Authz.Issuers = append(ncfg.Authz.Issuers, mesh)
	if cfg.DetectorsFile != "" {
		if err := loadDetectors(cfg.DetectorsFile, &ncfg); err != nil {
			return err
		}
		notes = append(notes, fmt.Sprintf("detectors: %d on, from %s", len(ncfg.Detectors.Detectors), filepath.Base(cfg.DetectorsFile)))
	}
	n, err := node.New(&ncfg, node.WithLogger(log))
	if err != nil {
		return err
	}
	notes = append(notes, fmt.Sprintf("verified-token cache: %d entries", ncfg.Authz.CacheSize),
		"served by the node package, as jwtguard serve runs it")
	a := n.Addrs()
	info := ServerInfo{GRPCAddr: a.GRPC, HTTPAddr: a.HTTP, Notes: notes}
	log.Info("loadgen server listening", "mode", cfg.Mode, "grpc", a.GRPC, "http", a.HTTP)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Run(runCtx) }()
	for t := time.NewTicker(5 * time.Millisecond); !n.Ready(); {
		select {
		case err := <-done:
			return fmt.Errorf("node stopped before it was ready: %w", err)
		case <-t.C:
		}
	}
	if ready != nil {
		ready(info)
	}
	return <-done
}

// loadDetectors reads the "detectors" section of a YAML file into ncfg.
func loadDetectors(path string, ncfg *node.Config) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("detectors: %w", err)
	}
	var doc struct {
		Detectors json.RawMessage `json:"detectors"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil || doc.Detectors == nil {
		return fmt.Errorf("detectors: %s: want a YAML file with a detectors section (%v)", path, err)
	}
	if err := ncfg.Detectors.Decode(doc.Detectors); err != nil {
		return fmt.Errorf("detectors: %s: %w", path, err)
	}
	return nil
}

// prepareData stores the run's revocations in the embedded store of
// dataDir (and, with FilterKeys, writes the node snapshot the node starts
// from), and returns the filter sizing for them.
func prepareData(ctx context.Context, cfg *ServerConfig, dataDir string) (bloom.Config, []string, error) {
	bcfg := bloom.DefaultConfig()
	store, err := embedded.Open(dataDir, embedded.Options{})
	if err != nil {
		return bcfg, nil, fmt.Errorf("embedded store: %w", err)
	}
	defer store.Close()
	var notes []string
	start := time.Now()
	if cfg.Revocations > 0 {
		if err := putBulk(ctx, store, cfg.Revocations, start); err != nil {
			return bcfg, nil, err
		}
		notes = append(notes, fmt.Sprintf("%d random token revocations stored through the embedded store in %s",
			cfg.Revocations, time.Since(start).Round(time.Millisecond)))
	}
	if cfg.RevokeMix {
		recs, err := store.Put(ctx, RevokedSet(start))
		if err != nil {
			return bcfg, nil, fmt.Errorf("store the revoke mix: %w", err)
		}
		notes = append(notes, fmt.Sprintf("revoke mix: %d records stored", len(recs)))
	}
	st, err := store.Stats(ctx)
	if err != nil {
		return bcfg, nil, err
	}
	if n := uint(st.Records + cfg.FilterKeys); n > bcfg.Entries {
		bcfg.Entries = n
	}
	if cfg.FilterKeys > 0 {
		t := time.Now()
		f, err := filterWithRandomKeys(ctx, store, bcfg, cfg.FilterKeys)
		if err != nil {
			return bcfg, nil, err
		}
		if err := f.SaveFile(filepath.Join(dataDir, source.SnapshotFile)); err != nil {
			return bcfg, nil, fmt.Errorf("node snapshot: %w", err)
		}
		notes = append(notes, fmt.Sprintf("%d random keys added to the node's filter snapshot only (no record in the store) in %s",
			cfg.FilterKeys, time.Since(t).Round(time.Millisecond)))
	}
	notes = append(notes,
		fmt.Sprintf("embedded store holds %d revocation records", st.Records),
		fmt.Sprintf("Bloom filter sized for %d entries at %g false positives", bcfg.Entries, bcfg.FPRate))
	return bcfg, notes, nil
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
