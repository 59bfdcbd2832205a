package detect

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Name names a detector; it is its key in the config file and the
// <detector> of the actor jwtguard/auto:<detector>.
type Name string

// The detectors.
const (
	// TokenAddresses: one token (or session) from more distinct source
	// addresses than Threshold within Window.
	TokenAddresses Name = "token-addresses"
	// TokenUserAgents: one token (or session) with more distinct
	// User-Agent values than Threshold within Window.
	TokenUserAgents Name = "token-user-agents"
	// TokenRate: one token (or session) in more than Threshold requests
	// within Window.
	TokenRate Name = "token-rate"
	// BadSignature: more than Threshold bad signatures, malformed tokens,
	// unknown keys or refused algorithms from one source address within
	// Window (forgery, key probing).
	BadSignature Name = "bad-signature"
	// RevokedReuse: a revoked token presented more than Threshold times
	// within Window by one subject from one address.
	RevokedReuse Name = "revoked-reuse"
	// ExpiredReuse: the same for expired tokens.
	ExpiredReuse Name = "expired-reuse"
	// RetiredKey: a token (or session) signed by a key that has left its
	// issuer's key set (denied retired_key), or, with MaxKeyAge, allowed
	// under a key this node first loaded longer ago than MaxKeyAge, more
	// than Threshold times (0: the first) within Window.
	RetiredKey Name = "retired-key"
)

// Names lists every detector in the order they run.
var Names = []Name{TokenAddresses, TokenUserAgents, TokenRate, BadSignature, RevokedReuse, ExpiredReuse, RetiredKey}

// Policy is what a detector does when it fires.
type Policy string

// The policies.
const (
	Observe       Policy = "observe"        // a structured log line and a metric
	Block         Policy = "block"          // deny on this node for BlockFor
	RevokeToken   Policy = "revoke-token"   // a token record in the source
	RevokeSession Policy = "revoke-session" // a session record (the token's sid; its token without one)
	RevokeSubject Policy = "revoke-subject" // a subject record: every token of sub issued so far
)

// Policies lists every policy.
var Policies = []Policy{Observe, Block, RevokeToken, RevokeSession, RevokeSubject}

// revokes reports whether p writes a revocation.
func (p Policy) revokes() bool { return p == RevokeToken || p == RevokeSession || p == RevokeSubject }

// Per is what a token detector counts by.
type Per string

// What token detectors count by.
const (
	PerToken   Per = "token"
	PerSession Per = "session" // the sid claim; a token without one counts by itself
)

// DetectorConfig is one detector's settings.
type DetectorConfig struct {
	// Threshold: the detector fires when its count exceeds it in Window.
	Threshold int
	// Window is the span a count runs over (fixed windows per candidate).
	Window time.Duration
	// Policy is what firing does.
	Policy Policy
	// BlockFor is how long the block policy denies.
	BlockFor time.Duration
	// Per: token or session (the token detectors only).
	Per Per
	// Candidates bounds the tokens, sessions or addresses tracked at
	// once (least recently seen evicted first).
	Candidates int
	// ShareFrom (token-addresses only): with a mesh-wide store, a
	// candidate seen from this many distinct addresses on this node is
	// shared, so that a token replayed over several nodes, each seeing
	// few, is still caught; 0 never shares. A candidate past the
	// threshold on this node fires without the mesh.
	ShareFrom int
	// MaxKeyAge (retired-key only): an allowed token signed by a key this
	// node first loaded longer ago than this counts too; 0 counts only
	// tokens of keys that left their set.
	MaxKeyAge time.Duration
}

// Config is the detectors' settings: the file's "detectors" section. A
// detector runs when its key is present (nil: off).
type Config struct {
	// Node names this node in revocation reasons, logs and audit entries.
	Node string
	// DryRun logs what each policy would do, and does nothing.
	DryRun bool
	// QueueSize bounds the events waiting for the worker; a full queue
	// drops events and counts them.
	QueueSize int
	// MaxRevocationsPerMinute caps automatic revocations on this node;
	// past it a revoking detector falls back to observe, and says so.
	MaxRevocationsPerMinute int
	// MaxBlocks bounds the blocks held at once; past it a block falls back
	// to observe, and says so.
	MaxBlocks int
	// Allow exempts known fan-out clients from every detector.
	Allow Allowlist
	// ShareInterval is how often the mesh-wide sets are written, in one
	// batch of at most ShareBatch candidates: the bound on this node's
	// write rate to the store (ShareBatch/ShareInterval candidates a
	// second, three commands each).
	ShareInterval time.Duration
	ShareBatch    int
	// Detectors are the detectors that run, with their settings.
	Detectors map[Name]DetectorConfig
}

// Allowlist is what no detector acts on.
type Allowlist struct {
	Subjects  []string
	Issuers   []string
	Addresses []netip.Prefix // a single address is a /32 or /128
}

