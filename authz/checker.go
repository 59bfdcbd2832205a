package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jwtguard/jwtguard/bloom"
)

// Headers gives access to a request's headers by lower-case name.
// http.Header satisfies it, and so does MapHeaders.
type Headers interface {
	Get(name string) string
}

// MapHeaders are headers keyed by lower-case name, as Envoy sends them.
type MapHeaders map[string]string

// Get returns the value of the lower-case header name.
func (h MapHeaders) Get(name string) string { return h[name] }

// Claims are the verified claims a decision reports and headers carry.
type Claims struct {
	Issuer  string
	Subject string
	JTI     string
	// TokenID identifies the token in revocations and logs: its jti, or
	// TokenHashPrefix + the hex SHA-256 of its signing input without one.
	TokenID string
	Session string // the "sid" claim
	KeyID   string // the kid of the key that verified the token
	Expiry  int64  // unix seconds
	// IssuedAt is the token's issue time in unix seconds: its "iat", or
	// its "nbf" when it has no iat (every verified token has one).
	IssuedAt int64
	// Extra holds the values of Config.ClaimHeaders, in order.
	Extra [MaxClaimHeaders]string
}

// Decision is the outcome of one check.
type Decision struct {
	// Reason is ReasonOK when the request is allowed.
	Reason Reason
	// RevokedBy is the record kind behind ReasonRevoked or ReasonUnavailable.
	RevokedBy Kind
	// Claims of a token whose signature verified (allowed, revoked,
	// expired, or signed by a retired key); zero otherwise.
	Claims Claims
	// Err details a verification failure for logs; it never holds the token.
	Err error
	// Rule is the name of the route rule that decided, if any.
	Rule string
	// RequiredScope is, with ReasonInsufficientScope, the space-separated
	// scopes the route requires (the challenge's scope parameter).
	RequiredScope string
}

// Allowed reports whether the request may pass.
func (d *Decision) Allowed() bool { return d.Reason == ReasonOK }

// verified is a token that passed signature and claim checks, with the
// filter key of each revocation check.
type verified struct {
	claims Claims
	keys   [numChecks]bloom.Key
	key    keyRef // the key that verified it, checked again on a cache hit after a key set change
	// revokedBy is 1 + the revocation check that found the token revoked,
	// from generation revokedGen of its key's slot, with the count of
	// revocation state changes at revokedChanges; 0 when none has (see
	// Revocations.stillRevoked).
	revokedBy                  uint8
	revokedGen, revokedChanges uint64
	// verdicts and ruleVals are what the route rules need of the token
	// (rules.go), decided once with its verification.
	verdicts ruleVerdicts
	ruleVals [MaxHeaderClaims]string
}

// setKeys fills the filter key of each revocation check that concerns v.
func (v *verified) setKeys() {
	for i := 0; i < numChecks; i++ {
		if v.applies(i) {
			v.keys[i] = v.lookupKey(i).FilterKey()
		}
	}
}

// applies reports whether revocation check i concerns v.
func (v *verified) applies(i int) bool {
	switch i {
	case checkSubject:
		return v.claims.Subject != ""
	case checkSession:
		return v.claims.Session != ""
	case checkKey:
		return v.claims.KeyID != ""
	}
	return true
}

// lookupKey is the exact key of revocation check i for v.
func (v *verified) lookupKey(i int) LookupKey {
	value := ""
	switch i {
	case checkToken:
		value = v.claims.TokenID
	case checkSubject:
		value = v.claims.Subject
	case checkSession:
		value = v.claims.Session
	case checkKey:
		value = v.claims.KeyID
	}
	return newLookupKey(checkKinds[i], v.claims.Issuer, value)
}

// Checker decides requests. It is safe for concurrent use.
type Checker struct {
	cfg       Config
	issuers   map[string]*issuer
	cache     *tokenCache
	rev       *Revocations
	parseOpts parseOptions
	leeway    int64
	// maxLifetime bounds exp minus issue time, in seconds.
	maxLifetime   int64
	header        string
	rules         *ruleSet      // nil: no per-route requirements
	introspection *introspector // nil: no issuer judges opaque tokens
	// payloadSlots are the metadata keys of revocation-only issuers'
	// verified payloads, each once, with the issuers filed under each.
	payloadSlots []payloadSlot
	// payloadExtra[i] is the index in payloadNames of the claim of
	// parseOpts.Extra[i], -1 for another claim: a payload's claim is
	// looked up once.
	payloadExtra []int
	// payloadExtraOwn has bit i set when parseOpts.Extra[i] is compared
	// on a payload cache hit: a claim header of iss, sub, jti or sid holds
	// that claim's value, which is compared anyway.
	payloadExtraOwn uint8
	// retired is set once a checker made WithPrevious of this one is
	// activated: this one no longer fills the caches they share.
	retired atomic.Bool
	// prev and changed are what Activate needs (see WithPrevious).
	prev    *Checker
	changed map[string]bool
	// payloadCache holds verified payloads by their identity (see
	// tokenCache.getClaims); nil without revocation-only issuers.
	payloadCache *tokenCache
	now          func() time.Time
	log          *slog.Logger
}

