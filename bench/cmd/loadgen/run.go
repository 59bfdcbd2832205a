package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/jwtguard/jwtguard/bench/loadgen"
)

func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := loadgen.DefaultRunConfig()
	var keysDir, mix, jsonOut, svgOut string
	fs.StringVar(&cfg.Target, "target", "127.0.0.1:9300", "gRPC ext_authz address")
	fs.StringVar(&cfg.HTTPTarget, "http-target", "", "forward-auth URL (e.g. http://127.0.0.1:9301/authz/); replaces gRPC")
	fs.StringVar(&keysDir, "keys", "", "directory of the keys `loadgen serve` created")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "gRPC connections")
	fs.IntVar(&cfg.Streams, "streams", cfg.Streams, "requests in flight, in total")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured phase length (default 10s; with --requests, up to --max-duration)")
	fs.Int64Var(&cfg.Requests, "requests", 0, "requests in the measured phase (0: as many as --duration allows)")
	fs.DurationVar(&cfg.MaxDuration, "max-duration", cfg.MaxDuration, "longest measured phase, whatever the other flags say")
	fs.StringVar(&mix, "mix", cfg.Mix.String(), "token mix: weights of repeated, fresh, revoked, invalid, forged")
	fs.BoolVar(&cfg.Expect, "expect", cfg.Expect, "check each decision against the mix (off against a baseline)")
	fs.IntVar(&cfg.WarmFresh, "warm-fresh", 0, "fresh tokens sent before measuring (fills the verified-token cache)")
	fs.IntVar(&cfg.FreshPool, "fresh-pool", 0, "fresh tokens minted ahead (0: enough for the phase at 25k/s)")
	fs.IntVar(&cfg.ForgedPool, "forged-pool", 0, "forged tokens minted ahead (0: enough for the phase at 25k/s)")
	fs.IntVar(&cfg.RepeatedTokens, "repeated-tokens", cfg.RepeatedTokens, "distinct tokens of the repeated category")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "deadline of each request")
	fs.StringVar(&cfg.Label, "label", cfg.Label, "name of this run in results and plots")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "the server's process id, to report its CPU time per request (Linux)")
	fs.StringVar(&jsonOut, "json", "", "write the result as JSON to this file")
	fs.StringVar(&svgOut, "plot", "", "write the latency chart of this run as SVG to this file")
	if err := parse(fs, args); err != nil {
		return err
	}
	durationSet := false
	fs.Visit(func(f *flag.Flag) { durationSet = durationSet || f.Name == "duration" })
	if cfg.Requests > 0 && !durationSet {
		cfg.Duration = 0 // bounded by --requests, and by --max-duration
	}
	if keysDir == "" {
		return fmt.Errorf("--keys is required (the directory given to loadgen serve)")
	}
	var err error
	if cfg.Mix, err = loadgen.ParseMix(mix); err != nil {
		return err
	}
	if cfg.Keys, err = loadgen.LoadKeys(keysDir); err != nil {
		return err
	}
	cfg.Progress = stderr
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	res.WriteText(stdout)
	if jsonOut != "" {
		if err := res.WriteJSON(jsonOut); err != nil {
			return err
		}
	}
	if svgOut != "" {
		if err := writeSVG(svgOut, []*loadgen.Result{res}); err != nil {
			return err
		}
	}
	return res.Err()
}

func writeSVG(path string, results []*loadgen.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := loadgen.WriteSVG(f, results); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
