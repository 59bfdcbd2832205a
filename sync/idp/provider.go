package idp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/admin"
	"github.com/jwtguard/jwtguard/sync/source"
)

// Event type URIs jwtguard acts on.
const (
	caep = "https://schemas.openid.net/secevent/caep/event-type/"
	risc = "https://schemas.openid.net/secevent/risc/event-type/"

	EventSessionRevoked       = caep + "session-revoked"
	EventCredentialChange     = caep + "credential-change"
	EventAssuranceLevelChange = caep + "assurance-level-change"
	EventTokenClaimsChange    = caep + "token-claims-change"
	EventAccountDisabled      = risc + "account-disabled"
	EventAccountPurged        = risc + "account-purged"
	EventCredentialCompromise = risc + "credential-compromise"
	EventSessionsRevoked      = risc + "sessions-revoked"
	EventTokensRevoked        = risc + "tokens-revoked"
)

// Provider receives the events of one identity provider. Its handlers and
// Run are safe for concurrent use.
type Provider struct {
	cfg     Config
	logout  *authz.EventVerifier // nil without ClientID
	set     *authz.EventVerifier // nil without Audience
	src     source.Source
	revoker *admin.SourceRevoker
	rev     *authz.Revocations // enforced at once when set
	seen    *replayCache
	client  *http.Client
	log     *slog.Logger
	now     func() time.Time
}

// Option configures a Provider.
type Option func(*options)

type options struct {
	log    *slog.Logger
	client *http.Client
	now    func() time.Time
	rev    *authz.Revocations
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithHTTPClient sets the client of key set fetches and polls.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithRevocations enforces every stored record on this node before the
// provider is answered, as the admin API does.
func WithRevocations(rev *authz.Revocations) Option { return func(o *options) { o.rev = rev } }

// New validates cfg and returns the provider, writing to src with the
// record rules of records (its MaxTokenLifetime and Leeway). Key sets are
// loaded by LoadKeys and kept fresh by Run.
func New(cfg Config, src source.Source, records admin.Config, opts ...Option) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := admin.DefaultConfig()
	if records.MaxTokenLifetime <= 0 {
		records.MaxTokenLifetime = d.MaxTokenLifetime
	}
	if records.Leeway <= 0 {
		records.Leeway = d.Leeway
	}
	if cfg.MaxAge >= records.MaxTokenLifetime {
		// Replays are recognised at the source while the records live.
		return nil, fmt.Errorf("provider %s: max-age %s must be shorter than max-token-lifetime %s", cfg.Name, cfg.MaxAge, records.MaxTokenLifetime)
	}
	o := options{log: slog.Default(), client: &http.Client{Timeout: 30 * time.Second}, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	p := &Provider{
		cfg: cfg, src: src, revoker: &admin.SourceRevoker{Source: src, Config: records}, rev: o.rev,
		seen: newReplayCache(cfg.ReplayCacheSize), client: o.client, log: o.log.With("provider", cfg.Name), now: o.now,
	}
	vopts := []authz.Option{authz.WithClock(o.now), authz.WithLogger(p.log), authz.WithHTTPClient(o.client)}
	for i, vc := range cfg.verifierConfigs(records.Leeway) {
		if vc == nil {
			continue
		}
		v, err := authz.NewEventVerifier(*vc, vopts...)
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", cfg.Name, err)
		}
		if i == 0 {
			p.logout = v
		} else {
			p.set = v
		}
	}
	return p, nil
}

// Name is the provider's name.
func (p *Provider) Name() string { return p.cfg.Name }

func (p *Provider) verifiers() []*authz.EventVerifier {
	var vs []*authz.EventVerifier
	for _, v := range []*authz.EventVerifier{p.logout, p.set} {
		if v != nil {
			vs = append(vs, v)
		}
	}
	return vs
}

// LoadKeys loads the provider's key sets once.
func (p *Provider) LoadKeys(ctx context.Context) error {
	var errs []error
	for _, v := range p.verifiers() {
		errs = append(errs, v.LoadKeys(ctx))
	}
	return errors.Join(errs...)
}

// Run keeps the key sets fresh and, with a PollURL, polls the transmitter,
// until ctx ends.
func (p *Provider) Run(ctx context.Context) {
	done := make(chan struct{})
	vs := p.verifiers()
	for _, v := range vs {
		go func() { v.Run(ctx); done <- struct{}{} }()
	}
	if p.cfg.PollURL != "" && p.set != nil {
		p.poll(ctx)
	}
	for range vs {
		<-done
	}
}

// Handler serves the provider's endpoints under prefix (which ends in
// "/"): backchannel-logout with a ClientID, ssf/push with a PushToken.
func (p *Provider) Handler(prefix string) http.Handler {
	mux := http.NewServeMux()
	if p.logout != nil {
		mux.HandleFunc(prefix+"backchannel-logout", p.serveLogout)
	}
	if p.set != nil && p.cfg.PushToken != "" {
		mux.HandleFunc(prefix+"ssf/push", p.servePush)
	}
	return mux
}

// reason is the Reason of the records a token leads to: what it was, and
// its jti, by which a second delivery is recognised at the source.
func reason(what, jti string) string { return what + " jti=" + jti }

// errTransient marks a failure a sender should retry (the source).
var errTransient = errors.New("temporarily unavailable")

// errReplay is a token whose jti was applied already.
var errReplay = errors.New("token already received (jti replayed)")

