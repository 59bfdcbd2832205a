package authz

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jwtguard/jwtguard/authz/internal/strictjson"
)

// This file holds the per-route rules: which requests need which token.
// Rules are compiled once (compileRules); what a token satisfies is decided
// once per token, when it is verified or introspected (ruleSet.judge), and
// kept with it in the caches as one verdict per rule, so a cached token is
// checked against a route's rule without parsing or allocating.

// Limits of the rules, so a token's verdicts fit a fixed array.
const (
	// MaxRules bounds Config.Rules.
	MaxRules = 64
	// MaxHeaderClaims bounds the distinct claims that rules compare to a
	// request header (ClaimRequirement.EqualsHeader).
	MaxHeaderClaims = 4
)

// Route is what a rule matches a request on: the facts the proxy sends.
// Its strings may point into the request; the checker keeps none of them.
type Route struct {
	Method string
	Host   string // may carry a port, which matching ignores
	Path   string // may carry a query, which matching ignores
	// ContextExtensions are Envoy's ext_authz context_extensions, set per
	// route or virtual host (gRPC only).
	ContextExtensions map[string]string
}

// Rule is one per-route requirement: the first rule whose Match fits a
// request decides what that request needs.
type Rule struct {
	// Name shows in logs; optional.
	Name  string    `json:"name"`
	Match RuleMatch `json:"match"`
	// Public routes need no token: the request passes without one, and a
	// token it carries is neither verified nor forwarded as claims.
	Public bool `json:"public"`
	// Issuers, when set, are the only issuers accepted (wrong_issuer).
	Issuers []string `json:"issuers"`
	// Audiences, when set, must include one of the token's (wrong_audience).
	Audiences []string `json:"audiences"`
	// Scopes must all be granted, by the "scope" claim (space-separated)
	// or the "scp" claim (array or space-separated) (insufficient_scope).
	Scopes []string `json:"scopes"`
	// Claims must all hold (claim_mismatch).
	Claims []ClaimRequirement `json:"claims"`
}

// RuleMatch selects requests; every condition set must hold, and a rule
// with none matches every request (a default rule).
type RuleMatch struct {
	// Hosts: the request's host (without port), case-insensitive; an
	// entry "*.example.com" matches every subdomain of example.com.
	Hosts []string `json:"hosts"`
	// Methods: the request's method, exactly (upper case).
	Methods []string `json:"methods"`
	// Path: the request's path (without query), exactly.
	Path string `json:"path"`
	// PathPrefix: the path starts with it at a segment boundary ("/api"
	// matches "/api" and "/api/x", not "/apix"; "/api/" matches what
	// starts with "/api/"), as Envoy's path_separated_prefix.
	PathPrefix string `json:"path-prefix"`
	// ContextExtensions: each key is present with exactly this value.
	ContextExtensions map[string]string `json:"context-extensions"`
}

// ClaimRequirement is one claim condition; exactly one of Equals,
// Contains and EqualsHeader is set.
type ClaimRequirement struct {
	Claim string `json:"claim"`
	// Equals: the claim is this string.
	Equals string `json:"equals"`
	// Contains: the claim is an array of strings holding this one, or this
	// string itself.
	Contains string `json:"contains"`
	// EqualsHeader: the claim is a non-empty string equal to the single
	// value of this request header.
	EqualsHeader string `json:"equals-header"`
}

// Rule verdicts: what a token lacks for one rule, first failing check
// first.
const (
	verdictOK = iota
	verdictIssuer
	verdictAudience
	verdictScope
	verdictClaim
)

var verdictReasons = [...]Reason{
	verdictOK:       ReasonOK,
	verdictIssuer:   ReasonWrongIssuer,
	verdictAudience: ReasonWrongAudience,
	verdictScope:    ReasonInsufficientScope,
	verdictClaim:    ReasonClaimMismatch,
}

// ruleVerdicts holds a token's verdict for every rule, four bits each.
type ruleVerdicts [MaxRules / 2]uint8

func (rv *ruleVerdicts) get(i int) uint8 { return rv[i/2] >> (4 * (i % 2)) & 0xf }

func (rv *ruleVerdicts) set(i int, v uint8) {
	rv[i/2] = rv[i/2]&^(0xf<<(4*(i%2))) | v<<(4*(i%2))
}

