package authz

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// MaxClaimHeaders bounds Config.ClaimHeaders, so a decision carries its
// header values in a fixed array and the hot path never allocates.
const MaxClaimHeaders = 8

// Config is the decision's configuration.
type Config struct {
	// Issuers accepted, each with its own keys, audiences and algorithms.
	Issuers []IssuerConfig
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration
	// MaxTokenBytes denies longer tokens before any parsing.
	MaxTokenBytes int
	// Types are the accepted "typ" header values, when a token has one.
	Types []string
	// TokenHeader, when set, is a request header holding the token
	// (optionally with a "Bearer " prefix), tried before Authorization.
	TokenHeader string
	// TokenCookie, when set, is a cookie holding the token, tried before
	// Authorization.
	TokenCookie string
	// ClaimHeaders maps claims of an allowed token to upstream headers.
	ClaimHeaders []ClaimHeader
	// CacheSize bounds the verified-token cache.
	CacheSize int
	// MaxTokenLifetime is the longest lifetime of a token the issuers mint;
	// revocation records other than "token" are kept this long (plus
	// Leeway) after they can last match.
	MaxTokenLifetime time.Duration
	// Rules are the per-route requirements, first match wins (rules.go);
	// none: every request needs a valid token and nothing more.
	Rules []Rule
}

// IssuerConfig is one trusted issuer.
type IssuerConfig struct {
	// Issuer is the exact "iss" value.
	Issuer string
	// Audiences, when set, must include one of the token's "aud" values.
	Audiences []string
	// JWKSURL is fetched for the issuer's public keys: HTTPS, or HTTP to a
	// loopback address only.
	JWKSURL string
	// JWKSFile is read for the issuer's public keys instead of a URL.
	JWKSFile string
	// Discovery finds the key set URL in the issuer's OpenID Provider
	// configuration (Issuer + /.well-known/openid-configuration, its
	// jwks_uri), instead of JWKSURL or JWKSFile. The issuer must be an
	// https URL (http to loopback only), and so must jwks_uri.
	Discovery bool
	// HMACSecretFile holds the issuer's HMAC secret (at least 32 bytes);
	// HS256/384/512 are accepted only with it. The file is read as text:
	// trailing CR and LF bytes are dropped, so a binary secret must not
	// end in one.
	HMACSecretFile string
	// HMACKeyID is the kid of the HMAC secret. An HMAC token naming a kid
	// verifies only when it is this one; with HMACKeyID empty, an HMAC
	// token naming any kid is refused (unknown_key). A token without kid
	// is verified with the secret either way.
	HMACKeyID string
	// Algs is the allowlist of "alg" values, compared exactly.
	Algs []string
	// JWKSRefresh is how often the key set is reloaded.
	JWKSRefresh time.Duration
	// JWKSMinRefetch is the least time between refetches triggered by an
	// unknown kid.
	JWKSMinRefetch time.Duration
	// Introspection, when set, judges the issuer's opaque tokens (see
	// introspect.go); at most one issuer has it.
	Introspection *IntrospectionConfig

	// RevocationOnly trusts the payload that Envoy's jwt_authn filter has
	// verified and sent in the check's metadata (Checker.CheckVerified):
	// jwtguard checks revocation, expiry and the lifetime bound only.
	RevocationOnly bool
	// PayloadKey is jwt_authn's payload_in_metadata of the issuer: the key
	// of its verified payload; empty means the issuer itself, as Istio's
	// RequestAuthentication sets it.
	PayloadKey string
	// HeaderKey is jwt_authn's header_in_metadata of the issuer, where the
	// token's kid is read; empty: the kid comes from the forwarded token.
	HeaderKey string
	// PayloadMissing is what a token of a revocation-only issuer gets when
	// no verified payload comes with it (forward-auth, or a route without
	// jwt_authn): PayloadMissingDeny (the default) or PayloadMissingVerify.
	PayloadMissing string
}

// What a revocation-only issuer's token gets without a verified payload.
const (
	PayloadMissingDeny   = "deny"   // denied not_verified_by_proxy
	PayloadMissingVerify = "verify" // verified by jwtguard, with the issuer's keys
)

// payloadKey is the metadata key of the issuer's verified payload.
func (ic *IssuerConfig) payloadKey() string {
	if ic.PayloadKey != "" {
		return ic.PayloadKey
	}
	return ic.Issuer
}

// needsKeys reports whether jwtguard verifies the issuer's tokens itself.
func (ic *IssuerConfig) needsKeys() bool {
	return !ic.RevocationOnly || ic.PayloadMissing == PayloadMissingVerify
}

// ClaimHeader sends the value of Claim to the upstream as Header.
type ClaimHeader struct {
	Claim  string
	Header string
}

