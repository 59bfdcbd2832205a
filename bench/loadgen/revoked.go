package loadgen

import (
	"fmt"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

// The fixed set of revocations `loadgen serve --revoke-mix` stores and the
// client's "revoked" tokens match, one group per record kind.
const (
	// RevokedJTIPrefix + 0..RevokedJTIs-1 are revoked token ids of Issuer.
	RevokedJTIPrefix = "revoked-jti-"
	RevokedJTIs      = 8
	// RevokedSubject's tokens issued at or before the server's start are revoked.
	RevokedSubject = "revoked-user"
	// RevokedSession is a revoked session (sid) of Issuer.
	RevokedSession = "revoked-session"
)

// revokedTTL is how long the records of RevokedSet are kept: past the
// longest-lived token the client mints.
const revokedTTL = 25 * time.Hour

// backdate is how far before minting the client sets iat on tokens that a
// "before" record (subject, issuer-before) must cover: the server's start
// must be within this long before the run.
const backdate = 12 * time.Hour

// RevokedSet returns the revocation records of the revoke mix, made at
// start: the token ids RevokedJTIPrefix+0..7 of Issuer, RevokedSubject and
// every token of OldIssuer issued at or before start, RevokedSession of
// Issuer, and the key RevokedKID for every issuer.
func RevokedSet(start time.Time) []authz.Record {
	rec := func(kind authz.Kind, iss, value string, before time.Time) authz.Record {
		return authz.Record{
			Kind: kind, Issuer: iss, Value: value, Before: before,
			Reason: "loadgen revoke mix", Actor: "loadgen",
			CreatedAt: start, ExpiresAt: start.Add(revokedTTL),
		}
	}
	recs := make([]authz.Record, 0, RevokedJTIs+4)
	for i := range RevokedJTIs {
		recs = append(recs, rec(authz.KindToken, Issuer, revokedJTI(i), time.Time{}))
	}
	return append(recs,
		rec(authz.KindSubject, Issuer, RevokedSubject, start),
		rec(authz.KindSession, Issuer, RevokedSession, time.Time{}),
		rec(authz.KindKey, "", RevokedKID, time.Time{}),
		rec(authz.KindIssuerBefore, OldIssuer, "", start),
	)
}

func revokedJTI(i int) string { return fmt.Sprintf("%s%d", RevokedJTIPrefix, i) }
