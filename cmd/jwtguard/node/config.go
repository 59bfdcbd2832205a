package node

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/envoy"
	"github.com/jwtguard/jwtguard/envoy/decisionlog"
	"github.com/jwtguard/jwtguard/envoy/detect"
	"github.com/jwtguard/jwtguard/envoy/keywatch"
	"github.com/jwtguard/jwtguard/envoy/scope"
	"github.com/jwtguard/jwtguard/sync/idp"
)

// Config is everything `serve` takes. Flags, the YAML file of
// --config and JWTGUARD_* variables all fill it; flags win over variables,
// variables over the file.
type Config struct {
	ConfigFile     string
	GRPCAddr       string
	HTTPAddr       string
	AdminAddr      string
	AdminTokenFile string
	DataDir        string
	Source         string
	LogFormat      string
	LogLevel       string
	Dev            bool

	// TrustedProxies are the proxies (CIDRs or addresses) whose
	// X-Forwarded-For names the client in forward-auth mode; none trusts
	// no one and takes the connection's peer.
	TrustedProxies []string
	// DecisionLog is where decisions are logged: DecisionLogStdout, a
	// file path, or DecisionLogOff.
	DecisionLog string
	// DecisionLogAllowSample is the share of allows logged, 0 to 1.
	DecisionLogAllowSample float64
	// DecisionLogDenyRate is the most denies logged a second (0: all).
	DecisionLogDenyRate int

	TLS                 envoy.TLSConfig
	RemoveAuthorization bool
	ForwardAuthPrefix   string
	MaxStaleness        time.Duration
	ShutdownGrace       time.Duration
	SnapshotInterval    time.Duration
	RebuildInterval     time.Duration
	PublishInterval     time.Duration
	Redis               RedisConfig
	// NodeID names the node in the mesh status ("": host name and gRPC
	// port).
	NodeID string
	// HeartbeatInterval is how often the node reports its status through
	// the source when nothing changes; a report lapses after three.
	HeartbeatInterval time.Duration

	Authz      authz.Config
	Revocation authz.RevocationConfig
	Bloom      bloom.Config
	// Scope sizes the table of recently seen tokens (GET /v1/tokens).
	Scope scope.Config
	// KeyWatch is the key-rotation watch; its per-issuer policies come
	// from the file's issuers entries, its Default from --max-key-age.
	KeyWatch keywatch.Config
	// Providers are the identity providers whose events become
	// revocations (the file's "providers" list).
	Providers []idp.Config
	// Detectors are the anomaly detectors and their policies (the file's
	// "detectors" section; none run without it).
	Detectors detect.Config

	// The flags of one issuer; the file can list several under "issuers".
	issuer         string
	audiences      listFlag
	jwksFile       string
	jwksURL        string
	hmacSecretFile string
	hmacKID        string
	algs           string
	claimHeaders   listFlag
	types          string
	revocationOnly bool
	discovery      bool
	payloadKey     string
	headerKey      string
	payloadMissing string
}

func DefaultConfig() Config {
	return Config{
		GRPCAddr:               ":9191",
		HTTPAddr:               ":8181",
		AdminAddr:              "127.0.0.1:8182",
		DataDir:                "./jwtguard-data",
		Source:                 "embedded",
		LogFormat:              "text",
		LogLevel:               "info",
		ForwardAuthPrefix:      "/authz/",
		ShutdownGrace:          15 * time.Second,
		SnapshotInterval:       time.Minute,
		RebuildInterval:        time.Hour,
		PublishInterval:        time.Minute,
		HeartbeatInterval:      5 * time.Second,
		DecisionLog:            DecisionLogStdout,
		DecisionLogAllowSample: decisionlog.DefaultAllowSample,
		DecisionLogDenyRate:    decisionlog.DefaultDenyRate,
		Authz:                  authz.DefaultConfig(),
		Revocation:             authz.DefaultRevocationConfig(),
		Bloom:                  bloom.DefaultConfig(),
		Detectors:              detect.DefaultConfig(),
		Scope:                  scope.DefaultConfig(),
		KeyWatch:               keywatch.Config{RefreshAlarm: keywatch.DefaultRefreshAlarm, Interval: 30 * time.Second},
		algs:                   strings.Join(authz.DefaultIssuerConfig("").Algs, ","),
		types:                  strings.Join(authz.DefaultConfig().Types, ","),
	}
}

