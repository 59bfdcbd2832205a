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
//	GET  /v1/status            record counts, filter and confirm-cache state
//	GET  /v1/audit             the audit trail: ?since=&actor=&kind=&cursor=&limit=
//	GET  /v1/audit/verify      check the audit trail's hash chain
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
//
// Without an admin token the API must listen on a loopback address only;
// CheckBind enforces that at startup.
package admin
