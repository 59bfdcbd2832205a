package envoy

import (
	"encoding/json"
	"net/http"

	"github.com/jwtguard/jwtguard/authz"
)

// denial is how a denied decision looks to the HTTP client, whatever the
// transport that carries it (ext_authz gRPC or forward-auth HTTP).
type denial struct {
	status          int    // HTTP status for the client
	wwwAuthenticate string // "" when none is sent
	body            []byte // small JSON body
}

// unavailable reports whether a deny is a temporary condition of jwtguard
// (not ready, revocation source unreachable) rather than a bad token.
func unavailable(r authz.Reason) bool {
	return r == authz.ReasonNotReady || r == authz.ReasonUnavailable
}

// denialFor renders the client-facing deny of reason (RFC 6750 section 3).
func denialFor(r authz.Reason) denial {
	body := func(errCode string) []byte {
		b, _ := json.Marshal(struct {
			Error  string `json:"error"`
			Reason string `json:"reason"`
		}{errCode, string(r)})
		return b
	}
	switch {
	case r == authz.ReasonMissingToken:
		// No credentials: the challenge carries no error code (RFC 6750 3.1).
		return denial{status: http.StatusUnauthorized, wwwAuthenticate: "Bearer", body: body("missing_token")}
	case unavailable(r):
		return denial{status: http.StatusServiceUnavailable, body: body("temporarily_unavailable")}
	default:
		return denial{
			status:          http.StatusUnauthorized,
			wwwAuthenticate: `Bearer error="invalid_token", error_description="` + string(r) + `"`,
			body:            body("invalid_token"),
		}
	}
}

// denials are rendered once per reason.
var denials = func() map[authz.Reason]denial {
	m := make(map[authz.Reason]denial, len(authz.Reasons))
	for _, r := range authz.Reasons {
		m[r] = denialFor(r)
	}
	return m
}()

func denialOf(r authz.Reason) denial {
	if d, ok := denials[r]; ok {
		return d
	}
	return denialFor(r)
}

// upstreamHeaders calls set for each claim header of an allowed decision
// and remove for each claim header the token has no value for (so a client
// can never smuggle its own x-jwt-sub past jwtguard).
func upstreamHeaders(c *authz.Checker, d *authz.Decision, set, remove func(name, value string)) {
	for i, ch := range c.ClaimHeaders() {
		if v := d.Claims.Extra[i]; v != "" {
			set(ch.Header, v)
		} else {
			remove(ch.Header, "")
		}
	}
}
