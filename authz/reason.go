package authz

// Reason is the stable short code of a decision. It appears in deny bodies,
// WWW-Authenticate headers, logs and metric labels; callers compare it, never
// a message string.
type Reason string

// Reasons a request is allowed or denied.
const (
	ReasonOK             Reason = "ok"
	ReasonMissingToken   Reason = "missing_token"
	ReasonMultipleTokens Reason = "multiple_tokens" // more than one credential in one request
	ReasonMalformed      Reason = "malformed"
	ReasonTooLarge       Reason = "token_too_large"
	ReasonUnsupported    Reason = "unsupported_token" // JWE, unknown crit, disallowed typ
	ReasonBadAlgorithm   Reason = "bad_algorithm"     // alg missing, none, or not allowed
	ReasonBadSignature   Reason = "bad_signature"
	ReasonUnknownKey     Reason = "unknown_key"
	// ReasonRetiredKey: the token's signature verifies against a key that
	// has left its issuer's key set (the issuer no longer publishes it).
	// It is denied like an unknown key, but its claims are its issuer's,
	// so the decision carries them for the detectors.
	ReasonRetiredKey     Reason = "retired_key"
	ReasonExpired        Reason = "expired"
	ReasonNotYetValid    Reason = "not_yet_valid"
	ReasonIssuedInFuture Reason = "issued_in_future"
	ReasonWrongIssuer    Reason = "wrong_issuer"
	ReasonWrongAudience  Reason = "wrong_audience"
	// ReasonLifetimeTooLong: exp lies more than Config.MaxTokenLifetime
	// after the token's issue time, or the token has no issue time (neither
	// iat nor nbf). Revocations last MaxTokenLifetime, so such a token could
	// outlive the record that revokes it.
	ReasonLifetimeTooLong Reason = "lifetime_too_long"
	// ReasonNotVerifiedByProxy: the token's issuer is revocation-only
	// (IssuerConfig.RevocationOnly), and no payload verified by the proxy
	// came with it.
	ReasonNotVerifiedByProxy Reason = "not_verified_by_proxy"
	ReasonRevoked            Reason = "revoked"
	// ReasonClamped: a clamp record of the token's issuer is in force and
	// the token was issued longer ago than its max age.
	ReasonClamped     Reason = "clamped"
	ReasonUnavailable Reason = "revocation_unavailable" // a filter "maybe" that could not be confirmed
	ReasonNotReady    Reason = "not_ready"

	// ReasonNoRule: rules are configured and none matches the request.
	ReasonNoRule Reason = "no_matching_rule"
	// ReasonInsufficientScope: the token lacks a scope the route (or the
	// issuer's introspection settings) requires (RFC 6750 3.1, HTTP 403).
	ReasonInsufficientScope Reason = "insufficient_scope"
	// ReasonClaimMismatch: a claim requirement of the route does not hold.
	ReasonClaimMismatch Reason = "claim_mismatch"
	// ReasonInactive: the introspection endpoint says the opaque token is
	// not active (unknown, expired or revoked at the authorization server).
	ReasonInactive Reason = "inactive_token"
	// ReasonIntrospectionUnavailable: an opaque token without a cached
	// answer could not be introspected (endpoint down, slow or broken, or
	// too many calls in flight).
	ReasonIntrospectionUnavailable Reason = "introspection_unavailable"
	// ReasonBlocked: a detector's block policy denies this address, token,
	// session or subject on this node for a while (see envoy/detect).
	ReasonBlocked Reason = "blocked"
)

// Reasons lists every reason, for metrics that pre-create one series each.
var Reasons = []Reason{
	ReasonOK, ReasonMissingToken, ReasonMultipleTokens, ReasonMalformed, ReasonTooLarge, ReasonUnsupported,
	ReasonBadAlgorithm, ReasonBadSignature, ReasonUnknownKey, ReasonRetiredKey, ReasonExpired,
	ReasonNotYetValid, ReasonIssuedInFuture, ReasonWrongIssuer, ReasonWrongAudience,
	ReasonLifetimeTooLong, ReasonNotVerifiedByProxy, ReasonRevoked, ReasonClamped, ReasonUnavailable, ReasonNotReady,
	ReasonNoRule, ReasonInsufficientScope, ReasonClaimMismatch, ReasonInactive, ReasonIntrospectionUnavailable,
	ReasonBlocked,
}