// DefaultConfig returns the defaults; Issuers is empty and must be filled.
func DefaultConfig() Config {
	return Config{
		Leeway:           30 * time.Second,
		MaxTokenBytes:    8 << 10,
		Types:            []string{"JWT", "at+jwt"},
		ClaimHeaders:     []ClaimHeader{{Claim: "sub", Header: "x-jwt-sub"}, {Claim: "iss", Header: "x-jwt-iss"}},
		CacheSize:        100_000,
		MaxTokenLifetime: 24 * time.Hour,
	}
}

// DefaultIssuerConfig returns an issuer's defaults for iss.
func DefaultIssuerConfig(iss string) IssuerConfig {
	return IssuerConfig{
		Issuer:         iss,
		Algs:           slices.Clone(AsymmetricAlgorithms),
		JWKSRefresh:    5 * time.Minute,
		JWKSMinRefetch: 10 * time.Second,
	}
}

// Validate says exactly which field is wrong.
func (c *Config) Validate() error {
	if len(c.Issuers) == 0 {
		return errors.New("issuers: none configured")
	}
	seen := map[string]bool{}
	introspected := ""
	for i := range c.Issuers {
		ic := &c.Issuers[i]
		if err := ic.Validate(); err != nil {
			return fmt.Errorf("issuers[%d]: %w", i, err)
		}
		if seen[ic.Issuer] {
			return fmt.Errorf("issuers[%d]: issuer %q configured twice", i, ic.Issuer)
		}
		seen[ic.Issuer] = true
		if ic.Introspection != nil {
			if introspected != "" {
				return fmt.Errorf("issuers[%d]: introspection: issuer %s has it already; at most one issuer judges opaque tokens", i, introspected)
			}
			introspected = ic.Issuer
		}
	}
	if _, err := compileRules(c.Rules, c.Issuers); err != nil {
		return err
	}
	if err := validatePayloadKeys(c.Issuers); err != nil {
		return err
	}
	if err := c.ValidateTiming(); err != nil {
		return err
	}
	switch {
	case c.MaxTokenBytes < 256 || c.MaxTokenBytes > 1<<20:
		return fmt.Errorf("max-token-bytes: %d, want between 256 and 1048576", c.MaxTokenBytes)
	case c.CacheSize < 1:
		return fmt.Errorf("cache-size: %d, want at least 1", c.CacheSize)
	case len(c.ClaimHeaders) > MaxClaimHeaders:
		return fmt.Errorf("claim-headers: %d, want at most %d", len(c.ClaimHeaders), MaxClaimHeaders)
	}
	for _, typ := range c.Types {
		if typ == "" {
			return errors.New("types: empty value")
		}
	}
	for _, name := range []string{c.TokenHeader, c.TokenCookie} {
		if name != "" && !validHeaderName(name) {
			return fmt.Errorf("token-header/token-cookie: %q is not a valid name", name)
		}
	}
	if h := strings.ToLower(c.TokenHeader); h == "authorization" || h == "cookie" {
		// Both are always read: naming one would count every token twice.
		return fmt.Errorf("token-header: %q is read anyway; name another header (or use token-cookie)", c.TokenHeader)
	}
	for i, ch := range c.ClaimHeaders {
		if ch.Claim == "" {
			return fmt.Errorf("claim-headers[%d]: claim is empty", i)
		}
		if !validHeaderName(ch.Header) {
			return fmt.Errorf("claim-headers[%d]: header %q is not a valid header name", i, ch.Header)
		}
		if h := strings.ToLower(ch.Header); h == "authorization" || strings.HasPrefix(h, ":") || h == "host" {
			return fmt.Errorf("claim-headers[%d]: header %q may not be set", i, ch.Header)
		}
	}
	return nil
}

// maxHMACKeyIDLen bounds IssuerConfig.HMACKeyID.
const maxHMACKeyIDLen = 256

// ValidateTiming checks Leeway and MaxTokenLifetime, the settings that
// decide how long revocation records live, for tools that write records
// without a full Config (jwtguard revoke --redis).
func (c *Config) ValidateTiming() error {
	switch {
	case c.Leeway < 0 || c.Leeway > 5*time.Minute:
		return fmt.Errorf("leeway: %s, want between 0 and 5m", c.Leeway)
	case c.MaxTokenLifetime < time.Minute:
		return fmt.Errorf("max-token-lifetime: %s, want at least 1m", c.MaxTokenLifetime)
	}
	return nil
}

