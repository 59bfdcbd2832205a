package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/jwtguard/jwtguard/authz/internal/strictjson"
)

// This file holds revocation-only mode: an issuer whose tokens Envoy's
// jwt_authn filter has already verified (IssuerConfig.RevocationOnly).
// jwt_authn writes the verified payload into the request's dynamic
// metadata (payload_in_metadata, under its filter name); ext_authz sends
// that namespace to jwtguard (metadata_context_namespaces). jwtguard then
// checks only revocation, expiry and the lifetime bound.
//
// What the mode needs of each request, besides the payload:
//   - the token's identity, the same as when jwtguard verifies it
//     (tokenID): its jti, read from the payload; a token without jti is
//     named by the hash of its signing input, which needs the token itself
//     (jwt_authn forward: true; Istio forwardOriginalToken: true).
//   - its kid, for key revocations: from the JOSE header jwt_authn writes
//     with header_in_metadata (IssuerConfig.HeaderKey), else from the
//     forwarded token.
//
// A token with a jti and a header in metadata is never parsed. When the
// forwarded token is needed it is parsed as strictly as ever (no signature
// check: jwt_authn did that) and must carry the very claims of the
// verified payload, so a second token in the request cannot lend its
// identity. Without what it needs the request is denied.

// CheckVerified decides a request that reached jwtguard through Envoy's
// ext_authz filter: md is the metadata jwt_authn wrote (the
// envoy.filters.http.jwt_authn namespace; nil when none came), h the
// request headers. A payload found under a revocation-only issuer's key is
// trusted as verified; without one the request is decided by Check. It is
// CheckVerifiedRoute to a request that matches no route condition.
func (c *Checker) CheckVerified(ctx context.Context, md *structpb.Struct, h Headers) Decision {
	return c.CheckVerifiedRoute(ctx, md, h, nil)
}

// CheckVerifiedRoute is CheckVerified for a request to rt: the first rule
// matching rt says what the request needs, as with CheckRoute. Without a
// verified payload the request is decided by CheckRoute.
func (c *Checker) CheckVerifiedRoute(ctx context.Context, md *structpb.Struct, h Headers, rt *Route) Decision {
	if md == nil || len(c.payloadSlots) == 0 {
		return c.CheckRoute(ctx, h, rt)
	}
	var (
		payload *structpb.Struct
		slot    *payloadSlot
	)
	fields := md.GetFields()
	for i := range c.payloadSlots {
		k := c.payloadSlots[i].key
		val, ok := fields[k]
		if !ok {
			continue
		}
		s := val.GetStructValue()
		if s == nil {
			return Decision{Reason: ReasonMalformed, Err: fmt.Errorf("verified payload %q is %s, want an object", truncate(k), valueKind(val))}
		}
		if payload != nil {
			return Decision{Reason: ReasonMultipleTokens, Err: fmt.Errorf("verified payloads under %q and %q", truncate(slot.key), truncate(k))}
		}
		payload, slot = s, &c.payloadSlots[i]
	}
	if payload == nil {
		return c.CheckRoute(ctx, h, rt)
	}
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
	if !c.rev.Ready() {
		return Decision{Reason: ReasonNotReady, Rule: name}
	}
	now := c.now().Unix()
	var v verified
	if reason, err := c.acceptPayload(fields, slot, payload, h, now, &v); reason != ReasonOK {
		if err == errVerifyItself {
			return c.CheckRoute(ctx, h, rt)
		}
		return Decision{Reason: reason, Err: err, Rule: name}
	}
	// Not kept in the revoked cache (tok ""): a payload has no token to
	// find it by; the payload cache keeps its filter keys.
	d := c.decide(ctx, "", &v, now, rule, h)
	d.Rule = name
	return d
}

// payloadSlot is a metadata key under which revocation-only issuers'
// payloads come, and those issuers, in configuration order.
type payloadSlot struct {
	key     string
	issuers []*issuer
}

// addPayloadSlot files is, a revocation-only issuer, under its payload key.
func (c *Checker) addPayloadSlot(is *issuer) {
	k := is.cfg.payloadKey()
	for i := range c.payloadSlots {
		if c.payloadSlots[i].key == k {
			c.payloadSlots[i].issuers = append(c.payloadSlots[i].issuers, is)
			return
		}
	}
	c.payloadSlots = append(c.payloadSlots, payloadSlot{key: k, issuers: []*issuer{is}})
}