// claimHeaderList is how --claim-header writes claim headers.
func claimHeaderList(chs []authz.ClaimHeader) string {
	var parts []string
	for _, ch := range chs {
		parts = append(parts, ch.Claim+"="+ch.Header)
	}
	return strings.Join(parts, ", ")
}

// listFlag is a repeatable flag; from the file or a variable it takes a
// list (or a comma-separated string).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func (c *Config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.ConfigFile, "config", "", "YAML `file` with any of these settings (keys are the flag names; a repeatable flag such as claim-header takes a list), plus a list of issuers under the key issuers, of per-route rules under the key rules (docs/rules.md), of identity providers under the key providers, and the anomaly detectors under the key detectors (docs/detectors.md)")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "ext_authz v3 gRPC, gRPC health and reflection listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP listen address: /healthz, /readyz, /metrics, forward-auth and identity-provider events (/idp/)")
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, "admin API listen address (loopback only unless --admin-token-file is set)")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", "", "file holding the admin API bearer token (or JWTGUARD_ADMIN_TOKEN)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the embedded store and the node's filter snapshot")
	fs.StringVar(&c.Source, "source", c.Source, "revocation source: embedded, or a redis:// or rediss:// URL (user:password@ for ACL, /db)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.BoolVar(&c.Dev, "dev", false, "development mode: generate a signing key in the data dir, serve its JWKS, print a token to try")
	fs.Var((*listFlag)(&c.TrustedProxies), "trusted-proxies", "CIDR or address of a proxy whose X-Forwarded-For names the client of a forward-auth check (repeatable or comma-separated; none: the connection's peer is the client)")
	fs.StringVar(&c.DecisionLog, "decision-log", c.DecisionLog, "where to log decisions as JSON lines: stdout, a file path (appended, created 0600), or off")
	fs.Float64Var(&c.DecisionLogAllowSample, "decision-log-allow-sample", c.DecisionLogAllowSample, "share of allows logged in the decision log, 0 to 1")
	fs.IntVar(&c.DecisionLogDenyRate, "decision-log-deny-rate", c.DecisionLogDenyRate, "most denies logged a second in the decision log; the rest are counted (0: log every deny)")

	fs.StringVar(&c.TLS.CertFile, "tls-cert", "", "PEM certificate for TLS on the gRPC listener")
	fs.StringVar(&c.TLS.KeyFile, "tls-key", "", "PEM private key for TLS on the gRPC listener")
	fs.StringVar(&c.TLS.ClientCAFile, "client-ca", "", "PEM CA bundle: require and verify client certificates (mTLS)")
	fs.BoolVar(&c.RemoveAuthorization, "remove-authorization", false, "remove the Authorization header from allowed requests")
	fs.StringVar(&c.ForwardAuthPrefix, "forward-auth-prefix", c.ForwardAuthPrefix, "HTTP path prefix of forward-auth checks on --http-addr")
	fs.DurationVar(&c.MaxStaleness, "max-staleness", 0, "turn not ready when the source has not been read for this long (0: keep serving the last known state)")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", c.ShutdownGrace, "time to drain in-flight checks on SIGTERM")
	fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", c.SnapshotInterval, "how often the node saves its filter snapshot")
	fs.DurationVar(&c.RebuildInterval, "rebuild-interval", c.RebuildInterval, "how often the filter is refreshed from the source to drop expired revocations")
	fs.DurationVar(&c.PublishInterval, "publish-interval", c.PublishInterval, "with Redis: how often the node holding the publisher lease publishes a filter snapshot (0: never; use jwtguard publish)")
	c.Redis.Register(fs)
	fs.StringVar(&c.NodeID, "node-id", "", "the node's name in the mesh status, the audit trail and the decision log (default: host name and gRPC port)")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat-interval", c.HeartbeatInterval, "how often the node reports its status through the source when nothing changes (its report lapses after three)")

	fs.StringVar(&c.issuer, "issuer", "", "accepted issuer (iss); more issuers through the config file")
	fs.Var(&c.audiences, "audience", "accepted audience of --issuer (repeatable)")
	fs.StringVar(&c.jwksFile, "jwks-file", "", "JWKS file of --issuer")
	fs.StringVar(&c.jwksURL, "jwks-url", "", "JWKS URL of --issuer (https; refreshed periodically)")
	fs.BoolVar(&c.discovery, "discovery", false, "find the JWKS URL of --issuer in its /.well-known/openid-configuration (jwks_uri; https; the document must name the issuer)")
	fs.StringVar(&c.hmacSecretFile, "hmac-secret-file", "", "HMAC secret of --issuer (enables HS256/384/512 when listed in --algs)")
	fs.StringVar(&c.hmacKID, "hmac-kid", "", "kid of the HMAC secret of --issuer: an HMAC token naming another kid is refused (unset: one naming any kid is)")
	fs.StringVar(&c.algs, "algs", c.algs, "allowed algorithms of --issuer, comma-separated")
	fs.BoolVar(&c.revocationOnly, "revocation-only", false, "trust the payload Envoy's jwt_authn verified for --issuer (ext_authz metadata_context_namespaces: envoy.filters.http.jwt_authn); check revocation, expiry and lifetime only (docs/revocation-only.md)")
	fs.StringVar(&c.payloadKey, "payload-metadata-key", "", "jwt_authn payload_in_metadata of --issuer (default: the issuer, as Istio sets it)")
	fs.StringVar(&c.headerKey, "header-metadata-key", "", "jwt_authn header_in_metadata of --issuer, where its kid is read (default: from the forwarded token)")
	fs.StringVar(&c.payloadMissing, "payload-missing", "", "what a token of a revocation-only --issuer gets without a verified payload: deny (default) or verify (needs its keys)")
	fs.DurationVar(&c.Authz.Leeway, "leeway", c.Authz.Leeway, "clock skew allowed on exp, nbf and iat")
	fs.IntVar(&c.Authz.MaxTokenBytes, "max-token-bytes", c.Authz.MaxTokenBytes, "longest token accepted")
	fs.StringVar(&c.types, "typ", c.types, "accepted typ header values, comma-separated")
	fs.StringVar(&c.Authz.TokenHeader, "token-header", "", "also take the token from this request header")
	fs.StringVar(&c.Authz.TokenCookie, "token-cookie", "", "also take the token from this cookie")
	fs.Var(&c.claimHeaders, "claim-header", "claim=header sent upstream on allow (repeatable; default "+claimHeaderList(c.Authz.ClaimHeaders)+")")
	fs.IntVar(&c.Authz.CacheSize, "cache-size", c.Authz.CacheSize, "verified-token cache entries")
	fs.DurationVar(&c.Authz.MaxTokenLifetime, "max-token-lifetime", c.Authz.MaxTokenLifetime, "longest token lifetime, from iat (or nbf) to exp: longer-lived tokens are denied lifetime_too_long; revocations are kept this long after the tokens they cover were issued")

	fs.IntVar(&c.Revocation.ConfirmCacheSize, "confirm-cache-size", c.Revocation.ConfirmCacheSize, "confirm cache entries")
	fs.DurationVar(&c.Revocation.ConfirmTimeout, "confirm-timeout", c.Revocation.ConfirmTimeout, "deadline of one exact lookup at the source")
	fs.BoolVar(&c.Revocation.AllowUnconfirmed, "allow-unconfirmed", false, "allow a request whose filter match cannot be confirmed (default: deny)")
	fs.UintVar(&c.Bloom.Entries, "bloom-entries", c.Bloom.Entries, "expected revocations (filter size)")
	fs.Float64Var(&c.Bloom.FPRate, "bloom-fp-rate", c.Bloom.FPRate, "target false-positive rate of the filter")

	fs.IntVar(&c.Scope.MaxEntries, "scope-entries", c.Scope.MaxEntries, "tokens the incident scope (GET /v1/tokens) keeps; the least recently seen go first")
	fs.Int64Var(&c.Scope.MaxBytes, "scope-bytes", c.Scope.MaxBytes, "memory bound of the incident scope, in bytes")
	fs.IntVar(&c.Scope.QueueSize, "scope-queue", c.Scope.QueueSize, "decisions waiting to enter the incident scope; more are dropped and counted")
	fs.IntVar(&c.Scope.RouteDepth, "scope-route-depth", c.Scope.RouteDepth, "path segments the incident scope keeps of a route")
	fs.DurationVar(&c.Scope.ShareInterval, "scope-share-interval", c.Scope.ShareInterval, "with Redis: how often, at most, a node shares a token's summary with the mesh")
	fs.DurationVar(&c.KeyWatch.Default.MaxKeyAge, "max-key-age", 0, "raise the missed-rotation alarm when an issuer's newest signing key is older than this (0: off; per issuer: max-key-age in the file's issuers)")
	fs.DurationVar(&c.KeyWatch.RefreshAlarm, "key-refresh-alarm", c.KeyWatch.RefreshAlarm, "raise an alarm when an issuer's key set has failed to load for longer than this")
	fs.DurationVar(&c.KeyWatch.Interval, "key-watch-interval", c.KeyWatch.Interval, "how often the key-rotation watch looks at the key sets")
	fs.IntVar(&c.Scope.MaxShare, "scope-max-share", c.Scope.MaxShare, "with Redis: token summaries a node shares per --scope-share-interval at most")
}

