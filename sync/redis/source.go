package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/source"
)

// Defaults of Options.
const (
	// DefaultPrefix prefixes every key; its hash tag keeps them in one slot.
	DefaultPrefix = "{jwtguard}:"
	// DefaultFeedRetention is about how many positions (records) the feed
	// stream keeps.
	DefaultFeedRetention = 1_000_000
	// DefaultDialTimeout bounds connecting to Redis.
	DefaultDialTimeout = 2 * time.Second
	// DefaultTimeout bounds one call to Redis when the caller's context
	// has no deadline.
	DefaultTimeout = 5 * time.Second
)

// Errors callers branch on.
var (
	// ErrClosed: the Source has been closed.
	ErrClosed = errors.New("redis source closed")
	// ErrInvalidCursor: a List cursor that this source did not issue.
	ErrInvalidCursor = source.ErrInvalidCursor
	// ErrPositionAhead: the caller has seen feed positions that Redis does
	// not hold. Its data was lost or replaced (an instance without
	// persistence restarted, a failover to a replica that missed writes, a
	// different database); a node cannot catch up from it and must be
	// looked at by an operator.
	ErrPositionAhead = source.ErrPositionAhead
)

// Options configures a Source. The zero value, with a URL, is ready to use.
type Options struct {
	// Prefix starts every key. It must contain a Cluster hash tag, such as
	// "{jwtguard}:", so that all keys share one slot. Default DefaultPrefix.
	Prefix string
	// FeedRetention is about how many positions (records) the feed keeps:
	// each write trims the entries older than its position minus
	// FeedRetention (MINID ~, so a few more may stay). A node that falls
	// further behind reloads a snapshot. Puts trim the feed, so it is the setting of the
	// writers (give every writer the same). Default DefaultFeedRetention.
	FeedRetention int64
	// Username and Password, when set, replace those of the URL (ACL).
	Username, Password string
	// TLS, when set, is used for the connections (rediss:// URLs get a
	// default TLS configuration otherwise).
	TLS *tls.Config
	// SentinelMaster and SentinelAddrs select Sentinel: the master's name
	// and the sentinels' host:port addresses. The URL is then optional and
	// gives only credentials and the database.
	SentinelMaster string
	SentinelAddrs  []string
	// ClusterAddrs selects Redis Cluster: host:port addresses of some of
	// its nodes. The URL is then optional and gives only credentials.
	ClusterAddrs []string
	// DialTimeout bounds connecting. Default DefaultDialTimeout.
	DialTimeout time.Duration
	// Timeout bounds each call to Redis whose context has no deadline.
	// Default DefaultTimeout.
	Timeout time.Duration
	// Now is the clock that decides expiry and fills CreatedAt; tests set
	// it. Default time.Now.
	Now func() time.Time
}

// Source is the Redis revocation source. It is safe for concurrent use.
type Source struct {
	rdb       goredis.UniversalClient
	addr      string // for error messages: host:port, or the sentinel/cluster list
	k         keys
	retention int64
	timeout   time.Duration
	now       func() time.Time

	closeOnce sync.Once
	closed    chan struct{}

	guard guard
	// behind wakes a waiting Feed when a Lookup found Redis behind what
	// this source has seen, so that the follower reports it at once.
	behind chan struct{}
}

var (
	_ source.Source             = (*Source)(nil)
	_ source.SnapshotPositioner = (*Source)(nil)
)

