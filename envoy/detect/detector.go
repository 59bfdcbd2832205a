package detect

import (
	"fmt"
	"hash/maphash"
	"net/netip"
	"slices"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/jwtguard/jwtguard/authz"
)

// detector is one detector's table: a bounded LRU of candidates.
type detector struct {
	name   Name
	cfg    DetectorConfig
	inputs uint8 // the classes of decisions it reads (1<<class)
	window int64 // nanoseconds
	table  *simplelru.LRU[hkey, *candidate]
	uaSeed maphash.Seed
}

// candidate is what a detector knows of one token, session, address or
// subject at an address, in the current window: a count, and at most
// Threshold+1 distinct values (enough to tell it crossed).
type candidate struct {
	start int64 // window start, unix nanoseconds
	count int
	fired bool // fired in this window
	// shared counts the addrs already handed to the mesh.
	shared int
	addrs  []netip.Addr
	uas    []uint64 // hashes of user agents
}

// candidateBytes is the most one candidate of detector n holds, with its
// LRU entry and map slot.
func candidateBytes(n Name, d *DetectorConfig) int64 {
	const base = 64 + 96 + 48 // candidate, list entry, map slot
	switch n {
	case TokenAddresses:
		return base + int64(d.Threshold+1)*24
	case TokenUserAgents:
		return base + int64(d.Threshold+1)*8
	}
	return base
}

func newDetector(n Name, c DetectorConfig) (*detector, error) {
	d := &detector{name: n, cfg: c, window: int64(c.Window), uaSeed: maphash.MakeSeed()}
	switch n {
	case TokenAddresses, TokenUserAgents, TokenRate:
		d.inputs = 1 << inAllowed
	case BadSignature:
		d.inputs = 1 << inBad
	case RevokedReuse:
		d.inputs = 1 << inRevoked
	case ExpiredReuse:
		d.inputs = 1 << inExpired
	case RetiredKey:
		d.inputs = 1 << inRetired
		if c.MaxKeyAge > 0 {
			d.inputs |= 1 << inAllowed
		}
	}
	var err error
	if d.table, err = simplelru.NewLRU[hkey, *candidate](c.Candidates, nil); err != nil {
		return nil, fmt.Errorf("detector %s: %w", n, err)
	}
	return d, nil
}

// reads reports whether d reads decisions of class in.
func (d *detector) reads(in int) bool { return d.inputs&(1<<in) != 0 }

// key is the candidate ev counts for.
func (d *detector) key(e *Engine, ev *event) hkey {
	switch {
	case d.reads(inBad):
		return e.hash('a', "", "", ev.src)
	case d.reads(inRevoked) || d.reads(inExpired):
		if ev.sub == "" {
			return e.hash('t', ev.iss, ev.tid, ev.src)
		}
		return e.hash('s', ev.iss, ev.sub, ev.src)
	}
	if d.cfg.Per == PerSession && ev.sid != "" {
		return e.hash('S', ev.iss, ev.sid, netip.Addr{})
	}
	return e.hash('T', ev.iss, ev.tid, netip.Addr{})
}

// see counts ev for candidate k and reports whether the candidate crossed
// the threshold now (once per window), with the evidence.
func (d *detector) see(k hkey, ev *event) (*candidate, string, bool) {
	c, ok := d.table.Get(k)
	if !ok {
		c = &candidate{start: ev.t}
		d.table.Add(k, c)
	}
	if ev.t-c.start >= d.window {
		c.start, c.count, c.fired, c.shared = ev.t, 0, false, 0
		c.addrs, c.uas = c.addrs[:0], c.uas[:0]
	}
	c.count++
	limit := d.cfg.Threshold
	var n int
	switch d.name {
	case TokenAddresses:
		if ev.src.IsValid() && !slices.Contains(c.addrs, ev.src) && len(c.addrs) <= limit {
			c.addrs = append(c.addrs, ev.src)
		}
		n = len(c.addrs)
	case TokenUserAgents:
		h := maphash.String(d.uaSeed, ev.ua)
		if !slices.Contains(c.uas, h) && len(c.uas) <= limit {
			c.uas = append(c.uas, h)
		}
		n = len(c.uas)
	default:
		n = c.count
	}
	if n <= limit || c.fired {
		return c, "", false
	}
	c.fired = true
	return c, d.evidence(n, ev), true
}

// evidence says what the detector saw, for logs, records and the audit
// trail: counts, the window, the latest address, a token id (never a
// token).
func (d *detector) evidence(n int, ev *event) string {
	w := time.Duration(d.window)
	what := "token " + short(ev.tid)
	if d.cfg.Per == PerSession && ev.sid != "" {
		what = "session " + short(ev.sid)
	}
	switch d.name {
	case TokenAddresses:
		return fmt.Sprintf("%s of %s from more than %d distinct addresses within %s (latest %s)", what, short(ev.iss), d.cfg.Threshold, w, ev.src)
	case TokenUserAgents:
		return fmt.Sprintf("%s of %s with more than %d distinct user agents within %s (latest from %s)", what, short(ev.iss), d.cfg.Threshold, w, ev.src)
	case TokenRate:
		return fmt.Sprintf("%s of %s in more than %d requests within %s (latest from %s)", what, short(ev.iss), d.cfg.Threshold, w, ev.src)
	case BadSignature:
		return fmt.Sprintf("more than %d forged, malformed or unknown-key tokens from %s within %s (latest %s)", d.cfg.Threshold, ev.src, w, ev.reason)
	case RevokedReuse:
		return fmt.Sprintf("revoked tokens of subject %s of %s presented more than %d times from %s within %s (latest %s)", short(ev.sub), short(ev.iss), d.cfg.Threshold, ev.src, w, short(ev.tid))
	case ExpiredReuse:
		return fmt.Sprintf("expired tokens of subject %s of %s presented more than %d times from %s within %s (latest %s)", short(ev.sub), short(ev.iss), d.cfg.Threshold, ev.src, w, short(ev.tid))
	case RetiredKey:
		why := "which left the key set"
		if ev.reason == authz.ReasonOK {
			why = fmt.Sprintf("first loaded %s ago, older than max-key-age %s", time.Duration(ev.keyAge).Round(time.Second), d.cfg.MaxKeyAge)
		}
		return fmt.Sprintf("%s of %s signed by key %s, %s, presented more than %d times within %s (latest from %s)", what, short(ev.iss), short(ev.kid), why, d.cfg.Threshold, w, ev.src)
	}
	return fmt.Sprintf("%d in %s", n, w)
}

// short bounds an attacker-chosen string in a log line or record.
func short(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
