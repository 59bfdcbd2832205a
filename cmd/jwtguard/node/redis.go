package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/sync/audit"
	"github.com/jwtguard/jwtguard/sync/redis"
)

// RedisConfig is the settings of the Redis source shared by serve, revoke
// and publish; the address is a redis:// or rediss:// URL given apart.
type RedisConfig struct {
	Prefix        string
	FeedRetention int64
	// AuditMaxLen and AuditMaxAge are the audit stream's retention: about
	// that many entries (0: redis.DefaultAuditMaxLen), or entries younger
	// than that age (0: by length).
	AuditMaxLen    int64
	AuditMaxAge    time.Duration
	SentinelMaster string
	SentinelAddrs  string // comma-separated host:port
	ClusterAddrs   string // comma-separated host:port
	PasswordFile   string
}

// Register adds the Redis flags to fs, with their defaults.
func (r *RedisConfig) Register(fs *flag.FlagSet) {
	fs.StringVar(&r.Prefix, "redis-prefix", redis.DefaultPrefix, "prefix of every Redis key; keep its {hash tag} so Redis Cluster holds them in one slot")
	fs.Int64Var(&r.FeedRetention, "redis-feed-retention", redis.DefaultFeedRetention, "revocations the Redis feed keeps; a node further behind reloads a snapshot (the same on every writer)")
	fs.Int64Var(&r.AuditMaxLen, "redis-audit-max-len", 0, fmt.Sprintf("audit entries the Redis stream keeps, about (0: %d unless --redis-audit-max-age is set; the same on every writer)", redis.DefaultAuditMaxLen))
	fs.DurationVar(&r.AuditMaxAge, "redis-audit-max-age", 0, "keep Redis audit entries this long instead of by count (e.g. 2160h; 0: by count)")
	fs.StringVar(&r.SentinelMaster, "redis-sentinel-master", "", "Redis Sentinel: the master's name (with --redis-sentinel-addrs)")
	fs.StringVar(&r.SentinelAddrs, "redis-sentinel-addrs", "", "Redis Sentinel: comma-separated host:port of the sentinels")
	fs.StringVar(&r.ClusterAddrs, "redis-cluster-addrs", "", "Redis Cluster: comma-separated host:port of some of its nodes")
	fs.StringVar(&r.PasswordFile, "redis-password-file", "", "file holding the Redis password (else the URL's)")
}

// IsRedisURL reports whether a --source value names Redis.
func IsRedisURL(s string) bool {
	return strings.HasPrefix(s, "redis://") || strings.HasPrefix(s, "rediss://")
}

// RedactURL is raw for logs and messages, with any password replaced by
// "xxxxx"; a value that does not parse as a URL is not shown at all.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// CheckRedisURL parses a redis:// or rediss:// URL; its error never holds
// the URL's password.
func CheckRedisURL(raw string) error {
	if !IsRedisURL(raw) {
		return fmt.Errorf("%q: want a redis:// or rediss:// URL", RedactURL(raw))
	}
	if _, err := url.Parse(raw); err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error quotes the whole URL
		}
		return fmt.Errorf("%s: %w", RedactURL(raw), err)
	}
	return nil
}

// Open returns the Redis source at rawURL without contacting it, so a node
// can start from its own snapshot while Redis is down.
func (r *RedisConfig) Open(rawURL string) (*redis.Source, error) {
	if err := CheckRedisURL(rawURL); err != nil {
		return nil, fmt.Errorf("redis source: %w", err)
	}
	if r.FeedRetention < 1 {
		return nil, fmt.Errorf("redis-feed-retention: %d, want at least 1", r.FeedRetention)
	}
	if err := r.validateAudit(); err != nil {
		return nil, err
	}
	opts := redis.Options{
		Prefix:         r.Prefix,
		FeedRetention:  r.FeedRetention,
		SentinelMaster: r.SentinelMaster,
		SentinelAddrs:  splitList(r.SentinelAddrs),
		ClusterAddrs:   splitList(r.ClusterAddrs),
	}
	if r.PasswordFile != "" {
		b, err := os.ReadFile(r.PasswordFile)
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

// validateAudit checks the audit stream's retention.
func (r *RedisConfig) validateAudit() error {
	switch {
	case r.AuditMaxLen < 0:
		return fmt.Errorf("redis-audit-max-len: %d, want 0 or more", r.AuditMaxLen)
	case r.AuditMaxAge < 0 || (r.AuditMaxAge > 0 && r.AuditMaxAge < time.Minute):
		return fmt.Errorf("redis-audit-max-age: %s, want 0 or at least 1m", r.AuditMaxAge)
	case r.AuditMaxAge > 0 && r.AuditMaxLen > 0:
		return errors.New("redis-audit-max-len and redis-audit-max-age: set one, not both")
	}
	return nil
}

// Audit returns the audit trail kept in src with this retention.
func (r *RedisConfig) Audit(src *redis.Source) (audit.Store, error) {
	if err := r.validateAudit(); err != nil {
		return nil, err
	}
	return src.Audit(redis.AuditRetention{MaxLen: r.AuditMaxLen, MaxAge: r.AuditMaxAge})
}
