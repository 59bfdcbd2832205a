package loadgen

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Category is one kind of token in the mix.
type Category string

// The categories of a mix.
const (
	// Repeated tokens are a small set of valid tokens sent again and again:
	// after the first request each is a verified-token cache hit.
	Repeated Category = "repeated"
	// Fresh tokens are valid and sent once each (a new jti every request),
	// so every one is a full ES256 verification.
	Fresh Category = "fresh"
	// Revoked tokens are valid but revoked by RevokedSet, one group per
	// record kind.
	Revoked Category = "revoked"
	// Invalid tokens have a bad signature, are expired, or are garbage.
	Invalid Category = "invalid"
	// Forged tokens are each sent once and each has a bad signature: a
	// flood of distinct forgeries that no cache can answer. Every one costs
	// the server a full signature verification that fails.
	Forged Category = "forged"
	// Verified tokens are the repeated set of MeshIssuer, a revocation-only
	// issuer: each request carries the payload and header Envoy's
	// jwt_authn filter verified, in the metadata ext_authz sends, as well
	// as the token (jwt_authn forward: true). gRPC only.
	Verified Category = "verified"
	// VerifiedOnly is Verified without the token: jwt_authn's default
	// (forward: false) strips it, and with a jti and the header in the
	// metadata jwtguard needs none. gRPC only.
	VerifiedOnly Category = "verified-only"
)

// Categories lists every category in the order mixes are printed.
var Categories = []Category{Repeated, Fresh, Revoked, Invalid, Forged, Verified, VerifiedOnly}

// oneUse reports whether each token of c is sent once only, from a pool
// minted ahead: the run ends when the pool runs out.
func (c Category) oneUse() bool { return c == Fresh || c == Forged }

// ErrBadMix is wrapped by every ParseMix error.
var ErrBadMix = errors.New("bad token mix")

// Mix is the relative weight of each category in the requests sent.
type Mix map[Category]int

// ParseMix reads "repeated=90,fresh=0,revoked=10,invalid=0,forged=0"; categories left
// out weigh zero.
func ParseMix(s string) (Mix, error) {
	m := Mix{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%w: %q is not category=weight", ErrBadMix, part)
		}
		c := Category(strings.TrimSpace(name))
		if !c.valid() {
			return nil, fmt.Errorf("%w: unknown category %q (want repeated, fresh, revoked, invalid, forged or verified)", ErrBadMix, name)
		}
		w, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || w < 0 || w > 10_000 {
			return nil, fmt.Errorf("%w: weight of %s is %q, want an integer 0..10000", ErrBadMix, c, val)
		}
		if _, dup := m[c]; dup {
			return nil, fmt.Errorf("%w: %s given twice", ErrBadMix, c)
		}
		m[c] = w
	}
	if m.total() == 0 {
		return nil, fmt.Errorf("%w: %q has no positive weight", ErrBadMix, s)
	}
	return m, nil
}

func (c Category) valid() bool {
	for _, k := range Categories {
		if c == k {
			return true
		}
	}
	return false
}

func (m Mix) total() int {
	t := 0
	for _, w := range m {
		t += w
	}
	return t
}

// String renders m as ParseMix reads it, in the order of Categories.
func (m Mix) String() string {
	var parts []string
	for _, c := range Categories {
		if w, ok := m[c]; ok {
			parts = append(parts, fmt.Sprintf("%s=%d", c, w))
		}
	}
	return strings.Join(parts, ",")
}

// schedule returns a cycle of categories in which each appears in
// proportion to its weight (reduced by their greatest common divisor),
// spread evenly (smooth weighted round robin).
func (m Mix) schedule() []Category {
	g := 0
	for _, w := range m {
		g = gcd(g, w)
	}
	type slot struct {
		c            Category
		weight, curr int
	}
	var slots []*slot
	n := 0
	for _, c := range Categories {
		if w := m[c]; w > 0 {
			slots = append(slots, &slot{c: c, weight: w / g})
			n += w / g
		}
	}
	out := make([]Category, 0, n)
	for range n {
		var best *slot
		for _, s := range slots {
			s.curr += s.weight
			if best == nil || s.curr > best.curr {
				best = s
			}
		}
		best.curr -= n
		out = append(out, best.c)
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
