package authz

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/jwtguard/jwtguard/authz/internal/strictjson"
)

// This file holds opaque access tokens: tokens that are not JWTs, judged by
// their issuer's OAuth 2.0 Token Introspection endpoint (RFC 7662). A token
// is opaque when it is not three dot-separated parts; it belongs to the one
// issuer configured with introspection. Answers are cached by the SHA-256 of
// the token (the token itself is kept nowhere) until the smaller of the
// token's exp and the configured TTL, inactive answers included.

// IntrospectionConfig makes an issuer's opaque tokens judged by its
// introspection endpoint.
type IntrospectionConfig struct {
	// URL of the endpoint: HTTPS, or HTTP to a loopback address only.
	URL string
	// ClientID and the secret in ClientSecretFile authenticate jwtguard to
	// the endpoint (HTTP Basic, RFC 6749 section 2.3.1).
	ClientID         string
	ClientSecretFile string
	// Scopes must all be granted to every opaque token of the issuer.
	Scopes []string
	// CacheTTL bounds how long an answer is reused: a token revoked at the
	// authorization server is refused at most this long after.
	CacheTTL time.Duration
	// CacheSize bounds the cached answers.
	CacheSize int
	// Timeout bounds one call to the endpoint.
	Timeout time.Duration
}

// DefaultIntrospectionConfig returns the defaults; URL, ClientID and
// ClientSecretFile must be set.
func DefaultIntrospectionConfig() IntrospectionConfig {
	return IntrospectionConfig{CacheTTL: time.Minute, CacheSize: 10_000, Timeout: 2 * time.Second}
}

// Validate says which field is wrong.
func (ic *IntrospectionConfig) Validate() error {
	switch {
	case ic.URL == "":
		return errors.New("introspection.url: empty")
	case ic.ClientID == "":
		return errors.New("introspection.client-id: empty")
	case ic.ClientSecretFile == "":
		return errors.New("introspection.client-secret-file: empty")
	case ic.CacheTTL < time.Second || ic.CacheTTL > time.Hour:
		return fmt.Errorf("introspection.cache-ttl: %s, want between 1s and 1h", ic.CacheTTL)
	case ic.CacheSize < 1:
		return fmt.Errorf("introspection.cache-size: %d, want at least 1", ic.CacheSize)
	case ic.Timeout < 10*time.Millisecond || ic.Timeout > 30*time.Second:
		return fmt.Errorf("introspection.timeout: %s, want between 10ms and 30s", ic.Timeout)
	}
	if err := checkJWKSURL(ic.URL); err != nil {
		return fmt.Errorf("introspection.url: %w", err)
	}
	for _, s := range ic.Scopes {
		if s == "" || strings.ContainsAny(s, " \"\\") || !printableASCII(s) {
			return fmt.Errorf("introspection.scopes: %q, want a scope token", s)
		}
	}
	return nil
}

// Bounds of the introspection client.
const (
	// maxIntrospectionBytes bounds an answer's body.
	maxIntrospectionBytes = 64 << 10
	// maxIntrospectionsInFlight bounds concurrent calls to the endpoint:
	// past it, new tokens are denied introspection_unavailable.
	maxIntrospectionsInFlight = 64
)

// opaqueTokenID is how revocations and logs name an opaque token:
// TokenHashPrefix + the hex SHA-256 of the whole token.
func opaqueTokenID(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return TokenHashPrefix + hex.EncodeToString(sum[:])
}

// IsOpaque reports whether tok is not a compact JWS or JWE: it is not made
// of dot-separated parts (three or five). Such a token can only be judged
// by introspection.
func IsOpaque(tok string) bool {
	n := strings.Count(tok, ".")
	return n != 2 && n != 4
}