// fileIssuer is one entry of the file's "issuers" list.
type fileIssuer struct {
	Issuer         string   `json:"issuer"`
	Audiences      []string `json:"audiences"`
	JWKSURL        string   `json:"jwks-url"`
	JWKSFile       string   `json:"jwks-file"`
	HMACSecretFile string   `json:"hmac-secret-file"`
	HMACKeyID      string   `json:"hmac-kid"`
	Algs           []string `json:"algs"`
	JWKSRefresh    string   `json:"jwks-refresh"`
	JWKSMinRefetch string   `json:"jwks-min-refetch"`
	Discovery      bool     `json:"discovery"`
	RevocationOnly bool     `json:"revocation-only"`
	PayloadKey     string   `json:"payload-metadata-key"`
	HeaderKey      string   `json:"header-metadata-key"`
	PayloadMissing string   `json:"payload-missing"`
	// Introspection judges the issuer's opaque tokens (rules.go).
	Introspection *fileIntrospection `json:"introspection"`
	// The key-rotation watch of the issuer (see envoy/keywatch).
	MaxKeyAge       string `json:"max-key-age"`
	PurgeOnRotation bool   `json:"purge-on-rotation"`
	PurgeGrace      string `json:"purge-grace"`
}

// ErrNoIssuer is the error of a configuration that trusts no issuer.
var ErrNoIssuer = errors.New("issuers: none configured; give one with --issuer and --jwks-url (or --jwks-file), list them in a --config file, or try jwtguard serve --dev")

