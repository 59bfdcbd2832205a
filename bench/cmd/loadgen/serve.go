package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"

	"github.com/jwtguard/jwtguard/bench/loadgen"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg loadgen.ServerConfig
	var mode, logLevel string
	fs.StringVar(&mode, "mode", string(loadgen.ModeJWTGuard), "jwtguard (the real stack) or baseline (allows unchecked)")
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", "127.0.0.1:9300", "gRPC ext_authz address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "127.0.0.1:9301", "HTTP forward-auth address (under "+loadgen.ForwardAuthPrefix+"); empty for none")
	fs.StringVar(&cfg.KeysDir, "keys", "", "directory of the shared signing keys and JWKS (created when empty)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "embedded store directory (default: a temporary one, removed at exit)")
	fs.IntVar(&cfg.Revocations, "revocations", 0, "random token revocations stored through the embedded store before serving")
	fs.IntVar(&cfg.FilterKeys, "filter-keys", 0, "random keys added to the Bloom filter only (for sizes the store is too slow to fill)")
	fs.BoolVar(&cfg.RevokeMix, "revoke-mix", false, "store the fixed revocations the client's revoked tokens match")
	fs.IntVar(&cfg.CacheSize, "cache-size", 0, "verified-token cache entries (default: jwtguard's default)")
	fs.IntVar(&cfg.BallastMB, "ballast-mb", 0, "baseline only: MiB kept live so its GC paces like jwtguard's heap")
	fs.StringVar(&cfg.DetectorsFile, "detectors", "", "jwtguard only: YAML file with a detectors section, as the config file writes it")
	fs.StringVar(&cfg.DecisionLog, "decision-log", "", "jwtguard only: decision log file (default: none; never stdout, which carries the report)")
	fs.Float64Var(&cfg.DecisionLogAllowSample, "decision-log-allow-sample", 0, "jwtguard only: share of allows in the decision log, 0 to 1")
	fs.StringVar(&logLevel, "log-level", "info", "log level (decisions go to the decision log, not here)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole serving time to this file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	cfg.Mode = loadgen.Mode(mode)
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("log-level: %w", err)
	}
	cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	return loadgen.Serve(ctx, cfg, func(info loadgen.ServerInfo) {
		for _, n := range info.Notes {
			fmt.Fprintln(stdout, n)
		}
		fmt.Fprintf(stdout, "grpc %s\n", info.GRPCAddr)
		if info.HTTPAddr != nil {
			fmt.Fprintf(stdout, "http %s (forward-auth under %s)\n", info.HTTPAddr, loadgen.ForwardAuthPrefix)
		}
		fmt.Fprintln(stdout, "ready")
	})
}
