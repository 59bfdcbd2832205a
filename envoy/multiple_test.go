package envoy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
)

const invalidRequest = `Bearer error="invalid_request", error_description="multiple_tokens"`

// TestMultipleCredentialsDenied sends a valid token plus a second
// credential, the way each adapter receives it: Envoy's headers map
// (repeated headers comma-joined), Envoy's header_map (repeated entries),
// and forward-auth's repeated HTTP headers. Each is denied 400
// invalid_request, so no unchecked credential reaches the upstream.
func TestMultipleCredentialsDenied(t *testing.T) {
	e := newEnv(t, func(c *authz.Config) { c.TokenHeader, c.TokenCookie = "X-Access-Token", "session" })
	good := sign(t, keys(t).byAlg["ES256"], e.claims(nil))
	other := sign(t, keys(t).byAlg["ES256"], e.claims(func(c map[string]any) { c["sub"] = "admin" }))
	a := envoy.NewAuthorization(e.checker)
	fa := httptest.NewServer(a)
	defer fa.Close()

	tests := []struct {
		name  string
		pairs [][2]string // request headers in order, repeats allowed
	}{
		{"two Authorization headers", [][2]string{{"authorization", "Bearer " + good}, {"authorization", "Bearer " + other}}},
		{"Authorization twice with the same token", [][2]string{{"authorization", "Bearer " + good}, {"authorization", "Bearer " + good}}},
		{"cookie and Authorization", [][2]string{{"cookie", "session=" + good}, {"authorization", "Bearer " + other}}},
		{"token header and Authorization", [][2]string{{"x-access-token", good}, {"authorization", "Bearer " + other}}},
		{"cookie set twice", [][2]string{{"cookie", "session=" + good}, {"cookie", "session=" + other}}},
		{"one value with two tokens", [][2]string{{"authorization", "Bearer " + good + ",Bearer " + other}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Envoy's headers map: repeats merged into one value.
			joined := map[string]string{}
			var entries []*corev3.HeaderValue
			for _, p := range tc.pairs {
				sep := ","
				if p[0] == "cookie" {
					sep = "; "
				}
				if old, ok := joined[p[0]]; ok {
					joined[p[0]] = old + sep + p[1]
				} else {
					joined[p[0]] = p[1]
				}
				entries = append(entries, &corev3.HeaderValue{Key: p[0], RawValue: []byte(p[1])})
			}
			mapReq := outcomeOf(t, e.check(t, joined))
			rawReq := outcomeOf(t, checkRequest(t, a, &authv3.AttributeContext_HttpRequest{HeaderMap: &corev3.HeaderMap{Headers: entries}}))
			for name, o := range map[string]outcome{"headers": mapReq, "header_map": rawReq} {
				if o.allowed || o.httpCode != http.StatusBadRequest || o.reason != string(authz.ReasonMultipleTokens) || o.challenge != invalidRequest {
					t.Errorf("gRPC %s: %+v; want 400 multiple_tokens with %s", name, o, invalidRequest)
				}
			}
			resp, err := a.Check(t.Context(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
				Http: &authv3.AttributeContext_HttpRequest{Headers: joined}}}})
			if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.InvalidArgument {
				t.Errorf("gRPC status %v, %v; want InvalidArgument", resp.GetStatus(), err)
			}

			// Forward-auth: repeated HTTP headers.
			req, err := http.NewRequest(http.MethodGet, fa.URL+"/authz/", nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.pairs {
				req.Header.Add(p[0], p[1])
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			var b struct{ Error, Reason string }
			_ = json.Unmarshal(body, &b)
			if res.StatusCode != http.StatusBadRequest || res.Header.Get("WWW-Authenticate") != invalidRequest ||
				b.Error != "invalid_request" || b.Reason != "multiple_tokens" {
				t.Errorf("forward-auth: %d %q %s; want 400 invalid_request multiple_tokens", res.StatusCode, res.Header.Get("WWW-Authenticate"), body)
			}
		})
	}
	// One credential of each kind still passes, on both adapters.
	for name, h := range map[string]map[string]string{
		"authorization": {"authorization": "Bearer " + good},
		"cookie":        {"cookie": "theme=dark; session=" + good},
		"token header":  {"x-access-token": good},
	} {
		if o := outcomeOf(t, e.check(t, h)); !o.allowed {
			t.Errorf("gRPC %s: denied %s", name, o.reason)
		}
		req, _ := http.NewRequest(http.MethodGet, fa.URL+"/authz/", nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("forward-auth %s: status %d", name, res.StatusCode)
		}
	}
}

// checkRequest calls a in process with an HTTP request's attributes.
func checkRequest(t *testing.T, a *envoy.Authorization, hr *authv3.AttributeContext_HttpRequest) *authv3.CheckResponse {
	t.Helper()
	resp, err := a.Check(t.Context(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: hr}}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
