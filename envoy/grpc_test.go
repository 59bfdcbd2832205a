package envoy_test

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
)

// outcome is what a client of Envoy would see from one check.
type outcome struct {
	allowed   bool
	reason    string            // from the deny body
	httpCode  int               // of the denied response
	challenge string            // WWW-Authenticate
	upstream  map[string]string // headers set for the upstream on allow
	removed   []string          // headers removed on allow
	metadata  map[string]string
}

func outcomeOf(t testing.TB, resp *authv3.CheckResponse) outcome {
	t.Helper()
	var o outcome
	o.metadata = map[string]string{}
	for k, v := range resp.GetDynamicMetadata().GetFields() {
		o.metadata[k] = v.GetStringValue()
	}
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		o.allowed = true
		o.upstream = map[string]string{}
		for _, h := range resp.GetOkResponse().GetHeaders() {
			o.upstream[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		o.removed = resp.GetOkResponse().GetHeadersToRemove()
		return o
	}
	den := resp.GetDeniedResponse()
	if den == nil {
		t.Fatalf("status %d without a denied response", resp.GetStatus().GetCode())
	}
	o.httpCode = int(den.GetStatus().GetCode())
	for _, h := range den.GetHeaders() {
		if h.GetHeader().GetKey() == "www-authenticate" {
			o.challenge = h.GetHeader().GetValue()
		}
	}
	var body struct{ Error, Reason string }
	if err := json.Unmarshal([]byte(den.GetBody()), &body); err != nil {
		t.Fatalf("deny body %q: %v", den.GetBody(), err)
	}
	o.reason = body.Reason
	if o.metadata["reason"] != body.Reason {
		t.Errorf("metadata reason %q, body reason %q", o.metadata["reason"], body.Reason)
	}
	return o
}

// denyBody is the JSON body of a deny.
func denyBody(errCode string, r authz.Reason) string {
	return `{"error":"` + errCode + `","reason":"` + string(r) + `"}`
}

// invalidToken is the challenge of a deny for a bad token.
func invalidToken(r authz.Reason) string {
	return `Bearer error="invalid_token", error_description="` + string(r) + `"`
}

// TestCheckResponseMapping maps a decision of each class to Envoy's
// CheckResponse (gRPC status, HTTP status, headers, body, dynamic
// metadata) and to the forward-auth HTTP answer: an allow with claim
// headers and metadata, a 401 for a bad token, a revoked token's claims in
// metadata, the bare challenge of a missing token, 400 for several
// credentials, 503 when jwtguard cannot decide.
func TestCheckResponseMapping(t *testing.T) {
	tests := []struct {
		name string
		// setup prepares e and returns the request's headers.
		setup     func(t *testing.T, e *env) map[string]string
		code      codes.Code
		status    int    // HTTP status for the client
		challenge string // WWW-Authenticate of a deny; "" for none
		body      string // of a deny
		upstream  map[string]string
		removed   []string
		metadata  map[string]string
	}{
		{
			name: "allow: claim headers, removed headers, metadata",
			setup: func(t *testing.T, e *env) map[string]string {
				tok := e.token(t, func(c map[string]any) { delete(c, "email"); c["sid"] = "s-1" })
				// A client's own x-jwt-* headers must never reach the upstream.
				return map[string]string{"authorization": "Bearer " + tok, "x-jwt-sub": "admin", "x-jwt-email": "root@evil.test"}
			},
			code: codes.OK, status: http.StatusOK,
			upstream: map[string]string{"x-jwt-sub": "alice", "x-jwt-iss": issA},
			removed:  []string{"x-jwt-email"}, // no such claim
			metadata: map[string]string{"iss": issA, "sub": "alice", "jti": "jti-1", "sid": "s-1", "kid": kidA},
		},
		{
			name: "bad token: 401 invalid_token",
			setup: func(t *testing.T, e *env) map[string]string {
				tok := e.token(t, nil)
				return map[string]string{"authorization": "Bearer " + tok[:len(tok)-4] + "AAAA"}
			},
			code: codes.Unauthenticated, status: http.StatusUnauthorized,
			challenge: invalidToken(authz.ReasonBadSignature), body: denyBody("invalid_token", authz.ReasonBadSignature),
			metadata: map[string]string{"reason": "bad_signature"},
		},
		{
			name: "revoked: 401 invalid_token, the token's claims in metadata",
			setup: func(t *testing.T, e *env) map[string]string {
				e.revoke(authz.Record{Kind: authz.KindToken, Issuer: issA, Value: "jti-1"})
				return map[string]string{"authorization": "Bearer " + e.token(t, nil)}
			},
			code: codes.Unauthenticated, status: http.StatusUnauthorized,
			challenge: invalidToken(authz.ReasonRevoked), body: denyBody("invalid_token", authz.ReasonRevoked),
			metadata: map[string]string{"reason": "revoked", "revoked_by": "token", "iss": issA, "sub": "alice", "jti": "jti-1", "kid": kidA},
		},
		{
			name: "clamped: 401 invalid_token, the clamp in metadata",
			setup: func(t *testing.T, e *env) map[string]string {
				e.revoke(authz.Record{Kind: authz.KindClamp, Issuer: issA, MaxAgeSeconds: 300})
				return map[string]string{"authorization": "Bearer " + e.token(t, func(c map[string]any) { c["iat"] = e.now.Add(-10 * time.Minute).Unix() })}
			},
			code: codes.Unauthenticated, status: http.StatusUnauthorized,
			challenge: invalidToken(authz.ReasonClamped), body: denyBody("invalid_token", authz.ReasonClamped),
			metadata: map[string]string{"reason": "clamped", "revoked_by": "clamp", "iss": issA, "sub": "alice", "jti": "jti-1", "kid": kidA},
		},
		{
			name: "missing token: a bare challenge",
			setup: func(*testing.T, *env) map[string]string {
				return map[string]string{"authorization": "Basic YWxpY2U6c2VjcmV0"}
			},
			code: codes.Unauthenticated, status: http.StatusUnauthorized,
			challenge: "Bearer", body: denyBody("missing_token", authz.ReasonMissingToken),
			metadata: map[string]string{"reason": "missing_token"},
		},
		{
			name: "several credentials: 400 invalid_request",
			setup: func(t *testing.T, e *env) map[string]string {
				tok := e.token(t, nil)
				return map[string]string{"authorization": "Bearer " + tok, "x-access-token": tok}
			},
			code: codes.InvalidArgument, status: http.StatusBadRequest,
			challenge: `Bearer error="invalid_request", error_description="multiple_tokens"`, body: denyBody("invalid_request", authz.ReasonMultipleTokens),
			metadata: map[string]string{"reason": "multiple_tokens"},
		},
		{
			name: "not ready: 503 without a challenge",
			setup: func(t *testing.T, e *env) map[string]string {
				e.rev.SetReady(false)
				return map[string]string{"authorization": "Bearer " + e.token(t, nil)}
			},
			code: codes.Unavailable, status: http.StatusServiceUnavailable,
			body:     denyBody("temporarily_unavailable", authz.ReasonNotReady),
			metadata: map[string]string{"reason": "not_ready"},
		},
		{
			name: "revocation unavailable: 503 without a challenge",
			setup: func(t *testing.T, e *env) map[string]string {
				// A subject record with a time is confirmed at the source,
				// which is down.
				e.revoke(authz.Record{Kind: authz.KindSubject, Value: "alice", Before: e.now})
				e.src.setDown(true)
				return map[string]string{"authorization": "Bearer " + e.token(t, nil)}
			},
			code: codes.Unavailable, status: http.StatusServiceUnavailable,
			body:     denyBody("temporarily_unavailable", authz.ReasonUnavailable),
			metadata: map[string]string{"reason": "revocation_unavailable", "revoked_by": "subject", "iss": issA, "sub": "alice", "jti": "jti-1", "kid": kidA},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			headers := tc.setup(t, e)

			resp := e.check(t, headers)
			// The second answer comes from the checker's caches.
			if again := e.check(t, headers); !proto.Equal(again, resp) {
				t.Errorf("second answer %v differs from the first %v", again, resp)
			}
			if got := codes.Code(resp.GetStatus().GetCode()); got != tc.code {
				t.Errorf("gRPC status %s, want %s", got, tc.code)
			}
			metadata := map[string]string{}
			for k, v := range resp.GetDynamicMetadata().GetFields() {
				metadata[k] = v.GetStringValue()
			}
			if !maps.Equal(metadata, tc.metadata) {
				t.Errorf("metadata %v, want %v", metadata, tc.metadata)
			}
			if tc.code == codes.OK {
				ok := resp.GetOkResponse()
				upstream := map[string]string{}
				for _, h := range ok.GetHeaders() {
					upstream[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
					if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
						t.Errorf("header %s: append action %s, want it to overwrite the client's", h.GetHeader().GetKey(), h.GetAppendAction())
					}
				}
				if !maps.Equal(upstream, tc.upstream) || !slices.Equal(ok.GetHeadersToRemove(), tc.removed) {
					t.Errorf("upstream headers %v, removed %v; want %v, %v", upstream, ok.GetHeadersToRemove(), tc.upstream, tc.removed)
				}
			} else {
				den := resp.GetDeniedResponse()
				if resp.GetStatus().GetMessage() != tc.metadata["reason"] {
					t.Errorf("gRPC status message %q, want the reason", resp.GetStatus().GetMessage())
				}
				if got := int(den.GetStatus().GetCode()); got != tc.status {
					t.Errorf("HTTP status %d, want %d", got, tc.status)
				}
				want := map[string]string{"content-type": "application/json"}
				if tc.challenge != "" {
					want["www-authenticate"] = tc.challenge
				}
				got := map[string]string{}
				for _, h := range den.GetHeaders() {
					got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
				}
				if !maps.Equal(got, want) || len(den.GetHeaders()) != len(want) {
					t.Errorf("deny headers %v, want %v", got, want)
				}
				if den.GetBody() != tc.body {
					t.Errorf("deny body %s, want %s", den.GetBody(), tc.body)
				}
			}

			// Forward-auth: the same decision as an HTTP answer.
			fa := httptest.NewServer(envoy.NewAuthorization(e.checker))
			defer fa.Close()
			req, err := http.NewRequest(http.MethodGet, fa.URL+"/authz/", nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range headers {
				req.Header.Set(k, v)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status || res.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("forward-auth: status %d, Cache-Control %q; want %d, no-store", res.StatusCode, res.Header.Get("Cache-Control"), tc.status)
			}
			if tc.code == codes.OK {
				for k, v := range tc.upstream {
					if res.Header.Get(k) != v {
						t.Errorf("forward-auth: %s %q, want %q", k, res.Header.Get(k), v)
					}
				}
				if got := removedList(res); !slices.Equal(got, tc.removed) {
					t.Errorf("forward-auth: %s %v, want %v", envoy.HeadersToRemove, got, tc.removed)
				}
				if len(body) != 0 {
					t.Errorf("forward-auth: allow with a body %q", body)
				}
				return
			}
			if got := res.Header.Values("WWW-Authenticate"); strings.Join(got, "|") != tc.challenge {
				t.Errorf("forward-auth: WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			if res.Header.Get("Content-Type") != "application/json" || string(body) != tc.body {
				t.Errorf("forward-auth: %s %s, want application/json %s", res.Header.Get("Content-Type"), body, tc.body)
			}
		})
	}
}