// New returns a Source for the Redis at rawURL (redis:// or rediss://, with
// user:password@ for ACL and /db), or for the Sentinel or Cluster named in
// opts. It does not contact Redis: a node can start while Redis is down.
func New(rawURL string, opts Options) (*Source, error) {
	uo, err := universalOptions(rawURL, opts)
	if err != nil {
		return nil, err
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if err := checkPrefix(opts.Prefix); err != nil {
		return nil, err
	}
	if opts.FeedRetention == 0 {
		opts.FeedRetention = DefaultFeedRetention
	}
	if opts.FeedRetention < 1 {
		return nil, fmt.Errorf("redis source: FeedRetention = %d, want at least 1", opts.FeedRetention)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Source{
		rdb:       goredis.NewUniversalClient(uo),
		addr:      strings.Join(uo.Addrs, ","),
		k:         keys{prefix: opts.Prefix},
		retention: opts.FeedRetention,
		timeout:   opts.Timeout,
		now:       opts.Now,
		closed:    make(chan struct{}),
		behind:    make(chan struct{}, 1),
	}, nil
}

// Open is New followed by a PING, so that a wrong address or a Redis that
// is down is reported at once, naming the address.
func Open(ctx context.Context, rawURL string, opts Options) (*Source, error) {
	s, err := New(rawURL, opts)
	if err != nil {
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// universalOptions turns the URL and opts into go-redis options.
func universalOptions(rawURL string, opts Options) (*goredis.UniversalOptions, error) {
	uo := &goredis.UniversalOptions{
		ClientName:            "jwtguard",
		DialTimeout:           opts.DialTimeout,
		ContextTimeoutEnabled: true, // every call ends at its context's deadline
		// One dial per attempt: with Redis down a call fails in well under a
		// second (go-redis still retries the command a few times); callers
		// have their own backoff.
		DialerRetries: 1,
		// Pipelines (Lookup, the guard, Stats) share the one pool: a pool of
		// their own would give every node a second connection to Redis,
		// halving the nodes one Redis takes before maxclients.
		PipelinePoolSize: -1,
	}
	if uo.DialTimeout <= 0 {
		uo.DialTimeout = DefaultDialTimeout
	}
	if rawURL != "" {
		o, err := goredis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("redis source: URL %s: %w", redactURL(rawURL), err)
		}
		uo.Addrs = []string{o.Addr}
		uo.Username, uo.Password, uo.DB, uo.TLSConfig = o.Username, o.Password, o.DB, o.TLSConfig
	}
	switch {
	case opts.SentinelMaster != "" && len(opts.ClusterAddrs) > 0:
		return nil, errors.New("redis source: set SentinelMaster or ClusterAddrs, not both")
	case opts.SentinelMaster != "":
		if len(opts.SentinelAddrs) == 0 {
			return nil, errors.New("redis source: SentinelMaster needs SentinelAddrs")
		}
		uo.MasterName, uo.Addrs = opts.SentinelMaster, opts.SentinelAddrs
	case len(opts.SentinelAddrs) > 0:
		return nil, errors.New("redis source: SentinelAddrs needs SentinelMaster")
	case len(opts.ClusterAddrs) > 0:
		if uo.DB != 0 {
			return nil, fmt.Errorf("redis source: Redis Cluster has only database 0, the URL names %d", uo.DB)
		}
		uo.Addrs, uo.IsClusterMode = opts.ClusterAddrs, true
	case rawURL == "":
		return nil, errors.New("redis source: no URL (redis://host:port/db) and no Sentinel or Cluster addresses")
	}
	if opts.Username != "" {
		uo.Username = opts.Username
	}
	if opts.Password != "" {
		uo.Password = opts.Password
	}
	if opts.TLS != nil {
		uo.TLSConfig = opts.TLS
	}
	return uo, nil
}

// redactURL hides the password of a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// checkPrefix requires a non-empty hash tag in prefix.
func checkPrefix(prefix string) error {
	open := strings.IndexByte(prefix, '{')
	if open >= 0 {
		if end := strings.IndexByte(prefix[open+1:], '}'); end > 0 {
			return nil
		}
	}
	return fmt.Errorf("redis source: Prefix %q has no hash tag such as {jwtguard}: every key must share one Cluster slot", prefix)
}

// Ping checks that Redis answers.
func (s *Source) Ping(ctx context.Context) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis at %s: ping: %w", s.addr, err)
	}
	return nil
}

// Addr returns the address (or addresses) of the Redis this source uses.
func (s *Source) Addr() string { return s.addr }

// Close closes the connections and ends waiting Feed calls with ErrClosed.
func (s *Source) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		if cerr := s.rdb.Close(); cerr != nil {
			err = fmt.Errorf("close redis client for %s: %w", s.addr, cerr)
		}
	})
	return err
}

// opContext bounds ctx by the source's Timeout when it has no deadline.
func (s *Source) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout)
}

// wrap adds the operation and the address to a Redis error.
func (s *Source) wrap(op string, err error) error {
	if errors.Is(err, goredis.ErrClosed) {
		err = ErrClosed
	}
	return fmt.Errorf("%s (redis at %s): %w", op, s.addr, err)
}

// keys names the source's Redis keys.
type keys struct{ prefix string }

func (k keys) seq() string         { return k.prefix + "seq" }
func (k keys) epoch() string       { return k.prefix + "epoch" }
func (k keys) feed() string        { return k.prefix + "feed" }
func (k keys) snapshot() string    { return k.prefix + "snapshot" }
func (k keys) snapshotPos() string { return k.prefix + "snapshot:pos" }
func (k keys) lease() string       { return k.prefix + "lease" }
func (k keys) rec(id string) string {
	return k.prefix + "rec:" + id
}
func (k keys) live(kind authz.Kind) string { return k.prefix + "live:" + string(kind) }
func (k keys) nodes() string               { return k.prefix + "nodes" }
func (k keys) node(id string) string       { return k.prefix + "node:" + id }
func (k keys) lifted(id string) string {
	return k.prefix + "lifted:" + id
}

// idx names the index of a lookup key: kind:issuer:value with issuer and
// value query-escaped, which is readable and keeps distinct keys distinct
// (":" is escaped inside them, and kinds hold none).
func (k keys) idx(lk authz.LookupKey) string {
	return k.prefix + "idx:" + string(lk.Kind) + ":" + url.QueryEscape(lk.Issuer) + ":" + url.QueryEscape(lk.Value)
}