// ruleSet is the compiled, immutable form of Config.Rules.
type ruleSet struct {
	rules []compiledRule
	// claims are the claim names some rule reads (besides iss and aud).
	claims map[string]bool
	// headerClaims are the claims compared to a header; a token keeps
	// their values, in this order, in verified.ruleVals.
	headerClaims []string
}

type compiledRule struct {
	name    string
	public  bool
	hosts   []string // lower case; "*.x" matches subdomains of x
	methods []string
	path    string
	prefix  string
	ext     [][2]string
	anyPath bool // neither path nor prefix is set

	issuers, audiences, scopes []string
	scopeText                  string // the scopes, space-separated, for the challenge
	claims                     []ClaimRequirement
	headers                    []headerCheck
}

type headerCheck struct {
	slot   int    // in verified.ruleVals
	header string // lower case
}

// compileRules checks rules against the configured issuers and compiles
// them; nil rules compile to nil (no per-route requirements).
func compileRules(rules []Rule, issuers []IssuerConfig) (*ruleSet, error) {
	if len(rules) == 0 {
		return nil, nil
	}
	if len(rules) > MaxRules {
		return nil, fmt.Errorf("rules: %d, want at most %d", len(rules), MaxRules)
	}
	rs := &ruleSet{claims: map[string]bool{}}
	for i := range rules {
		r := &rules[i]
		cr, err := rs.compile(r, issuers)
		if err != nil {
			name := ""
			if r.Name != "" {
				name = fmt.Sprintf(" (%s)", r.Name)
			}
			return nil, fmt.Errorf("rules[%d]%s: %w", i, name, err)
		}
		rs.rules = append(rs.rules, cr)
	}
	for i, r := range rs.rules[:len(rs.rules)-1] {
		if r.matchesAll() {
			return nil, fmt.Errorf("rules[%d]: matches every request, so the rules after it are never used; put the default rule last", i)
		}
	}
	return rs, nil
}

