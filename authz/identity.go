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
