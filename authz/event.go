package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jwtguard/jwtguard/authz/internal/strictjson"
)

// This file verifies the tokens an identity provider sends about its users
// rather than to them: OpenID Connect Back-Channel Logout 1.0 logout tokens
// and Security Event Tokens (RFC 8417) of the Shared Signals Framework.
// They go through the same strict parser (parseToken) and the same key
// handling (keySet) as access tokens; what they mean is decided in
// sync/idp.

// Token types of event tokens ("typ" header, RFC 8725 section 3.11).
const (
	// LogoutTokenType is the "typ" of an OpenID Connect logout token.
	LogoutTokenType = "logout+jwt"
	// SETType is the "typ" of a Security Event Token (RFC 8417 section 2.3).
	SETType = "secevent+jwt"
)

// BackChannelLogoutEvent is the member of a logout token's "events" claim
// that makes it one (OpenID Connect Back-Channel Logout 1.0 section 2.4).
const BackChannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// EventVerifierConfig configures an EventVerifier: the one issuer whose
// event tokens it accepts, and how.
type EventVerifierConfig struct {
	// Issuer is the exact "iss" of the tokens.
	Issuer string
	// Audience must be one of a token's "aud" values: the client id a
	// logout token is sent to, or the SSF receiver's audience.
	Audience string
	// JWKSURL or JWKSFile is the issuer's key set, as for IssuerConfig.
	JWKSURL  string
	JWKSFile string
	// Algs is the allowlist of "alg" values (asymmetric only).
	Algs []string
	// Types are the accepted "typ" values when a token has one.
	Types []string
	// RequireExp refuses a token without "exp" (logout tokens carry one;
	// SETs need not).
	RequireExp bool
	// MaxAge refuses a token whose iat lies further in the past.
	MaxAge time.Duration
	// Leeway is the clock skew allowed on iat and exp.
	Leeway time.Duration
	// MaxBytes bounds a token.
	MaxBytes int
	// JWKSRefresh and JWKSMinRefetch are as for IssuerConfig.
	JWKSRefresh    time.Duration
	JWKSMinRefetch time.Duration
}

// DefaultEventVerifierConfig returns the defaults for iss and aud.
func DefaultEventVerifierConfig(iss, aud string) EventVerifierConfig {
	ic := DefaultIssuerConfig(iss)
	return EventVerifierConfig{
		Issuer:         iss,
		Audience:       aud,
		Algs:           ic.Algs,
		MaxAge:         5 * time.Minute,
		Leeway:         30 * time.Second,
		MaxBytes:       16 << 10,
		JWKSRefresh:    ic.JWKSRefresh,
		JWKSMinRefetch: ic.JWKSMinRefetch,
	}
}

// Validate says exactly which field is wrong.
func (c *EventVerifierConfig) Validate() error {
	for _, alg := range c.Algs {
		if slices.Contains(HMACAlgorithms, alg) {
			return fmt.Errorf("issuer %s: algs: %s: event tokens are verified with public keys only", c.Issuer, alg)
		}
	}
	ic := c.issuerConfig()
	if err := ic.Validate(); err != nil {
		return err
	}
	switch {
	case c.Audience == "":
		return fmt.Errorf("issuer %s: audience: empty", c.Issuer)
	case c.MaxAge < time.Second:
		return fmt.Errorf("issuer %s: max-age: %s, want at least 1s", c.Issuer, c.MaxAge)
	case c.Leeway < 0 || c.Leeway > 5*time.Minute:
		return fmt.Errorf("issuer %s: leeway: %s, want between 0 and 5m", c.Issuer, c.Leeway)
	case c.MaxBytes < 256 || c.MaxBytes > 1<<20:
		return fmt.Errorf("issuer %s: max-bytes: %d, want between 256 and 1048576", c.Issuer, c.MaxBytes)
	case len(c.Types) == 0:
		return fmt.Errorf("issuer %s: types: none", c.Issuer)
	}
	return nil
}

func (c *EventVerifierConfig) issuerConfig() IssuerConfig {
	return IssuerConfig{
		Issuer: c.Issuer, JWKSURL: c.JWKSURL, JWKSFile: c.JWKSFile, Algs: c.Algs,
		JWKSRefresh: c.JWKSRefresh, JWKSMinRefetch: c.JWKSMinRefetch,
	}
}

// EventToken is a verified logout token or SET.
type EventToken struct {
	Issuer  string
	Subject string // "sub", may be empty
	ID      string // "jti", never empty
	Session string // "sid", may be empty
	// Audience is the "aud" claim.
	Audience []string
	// IssuedAt is "iat" in unix seconds (always present).
	IssuedAt int64
	// Expiry is "exp" in unix seconds, 0 when the token has none.
	Expiry int64
	// AcceptedUntil is the unix second from which Verify refuses the token
	// (stale iat, or exp): how long a replay cache must remember its jti.
	AcceptedUntil int64
	// Type is the "typ" header, "" when absent.
	Type string
	// HasNonce reports a "nonce" claim (a logout token must not have one).
	HasNonce bool
	// Txn is the "txn" claim of a SET, "" when absent.
	Txn string
	// SubjectID is the "sub_id" claim (RFC 9493), nil when absent.
	SubjectID *SubjectID
	// Events are the members of the "events" claim, in order; nil when the
	// token has no such claim.
	Events []Event
}