type issuer struct {
	cfg  IssuerConfig
	keys *keySet
}

// Option configures a Checker.
type Option func(*options)

type options struct {
	now      func() time.Time
	log      *slog.Logger
	client   *http.Client
	onChange func(KeySetChange)
	prev     *Checker
}

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithHTTPClient sets the client that fetches key sets.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// KeySetChange is a reload of an issuer's key set that added or removed
// keys. Keys are named by kid (a key without one by "alg:<alg>").
type KeySetChange struct {
	Issuer         string
	Added, Removed []string
	// Initial: the first load of the set since the checker started (every
	// key is Added).
	Initial bool
}

// WithKeySetChange calls fn after every key set load that changed the keys
// (for the audit trail). fn runs on the loading goroutine: it must not
// block.
func WithKeySetChange(fn func(KeySetChange)) Option { return func(o *options) { o.onChange = fn } }

// NewChecker validates cfg and returns a Checker enforcing rev. Key sets are
// loaded by LoadKeys and kept fresh by Run.
func NewChecker(cfg Config, rev *Revocations, opts ...Option) (*Checker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("authz config: %w", err)
	}
	if rev == nil {
		return nil, errors.New("authz: a checker needs revocation state")
	}
	o := options{now: time.Now, log: slog.Default(), client: &http.Client{Timeout: 10 * time.Second}}
	for _, opt := range opts {
		opt(&o)
	}
	var err error
	c := &Checker{
		cfg:         cfg,
		issuers:     make(map[string]*issuer, len(cfg.Issuers)),
		cache:       newTokenCache(cfg.CacheSize),
		rev:         rev,
		leeway:      int64(cfg.Leeway / time.Second),
		maxLifetime: int64(cfg.MaxTokenLifetime / time.Second),
		header:      strings.ToLower(cfg.TokenHeader),
		now:         o.now,
		log:         o.log,
		parseOpts: parseOptions{
			MaxBytes: cfg.MaxTokenBytes,
			Types:    cfg.Types,
		},
	}
	for _, ch := range cfg.ClaimHeaders {
		c.parseOpts.Extra = append(c.parseOpts.Extra, ch.Claim)
	}
	for _, ic := range cfg.Issuers {
		var ks *keySet
		ks, err = newKeySet(&ic, o.client, o.log)
		if err != nil {
			return nil, err
		}
		ks.onChange = o.onChange
		ks.now = o.now
		is := &issuer{cfg: ic, keys: ks}
		c.issuers[ic.Issuer] = is
		if ic.Introspection != nil {
			if c.introspection, err = newIntrospector(&ic, o.client); err != nil {
				return nil, err
			}
		}
		if ic.RevocationOnly {
			c.addPayloadSlot(is)
		}
	}
	if c.rules, err = compileRules(cfg.Rules, cfg.Issuers); err != nil {
		return nil, err
	}
	if len(c.payloadSlots) > 0 {
		c.payloadCache = newTokenCache(cfg.CacheSize)
		for i, name := range c.parseOpts.Extra {
			k := slices.Index(payloadNames[:], name)
			c.payloadExtra = append(c.payloadExtra, k)
			if k < 0 || k >= payloadStrings {
				c.payloadExtraOwn |= 1 << i
			}
		}
	}
	if o.prev != nil {
		c.inherit(o.prev)
	}
	return c, nil
}

