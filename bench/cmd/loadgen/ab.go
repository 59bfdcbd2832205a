package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jwtguard/jwtguard/bench/loadgen"
)

// runAB drives two servers in interleaved slices (loadgen.RunAB).
func runAB(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := loadgen.ABConfig{Run: loadgen.DefaultRunConfig(), Pairs: 15, Slice: 2 * time.Second, LabelA: "A", LabelB: "B"}
	var keysDir, mix, mixB, jsonOut, category string
	fs.StringVar(&cfg.Run.Target, "a", "", "gRPC ext_authz address of server A (the reference)")
	fs.StringVar(&cfg.TargetB, "b", "", "gRPC ext_authz address of server B (compared with A)")
	fs.StringVar(&cfg.LabelA, "label-a", cfg.LabelA, "name of server A in the output")
	fs.StringVar(&cfg.LabelB, "label-b", cfg.LabelB, "name of server B in the output")
	fs.BoolVar(&cfg.ExpectA, "expect-a", false, "check A's decisions against the mix (off for a baseline)")
	fs.BoolVar(&cfg.ExpectB, "expect-b", true, "check B's decisions against the mix")
	fs.IntVar(&cfg.PIDA, "pid-a", 0, "server A's process id, for its CPU time per request (Linux)")
	fs.IntVar(&cfg.PIDB, "pid-b", 0, "server B's process id")
	fs.IntVar(&cfg.Pairs, "pairs", cfg.Pairs, "pairs of slices (A B, then B A, ...)")
	fs.DurationVar(&cfg.Slice, "slice", cfg.Slice, "length of each slice")
	fs.StringVar(&keysDir, "keys", "", "directory of the keys `loadgen serve` created (both servers share it)")
	fs.IntVar(&cfg.Run.Conns, "conns", cfg.Run.Conns, "gRPC connections to each server")
	fs.IntVar(&cfg.Run.Streams, "streams", cfg.Run.Streams, "requests in flight, in total")
	fs.StringVar(&mix, "mix", cfg.Run.Mix.String(), "token mix: weights of repeated, fresh, revoked, invalid, forged, verified")
	fs.StringVar(&mixB, "mix-b", "", "B's token mix, when it differs from A's (--mix); --b may then name A's server")
	fs.IntVar(&cfg.Run.WarmFresh, "warm-fresh", 0, "fresh tokens each server verifies before the slices (a long-lived server's full cache)")
	fs.IntVar(&cfg.Run.RepeatedTokens, "repeated-tokens", cfg.Run.RepeatedTokens, "distinct tokens of the repeated category")
	fs.DurationVar(&cfg.Run.RequestTimeout, "request-timeout", cfg.Run.RequestTimeout, "deadline of each request")
	fs.StringVar(&category, "category", "", "compare the throughput and p99 of this category of the mix only (e.g. repeated, the valid requests of a forged flood)")
	fs.StringVar(&jsonOut, "json", "", "write the result as JSON to this file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if keysDir == "" {
		return fmt.Errorf("--keys is required (the directory given to loadgen serve)")
	}
	var err error
	if cfg.Run.Mix, err = loadgen.ParseMix(mix); err != nil {
		return err
	}
	if mixB != "" {
		if cfg.MixB, err = loadgen.ParseMix(mixB); err != nil {
			return fmt.Errorf("--mix-b: %w", err)
		}
	}
	if cfg.Run.Keys, err = loadgen.LoadKeys(keysDir); err != nil {
		return err
	}
	cfg.Category = loadgen.Category(category)
	cfg.Run.Progress = stderr
	res, err := loadgen.RunAB(ctx, cfg)
	if err != nil {
		return err
	}
	res.WriteText(stdout)
	if jsonOut != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("json: %w", err)
		}
	}
	return res.Err()
}
