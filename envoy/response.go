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
	return r == authz.ReasonNotReady || r == authz.ReasonUnavailable || r == authz.ReasonIntrospectionUnavailable
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
	case r == authz.ReasonMultipleTokens:
		// More than one credential: a malformed request (RFC 6750 3.1).
		return denial{
			status:          http.StatusBadRequest,
			wwwAuthenticate: `Bearer error="invalid_request", error_description="` + string(r) + `"`,
			body:            body("invalid_request"),
		}
	case unavailable(r):
		return denial{status: http.StatusServiceUnavailable, body: body("temporarily_unavailable")}
	case r == authz.ReasonInsufficientScope || r == authz.ReasonClaimMismatch:
		// A good token without the privileges the route needs (RFC 6750
		// 3.1); scopeDenial adds the scope parameter.
		return denial{
			status:          http.StatusForbidden,
			wwwAuthenticate: `Bearer error="insufficient_scope", error_description="` + string(r) + `"`,
			body:            body("insufficient_scope"),
		}
	case r == authz.ReasonNoRule || r == authz.ReasonBlocked:
		// No rule admits the route, or a detector blocks the client for
		// a while: no token would help, so 403 and no challenge (RFC 9110
		// 15.5.4).
		return denial{status: http.StatusForbidden, body: body("access_denied")}
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
// that has a safe value, and remove for every header the upstream must not
// receive from the client: a claim header the token has no value for (so a
// client can never smuggle its own x-jwt-sub past jwtguard), one whose value
// holds a control character (counted: never emitted, since CR/LF would split
// it into more headers and NUL breaks proxies), and Authorization when
// configured so.
func (a *Authorization) upstreamHeaders(c *authz.Checker, d *authz.Decision, set func(name, value string), remove func(name string)) {
	for i, ch := range c.ClaimHeaders() {
		switch v := d.Claims.Extra[i]; {
		case v == "":
			remove(ch.Header)
		case !safeHeaderValue(v):
			a.metrics.droppedHeader()
			remove(ch.Header)
		default:
			set(ch.Header, v)
		}
	}
	if a.removeAuth {
		remove("authorization")
	}
}

// safeHeaderValue reports whether v can be sent as a header value as is:
// no control character (CR, LF, NUL, TAB, DEL, ...). Bytes from 0x80 up
// (UTF-8) pass, as RFC 9110 obs-text.
func safeHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