func (rs *ruleSet) compile(r *Rule, issuers []IssuerConfig) (compiledRule, error) {
	cr := compiledRule{name: r.Name, public: r.Public, methods: r.Match.Methods, path: r.Match.Path, prefix: r.Match.PathPrefix}
	if r.Public && (len(r.Issuers) > 0 || len(r.Audiences) > 0 || len(r.Scopes) > 0 || len(r.Claims) > 0) {
		return cr, errors.New("public: a public rule takes no issuers, audiences, scopes or claims")
	}
	for _, h := range r.Match.Hosts {
		base := strings.TrimPrefix(h, "*.")
		if base == "" || strings.ContainsAny(base, ":/*[] ") {
			return cr, fmt.Errorf("match.hosts: %q, want a host name without port, optionally starting with *.", h)
		}
		cr.hosts = append(cr.hosts, strings.ToLower(h))
	}
	for _, m := range r.Match.Methods {
		if m == "" || m != strings.ToUpper(m) || !validHeaderName(m) {
			return cr, fmt.Errorf("match.methods: %q, want an upper-case method such as GET", m)
		}
	}
	switch {
	case cr.path != "" && cr.prefix != "":
		return cr, errors.New("match: path and path-prefix are exclusive")
	case cr.path != "" && !normalPath(cr.path):
		return cr, fmt.Errorf("match.path: %q, want a normalized path starting with / (no query, dot segments or double slashes)", cr.path)
	case cr.prefix != "" && !normalPath(cr.prefix):
		return cr, fmt.Errorf("match.path-prefix: %q, want a normalized path starting with / (no query, dot segments or double slashes)", cr.prefix)
	}
	cr.anyPath = cr.path == "" && cr.prefix == ""
	for _, k := range slices.Sorted(maps.Keys(r.Match.ContextExtensions)) {
		if k == "" {
			return cr, errors.New("match.context-extensions: empty key")
		}
		cr.ext = append(cr.ext, [2]string{k, r.Match.ContextExtensions[k]})
	}
	for _, iss := range r.Issuers {
		if !slices.ContainsFunc(issuers, func(ic IssuerConfig) bool { return ic.Issuer == iss }) {
			return cr, fmt.Errorf("issuers: %q is not a configured issuer", iss)
		}
	}
	cr.issuers, cr.audiences = r.Issuers, r.Audiences
	for _, s := range r.Scopes {
		if s == "" || strings.ContainsAny(s, " \"\\") || !printableASCII(s) {
			return cr, fmt.Errorf("scopes: %q, want a scope token (printable ASCII without space, quote or backslash)", s)
		}
	}
	if len(r.Scopes) > 0 {
		cr.scopes, cr.scopeText = r.Scopes, strings.Join(r.Scopes, " ")
		rs.claims["scope"], rs.claims["scp"] = true, true
	}
	for j, c := range r.Claims {
		set := 0
		for _, v := range []string{c.Equals, c.Contains, c.EqualsHeader} {
			if v != "" {
				set++
			}
		}
		switch {
		case c.Claim == "":
			return cr, fmt.Errorf("claims[%d]: claim is empty", j)
		case set != 1:
			return cr, fmt.Errorf("claims[%d] (%s): want exactly one of equals, contains and equals-header", j, c.Claim)
		case c.EqualsHeader != "" && !validHeaderName(c.EqualsHeader):
			return cr, fmt.Errorf("claims[%d] (%s): equals-header %q is not a valid header name", j, c.Claim, c.EqualsHeader)
		}
		if c.EqualsHeader == "" {
			cr.claims = append(cr.claims, c)
			rs.claims[c.Claim] = true
			continue
		}
		slot := slices.Index(rs.headerClaims, c.Claim)
		if slot < 0 {
			if len(rs.headerClaims) == MaxHeaderClaims {
				return cr, fmt.Errorf("claims[%d] (%s): more than %d distinct claims compared to headers", j, c.Claim, MaxHeaderClaims)
			}
			slot = len(rs.headerClaims)
			rs.headerClaims = append(rs.headerClaims, c.Claim)
			rs.claims[c.Claim] = true
		}
		cr.headers = append(cr.headers, headerCheck{slot: slot, header: strings.ToLower(c.EqualsHeader)})
	}
	return cr, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func (r *compiledRule) matchesAll() bool {
	return len(r.hosts) == 0 && len(r.methods) == 0 && r.anyPath && len(r.ext) == 0
}

// match returns the index of the first rule matching rt (nil: an empty
// route), or -1.
func (rs *ruleSet) match(rt *Route) int {
	var empty Route
	if rt == nil {
		rt = &empty
	}
	path := rt.Path
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	normal := -1 // whether path is normal, decided when a rule needs it
	for i := range rs.rules {
		r := &rs.rules[i]
		if len(r.methods) > 0 && !slices.Contains(r.methods, rt.Method) {
			continue
		}
		if len(r.hosts) > 0 && !r.matchHost(rt.Host) {
			continue
		}
		if !r.anyPath {
			if normal < 0 {
				normal = 0
				if normalPath(path) {
					normal = 1
				}
			}
			if normal == 0 || !r.matchPath(path) {
				continue
			}
		}
		if !r.matchExtensions(rt.ContextExtensions) {
			continue
		}
		return i
	}
	return -1
}

func (r *compiledRule) matchHost(host string) bool {
	host = stripPort(host)
	for _, want := range r.hosts {
		if suffix, ok := strings.CutPrefix(want, "*"); ok {
			if len(host) > len(suffix) && strings.EqualFold(host[len(host)-len(suffix):], suffix) {
				return true
			}
		} else if strings.EqualFold(host, want) {
			return true
		}
	}
	return false
}

// stripPort returns host without a ":port" (and an IPv6 literal without
// its brackets), without allocating.
func stripPort(host string) string {
	if strings.HasPrefix(host, "[") {
		if end := strings.IndexByte(host, ']'); end > 0 {
			return host[1:end]
		}
		return host
	}
	if i := strings.IndexByte(host, ':'); i >= 0 && strings.Count(host, ":") == 1 {
		return host[:i]
	}
	return host
}

func (r *compiledRule) matchPath(path string) bool {
	if r.path != "" {
		return path == r.path
	}
	if !strings.HasPrefix(path, r.prefix) {
		return false
	}
	return len(path) == len(r.prefix) || strings.HasSuffix(r.prefix, "/") || path[len(r.prefix)] == '/'
}

func (r *compiledRule) matchExtensions(ext map[string]string) bool {
	for _, kv := range r.ext {
		if v, ok := ext[kv[0]]; !ok || v != kv[1] {
			return false
		}
	}
	return true
}

// normalPath reports whether p is a path in normal form: it starts with
// "/", has no empty, "." or ".." segment, and no percent-encoded slash,
// backslash or dot. A request path that is not normal matches no path
// condition (a proxy may route it elsewhere than it reads), only rules
// without one.
func normalPath(p string) bool {
	if p == "" || p[0] != '/' || strings.ContainsRune(p, '\\') {
		return false
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	if strings.Contains(p, "//") {
		return false
	}
	for i := 0; i+2 < len(p); i++ {
		if p[i] == '%' {
			switch strings.ToLower(p[i+1 : i+3]) {
			case "2f", "5c", "2e":
				return false
			}
		}
	}
	return true
}

// tokenFacts are what rules read of one token, gathered while its claims
// (or an introspection answer) are scanned.
type tokenFacts struct {
	scopes []string
	values map[string]strictjson.Value
}

// visit records claim name if a rule reads it.
func (rs *ruleSet) visit(f *tokenFacts, name string, v strictjson.Value) {
	if rs == nil || !rs.claims[name] {
		return
	}
	if name == "scope" || name == "scp" {
		switch v.Kind {
		case strictjson.String:
			f.scopes = append(f.scopes, strings.Fields(v.Str)...)
		case strictjson.Array:
			if arr, err := strictjson.StringArray(v.Raw); err == nil {
				f.scopes = append(f.scopes, arr...)
			}
		}
	}
	if f.values == nil {
		f.values = map[string]strictjson.Value{}
	}
	f.values[name] = v
}

// judge decides the verdict of every rule for a token of issuer iss with
// audiences aud and facts f, and the values of the claims compared to
// headers.
func (rs *ruleSet) judge(iss string, aud []string, f *tokenFacts, rv *ruleVerdicts, vals *[MaxHeaderClaims]string) {
	if rs == nil {
		return
	}
	for i := range rs.rules {
		r := &rs.rules[i]
		v := uint8(verdictOK)
		switch {
		case len(r.issuers) > 0 && !slices.Contains(r.issuers, iss):
			v = verdictIssuer
		case len(r.audiences) > 0 && !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(r.audiences, a) }):
			v = verdictAudience
		case !allIn(r.scopes, f.scopes):
			v = verdictScope
		case !f.holdsAll(r.claims):
			v = verdictClaim
		}
		rv.set(i, v)
	}
	for i, name := range rs.headerClaims {
		if v, ok := f.values[name]; ok && v.Kind == strictjson.String {
			vals[i] = strings.Clone(v.Str)
		}
	}
}

