package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/cmd/jwtguard/node"
)

// runPublish rebuilds the filter from the records in Redis and publishes
// it once: for deployments that publish from cron instead of a lease.
func runPublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rf node.RedisConfig
	rf.Register(fs)
	redisURL := fs.String("redis", "", "redis:// or rediss:// URL of the revocation source")
	cfg := bloom.DefaultConfig()
	fs.UintVar(&cfg.Entries, "bloom-entries", cfg.Entries, "expected revocations (filter size)")
	fs.Float64Var(&cfg.FPRate, "bloom-fp-rate", cfg.FPRate, "target false-positive rate of the filter")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if !node.IsRedisURL(*redisURL) {
		return fmt.Errorf("publish: --redis must be a redis:// or rediss:// URL")
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	src, err := rf.Open(*redisURL)
	if err != nil {
		return err
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	start := time.Now()
	if err := src.Publish(ctx, cfg); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	st, err := src.Stats(ctx)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	fmt.Fprintf(stdout, "published a snapshot of %d revocations at position %d in %s\n", st.Records, st.Position, time.Since(start).Round(time.Millisecond))
	return nil
}
