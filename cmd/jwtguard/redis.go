package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/redis"
)

// redisFlags are the settings of the Redis source shared by serve, revoke
// and publish; the address is a redis:// or rediss:// URL given apart.
type redisFlags struct {
	prefix         string
	feedRetention  int64
	sentinelMaster string
	sentinelAddrs  string
	clusterAddrs   string
	passwordFile   string
}

func (r *redisFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.prefix, "redis-prefix", redis.DefaultPrefix, "prefix of every Redis key; keep its {hash tag} so Redis Cluster holds them in one slot")
	fs.Int64Var(&r.feedRetention, "redis-feed-retention", redis.DefaultFeedRetention, "revocations the Redis feed keeps; a node further behind reloads a snapshot (the same on every writer)")
	fs.StringVar(&r.sentinelMaster, "redis-sentinel-master", "", "Redis Sentinel: the master's name (with --redis-sentinel-addrs)")
	fs.StringVar(&r.sentinelAddrs, "redis-sentinel-addrs", "", "Redis Sentinel: comma-separated host:port of the sentinels")
	fs.StringVar(&r.clusterAddrs, "redis-cluster-addrs", "", "Redis Cluster: comma-separated host:port of some of its nodes")
	fs.StringVar(&r.passwordFile, "redis-password-file", "", "file holding the Redis password (else the URL's)")
}

// isRedisURL reports whether a --source value names Redis.
func isRedisURL(s string) bool {
	return strings.HasPrefix(s, "redis://") || strings.HasPrefix(s, "rediss://")
}

// redactURL is raw for logs and messages, with any password replaced by
// "xxxxx"; a value that does not parse as a URL is not shown at all.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// checkRedisURL parses a redis:// or rediss:// URL; its error never holds
// the URL's password.
func checkRedisURL(raw string) error {
	if !isRedisURL(raw) {
		return fmt.Errorf("%q: want a redis:// or rediss:// URL", redactURL(raw))
	}
	if _, err := url.Parse(raw); err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error quotes the whole URL
		}
		return fmt.Errorf("%s: %w", redactURL(raw), err)
	}
	return nil
}

// open returns the Redis source at url without contacting it, so a node can
// start from its own snapshot while Redis is down.
func (r *redisFlags) open(rawURL string) (*redis.Source, error) {
	if err := checkRedisURL(rawURL); err != nil {
		return nil, fmt.Errorf("redis source: %w", err)
	}
	if r.feedRetention < 1 {
		return nil, fmt.Errorf("redis-feed-retention: %d, want at least 1", r.feedRetention)
	}
	opts := redis.Options{
		Prefix:         r.prefix,
		FeedRetention:  r.feedRetention,
		SentinelMaster: r.sentinelMaster,
		SentinelAddrs:  splitList(r.sentinelAddrs),
		ClusterAddrs:   splitList(r.clusterAddrs),
	}
	if r.passwordFile != "" {
		b, err := os.ReadFile(r.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("redis-password-file: %w", err)
		}
		opts.Password = strings.TrimSpace(string(b))
	}
	goredis.SetLogger(redisLog{slog.Default()})
	src, err := redis.New(rawURL, opts)
	if err != nil {
		return nil, err // "redis source: ..." naming the option
	}
	return src, nil
}

// redisLog routes the Redis client's own messages (failed dials while
// Redis is down) to the structured log instead of stderr.
type redisLog struct{ log *slog.Logger }

func (r redisLog) Printf(_ context.Context, format string, v ...any) {
	r.log.Warn("redis client", "msg", fmt.Sprintf(format, v...))
}

// runPublish rebuilds the filter from the records in Redis and publishes
// it once: for deployments that publish from cron instead of a lease.
func runPublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rf redisFlags
	rf.register(fs)
	redisURL := fs.String("redis", "", "redis:// or rediss:// URL of the revocation source")
	cfg := bloom.DefaultConfig()
	fs.UintVar(&cfg.Entries, "bloom-entries", cfg.Entries, "expected revocations (filter size)")
	fs.Float64Var(&cfg.FPRate, "bloom-fp-rate", cfg.FPRate, "target false-positive rate of the filter")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !isRedisURL(*redisURL) {
		return fmt.Errorf("publish: --redis must be a redis:// or rediss:// URL")
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	src, err := rf.open(*redisURL)
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