func (f *tokenFacts) holdsAll(reqs []ClaimRequirement) bool {
	for _, c := range reqs {
		if !f.holds(c) {
			return false
		}
	}
	return true
}

// holds reports whether the static requirement c holds for the token.
func (f *tokenFacts) holds(c ClaimRequirement) bool {
	v, ok := f.values[c.Claim]
	if !ok {
		return false
	}
	if c.Equals != "" {
		return v.Kind == strictjson.String && v.Str == c.Equals
	}
	switch v.Kind {
	case strictjson.String:
		return v.Str == c.Contains
	case strictjson.Array:
		arr, err := strictjson.StringArray(v.Raw)
		return err == nil && slices.Contains(arr, c.Contains)
	}
	return false
}

func allIn(want, have []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// enforce applies rule i to an otherwise allowed token v, from its
// verdicts and the request's headers h, and fills d's reason.
func (rs *ruleSet) enforce(i int, v *verified, h Headers, d *Decision) {
	r := &rs.rules[i]
	if code := v.verdicts.get(i); code != verdictOK {
		d.Reason = verdictReasons[code]
		if code == verdictScope {
			d.RequiredScope = r.scopeText
		}
		return
	}
	for _, hc := range r.headers {
		want := v.ruleVals[hc.slot]
		if want == "" || singleHeader(h, hc.header) != want {
			d.Reason = ReasonClaimMismatch
			return
		}
	}
}

// singleHeader returns the value of header name when the request carries
// it exactly once, else "": a second value could be the one the upstream
// reads.
func singleHeader(h Headers, name string) string {
	if mh, ok := h.(multiHeaders); ok {
		vs := mh.Values(name)
		if len(vs) != 1 {
			return ""
		}
		return vs[0]
	}
	return h.Get(name)
}

// parse parses tok as verify does, gathering what the rules read of it.
func (c *Checker) parse(tok string) (parsedToken, *tokenFacts, Reason, error) {
	facts := &tokenFacts{}
	if c.rules == nil {
		p, reason, err := parseToken(tok, &c.parseOpts)
		return p, facts, reason, err
	}
	opts := c.parseOpts
	opts.Visit = func(name string, v strictjson.Value) error {
		c.rules.visit(facts, name, v)
		return nil
	}
	p, reason, err := parseToken(tok, &opts)
	return p, facts, reason, err
}
