package authz

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// tokenID is how revocations and logs name a parsed token: its jti, or
// TokenHashPrefix + the hex SHA-256 of its signing input when it has none
// (never of the whole token: ECDSA signatures are malleable).
func tokenID(p *parsedToken) string {
	if p.Claims.Jti != "" {
		return p.Claims.Jti
	}
	sum := sha256.Sum256([]byte(p.SigningInput))
	return TokenHashPrefix + hex.EncodeToString(sum[:])
}

// issueTime is the moment a token's lifetime starts and that "issued at or
// before" revocations compare: its iat, or its nbf when it has no iat. A
// token with neither has none, and is refused.
func issueTime(c *tokenClaims) (int64, bool) {
	switch {
	case c.HasIat:
		return c.Iat, true
	case c.HasNbf:
		return c.Nbf, true
	}
	return 0, false
}

// tokenRecordMaxBytes bounds the tokens TokenRecord reads: the largest
// --max-token-bytes a checker accepts.
const tokenRecordMaxBytes = 1 << 20

// TokenRecord returns the token record that revokes raw, a compact JWS
// (optionally after "Bearer "): its issuer, the identity the checker gives
// it (jti, or the hash of its signing input), and its exp as ExpiresAt.
// raw is parsed as strictly as the checker parses it, so a token the
// checker would refuse to read is refused here too, but its signature is
// not verified: revoking a token needs no key.
func TokenRecord(raw string) (Record, error) {
	raw = strings.TrimSpace(raw)
	if tok, ok := bearer(raw); ok {
		raw = tok
	}
	if IsOpaque(raw) {
		return Record{}, ErrOpaqueToken
	}
	p, reason, err := parseToken(raw, &parseOptions{MaxBytes: tokenRecordMaxBytes, AnyType: true})
	if reason != ReasonOK {
		return Record{}, fmt.Errorf("token (%s): %w", reason, err)
	}
	if p.Claims.Iss == "" {
		return Record{}, errors.New("token has no iss claim: revoke it by jti with an issuer, or by kid")
	}
	return Record{
		Kind:      KindToken,
		Issuer:    p.Claims.Iss,
		Value:     tokenID(&p),
		ExpiresAt: time.Unix(p.Claims.Exp, 0).UTC(),
	}, nil
}

// ErrOpaqueToken is TokenRecord's error for a token that is not a JWT: an
// opaque token names no issuer, so OpaqueTokenRecord needs one.
var ErrOpaqueToken = errors.New("token is not a JWT (an opaque token): name its issuer")

// OpaqueTokenRecord returns the token record that revokes raw, an opaque
// token (optionally after "Bearer ") of issuer: the identity the checker
// gives it, TokenHashPrefix + the hex SHA-256 of the whole token. Its
// ExpiresAt is zero (the token's exp is known to its issuer only): the
// admin API keeps such a record for max-token-lifetime.
func OpaqueTokenRecord(raw, issuer string) (Record, error) {
	raw = strings.TrimSpace(raw)
	if tok, ok := bearer(raw); ok {
		raw = tok
	}
	switch {
	case !IsOpaque(raw):
		return Record{}, errors.New("token is a JWT: its own iss names its issuer")
	case len(raw) > tokenRecordMaxBytes:
		return Record{}, fmt.Errorf("token is %d bytes, more than the limit of %d", len(raw), tokenRecordMaxBytes)
	case !b64token(raw):
		return Record{}, errors.New("token holds characters a bearer token may not")
	case issuer == "":
		return Record{}, errors.New("an opaque token needs its issuer")
	}
	return Record{Kind: KindToken, Issuer: issuer, Value: opaqueTokenID(raw)}, nil
}