// Event is one member of an event token's "events" claim.
type Event struct {
	// Type is the member's name: the event type URI.
	Type string
	// Subject is the payload's "subject" member (SSF drafts and CAEP
	// examples put it there), nil when absent.
	Subject *SubjectID
	// Time is "event_timestamp" in unix seconds, 0 when absent.
	Time int64
	// Strings are the payload's other members that are strings
	// ("change_type", "reason_admin" and so on).
	Strings map[string]string
}

// SubjectID is a subject identifier (RFC 9493) or a complex subject (SSF
// 1.0 section 3.2): Format names the simple form; a complex subject has
// User and/or Session (and Format "complex" or none).
type SubjectID struct {
	Format string
	// Members of the simple formats: iss_sub (Iss, Sub), email, opaque
	// (ID), phone_number, account and uri (URI), did (URL).
	Iss, Sub, Email, ID, PhoneNumber, URI, URL string
	// User and Session of a complex subject.
	User, Session *SubjectID
}

// maxEvents bounds the members of one "events" claim.
const maxEvents = 16

// EventVerifier verifies the event tokens of one issuer against its key set
// with the parser and key handling of access tokens. It is safe for
// concurrent use.
type EventVerifier struct {
	cfg       EventVerifierConfig
	keys      *keySet
	parseOpts parseOptions
	now       func() time.Time
}

// NewEventVerifier validates cfg and returns its verifier. Keys are loaded by
// LoadKeys and kept fresh by Run. Of opts, WithClock, WithLogger and
// WithHTTPClient apply.
func NewEventVerifier(cfg EventVerifierConfig, opts ...Option) (*EventVerifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("event verifier: %w", err)
	}
	o := options{now: time.Now, log: slog.Default(), client: &http.Client{Timeout: 10 * time.Second}}
	for _, opt := range opts {
		opt(&o)
	}
	ic := cfg.issuerConfig()
	ks, err := newKeySet(&ic, o.client, o.log)
	if err != nil {
		return nil, err
	}
	return &EventVerifier{
		cfg:       cfg,
		keys:      ks,
		now:       o.now,
		parseOpts: parseOptions{MaxBytes: cfg.MaxBytes, Types: cfg.Types, ExpOptional: !cfg.RequireExp},
	}, nil
}

// LoadKeys loads the key set once.
func (v *EventVerifier) LoadKeys(ctx context.Context) error { return v.keys.fetch(ctx) }

// Run keeps the key set fresh until ctx ends.
func (v *EventVerifier) Run(ctx context.Context) { v.keys.run(ctx) }

// Ready reports whether the key set has been loaded.
func (v *EventVerifier) Ready() bool { return v.keys.ready() }

