package idp

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

// Subject identifier formats (RFC 9493) a provider's subjects may be mapped
// from; see Config.SubjectFormats.
var SubjectFormats = []string{"iss_sub", "email", "opaque", "phone_number", "account", "uri", "did"}

// Config is one identity provider.
type Config struct {
	// Name names the provider in routes (/idp/<name>/...), logs and the
	// actor of its records ("idp:<name>").
	Name string
	// Issuer is the "iss" of its logout tokens and SETs.
	Issuer string
	// TokenIssuer is the "iss" of the access tokens the records must
	// cover. Default Issuer.
	TokenIssuer string
	// JWKSURL or JWKSFile is the provider's key set.
	JWKSURL  string
	JWKSFile string
	// Algs allowed on its tokens. Default authz.AsymmetricAlgorithms.
	Algs []string

	// ClientID enables the back-channel logout endpoint: the "aud" of
	// logout tokens (jwtguard's client id at the provider).
	ClientID string
	// LogoutTypes are the accepted "typ" values of a logout token that has
	// one. Default logout+jwt.
	LogoutTypes []string

	// Audience enables the SSF receiver: the "aud" SETs must carry.
	Audience string
	// PushToken enables push delivery (RFC 8935): the bearer token the
	// transmitter sends in Authorization.
	PushToken string
	// PollURL enables poll delivery (RFC 8936), with PollToken as bearer
	// token when set.
	PollURL   string
	PollToken string
	// PollInterval is the wait between polls when nothing more is
	// available. Default 30s.
	PollInterval time.Duration
	// PollMaxEvents bounds the SETs one poll asks for. Default 100.
	PollMaxEvents int
	// SubjectFormats are the subject identifier formats mapped to the
	// access tokens' sub: iss_sub (its sub, when its iss is Issuer or
	// TokenIssuer), email, opaque (id), phone_number, account (uri without
	// "acct:"), uri, did (url). Default iss_sub. A subject in another
	// format is logged and acknowledged, not applied.
	SubjectFormats []string
	// ClaimsChange is what assurance-level-change and token-claims-change
	// do: "subject" (revoke the subject's earlier tokens, the default) or
	// "ignore".
	ClaimsChange string

	// MaxAge refuses a token whose iat is older. Default 5m.
	MaxAge time.Duration
	// ReplayCacheSize bounds the jti values remembered in memory. Default
	// 100 000.
	ReplayCacheSize int
}

// Defaults of Config.
const (
	defaultPollInterval    = 30 * time.Second
	defaultPollMaxEvents   = 100
	defaultMaxAge          = 5 * time.Minute
	defaultReplayCacheSize = 100_000
	maxBodyBytes           = 64 << 10
)

// DefaultConfig returns the defaults for a provider name.
func DefaultConfig(name string) Config {
	return Config{
		Name:            name,
		Algs:            slices.Clone(authz.AsymmetricAlgorithms),
		LogoutTypes:     []string{authz.LogoutTokenType},
		PollInterval:    defaultPollInterval,
		PollMaxEvents:   defaultPollMaxEvents,
		SubjectFormats:  []string{"iss_sub"},
		ClaimsChange:    "subject",
		MaxAge:          defaultMaxAge,
		ReplayCacheSize: defaultReplayCacheSize,
	}
}

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Validate says exactly which field is wrong, prefixed with the provider's
// name.
func (c *Config) Validate() error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("provider %s: %w", c.Name, err)
	}
	return nil
}

func (c *Config) validate() error {
	switch {
	case !validName.MatchString(c.Name):
		return errors.New("name: want 1 to 63 of a-z, 0-9 and -, starting with a letter or digit")
	case c.Issuer == "":
		return errors.New("issuer: empty")
	case c.ClientID == "" && c.Audience == "":
		return errors.New("needs client-id (back-channel logout) or audience (shared signals), or both")
	case c.Audience == "" && (c.PushToken != "" || c.PollURL != ""):
		return errors.New("push-token and poll-url need audience")
	case c.Audience != "" && c.PushToken == "" && c.PollURL == "":
		return errors.New("audience: needs push-token (push) or poll-url (poll), or both")
	case c.PushToken != "" && len(c.PushToken) < 16:
		return fmt.Errorf("push-token: %d bytes, want at least 16", len(c.PushToken))
	case c.PollInterval < time.Second:
		return fmt.Errorf("poll-interval: %s, want at least 1s", c.PollInterval)
	case c.PollMaxEvents < 1 || c.PollMaxEvents > 1000:
		return fmt.Errorf("poll-max-events: %d, want between 1 and 1000", c.PollMaxEvents)
	case c.ClaimsChange != "subject" && c.ClaimsChange != "ignore":
		return fmt.Errorf("claims-change: %q, want subject or ignore", c.ClaimsChange)
	case c.ReplayCacheSize < 1:
		return fmt.Errorf("replay-cache-size: %d, want at least 1", c.ReplayCacheSize)
	case len(c.SubjectFormats) == 0:
		return errors.New("subject-formats: empty")
	}
	for _, f := range c.SubjectFormats {
		if !slices.Contains(SubjectFormats, f) {
			return fmt.Errorf("subject-formats: %q, want some of %s", f, strings.Join(SubjectFormats, ", "))
		}
	}
	if c.PollURL != "" {
		u, err := url.Parse(c.PollURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname()))) {
			return errors.New("poll-url: want an https URL (http only to a loopback address)")
		}
	}
	for _, v := range c.verifierConfigs(0) {
		if v == nil {
			continue
		}
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return nil
}

func loopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// tokenIssuer is the issuer of the access tokens the records cover.
func (c *Config) tokenIssuer() string {
	if c.TokenIssuer != "" {
		return c.TokenIssuer
	}
	return c.Issuer
}

// actor is the Actor of the provider's records.
func (c *Config) actor() string { return "idp:" + c.Name }

// verifierConfigs are the verifiers the provider needs: logout (when
// ClientID is set) and SET (when Audience is set), in that order, nil for
// one not needed.
func (c *Config) verifierConfigs(leeway time.Duration) [2]*authz.EventVerifierConfig {
	var out [2]*authz.EventVerifierConfig
	base := func(aud string) *authz.EventVerifierConfig {
		v := authz.DefaultEventVerifierConfig(c.Issuer, aud)
		v.JWKSURL, v.JWKSFile, v.Algs, v.MaxAge, v.Leeway = c.JWKSURL, c.JWKSFile, c.Algs, c.MaxAge, leeway
		return &v
	}
	if c.ClientID != "" {
		out[0] = base(c.ClientID)
		out[0].Types, out[0].RequireExp = c.LogoutTypes, true
	}
	if c.Audience != "" {
		out[1] = base(c.Audience)
		out[1].Types = []string{authz.SETType}
	}
	return out
}