// issuerOf returns the revocation-only issuer iss of slot, without a
// lookup in the issuers' map (its hash costs more than comparing a few
// names): those of a payload key are few, most often one. An issuer not
// found here gets the reason why (wrong issuer, or verified by jwtguard).
func (c *Checker) issuerOf(slot *payloadSlot, iss string) (*issuer, error) {
	for _, is := range slot.issuers {
		if is.cfg.Issuer == iss {
			return is, nil
		}
	}
	is, ok := c.issuers[iss]
	switch {
	case !ok:
		return nil, fmt.Errorf("issuer %q is not configured", truncate(iss))
	case !is.cfg.RevocationOnly:
		// jwt_authn verified it (its payload shares a key with a
		// revocation-only issuer's), but jwtguard verifies this issuer's
		// tokens itself.
		return nil, errVerifyItself
	}
	return nil, fmt.Errorf("issuer %s is revocation-only with payload-metadata-key %q, not %q", is.cfg.Issuer, is.cfg.payloadKey(), truncate(slot.key))
}

// errVerifyItself says a verified payload is of an issuer that jwtguard
// verifies itself: the request is decided as if no payload came.
var errVerifyItself = errors.New("issuer is verified by jwtguard")

// acceptPayload checks payload, found under key of md, and fills v.
func (c *Checker) acceptPayload(md map[string]*structpb.Value, slot *payloadSlot, payload *structpb.Struct, h Headers, now int64, v *verified) (Reason, error) {
	var extra [MaxClaimHeaders]string
	var one [1]string
	key := slot.key
	cl, aud, err := payloadClaims(payload, c.parseOpts.Extra, c.payloadExtra, c.cfg.MaxTokenBytes, &extra, &one)
	if err != nil {
		return ReasonMalformed, fmt.Errorf("verified payload %q: %w", truncate(key), err)
	}
	is, err := c.issuerOf(slot, cl.Iss)
	if err != nil {
		return ReasonWrongIssuer, err
	}
	kid, hasKid := "", false
	if is.cfg.HeaderKey != "" {
		if hv, ok := md[is.cfg.HeaderKey]; ok {
			hs := hv.GetStructValue()
			if hs == nil {
				return ReasonMalformed, fmt.Errorf("verified header %q is %s, want an object", is.cfg.HeaderKey, valueKind(hv))
			}
			if kv, ok := hs.GetFields()["kid"]; ok {
				if kid, err = payloadString(kv, c.cfg.MaxTokenBytes); err != nil {
					return ReasonMalformed, fmt.Errorf("verified header %q: \"kid\" %w", is.cfg.HeaderKey, err)
				}
			}
			hasKid = true
		}
	}
	id := cl.Jti
	if id == "" || !hasKid {
		tok, reason := c.extract(h)
		if reason != ReasonOK {
			return reason, fmt.Errorf("issuer %s is revocation-only: a token without jti, or without header-metadata-key, must be forwarded by the proxy", is.cfg.Issuer)
		}
		// Parsing it (and hashing its signing input, without jti) is
		// what costs: a token seen before is taken from the cache.
		var ft forwardedToken
		cached := c.payloadCache.getForwarded(tok, &ft)
		if !cached {
			p, reason, err := parseToken(tok, &c.parseOpts)
			if reason != ReasonOK {
				return reason, fmt.Errorf("forwarded token: %w", err)
			}
			ft = forwardedToken{claims: p.Claims, kid: p.Header.Kid, id: tokenID(&p)}
			ft.claims.Aud, ft.claims.Extra = nil, nil
		}
		if !sameClaims(&ft.claims, &cl) {
			return ReasonMalformed, errors.New("the forwarded token is not the one the proxy verified")
		}
		if !cached {
			// Only a token with the very claims of a verified payload.
			c.payloadCache.putForwarded(tok, &ft, &c.retired)
		}
		if !hasKid {
			kid = ft.kid
		}
		id = ft.id
	}
	if kid == "" {
		// jwtguard has no key to name it by, as verifying it would: a key
		// revocation could not reach it.
		return ReasonUnknownKey, fmt.Errorf("issuer %s is revocation-only: the token has no kid, which key revocations need", is.cfg.Issuer)
	}
	start, reason, err := c.checkClaims(is, &cl, aud, now)
	if reason != ReasonOK {
		return reason, err
	}
	// The filter keys (SHA-256 each) cost most: a payload seen before
	// takes them from the cache, whose entry must hold every claim of
	// this one (getClaims compares them all).
	v.claims = claimsOf(&cl, start, id, kid)
	v.claims.Extra = extra
	hash := c.payloadCache.claimsHash(&v.claims)
	if keys, ok := c.payloadCache.getClaims(hash, &v.claims, c.payloadExtraOwn); ok {
		v.keys = keys
	} else {
		v.setKeys()
		c.payloadCache.putClaims(hash, v, &c.retired)
	}
	if c.rules != nil {
		// Not from the cache: the rules read claims (scopes, audiences)
		// the identity is not made of.
		var facts tokenFacts
		if err := c.payloadFacts(payload, &facts); err != nil {
			return ReasonMalformed, fmt.Errorf("verified payload %q: %w", truncate(key), err)
		}
		c.rules.judge(cl.Iss, aud, &facts, &v.verdicts, &v.ruleVals)
	}
	return ReasonOK, nil
}