// FlagError is a command line Load could not parse.
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// Load fills c from args, then the environment, then the file.
func Load(args []string, env func(string) string, fs *flag.FlagSet) (*Config, error) {
	c := DefaultConfig()
	c.flags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, &FlagError{Err: err}
	}
	if fs.NArg() > 0 {
		return nil, &FlagError{Err: fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })

	var fileIssuers []fileIssuer
	if c.ConfigFile != "" {
		raw, err := os.ReadFile(c.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		var doc map[string]json.RawMessage
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("config file %s: %w", c.ConfigFile, err)
		}
		for key, val := range doc {
			switch key {
			case "issuers":
				dec := json.NewDecoder(strings.NewReader(string(val)))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&fileIssuers); err != nil {
					return nil, fmt.Errorf("config file %s: issuers: %w", c.ConfigFile, err)
				}
				continue
			case "rules":
				if c.Authz.Rules, err = decodeRules(val); err != nil {
					return nil, fmt.Errorf("config file %s: rules: %w", c.ConfigFile, err)
				}
				continue
			case "providers":
				if c.Providers, err = decodeProviders(val); err != nil {
					return nil, fmt.Errorf("config file %s: providers: %w", c.ConfigFile, err)
				}
				continue
			case "detectors":
				if err := c.Detectors.Decode(val); err != nil {
					return nil, fmt.Errorf("config file %s: detectors: %w", c.ConfigFile, err)
				}
				continue
			case "config":
				return nil, fmt.Errorf("config file %s: key config is not allowed in the file", c.ConfigFile)
			}
			if fs.Lookup(key) == nil {
				return nil, fmt.Errorf("config file %s: unknown key %q", c.ConfigFile, key)
			}
			if onCommandLine[key] {
				continue
			}
			if err := setFromJSON(fs, key, val); err != nil {
				return nil, fmt.Errorf("config file %s: %s: %w", c.ConfigFile, key, err)
			}
		}
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "JWTGUARD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := env(name)
		if v == "" || onCommandLine[f.Name] || f.Name == "config" || envErr != nil {
			return
		}
		if l, ok := f.Value.(*listFlag); ok {
			*l = nil
			for _, item := range strings.Split(v, ",") {
				_ = l.Set(strings.TrimSpace(item))
			}
			return
		}
		if err := f.Value.Set(v); err != nil {
			envErr = fmt.Errorf("%s: %w", name, err)
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if err := c.finish(fileIssuers); err != nil {
		return nil, err
	}
	return &c, nil
}

