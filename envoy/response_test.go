package envoy

import (
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/jwtguard/jwtguard/authz"
)

// TestDenialOfEveryReason maps every deny reason to its CheckResponse
// (forward-auth renders the same denial; TestCheckResponseMapping runs
// both transports for a reason of each class): RFC 6750's invalid_token (401, with the reason in the
// challenge) for a bad token, a bare challenge for a missing one,
// invalid_request (400) for several credentials, insufficient_scope (403)
// for a good token without the route's privileges, a bare 403 when no rule
// admits the route or a detector blocks the client, and 503 without a
// challenge when jwtguard cannot decide.
func TestDenialOfEveryReason(t *testing.T) {
	for _, r := range authz.Reasons {
		if r == authz.ReasonOK {
			continue
		}
		t.Run(string(r), func(t *testing.T) {
			code, status, errCode := codes.Unauthenticated, http.StatusUnauthorized, "invalid_token"
			challenge := `Bearer error="invalid_token", error_description="` + string(r) + `"`
			switch r {
			case authz.ReasonMissingToken:
				errCode, challenge = "missing_token", "Bearer"
			case authz.ReasonMultipleTokens:
				code, status, errCode = codes.InvalidArgument, http.StatusBadRequest, "invalid_request"
				challenge = `Bearer error="invalid_request", error_description="multiple_tokens"`
			case authz.ReasonNotReady, authz.ReasonUnavailable, authz.ReasonIntrospectionUnavailable:
				code, status, errCode, challenge = codes.Unavailable, http.StatusServiceUnavailable, "temporarily_unavailable", ""
			case authz.ReasonInsufficientScope, authz.ReasonClaimMismatch:
				code, status, errCode = codes.PermissionDenied, http.StatusForbidden, "insufficient_scope"
				challenge = `Bearer error="insufficient_scope", error_description="` + string(r) + `"`
			case authz.ReasonNoRule, authz.ReasonBlocked:
				code, status, errCode, challenge = codes.PermissionDenied, http.StatusForbidden, "access_denied", ""
			}
			body := `{"error":"` + errCode + `","reason":"` + string(r) + `"}`

			resp := deniedResponse(&authz.Decision{Reason: r})
			den := resp.GetDeniedResponse()
			headers := map[string]string{}
			for _, h := range den.GetHeaders() {
				headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
			}
			switch {
			case codes.Code(resp.GetStatus().GetCode()) != code || resp.GetStatus().GetMessage() != string(r):
				t.Errorf("gRPC status %v, want %s with message %s", resp.GetStatus(), code, r)
			case int(den.GetStatus().GetCode()) != status:
				t.Errorf("HTTP status %d, want %d", den.GetStatus().GetCode(), status)
			case headers["www-authenticate"] != challenge || headers["content-type"] != "application/json":
				t.Errorf("headers %v, want WWW-Authenticate %q and JSON", headers, challenge)
			case den.GetBody() != body:
				t.Errorf("body %s, want %s", den.GetBody(), body)
			case resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue() != string(r):
				t.Errorf("metadata %v, want the reason", resp.GetDynamicMetadata())
			}

		})
	}
}