// b64token reports whether tok is an RFC 6750 b64token: the characters a
// bearer token may have.
func b64token(tok string) bool {
	end := len(strings.TrimRight(tok, "="))
	if end == 0 {
		return false
	}
	for i := 0; i < end; i++ {
		c := tok[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

// introspector judges one issuer's opaque tokens.
type introspector struct {
	issuer    string
	audiences []string
	scopes    []string
	scopeText string
	url       string
	id        string // client id, form-encoded
	secret    string // client secret, form-encoded
	ttl       int64  // seconds
	client    *http.Client
	timeout   time.Duration
	cache     *lru.Cache[[sha256.Size]byte, *opaqueAnswer]
	flights   singleflight.Group
	inFlight  chan struct{}
}

// opaqueAnswer is an immutable, cached introspection answer.
type opaqueAnswer struct {
	until  int64  // unix seconds: served until then
	reason Reason // ReasonOK for an active, acceptable token
	err    error
	v      verified
}

func newIntrospector(ic *IssuerConfig, client *http.Client) (*introspector, error) {
	cfg := ic.Introspection
	secret, err := os.ReadFile(cfg.ClientSecretFile)
	if err != nil {
		return nil, fmt.Errorf("issuer %s: read introspection client secret: %w", ic.Issuer, err)
	}
	s := strings.TrimRight(string(secret), "\r\n")
	if s == "" {
		return nil, fmt.Errorf("issuer %s: introspection client secret %s is empty", ic.Issuer, cfg.ClientSecretFile)
	}
	cache, err := lru.New[[sha256.Size]byte, *opaqueAnswer](cfg.CacheSize)
	if err != nil {
		return nil, fmt.Errorf("issuer %s: introspection cache: %w", ic.Issuer, err)
	}
	// The client never follows a redirect: the secret goes to the
	// configured endpoint only.
	noRedirect := *client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &introspector{
		issuer:    ic.Issuer,
		audiences: ic.Audiences,
		scopes:    cfg.Scopes,
		scopeText: strings.Join(cfg.Scopes, " "),
		url:       cfg.URL,
		id:        url.QueryEscape(cfg.ClientID),
		secret:    url.QueryEscape(s),
		ttl:       int64(cfg.CacheTTL / time.Second),
		client:    &noRedirect,
		timeout:   cfg.Timeout,
		cache:     cache,
		inFlight:  make(chan struct{}, maxIntrospectionsInFlight),
	}, nil
}

// introspect fills v for the opaque token tok from a cached answer or
// the endpoint, and returns why it may not pass (ReasonOK when it may, up
// to the revocation check and the route's rule).
func (c *Checker) introspect(ctx context.Context, tok string, now int64, v *verified) (Reason, error) {
	in := c.introspection
	if in == nil {
		return ReasonMalformed, errors.New("token is not a JWT and no issuer is configured for introspection")
	}
	if len(tok) > c.parseOpts.MaxBytes {
		return ReasonTooLarge, fmt.Errorf("token is %d bytes, more than the limit of %d", len(tok), c.parseOpts.MaxBytes)
	}
	if !b64token(tok) {
		return ReasonMalformed, errors.New("opaque token holds characters a bearer token may not")
	}
	sum := sha256.Sum256([]byte(tok))
	a, ok := in.cache.Get(sum)
	if !ok || now >= a.until {
		var err error
		if a, err = in.answer(ctx, c, tok, sum, now); err != nil {
			return ReasonIntrospectionUnavailable, err
		}
	}
	*v = a.v
	if a.reason == ReasonOK && now >= v.claims.Expiry+c.leeway {
		return ReasonExpired, fmt.Errorf("expired at %d", v.claims.Expiry)
	}
	return a.reason, a.err
}

// answer asks the endpoint about tok (one call for concurrent asks of one
// token) and caches the answer.
func (in *introspector) answer(ctx context.Context, c *Checker, tok string, sum [sha256.Size]byte, now int64) (*opaqueAnswer, error) {
	res, err, _ := in.flights.Do(string(sum[:]), func() (any, error) {
		select {
		case in.inFlight <- struct{}{}:
			defer func() { <-in.inFlight }()
		default:
			return nil, fmt.Errorf("introspection: %d calls in flight already", maxIntrospectionsInFlight)
		}
		// One caller going away must not fail the others sharing the call.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.timeout)
		defer cancel()
		body, err := in.call(ctx, tok)
		if err != nil {
			return nil, err
		}
		a, err := in.judge(c, tok, body, now)
		if err != nil {
			return nil, err
		}
		in.cache.Add(sum, a)
		return a, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*opaqueAnswer), nil
}

// call POSTs tok to the endpoint and returns the body of its 200 answer.
func (in *introspector) call(ctx context.Context, tok string) ([]byte, error) {
	form := url.Values{"token": {tok}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.url, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("introspection request: %w", err)
	}
	req.SetBasicAuth(in.id, in.secret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := in.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message quotes the URL, which may hold a password
		}
		return nil, fmt.Errorf("introspection endpoint: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxIntrospectionBytes))
		return nil, fmt.Errorf("introspection endpoint answered %s", resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, fmt.Errorf("introspection endpoint answered content type %q, want application/json", strictjson.Snippet(resp.Header.Get("Content-Type")))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIntrospectionBytes+1))
	if err != nil {
		return nil, fmt.Errorf("introspection answer: %w", err)
	}
	if len(body) > maxIntrospectionBytes {
		return nil, fmt.Errorf("introspection answer is larger than %d bytes", maxIntrospectionBytes)
	}
	return body, nil
}

// judge reads an introspection answer (RFC 7662 section 2.2) as strictly
// as a token's claims and decides what it means for tok at now. An answer
// that is not a valid JSON object with a boolean "active" is an error (the
// endpoint is broken: deny, cache nothing).
func (in *introspector) judge(c *Checker, tok string, body []byte, now int64) (*opaqueAnswer, error) {
	if !utf8.Valid(body) {
		return nil, errors.New("introspection answer is not valid UTF-8")
	}
	var (
		cl             tokenClaims
		active, hasExp bool
		hasActive      bool
		facts          tokenFacts
		ownScopes      []string
		extra          [MaxClaimHeaders]string
	)
	err := strictjson.ScanObject(string(body), func(name string, v strictjson.Value) error {
		var err error
		switch name {
		case "active":
			if v.Kind != strictjson.True && v.Kind != strictjson.False {
				return fmt.Errorf(`"active" is %s, want a boolean`, v.Kind)
			}
			active, hasActive = v.Kind == strictjson.True, true
		case "exp":
			cl.Exp, err = secondsClaim(v, 1)
			hasExp = true
		case "nbf":
			cl.Nbf, err = secondsClaim(v, 0)
			cl.HasNbf = true
		case "iat":
			cl.Iat, err = secondsClaim(v, 0)
			cl.HasIat = true
		case "iss":
			cl.Iss, err = stringClaim(v)
		case "sub":
			cl.Sub, err = stringClaim(v)
		case "jti":
			cl.Jti, err = stringClaim(v)
		case "sid":
			cl.Sid, err = stringClaim(v)
		case "aud":
			cl.Aud, err = audienceClaim(v)
		case "scope":
			if v.Kind == strictjson.String {
				ownScopes = strings.Fields(v.Str)
			}
		}
		if err != nil {
			return fmt.Errorf("%q %w", name, err)
		}
		for i, name2 := range c.parseOpts.Extra {
			if name2 == name {
				extra[i] = v.Render()
			}
		}
		c.rules.visit(&facts, name, v)
		return nil
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("introspection answer: %w", err)
	case !hasActive:
		return nil, errors.New(`introspection answer: "active" is missing`)
	}
	a := &opaqueAnswer{until: now + in.ttl, reason: ReasonOK}
	deny := func(r Reason, err error) *opaqueAnswer {
		a.reason, a.err = r, err
		return a
	}
	if !active {
		return deny(ReasonInactive, errors.New("introspection: token is not active")), nil
	}
	start, hasStart := issueTime(&cl)
	switch {
	case cl.Iss != "" && cl.Iss != in.issuer:
		return deny(ReasonWrongIssuer, fmt.Errorf("introspection answer names issuer %q, want %s", truncate(cl.Iss), in.issuer)), nil
	case !hasExp || !hasStart:
		return deny(ReasonLifetimeTooLong, errors.New("introspection answer lacks exp, or both iat and nbf: the token's lifetime cannot be bounded")), nil
	case cl.Exp-start > c.maxLifetime:
		return deny(ReasonLifetimeTooLong, fmt.Errorf("lifetime %ds from issue time %d exceeds max-token-lifetime %ds", cl.Exp-start, start, c.maxLifetime)), nil
	case now >= cl.Exp+c.leeway:
		return deny(ReasonExpired, fmt.Errorf("expired at %d", cl.Exp)), nil
	case cl.HasNbf && now+c.leeway < cl.Nbf:
		a.until = now // not cached: it may become valid
		return deny(ReasonNotYetValid, fmt.Errorf("not valid before %d", cl.Nbf)), nil
	case cl.HasIat && now+c.leeway < cl.Iat:
		return deny(ReasonIssuedInFuture, fmt.Errorf("issued at %d, in the future", cl.Iat)), nil
	case len(in.audiences) > 0 && !slices.ContainsFunc(cl.Aud, func(a string) bool { return slices.Contains(in.audiences, a) }):
		return deny(ReasonWrongAudience, fmt.Errorf("audience %q not accepted by issuer %s", truncate(strings.Join(cl.Aud, ",")), in.issuer)), nil
	case !allIn(in.scopes, ownScopes):
		return deny(ReasonInsufficientScope, fmt.Errorf("scopes %q required by issuer %s", in.scopeText, in.issuer)), nil
	}
	a.until = min(a.until, cl.Exp+c.leeway)
	v := &a.v
	v.claims = Claims{
		Issuer:   in.issuer,
		Subject:  strings.Clone(cl.Sub),
		JTI:      strings.Clone(cl.Jti),
		TokenID:  opaqueTokenID(tok),
		Session:  strings.Clone(cl.Sid),
		Expiry:   cl.Exp,
		IssuedAt: start,
	}
	for i := range extra {
		if extra[i] == "" && i < len(c.parseOpts.Extra) && c.parseOpts.Extra[i] == "iss" {
			extra[i] = in.issuer // optional in an answer, known here
		}
		v.claims.Extra[i] = strings.Clone(extra[i])
	}
	c.rules.judge(in.issuer, cl.Aud, &facts, &v.verdicts, &v.ruleVals)
	v.setKeys()
	return a, nil
}
