// Package admin is the revocation admin API of a jwtguard server: JSON over
// HTTP to create revocations, list and read them, and report the node's
// revocation state, plus a Client for it (used by the jwtguard CLI).
//
// Endpoints (every one requires "Authorization: Bearer <token>" when the
// server has an admin token):
//
//	POST /v1/revocations       one record or an array of them, all or nothing
//	GET  /v1/revocations       ?kind=&issuer=&value=&cursor=&limit=
//	GET  /v1/revocations/{id}  one record
//	DELETE /v1/revocations/{id}  lift it: body {"reason": "...", "actor": "..."};
//	                           404 when unknown or expired, 409 when lifted already
//	GET  /v1/status            record counts, filter and confirm-cache state
//	GET  /v1/audit             the audit trail: ?since=&actor=&kind=&cursor=&limit=
//	GET  /v1/audit/verify      check the audit trail's hash chain
//	GET  /v1/mesh              the source's newest position and every live node's
//	                           status report (position, lag, key sets, readiness)
//
// The server completes every record it accepts: CreatedAt is the time of
// the request, ExpiresAt is when no token the record covers can still be
// valid (for a token record, the token's exp sent by the client, plus the
// leeway), and ID and Position come from the source; values a client sends
// for these are replaced.
//
// A revocation is enforced by the node that accepted it before the API
// answers; other nodes enforce it when their follower reads it from the
// source's feed. Every accepted record is logged (at Info, "revocation
// accepted") and, with Config.Audit, recorded in the audit trail with its
// actor and the client's address, as are the API's authentication
// failures (bounded: Config.AuthFailures). SourceRevoker, the path of
// every other writer (jwtguard revoke --redis, identity providers),
// records what it stores the same way.
// Every lift is logged too ("revocation lifted", with who and why).
//
// A lift removes the record from the source and puts a lift entry on the
// feed; each node then drops what it has cached of the record, within the
// same propagation time as a revocation. Its filter keeps the key (a
// filter cannot delete): the lookup it leads to finds nothing, or only the
// other records of the key, which stay enforced.
//
// Without an admin token the API must listen on a loopback address only;
// CheckBind enforces that at startup.
package admin