// Validate says exactly which field is wrong.
func (ic *IssuerConfig) Validate() error {
	if ic.Issuer == "" {
		return errors.New("issuer: empty")
	}
	if ic.JWKSURL != "" && ic.JWKSFile != "" {
		return fmt.Errorf("issuer %s: jwks-url and jwks-file are exclusive", ic.Issuer)
	}
	if ic.Discovery {
		if ic.JWKSURL != "" || ic.JWKSFile != "" {
			return fmt.Errorf("issuer %s: %w", ic.Issuer, errDiscoveryExclusive)
		}
		if err := checkJWKSURL(ic.Issuer); err != nil {
			return fmt.Errorf("issuer %s: discovery: %w", ic.Issuer, err)
		}
	}
	if err := ic.validateRevocationOnly(); err != nil {
		return fmt.Errorf("issuer %s: %w", ic.Issuer, err)
	}
	if ic.JWKSURL == "" && ic.JWKSFile == "" && !ic.Discovery && ic.HMACSecretFile == "" && ic.Introspection == nil && ic.needsKeys() {
		return fmt.Errorf("issuer %s: needs discovery, jwks-url, jwks-file, hmac-secret-file or introspection", ic.Issuer)
	}
	if ic.Introspection != nil {
		if ic.RevocationOnly {
			return fmt.Errorf("issuer %s: introspection and revocation-only are exclusive", ic.Issuer)
		}
		if err := ic.Introspection.Validate(); err != nil {
			return fmt.Errorf("issuer %s: %w", ic.Issuer, err)
		}
	}
	if ic.JWKSURL != "" {
		if err := checkJWKSURL(ic.JWKSURL); err != nil {
			return fmt.Errorf("issuer %s: jwks-url: %w", ic.Issuer, err)
		}
	}
	if len(ic.Algs) == 0 {
		return fmt.Errorf("issuer %s: algs: empty allowlist", ic.Issuer)
	}
	hasHMAC := false
	for _, alg := range ic.Algs {
		switch {
		case slices.Contains(HMACAlgorithms, alg):
			hasHMAC = true
		case slices.Contains(AsymmetricAlgorithms, alg) || alg == "ES512":
		default:
			return fmt.Errorf("issuer %s: algs: %q is not supported (want %s, or %s with hmac-secret-file)",
				ic.Issuer, alg, strings.Join(AsymmetricAlgorithms, ", "), strings.Join(HMACAlgorithms, ", "))
		}
	}
	if hasHMAC && ic.HMACSecretFile == "" {
		return fmt.Errorf("issuer %s: algs: HMAC needs hmac-secret-file", ic.Issuer)
	}
	if !hasHMAC && ic.HMACSecretFile != "" {
		return fmt.Errorf("issuer %s: hmac-secret-file is set but algs has no HS256/HS384/HS512", ic.Issuer)
	}
	if ic.HMACKeyID != "" {
		if ic.HMACSecretFile == "" {
			return fmt.Errorf("issuer %s: hmac-kid is set without hmac-secret-file", ic.Issuer)
		}
		if len(ic.HMACKeyID) > maxHMACKeyIDLen || strings.ContainsFunc(ic.HMACKeyID, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fmt.Errorf("issuer %s: hmac-kid: %q, want at most %d bytes and no control characters", ic.Issuer, ic.HMACKeyID, maxHMACKeyIDLen)
		}
	}
	if ic.JWKSRefresh < time.Second {
		return fmt.Errorf("issuer %s: jwks-refresh: %s, want at least 1s", ic.Issuer, ic.JWKSRefresh)
	}
	if ic.JWKSMinRefetch < 0 {
		return fmt.Errorf("issuer %s: jwks-min-refetch: %s, want zero or more", ic.Issuer, ic.JWKSMinRefetch)
	}
	return nil
}

// validateRevocationOnly checks the settings of revocation-only mode.
func (ic *IssuerConfig) validateRevocationOnly() error {
	if !ic.RevocationOnly {
		if ic.PayloadKey != "" || ic.HeaderKey != "" || ic.PayloadMissing != "" {
			return errors.New("payload-metadata-key, header-metadata-key and payload-missing need revocation-only")
		}
		return nil
	}
	switch ic.PayloadMissing {
	case "", PayloadMissingDeny, PayloadMissingVerify:
	default:
		return fmt.Errorf("payload-missing: %q, want %s or %s", ic.PayloadMissing, PayloadMissingDeny, PayloadMissingVerify)
	}
	if ic.HeaderKey != "" && ic.HeaderKey == ic.payloadKey() {
		return fmt.Errorf("header-metadata-key: %q is the payload's key too", ic.HeaderKey)
	}
	return nil
}

// validatePayloadKeys refuses a metadata key that is one issuer's
// payload and another's header.
func validatePayloadKeys(issuers []IssuerConfig) error {
	payloads := map[string]bool{}
	for i := range issuers {
		if issuers[i].RevocationOnly {
			payloads[issuers[i].payloadKey()] = true
		}
	}
	for i := range issuers {
		if h := issuers[i].HeaderKey; h != "" && payloads[h] {
			return fmt.Errorf("issuers[%d]: header-metadata-key %q is a payload-metadata-key too", i, h)
		}
	}
	return nil
}

// checkJWKSURL accepts https URLs, and http only to loopback addresses.
// Its errors show the URL without its password.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error quotes the whole URL
		}
		return fmt.Errorf("unparsable URL: %w", err)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
			return nil
		}
		return fmt.Errorf("%s: plain http is allowed only to a loopback address; use https", u.Redacted())
	default:
		return fmt.Errorf("%s: scheme must be https", u.Redacted())
	}
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