// setFromJSON sets flag key from a file value: a scalar, or a list for
// repeatable flags (a list for a comma-separated flag is joined).
func setFromJSON(fs *flag.FlagSet, key string, val json.RawMessage) error {
	f := fs.Lookup(key)
	var list []any
	if json.Unmarshal(val, &list) == nil {
		if l, ok := f.Value.(*listFlag); ok {
			*l = nil
			for _, item := range list {
				_ = l.Set(fmt.Sprint(item))
			}
			return nil
		}
		parts := make([]string, len(list))
		for i, item := range list {
			parts[i] = fmt.Sprint(item)
		}
		return f.Value.Set(strings.Join(parts, ","))
	}
	var scalar any
	if err := json.Unmarshal(val, &scalar); err != nil {
		return err
	}
	if scalar == nil {
		return nil
	}
	if n, ok := scalar.(float64); ok && n == float64(int64(n)) {
		return f.Value.Set(fmt.Sprint(int64(n)))
	}
	return f.Value.Set(fmt.Sprint(scalar))
}

// finish turns the flag-shaped fields into the components' configs, then
// validates everything.
func (c *Config) finish(fileIssuers []fileIssuer) error {
	for i, fi := range fileIssuers {
		ic := authz.DefaultIssuerConfig(fi.Issuer)
		ic.Audiences, ic.JWKSURL, ic.JWKSFile, ic.HMACSecretFile = fi.Audiences, fi.JWKSURL, fi.JWKSFile, fi.HMACSecretFile
		ic.HMACKeyID = fi.HMACKeyID
		ic.RevocationOnly, ic.PayloadKey, ic.HeaderKey, ic.PayloadMissing = fi.RevocationOnly, fi.PayloadKey, fi.HeaderKey, fi.PayloadMissing
		ic.Discovery = fi.Discovery
		if len(fi.Algs) > 0 {
			ic.Algs = fi.Algs
		}
		if err := parseDurations(i, []fileDuration{{fi.JWKSRefresh, &ic.JWKSRefresh, "jwks-refresh"}, {fi.JWKSMinRefetch, &ic.JWKSMinRefetch, "jwks-min-refetch"}}); err != nil {
			return err
		}
		if fi.Introspection != nil {
			var err error
			if ic.Introspection, err = fi.Introspection.config(); err != nil {
				return fmt.Errorf("issuers[%d]: %w", i, err)
			}
		}
		c.Authz.Issuers = append(c.Authz.Issuers, ic)
		if err := c.issuerWatch(i, &fi); err != nil {
			return err
		}
	}
	if c.issuer != "" {
		ic := authz.DefaultIssuerConfig(c.issuer)
		ic.Audiences, ic.JWKSURL, ic.JWKSFile, ic.HMACSecretFile = c.audiences, c.jwksURL, c.jwksFile, c.hmacSecretFile
		ic.HMACKeyID = c.hmacKID
		ic.Algs = splitList(c.algs)
		ic.RevocationOnly, ic.PayloadKey, ic.HeaderKey, ic.PayloadMissing = c.revocationOnly, c.payloadKey, c.headerKey, c.payloadMissing
		ic.Discovery = c.discovery
		c.Authz.Issuers = append(c.Authz.Issuers, ic)
	} else if len(c.audiences) > 0 || c.jwksFile != "" || c.jwksURL != "" || c.discovery || c.hmacSecretFile != "" || c.hmacKID != "" ||
		c.revocationOnly || c.payloadKey != "" || c.headerKey != "" || c.payloadMissing != "" {
		return errors.New("--audience, --jwks-file, --jwks-url, --discovery, --hmac-secret-file, --hmac-kid, --revocation-only, --payload-metadata-key, --header-metadata-key and --payload-missing need --issuer")
	}
	c.Authz.Types = splitList(c.types)
	if len(c.claimHeaders) > 0 {
		c.Authz.ClaimHeaders = nil
		for _, ch := range c.claimHeaders {
			claim, header, ok := strings.Cut(ch, "=")
			if !ok || claim == "" || header == "" {
				return fmt.Errorf("claim-header %q: want claim=header", ch)
			}
			c.Authz.ClaimHeaders = append(c.Authz.ClaimHeaders, authz.ClaimHeader{Claim: claim, Header: strings.ToLower(header)})
		}
	}
	return c.Validate()
}