// payloadFacts gathers into f what the route rules read of a verified
// payload, as parse does of a token's claims.
func (c *Checker) payloadFacts(payload *structpb.Struct, f *tokenFacts) error {
	read := map[string]any{}
	for name, val := range payload.GetFields() {
		if c.rules.claims[name] {
			read[name] = val.AsInterface()
		}
	}
	if len(read) == 0 {
		return nil
	}
	text, err := json.Marshal(read)
	if err != nil {
		return fmt.Errorf("claims the rules read: %w", err)
	}
	return strictjson.ScanObject(string(text), func(name string, v strictjson.Value) error {
		c.rules.visit(f, name, v)
		return nil
	})
}

// sameClaims reports whether a and b agree on every claim that names a
// token or bounds its life.
func sameClaims(a, b *tokenClaims) bool {
	return a.Iss == b.Iss && a.Sub == b.Sub && a.Jti == b.Jti && a.Sid == b.Sid &&
		a.Exp == b.Exp && a.HasIat == b.HasIat && a.Iat == b.Iat && a.HasNbf == b.HasNbf && a.Nbf == b.Nbf
}

// payloadNames are the claims payloadClaims reads, in the order it
// checks them: the first payloadStrings are strings.
var payloadNames = [...]string{"iss", "sub", "jti", "sid", "exp", "nbf", "iat", "aud"}

const payloadStrings = 4

// payloadClaims reads the claims of a verified payload with the types RFC
// 7519 gives them, as parseTokenClaims does for a token. Strings longer
// than maxLen are refused. The values of extra are rendered into extraBuf
// (Extra stays nil); extraStd[i] is the index in payloadNames of extra[i]
// (-1: another claim), so that no claim is looked up twice. The audiences
// are returned apart (Aud stays nil), a single one in audBuf: kept out of
// the claims, whose strings outlive the call, they can stay on the
// caller's stack.
func payloadClaims(s *structpb.Struct, extra []string, extraStd []int, maxLen int, extraBuf *[MaxClaimHeaders]string, audBuf *[1]string) (tokenClaims, []string, error) {
	var (
		c    tokenClaims
		aud  []string
		vals [len(payloadNames)]*structpb.Value
		has  [len(payloadNames)]bool
	)
	f := s.GetFields()
	for i, name := range payloadNames {
		vals[i], has[i] = f[name]
	}
	var err error
	for i, name := range payloadNames[:payloadStrings] {
		if !has[i] {
			continue
		}
		str, err := payloadString(vals[i], maxLen)
		if err != nil {
			return tokenClaims{}, nil, fmt.Errorf("%q %w", name, err)
		}
		switch i {
		case 0:
			c.Iss = str
		case 1:
			c.Sub = str
		case 2:
			c.Jti = str
		case 3:
			c.Sid = str
		}
	}
	if !has[4] {
		return tokenClaims{}, nil, errors.New(`"exp" is missing`)
	}
	if c.Exp, err = payloadSeconds(vals[4], 1); err != nil {
		return tokenClaims{}, nil, fmt.Errorf(`"exp" %w`, err)
	}
	if has[5] {
		if c.Nbf, err = payloadSeconds(vals[5], 0); err != nil {
			return tokenClaims{}, nil, fmt.Errorf(`"nbf" %w`, err)
		}
		c.HasNbf = true
	}
	if has[6] {
		if c.Iat, err = payloadSeconds(vals[6], 0); err != nil {
			return tokenClaims{}, nil, fmt.Errorf(`"iat" %w`, err)
		}
		c.HasIat = true
	}
	if has[7] {
		if aud, err = payloadAudience(vals[7], maxLen, audBuf); err != nil {
			return tokenClaims{}, nil, fmt.Errorf(`"aud" %w`, err)
		}
	}
	for i, name := range extra {
		v, ok := (*structpb.Value)(nil), false
		if k := extraStd[i]; k >= 0 {
			v, ok = vals[k], has[k]
		} else {
			v, ok = f[name]
		}
		if ok {
			extraBuf[i] = renderValue(v)
		}
	}
	return c, aud, nil
}

