package envoy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
)

// recorder keeps the events it is told of.
type recorder struct{ events []envoy.Event }

func (r *recorder) Observe(e *envoy.Event) { r.events = append(r.events, *e) }

// TestObserverSeesEveryDecision: an observer is told of allows and denies
// on both transports, with the request facts the proxy sent and the
// token's claims, never more than once per check.
func TestObserverSeesEveryDecision(t *testing.T) {
	e := newEnv(t)
	rec := &recorder{}
	a := envoy.NewAuthorization(e.checker, envoy.WithObserver(rec))
	tok := e.token(t, nil)

	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "::ffff:203.0.113.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 4711}},
		}}},
		ContextExtensions: map[string]string{"route": "things"},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "req-1", Method: "POST", Host: "app.test", Path: "/v1/things?x=1",
			Headers: map[string]string{"authorization": "Bearer " + tok, "user-agent": "curl/8"},
		}},
	}}
	if _, err := a.Check(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	hr := httptest.NewRequest(http.MethodGet, "/auth", nil)
	hr.RemoteAddr = "198.51.100.9:5555"
	hr.Header.Set("X-Forwarded-Method", "DELETE")
	hr.Header.Set("X-Forwarded-Host", "api.test")
	hr.Header.Set("X-Forwarded-Uri", "/v1/x")
	hr.Header.Set("Authorization", "Bearer not.a.jwt")
	a.ServeHTTP(httptest.NewRecorder(), hr)

	if len(rec.events) != 2 {
		t.Fatalf("%d events, want 2", len(rec.events))
	}
	g, h := rec.events[0], rec.events[1]
	if g.Reason != authz.ReasonOK || g.Claims.Issuer != issA || g.Claims.TokenID == "" {
		t.Errorf("grpc event: reason %q, claims %+v", g.Reason, g.Claims)
	}
	wantG := envoy.Request{Transport: "grpc", Method: "POST", Host: "app.test", Path: "/v1/things?x=1",
		Source: netip.MustParseAddr("203.0.113.7"), RequestID: "req-1", UserAgent: "curl/8"}
	wantG.ContextExtensions = map[string]string{"route": "things"}
	if !reflect.DeepEqual(g.Request, wantG) {
		t.Errorf("grpc request\n got %+v\nwant %+v", g.Request, wantG)
	}
	wantH := envoy.Request{Transport: "http", Method: "DELETE", Host: "api.test", Path: "/v1/x",
		Source: netip.MustParseAddr("198.51.100.9")}
	if !reflect.DeepEqual(h.Request, wantH) || h.Reason != authz.ReasonMalformed {
		t.Errorf("http event: reason %q, request\n got %+v\nwant %+v", h.Reason, h.Request, wantH)
	}
}