// DefaultConfig is the global settings with no detector running.
func DefaultConfig() Config {
	return Config{QueueSize: 8192, MaxRevocationsPerMinute: 10, MaxBlocks: 10000, ShareInterval: 250 * time.Millisecond, ShareBatch: 256}
}

// DefaultDetector is the settings of detector n before the file's.
func DefaultDetector(n Name) DetectorConfig {
	d := DetectorConfig{Policy: Observe, BlockFor: 15 * time.Minute, Per: PerToken, Candidates: 10000, Window: 5 * time.Minute}
	switch n {
	case TokenAddresses:
		d.Threshold, d.ShareFrom = 10, 2
	case TokenUserAgents:
		d.Threshold = 5
	case TokenRate:
		d.Threshold, d.Window = 6000, time.Minute
	case BadSignature:
		d.Threshold, d.Window = 50, time.Minute
	case RevokedReuse:
		d.Threshold, d.Window = 5, 10*time.Minute
	case ExpiredReuse:
		d.Threshold, d.Window = 20, 10*time.Minute
	case RetiredKey:
		d.Threshold, d.Window = 0, 10*time.Minute
	}
	return d
}

// maxThreshold bounds the distinct values kept per candidate.
const maxThreshold = 1 << 20

// Validate says which setting is wrong.
func (c *Config) Validate() error {
	switch {
	case c.QueueSize < 1:
		return fmt.Errorf("detectors: queue-size %d, want 1 or more", c.QueueSize)
	case c.MaxRevocationsPerMinute < 0:
		return fmt.Errorf("detectors: max-revocations-per-minute %d, want 0 or more", c.MaxRevocationsPerMinute)
	case c.MaxBlocks < 1:
		return fmt.Errorf("detectors: max-blocks %d, want 1 or more", c.MaxBlocks)
	case c.ShareInterval < 10*time.Millisecond:
		return fmt.Errorf("detectors: share-interval %s, want at least 10ms", c.ShareInterval)
	case c.ShareBatch < 1 || c.ShareBatch > 10000:
		return fmt.Errorf("detectors: share-batch %d, want 1 to 10000", c.ShareBatch)
	}
	for n, d := range c.Detectors {
		if !slices.Contains(Names, n) {
			return fmt.Errorf("detectors: unknown detector %q (want one of %s)", n, joinNames())
		}
		if err := d.validate(n); err != nil {
			return fmt.Errorf("detectors: %s: %w", n, err)
		}
	}
	return nil
}

func (d *DetectorConfig) validate(n Name) error {
	distinct := n == TokenAddresses || n == TokenUserAgents
	switch {
	case n == RetiredKey && d.Threshold < 0:
		return fmt.Errorf("threshold %d, want 0 (the first token) or more", d.Threshold)
	case n != RetiredKey && d.Threshold < 1:
		return fmt.Errorf("threshold %d, want 1 or more", d.Threshold)
	case distinct && d.Threshold > 1000:
		return fmt.Errorf("threshold %d, want at most 1000 distinct values", d.Threshold)
	case d.Threshold > maxThreshold:
		return fmt.Errorf("threshold %d, want at most %d", d.Threshold, maxThreshold)
	case d.Window < time.Second:
		return fmt.Errorf("window %s, want at least 1s", d.Window)
	case !slices.Contains(Policies, d.Policy):
		return fmt.Errorf("policy %q, want one of observe, block, revoke-token, revoke-session, revoke-subject", d.Policy)
	case n == BadSignature && d.Policy != Observe && d.Policy != Block:
		return fmt.Errorf("policy %q: a forged token names nobody; want observe or block", d.Policy)
	case d.Policy == Block && d.BlockFor < time.Second:
		return fmt.Errorf("block-for %s, want at least 1s", d.BlockFor)
	case d.Per != PerToken && d.Per != PerSession:
		return fmt.Errorf("per %q, want token or session", d.Per)
	case d.Candidates < 1 || d.Candidates > 10_000_000:
		return fmt.Errorf("candidates %d, want 1 to 10000000", d.Candidates)
	case d.ShareFrom < 0:
		return fmt.Errorf("share-from %d, want 0 (never) or more", d.ShareFrom)
	case d.ShareFrom != 0 && n != TokenAddresses:
		return fmt.Errorf("share-from: only token-addresses shares")
	case d.MaxKeyAge < 0 || d.MaxKeyAge != 0 && d.MaxKeyAge < time.Minute:
		return fmt.Errorf("max-key-age %s, want 0 (off) or at least 1m", d.MaxKeyAge)
	case d.MaxKeyAge != 0 && n != RetiredKey:
		return fmt.Errorf("max-key-age: only retired-key reads key ages")
	}
	return nil
}