// LoadKeys loads every issuer's key set once; it returns the errors of
// those that failed (they stay not ready until Run loads them).
func (c *Checker) LoadKeys(ctx context.Context) error {
	var errs []error
	for _, is := range c.issuers {
		if err := is.keys.fetch(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Run keeps every key set fresh until ctx ends.
func (c *Checker) Run(ctx context.Context) {
	done := make(chan struct{})
	for _, is := range c.issuers {
		go func() {
			is.keys.run(ctx)
			done <- struct{}{}
		}()
	}
	for range c.issuers {
		<-done
	}
}

// Ready reports whether every issuer has keys and revocation state is loaded.
func (c *Checker) Ready() bool {
	for _, is := range c.issuers {
		if !is.keys.ready() {
			return false
		}
	}
	return c.rev.Ready()
}

// ClaimHeaders returns the configured claim-to-header mapping; a decision's
// Claims.Extra holds the values in the same order.
func (c *Checker) ClaimHeaders() []ClaimHeader { return c.cfg.ClaimHeaders }

// Revocations returns the revocation state the checker enforces.
func (c *Checker) Revocations() *Revocations { return c.rev }

// CachedTokens counts the tokens in the verified-token cache.
func (c *Checker) CachedTokens() int { return c.cache.len() }

// Check decides a request from its headers, as a request that matches no
// route condition (only a default rule, when rules are configured).
func (c *Checker) Check(ctx context.Context, h Headers) Decision {
	return c.CheckRoute(ctx, h, nil)
}

// CheckRoute decides a request to rt from its headers: the first rule
// matching rt (see Rule) says what the request needs.
func (c *Checker) CheckRoute(ctx context.Context, h Headers, rt *Route) Decision {
	rule, name := -1, ""
	if c.rules != nil {
		if rule = c.rules.match(rt); rule < 0 {
			return Decision{Reason: ReasonNoRule}
		}
		r := &c.rules.rules[rule]
		if name = r.name; r.public {
			return Decision{Reason: ReasonOK, Rule: name}
		}
	}
	tok, reason := c.extract(h)
	if reason != ReasonOK {
		return Decision{Reason: reason, Rule: name}
	}
	d := c.check(ctx, tok, rule, h)
	d.Rule = name
	return d
}

// CheckToken decides a request carrying tok, under no route rule. A cached
// token skips verification; the revocation check runs every time.
func (c *Checker) CheckToken(ctx context.Context, tok string) Decision {
	return c.check(ctx, tok, -1, nil)
}

// check decides tok for a request with headers h under rule (-1: none).
func (c *Checker) check(ctx context.Context, tok string, rule int, h Headers) Decision {
	if !c.rev.Ready() {
		return Decision{Reason: ReasonNotReady}
	}
	now := c.now().Unix()
	var v verified
	if c.introspection != nil && IsOpaque(tok) {
		if reason, err := c.introspect(ctx, tok, now, &v); reason != ReasonOK {
			d := Decision{Reason: reason, Err: err, Claims: v.claims}
			if reason == ReasonInsufficientScope {
				d.RequiredScope = c.introspection.scopeText
			}
			return d
		}
		return c.decide(ctx, "", &v, now, rule, h)
	}
	hit := c.cache.get(tok, &v)
	if hit && v.key.gen != keyGeneration.Load() {
		hit = c.keyCurrent(tok, &v) // a key set changed since: is its key still there?
	}
	if hit {
		if now >= v.claims.Expiry+c.leeway {
			return Decision{Reason: ReasonExpired, Claims: v.claims}
		}
		// A token found revoked is denied again without a check while
		// the revocation state has not changed since (a record applied,
		// lifted, a filter replaced): then the check runs again.
		if v.revokedBy != 0 && c.rev.stillRevoked(&v) {
			return Decision{Reason: ReasonRevoked, RevokedBy: checkKinds[v.revokedBy-1], Claims: v.claims}
		}
	} else {
		if reason, err := c.verify(ctx, tok, now, &v); reason != ReasonOK {
			if reason == ReasonExpired || reason == ReasonRetiredKey {
				// Signed by its issuer, only late or with a key that left
				// its set: who still presents it matters to the detectors.
				return Decision{Reason: reason, Claims: v.claims, Err: err}
			}
			return Decision{Reason: reason, Err: err}
		}
		c.cache.putUnless(tok, &v, &c.retired)
	}
	return c.decide(ctx, tok, &v, now, rule, h)
}

// decide checks the token v (tok; "" for an opaque token, which the
// verified-token cache does not hold) against the revocations at now, then
// rule.
func (c *Checker) decide(ctx context.Context, tok string, v *verified, now int64, rule int, h Headers) Decision {
	changes := c.rev.changeCount()
	reason, i, gen := c.rev.decide(ctx, v, now)
	switch reason {
	case ReasonOK:
		d := Decision{Reason: reason, Claims: v.claims}
		if rule >= 0 {
			c.rules.enforce(rule, v, h, &d)
		}
		return d
	case ReasonRevoked:
		if tok != "" {
			v.revokedBy, v.revokedGen, v.revokedChanges = uint8(i)+1, gen, changes
			c.cache.markRevoked(tok, v)
		}
	case ReasonClamped:
		// Not kept: a clamp moves with the clock, and is lifted.
		return Decision{Reason: reason, RevokedBy: KindClamp, Claims: v.claims}
	}
	return Decision{Reason: reason, RevokedBy: checkKinds[i], Claims: v.claims}
}

// verify parses tok, checks its signature against its issuer's keys, then
// its claims, and fills v.
func (c *Checker) verify(ctx context.Context, tok string, now int64, v *verified) (Reason, error) {
	p, facts, reason, err := c.parse(tok)
	if reason != ReasonOK {
		return reason, err
	}
	is, ok := c.issuers[p.Claims.Iss]
	if !ok {
		return ReasonWrongIssuer, fmt.Errorf("issuer %q is not configured", truncate(p.Claims.Iss))
	}
	if is.cfg.RevocationOnly && is.cfg.PayloadMissing != PayloadMissingVerify {
		return ReasonNotVerifiedByProxy, fmt.Errorf("issuer %s is revocation-only and the request carries no payload verified by the proxy", is.cfg.Issuer)
	}
	alg := p.Header.Alg
	if !slices.Contains(is.cfg.Algs, alg) {
		return ReasonBadAlgorithm, fmt.Errorf("alg %q is not allowed for issuer %s", truncate(alg), is.cfg.Issuer)
	}
	if !is.keys.ready() {
		// Before its first load the set cannot tell the token's key from an
		// unknown one: jwtguard cannot decide yet (503), as /readyz says.
		return ReasonNotReady, fmt.Errorf("key set of issuer %s not loaded yet", is.cfg.Issuer)
	}
	ref, key, reason, err := is.keys.verify(ctx, p.Header.Kid, alg, []byte(p.SigningInput), p.Signature)
	if reason == ReasonRetiredKey {
		// Denied, with the claims its issuer signed: who still presents
		// tokens of a key that left the set matters to the detectors.
		start, _ := issueTime(&p.Claims)
		v.claims = claimsOf(&p.Claims, start, tokenID(&p), key.kid)
		return reason, err
	}
	if reason != ReasonOK {
		return reason, err
	}
	kid := key.kid
	if kid == "" {
		kid = p.Header.Kid
	}
	v.key = ref
	return c.accept(is, &p.Claims, facts, now, tokenID(&p), kid, v)
}

// accept checks the claims of a token whose signature is verified (by
// verify) and fills v with them and id and kid, its identity and key id,
// and with the route rules' verdicts from facts. An expired token gets its
// claims without issue time: who still presents it matters to the
// detectors.
func (c *Checker) accept(is *issuer, cl *tokenClaims, facts *tokenFacts, now int64, id, kid string, v *verified) (Reason, error) {
	start, reason, err := c.checkClaims(is, cl, cl.Aud, now)
	if reason != ReasonOK {
		if reason == ReasonExpired {
			v.claims = claimsOf(cl, 0, id, kid)
		}
		return reason, err
	}
	fill(v, claimsOf(cl, start, id, kid))
	copy(v.claims.Extra[:], cl.Extra)
	c.rules.judge(cl.Iss, cl.Aud, facts, &v.verdicts, &v.ruleVals)
	return ReasonOK, nil
}

// checkClaims checks cl, the claims of a verified token, against time and
// the lifetime bound, and its audiences aud against is's; it returns the
// token's issue time.
func (c *Checker) checkClaims(is *issuer, cl *tokenClaims, aud []string, now int64) (int64, Reason, error) {
	switch {
	case now >= cl.Exp+c.leeway:
		return 0, ReasonExpired, fmt.Errorf("expired at %d", cl.Exp)
	case cl.HasNbf && now+c.leeway < cl.Nbf:
		return 0, ReasonNotYetValid, fmt.Errorf("not valid before %d", cl.Nbf)
	case cl.HasIat && now+c.leeway < cl.Iat:
		return 0, ReasonIssuedInFuture, fmt.Errorf("issued at %d, in the future", cl.Iat)
	}
	start, ok := issueTime(cl)
	switch {
	case !ok:
		return 0, ReasonLifetimeTooLong, errors.New("token has neither iat nor nbf: its lifetime cannot be bounded")
	case cl.Exp-start > c.maxLifetime:
		return 0, ReasonLifetimeTooLong, fmt.Errorf("lifetime %ds from issue time %d exceeds max-token-lifetime %ds", cl.Exp-start, start, c.maxLifetime)
	}
	if len(is.cfg.Audiences) > 0 && !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(is.cfg.Audiences, a) }) {
		// A copy: the error must not keep aud, which may live on the
		// caller's stack.
		return 0, ReasonWrongAudience, fmt.Errorf("audience %q not accepted by issuer %s", truncate(strings.Join(slices.Clone(aud), ",")), is.cfg.Issuer)
	}
	return start, ReasonOK, nil
}

// claimsOf are the Claims of cl, issued at start, named id and signed with
// kid, without Extra.
func claimsOf(cl *tokenClaims, start int64, id, kid string) Claims {
	return Claims{
		Issuer:   cl.Iss,
		Subject:  cl.Sub,
		JTI:      cl.Jti,
		TokenID:  id,
		Session:  cl.Sid,
		KeyID:    kid,
		Expiry:   cl.Exp,
		IssuedAt: start,
	}
}

// fill makes v the verified token of claims, with the filter key of each
// revocation check.
func fill(v *verified, claims Claims) {
	v.claims = claims
	v.setKeys()
}

// truncate shortens attacker-chosen strings before they reach a log line.
func truncate(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// extract finds the one credential of a request: in the configured header
// or cookie, or "Authorization: Bearer <token>" (RFC 6750; the scheme is
// case-insensitive). A request carrying more than one is ambiguous and gets
// ReasonMultipleTokens (RFC 6750 3.1, invalid_request): the configured
// header or cookie plus any Authorization, the header or Authorization sent
// twice, the cookie set twice, or a comma in a value (how Envoy and HTTP
// join repeated headers; base64url never holds one). Deciding on one of
// them would let the others reach the upstream unchecked.
func (c *Checker) extract(h Headers) (string, Reason) {
	mh, _ := h.(multiHeaders)
	var tok string
	n := 0 // credentials seen
	if c.header != "" {
		n += eachValue(h, mh, c.header, func(v string) int {
			if v = strings.TrimSpace(v); v == "" {
				return 0
			}
			if t, ok := bearer(v); ok {
				v = t
			}
			tok = v
			return 1 + strings.Count(v, ",")
		})
	}
	if c.cfg.TokenCookie != "" {
		n += eachValue(h, mh, "cookie", func(v string) int {
			m, last := cookie(v, c.cfg.TokenCookie)
			if m > 0 {
				tok = last
			}
			return m
		})
	}
	n += eachValue(h, mh, "authorization", func(v string) int {
		if strings.TrimSpace(v) == "" {
			return 0
		}
		if t, ok := bearer(v); ok {
			tok = t
			return 1 + strings.Count(t, ",")
		}
		return 1 // another scheme: still a credential the upstream would see
	})
	switch {
	case n > 1:
		return "", ReasonMultipleTokens
	case n == 0 || tok == "":
		return "", ReasonMissingToken
	}
	return tok, ReasonOK
}

// multiHeaders are headers that can hold several values of one name, as
// http.Header does.
type multiHeaders interface {
	Values(name string) []string
}

// eachValue sums count over every value of header name: all of them when h
// keeps several (mh non-nil), else the one Get returns.
func eachValue(h Headers, mh multiHeaders, name string, count func(string) int) int {
	if mh == nil {
		if v := h.Get(name); v != "" {
			return count(v)
		}
		return 0
	}
	n := 0
	for _, v := range mh.Values(name) {
		n += count(v)
	}
	return n
}

// bearer returns the token of a "Bearer <token>" credential.
func bearer(v string) (string, bool) {
	v = strings.TrimSpace(v)
	const scheme = "bearer"
	if len(v) <= len(scheme)+1 || !strings.EqualFold(v[:len(scheme)], scheme) || (v[len(scheme)] != ' ' && v[len(scheme)] != '\t') {
		return "", false
	}
	tok := strings.TrimLeft(v[len(scheme)+1:], " \t")
	return tok, tok != ""
}

// cookie returns how many times cookie name is set in a Cookie header, and
// its last value, without allocating.
func cookie(header, name string) (n int, value string) {
	for header != "" {
		var part string
		part, header, _ = strings.Cut(header, ";")
		part = strings.TrimSpace(part)
		k, val, ok := strings.Cut(part, "=")
		if ok && k == name && val != "" {
			n++
			value = strings.Trim(val, `"`)
		}
	}
	return n, value
}