// Verify parses raw, checks its signature against the issuer's key set
// (whatever "jku", "x5u" or "jwk" its header names: keys come from the
// configuration only), then iss, aud, iat (present, not in the future, not
// older than MaxAge), exp (when present or required), jti (present) and the
// form of "events" and "sub_id". It does not check what the events are,
// nor replay. On failure it returns the reason and an error that never
// quotes the token.
func (v *EventVerifier) Verify(ctx context.Context, raw string) (EventToken, Reason, error) {
	var (
		et                         EventToken
		hasJti, hasExp, eventsSeen bool
	)
	opts := v.parseOpts
	opts.Visit = func(name string, val strictjson.Value) error {
		var err error
		switch name {
		case "nonce":
			et.HasNonce = true
		case "jti":
			hasJti = true
		case "exp":
			hasExp = true
		case "txn":
			et.Txn, err = stringClaim(val)
		case "events":
			eventsSeen = true
			et.Events, err = parseEvents(val)
		case "sub_id":
			et.SubjectID, err = parseSubjectID(val, 0)
		}
		if err != nil {
			return fmt.Errorf("%q %w", name, err)
		}
		return nil
	}
	p, reason, err := parseToken(raw, &opts)
	if reason != ReasonOK {
		return EventToken{}, reason, err
	}
	cl := &p.Claims
	if cl.Iss != v.cfg.Issuer {
		return EventToken{}, ReasonWrongIssuer, fmt.Errorf("issuer %q is not %s", truncate(cl.Iss), v.cfg.Issuer)
	}
	if !slices.Contains(v.cfg.Algs, p.Header.Alg) {
		return EventToken{}, ReasonBadAlgorithm, fmt.Errorf("alg %q is not allowed for issuer %s", truncate(p.Header.Alg), v.cfg.Issuer)
	}
	if !v.keys.ready() {
		return EventToken{}, ReasonNotReady, fmt.Errorf("key set of issuer %s not loaded yet", v.cfg.Issuer)
	}
	if _, _, reason, err := v.keys.verify(ctx, p.Header.Kid, p.Header.Alg, []byte(p.SigningInput), p.Signature); reason != ReasonOK {
		return EventToken{}, reason, err
	}
	now := v.now().Unix()
	leeway, maxAge := int64(v.cfg.Leeway/time.Second), int64(v.cfg.MaxAge/time.Second)
	switch {
	case !slices.Contains(cl.Aud, v.cfg.Audience):
		return EventToken{}, ReasonWrongAudience, fmt.Errorf("audience %q does not include %s", truncate(strings.Join(cl.Aud, ",")), v.cfg.Audience)
	case !cl.HasIat:
		return EventToken{}, ReasonMalformed, errors.New(`"iat" is missing`)
	case now+leeway < cl.Iat:
		return EventToken{}, ReasonIssuedInFuture, fmt.Errorf("issued at %d, in the future", cl.Iat)
	case cl.Iat+maxAge+leeway < now:
		return EventToken{}, ReasonExpired, fmt.Errorf("issued at %d, more than %s ago", cl.Iat, v.cfg.MaxAge)
	case hasExp && now >= cl.Exp+leeway:
		return EventToken{}, ReasonExpired, fmt.Errorf("expired at %d", cl.Exp)
	case !hasJti || cl.Jti == "":
		return EventToken{}, ReasonMalformed, errors.New(`"jti" is missing or empty`)
	case len(cl.Jti) > 256:
		return EventToken{}, ReasonMalformed, fmt.Errorf(`"jti" is %d bytes, want at most 256`, len(cl.Jti))
	case !eventsSeen:
		return EventToken{}, ReasonMalformed, errors.New(`"events" is missing`)
	}
	et.AcceptedUntil = cl.Iat + maxAge + leeway + 1
	if hasExp {
		et.Expiry = cl.Exp
		et.AcceptedUntil = min(et.AcceptedUntil, cl.Exp+leeway)
	}
	et.Issuer, et.Subject, et.ID, et.Session = cl.Iss, cl.Sub, cl.Jti, cl.Sid
	et.Audience, et.IssuedAt, et.Type = cl.Aud, cl.Iat, p.Header.Typ
	return et, ReasonOK, nil
}

// parseEvents reads the "events" claim: an object of event type URIs to
// objects.
func parseEvents(v strictjson.Value) ([]Event, error) {
	if v.Kind != strictjson.Object {
		return nil, fmt.Errorf("is %s, want an object", v.Kind)
	}
	events := []Event{}
	err := strictjson.ScanObject(v.Raw, func(name string, p strictjson.Value) error {
		if len(events) == maxEvents {
			return fmt.Errorf("has more than %d members", maxEvents)
		}
		if name == "" {
			return errors.New("has a member with an empty name")
		}
		if p.Kind != strictjson.Object {
			return fmt.Errorf("member %q is %s, want an object", strictjson.Snippet(name), p.Kind)
		}
		ev := Event{Type: name}
		err := strictjson.ScanObject(p.Raw, func(m string, mv strictjson.Value) error {
			var err error
			switch {
			case m == "subject":
				ev.Subject, err = parseSubjectID(mv, 0)
			case m == "event_timestamp":
				ev.Time, err = secondsClaim(mv, 0)
			case mv.Kind == strictjson.String:
				if ev.Strings == nil {
					ev.Strings = map[string]string{}
				}
				ev.Strings[m] = mv.Str
			}
			if err != nil {
				return fmt.Errorf("%q %w", m, err)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("member %q: %w", strictjson.Snippet(name), err)
		}
		events = append(events, ev)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return events, nil
}

// parseSubjectID reads a subject identifier or a complex subject.
func parseSubjectID(v strictjson.Value, depth int) (*SubjectID, error) {
	if v.Kind != strictjson.Object {
		return nil, fmt.Errorf("is %s, want an object", v.Kind)
	}
	s := &SubjectID{}
	err := strictjson.ScanObject(v.Raw, func(name string, m strictjson.Value) error {
		var err error
		var dst *string
		switch name {
		case "format":
			dst = &s.Format
		case "iss":
			dst = &s.Iss
		case "sub":
			dst = &s.Sub
		case "email":
			dst = &s.Email
		case "id":
			dst = &s.ID
		case "phone_number":
			dst = &s.PhoneNumber
		case "uri":
			dst = &s.URI
		case "url":
			dst = &s.URL
		case "user", "session":
			if depth > 0 {
				return fmt.Errorf("%q: complex subjects do not nest", name)
			}
			sub, err := parseSubjectID(m, depth+1)
			if err != nil {
				return fmt.Errorf("%q %w", name, err)
			}
			if name == "user" {
				s.User = sub
			} else {
				s.Session = sub
			}
			return nil
		default:
			return nil // device, application, tenant, aliases...: not used
		}
		if *dst, err = stringClaim(m); err != nil {
			return fmt.Errorf("%q %w", name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}