func joinNames() string {
	s := make([]string, len(Names))
	for i, n := range Names {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}

// fileDetector is one detector as the file writes it.
type fileDetector struct {
	Threshold  *int   `json:"threshold"`
	Window     string `json:"window"`
	Policy     string `json:"policy"`
	BlockFor   string `json:"block-for"`
	Per        string `json:"per"`
	Candidates int    `json:"candidates"`
	ShareFrom  *int   `json:"share-from"`
	MaxKeyAge  string `json:"max-key-age"`
}

// fileAllow is the file's allowlist.
type fileAllow struct {
	Subjects  []string `json:"subjects"`
	Issuers   []string `json:"issuers"`
	Addresses []string `json:"addresses"`
}

// Decode fills c from the file's "detectors" section (JSON, as the YAML
// loader hands it): the global keys, "allow", and one key per detector.
// Unknown keys are refused; fields left out keep their defaults.
func (c *Config) Decode(raw []byte) error {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return err
	}
	strict := func(v json.RawMessage, dst any) error {
		dec := json.NewDecoder(strings.NewReader(string(v)))
		dec.DisallowUnknownFields()
		return dec.Decode(dst)
	}
	for key, v := range doc {
		var err error
		switch key {
		case "dry-run":
			err = json.Unmarshal(v, &c.DryRun)
		case "queue-size":
			err = json.Unmarshal(v, &c.QueueSize)
		case "max-revocations-per-minute":
			err = json.Unmarshal(v, &c.MaxRevocationsPerMinute)
		case "max-blocks":
			err = json.Unmarshal(v, &c.MaxBlocks)
		case "share-batch":
			err = json.Unmarshal(v, &c.ShareBatch)
		case "share-interval":
			var raw string
			if err = json.Unmarshal(v, &raw); err == nil {
				c.ShareInterval, err = time.ParseDuration(raw)
			}
		case "allow":
			var fa fileAllow
			if err = strict(v, &fa); err == nil {
				err = c.Allow.set(fa)
			}
		default:
			n := Name(key)
			if !slices.Contains(Names, n) {
				return fmt.Errorf("unknown key %q (want dry-run, queue-size, max-revocations-per-minute, max-blocks, share-interval, share-batch, allow, or a detector: %s)", key, joinNames())
			}
			var fd fileDetector
			if err = strict(v, &fd); err == nil {
				var d DetectorConfig
				if d, err = fd.config(n); err == nil {
					if c.Detectors == nil {
						c.Detectors = map[Name]DetectorConfig{}
					}
					c.Detectors[n] = d
				}
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	return nil
}

func (fd fileDetector) config(n Name) (DetectorConfig, error) {
	d := DefaultDetector(n)
	if fd.Threshold != nil {
		d.Threshold = *fd.Threshold
	}
	if fd.Candidates != 0 {
		d.Candidates = fd.Candidates
	}
	if fd.ShareFrom != nil {
		d.ShareFrom = *fd.ShareFrom
	}
	if fd.Policy != "" {
		d.Policy = Policy(fd.Policy)
	}
	if fd.Per != "" {
		d.Per = Per(fd.Per)
	}
	for _, f := range []struct {
		raw, key string
		dst      *time.Duration
	}{{fd.Window, "window", &d.Window}, {fd.BlockFor, "block-for", &d.BlockFor}, {fd.MaxKeyAge, "max-key-age", &d.MaxKeyAge}} {
		if f.raw == "" {
			continue
		}
		v, err := time.ParseDuration(f.raw)
		if err != nil {
			return d, fmt.Errorf("%s: %w", f.key, err)
		}
		*f.dst = v
	}
	return d, nil
}

func (a *Allowlist) set(fa fileAllow) error {
	a.Subjects, a.Issuers = fa.Subjects, fa.Issuers
	for _, s := range fa.Addresses {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			ip, err2 := netip.ParseAddr(s)
			if err2 != nil {
				return fmt.Errorf("addresses: %q is neither an address nor a CIDR", s)
			}
			ip = ip.Unmap()
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
		a.Addresses = append(a.Addresses, p.Masked())
	}
	if slices.Contains(a.Subjects, "") || slices.Contains(a.Issuers, "") {
		return errors.New("an empty subject or issuer would exempt every token without one")
	}
	return nil
}

// MemoryBound is the most memory the detectors' tables hold, in bytes, by
// construction: every candidate of every table at its largest, plus the
// queue and the blocks.
func (c *Config) MemoryBound() int64 {
	var b int64
	for n, d := range c.Detectors {
		b += int64(d.Candidates) * candidateBytes(n, &d)
	}
	b += int64(c.QueueSize) * eventBytes
	b += int64(c.MaxBlocks) * blockBytes
	b += recentSize * recentBytes
	b += int64(c.ShareBatch) * shareQueueFactor * shareBytes
	return b
}
