// Package idp turns an identity provider's announcements into revocation
// records: OpenID Connect Back-Channel Logout 1.0 logout tokens, and
// Security Event Tokens (RFC 8417) of the OpenID Shared Signals Framework
// (CAEP and RISC events) received by push (RFC 8935) or poll (RFC 8936).
//
// Tokens are verified by authz.EventVerifier, against the provider's own
// key set; the records they lead to are completed and written as the admin
// API writes its own (admin.SourceRevoker), with the provider as actor
// ("idp:<name>"), then enforced on this node at once. Other nodes enforce
// them from the source's feed.
//
// What each event becomes:
//
//	back-channel logout with sid                 session (the access tokens' issuer, sid)
//	back-channel logout with sub only            subject, issued at or before the logout's iat
//	CAEP session-revoked, complex subject with
//	  a session                                  session (its opaque id as sid)
//	CAEP session-revoked, a user                 subject, at or before the event time
//	CAEP credential-change (update, revoke,
//	  delete; create is ignored)                 subject, at or before the event time
//	CAEP assurance-level-change,
//	  token-claims-change                        subject, at or before the event time
//	                                             (Config.ClaimsChange "ignore": logged only)
//	RISC account-disabled, account-purged,
//	  credential-compromise, sessions-revoked,
//	  tokens-revoked                             subject, at or before the event time
//	anything else                                acknowledged and logged
//
// The event time is the event's event_timestamp, else the SET's iat (never
// later than iat). A subject identifier becomes the access tokens' sub by
// Config.SubjectFormats.
//
// Replay: a token's jti is remembered in memory for as long as the verifier
// would accept the token (bounded; see Config.ReplayCacheSize), and each
// record carries it in its reason, so a token delivered again after a
// restart, or to another node of the mesh, finds its record at the source
// and is not applied twice. Two deliveries of one token racing on two nodes
// may both write: the records are the same revocation twice, never a
// different one.
package idp