// store writes recs for token et (identified by its jti) exactly once:
// errReplay when it was applied before (by this process, or found at the
// source), errTransient wrapped when it could not be made durable.
func (p *Provider) store(ctx context.Context, et *authz.EventToken, recs []authz.Record) error {
	switch p.seen.reserve(et.ID, et.AcceptedUntil, p.now().Unix()) {
	case replayDone:
		return errReplay
	case replayPending:
		return fmt.Errorf("%w: the same token is being applied", errTransient)
	}
	ok := false
	defer func() { p.seen.finish(et.ID, ok) }()
	if len(recs) == 0 {
		ok = true
		return nil
	}
	if dup, err := p.applied(ctx, recs[0]); err != nil {
		return fmt.Errorf("%w: look up earlier deliveries: %v", errTransient, err)
	} else if dup {
		ok = true
		return errReplay
	}
	stored, err := p.revoker.Revoke(ctx, recs)
	if err != nil {
		var apiErr *admin.APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusBadRequest {
			return fmt.Errorf("records refused: %v", err)
		}
		return fmt.Errorf("%w: store revocations: %v", errTransient, err)
	}
	ok = true
	if p.rev != nil {
		p.rev.Enforce(stored...)
	}
	for _, rec := range stored {
		p.log.Info("revocation accepted", "id", rec.ID, "kind", rec.Kind, "issuer", rec.Issuer,
			"value", rec.Value, "before", rec.Before, "actor", rec.Actor, "reason", rec.Reason,
			"expires_at", rec.ExpiresAt, "position", rec.Position)
	}
	return nil
}

// applied reports whether the source holds rec already from the same
// provider and token (same actor and reason, which names the jti).
func (p *Provider) applied(ctx context.Context, rec authz.Record) (bool, error) {
	found, err := p.src.Lookup(ctx, rec.LookupKey())
	if err != nil {
		return false, err
	}
	for _, r := range found {
		if r.Actor == rec.Actor && r.Reason == rec.Reason {
			return true, nil
		}
	}
	return false, nil
}

// record is a revocation by this provider for token jti.
func (p *Provider) record(kind authz.Kind, value string, before int64, what, jti string) authz.Record {
	r := authz.Record{Kind: kind, Issuer: p.cfg.tokenIssuer(), Value: value, Actor: p.cfg.actor(), Reason: reason(what, jti)}
	if before != 0 {
		r.Before = time.Unix(before, 0).UTC()
	}
	return r
}

// subject maps a subject identifier to the access tokens' sub, "" when
// it has no mapping (a format not configured, another issuer).
func (p *Provider) subject(s *authz.SubjectID) string {
	if s == nil {
		return ""
	}
	if s.User != nil {
		return p.subject(s.User)
	}
	allowed := func(f string) bool {
		for _, a := range p.cfg.SubjectFormats {
			if a == f {
				return true
			}
		}
		return false
	}
	if !allowed(s.Format) {
		return ""
	}
	switch s.Format {
	case "iss_sub":
		if s.Iss == p.cfg.Issuer || s.Iss == p.cfg.tokenIssuer() {
			return s.Sub
		}
	case "email":
		return s.Email
	case "opaque":
		return s.ID
	case "phone_number":
		return s.PhoneNumber
	case "account":
		return strings.TrimPrefix(s.URI, "acct:")
	case "uri":
		return s.URI
	case "did":
		return s.URL
	}
	return ""
}

// session is the sid of a complex subject's session, "" when it names
// none.
func session(s *authz.SubjectID) string {
	if s == nil || s.Session == nil {
		return ""
	}
	if s.Session.ID != "" {
		return s.Session.ID
	}
	return s.Session.Sub
}

// setRecords maps the events of a verified SET to records; what it does not
// act on is logged.
func (p *Provider) setRecords(et *authz.EventToken) []authz.Record {
	var recs []authz.Record
	for _, ev := range et.Events {
		subj := ev.Subject
		if subj == nil {
			subj = et.SubjectID
		}
		if subj == nil && et.Subject != "" {
			subj = &authz.SubjectID{Format: "iss_sub", Iss: et.Issuer, Sub: et.Subject}
		}
		at := et.IssuedAt
		if ev.Time > 0 && ev.Time < at {
			at = ev.Time
		}
		short := ev.Type[strings.LastIndexByte(ev.Type, '/')+1:]
		skip := func(why string) {
			p.log.Info("security event not applied", "event", ev.Type, "jti", et.ID, "why", why)
		}
		switch ev.Type {
		case EventSessionRevoked:
			if sid := session(subj); sid != "" {
				recs = append(recs, p.record(authz.KindSession, sid, 0, "ssf "+short, et.ID))
				continue
			}
		case EventCredentialChange:
			if ct := ev.Strings["change_type"]; ct == "create" {
				skip("credential created: earlier tokens stay valid")
				continue
			}
		case EventAssuranceLevelChange, EventTokenClaimsChange:
			if p.cfg.ClaimsChange == "ignore" {
				skip("claims-change is ignore")
				continue
			}
		case EventAccountDisabled, EventAccountPurged, EventCredentialCompromise, EventSessionsRevoked, EventTokensRevoked:
		default:
			skip("event type not acted on")
			continue
		}
		sub := p.subject(subj)
		if sub == "" {
			skip("subject has no mapping to an access token sub (see subject-formats)")
			continue
		}
		recs = append(recs, p.record(authz.KindSubject, sub, at, "ssf "+short, et.ID))
	}
	return recs
}
