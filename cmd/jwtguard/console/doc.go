// Package console serves the operators' web console on the admin listener:
// live decision rates, the revocation feed with a lift button, the mesh,
// the key-rotation watch, the detectors, the audit trail and a search of
// live tokens with a revoke button.
//
// The console holds no state of the product and no write path of its own:
// every view and every action is a call to the admin API (sync/admin) made
// in process with the admin token, so what it shows is what the API
// answers, and what it changes is validated, completed and audited as any
// other admin request, with actor "console". The operator signs in with
// the admin token; the console then keeps a server-side session behind an
// HttpOnly, SameSite=Strict cookie (Secure under TLS), and every
// state-changing request carries the session's CSRF token. Pages are
// server-rendered from html/template with one small script, all embedded
// in the binary, under a strict Content-Security-Policy: nothing is loaded
// from elsewhere.
package console