// Validate checks every setting, naming the one that is wrong. A node
// validates its Config before taking anything.
func (c *Config) Validate() error {
	switch {
	case !slices.Contains([]string{"text", "json"}, c.LogFormat):
		return fmt.Errorf("log-format: %q, want text or json", c.LogFormat)
	case !strings.HasPrefix(c.ForwardAuthPrefix, "/") || !strings.HasSuffix(c.ForwardAuthPrefix, "/"):
		return fmt.Errorf("forward-auth-prefix: %q, want a path starting and ending with /", c.ForwardAuthPrefix)
	case c.MaxStaleness < 0:
		return fmt.Errorf("max-staleness: %s, want 0 or more", c.MaxStaleness)
	case c.MaxStaleness > 0 && !IsRedisURL(c.Source):
		// The embedded source is the node's own store: there is nothing
		// to fall behind, and an idle node would look stale.
		return fmt.Errorf("max-staleness: %s applies to a Redis source only (source is %s)", c.MaxStaleness, c.Source)
	case c.SnapshotInterval < time.Second:
		return fmt.Errorf("snapshot-interval: %s, want at least 1s", c.SnapshotInterval)
	case c.RebuildInterval < time.Second:
		return fmt.Errorf("rebuild-interval: %s, want at least 1s", c.RebuildInterval)
	case c.ShutdownGrace < 0:
		return fmt.Errorf("shutdown-grace: %s, want 0 or more", c.ShutdownGrace)
	case c.DataDir == "":
		return errors.New("data-dir: empty")
	case c.Source != "embedded" && !IsRedisURL(c.Source):
		return fmt.Errorf("source: %q, want embedded or a redis:// or rediss:// URL", RedactURL(c.Source))
	case c.Source != "embedded" && CheckRedisURL(c.Source) != nil:
		return fmt.Errorf("source: %w", CheckRedisURL(c.Source))
	case c.PublishInterval < 0:
		return fmt.Errorf("publish-interval: %s, want 0 or more", c.PublishInterval)
	case c.HeartbeatInterval < 100*time.Millisecond || c.HeartbeatInterval > time.Hour:
		return fmt.Errorf("heartbeat-interval: %s, want 100ms to 1h", c.HeartbeatInterval)
	case len(c.NodeID) > 200 || strings.ContainsFunc(c.NodeID, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("node-id: %q, want at most 200 characters without spaces or control characters", c.NodeID)
	case math.IsNaN(c.DecisionLogAllowSample) || c.DecisionLogAllowSample < 0 || c.DecisionLogAllowSample > 1:
		return fmt.Errorf("decision-log-allow-sample: %v, want a share from 0 to 1", c.DecisionLogAllowSample)
	case c.DecisionLogDenyRate < 0:
		return fmt.Errorf("decision-log-deny-rate: %d, want 0 (no limit) or more", c.DecisionLogDenyRate)
	}
	if _, err := trustedProxies(c.TrustedProxies); err != nil {
		return err
	}
	if err := checkDecisionLog(c.DecisionLog); err != nil {
		return err
	}
	if IsRedisURL(c.Source) {
		if err := c.Redis.validateAudit(); err != nil {
			return err
		}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("log-level: %w", err)
	}
	for _, a := range []struct{ name, addr string }{{"grpc-addr", c.GRPCAddr}, {"http-addr", c.HTTPAddr}, {"admin-addr", c.AdminAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s: %w", a.name, err)
		}
	}
	if err := c.TLS.Validate(); err != nil {
		return err
	}
	if err := c.Bloom.Validate(); err != nil {
		return fmt.Errorf("bloom-entries %d, bloom-fp-rate %g: %w", c.Bloom.Entries, c.Bloom.FPRate, err)
	}
	if err := c.Revocation.Validate(); err != nil {
		return err
	}
	if err := c.Scope.Validate(); err != nil {
		return err
	}
	if c.KeyWatch.Interval < 100*time.Millisecond {
		return fmt.Errorf("key-watch-interval: %s, want at least 100ms", c.KeyWatch.Interval)
	}
	if err := c.KeyWatch.Validate(); err != nil {
		return err
	}
	if err := validateProviders(c.Providers); err != nil {
		return err
	}
	if err := c.Detectors.Validate(); err != nil {
		return err
	}
	if c.Dev {
		// The dev issuer is added once its key exists; NewChecker then
		// validates the whole of Authz.
		return c.Authz.ValidateTiming()
	}
	if len(c.Authz.Issuers) == 0 {
		return ErrNoIssuer
	}
	return c.Authz.Validate()
}

// issuerWatch reads the key-rotation settings of issuers[i] of the file:
// an issuer that sets none takes the --max-key-age default.
func (c *Config) issuerWatch(i int, fi *fileIssuer) error {
	if fi.MaxKeyAge == "" && !fi.PurgeOnRotation && fi.PurgeGrace == "" {
		return nil
	}
	p := c.KeyWatch.Default
	p.Purge = fi.PurgeOnRotation
	if err := parseDurations(i, []fileDuration{{fi.MaxKeyAge, &p.MaxKeyAge, "max-key-age"}, {fi.PurgeGrace, &p.PurgeGrace, "purge-grace"}}); err != nil {
		return err
	}
	if c.KeyWatch.Issuers == nil {
		c.KeyWatch.Issuers = map[string]keywatch.IssuerPolicy{}
	}
	c.KeyWatch.Issuers[fi.Issuer] = p
	return nil
}

// fileDuration is a duration of a file's issuers entry: its text, where
// it goes, and its key for errors.
type fileDuration struct {
	raw string
	dst *time.Duration
	key string
}

// parseDurations sets the durations of issuers[i] that are given.
func parseDurations(i int, ds []fileDuration) error {
	for _, d := range ds {
		if d.raw == "" {
			continue
		}
		v, err := time.ParseDuration(d.raw)
		if err != nil {
			return fmt.Errorf("issuers[%d]: %s: %w", i, d.key, err)
		}
		*d.dst = v
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