// maxExactSeconds bounds the NumericDates read from a payload: every
// integer below 2^53 has its own float64, so none was rounded on its way
// from the token's JSON into the payload's numbers.
const maxExactSeconds = 1 << 53

// payloadSeconds reads a NumericDate of a payload: a whole number of
// seconds, at least min and below maxExactSeconds. A fraction is refused,
// not rounded (deny when unsure).
func payloadSeconds(v *structpb.Value, min int64) (int64, error) {
	nv, ok := v.GetKind().(*structpb.Value_NumberValue)
	if !ok {
		return 0, fmt.Errorf("is %s, want a number", valueKind(v))
	}
	f := nv.NumberValue
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0) || f >= maxExactSeconds || f <= -maxExactSeconds:
		return 0, errors.New("is out of range")
	case f != math.Trunc(f):
		return 0, fmt.Errorf("is %v, want whole seconds", f)
	case int64(f) < min:
		return 0, fmt.Errorf("is %d, want at least %d", int64(f), min)
	}
	return int64(f), nil
}

func payloadString(v *structpb.Value, maxLen int) (string, error) {
	sv, ok := v.GetKind().(*structpb.Value_StringValue)
	switch {
	case !ok:
		return "", fmt.Errorf("is %s, want a string", valueKind(v))
	case len(sv.StringValue) > maxLen:
		return "", fmt.Errorf("is %d bytes, more than %d", len(sv.StringValue), maxLen)
	}
	return sv.StringValue, nil
}

// payloadAudience accepts a string or a non-empty list of strings.
func payloadAudience(v *structpb.Value, maxLen int, one *[1]string) ([]string, error) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		s, err := payloadString(v, maxLen)
		one[0] = s
		return one[:], err
	case *structpb.Value_ListValue:
		items := k.ListValue.GetValues()
		if len(items) == 0 {
			return nil, errors.New("is an empty array")
		}
		aud := make([]string, len(items))
		for i, item := range items {
			s, err := payloadString(item, maxLen)
			if err != nil {
				return nil, fmt.Errorf("[%d] %w", i, err)
			}
			aud[i] = s
		}
		return aud, nil
	}
	return nil, fmt.Errorf("is %s, want a string or an array of strings", valueKind(v))
}

// renderValue renders a claim for a claim header as the token path does:
// a string as is, a number, boolean or null as JSON text (a whole number
// without exponent), an array or object as compact JSON.
func renderValue(v *structpb.Value) string {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_NumberValue:
		if f := k.NumberValue; f == math.Trunc(f) && math.Abs(f) < maxExactSeconds {
			return strconv.FormatInt(int64(f), 10)
		}
		return strconv.FormatFloat(k.NumberValue, 'g', -1, 64)
	case *structpb.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue)
	case *structpb.Value_NullValue:
		return "null"
	}
	b, err := json.Marshal(v.AsInterface())
	if err != nil {
		return ""
	}
	return string(b)
}

// valueKind names v's JSON type for errors.
func valueKind(v *structpb.Value) string {
	switch v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return "a string"
	case *structpb.Value_NumberValue:
		return "a number"
	case *structpb.Value_BoolValue:
		return "a boolean"
	case *structpb.Value_NullValue:
		return "null"
	case *structpb.Value_ListValue:
		return "an array"
	case *structpb.Value_StructValue:
		return "an object"
	}
	return "empty"
}
