package envoy_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/authz/mint"
	"github.com/jwtguard/jwtguard/envoy"
)

// bearerRequest is a CheckRequest carrying tok, built once.
func bearerRequest(tok string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/v1/things", Host: "app.test", Scheme: "https", Protocol: "HTTP/2",
			Headers: map[string]string{":authority": "app.test", ":path": "/v1/things", ":method": "GET", "authorization": "Bearer " + tok},
		}},
	}}
}

// TestResponsesUnderConcurrency: denied responses share their per-reason
// parts, so many of them, of several reasons and tokens, are made and
// marshalled at once (by gRPC, and again here) while each must still say
// its own token's claims and its own reason. Under -race a write to a
// shared part while another response is marshalled fails the test.
func TestResponsesUnderConcurrency(t *testing.T) {
	e := newEnv(t)
	forger, err := mint.NewKey("ES256", kidA) // claims issuer A's key id
	if err != nil {
		t.Fatal(err)
	}
	const perKind = 8
	type tc struct {
		tok, jti string
		want     authz.Reason
		kind     authz.Kind
	}
	var cases []tc
	for i := range perKind {
		jti := fmt.Sprintf("revoked-%d", i)
		e.revoke(authz.Record{Kind: authz.KindToken, Issuer: issA, Value: jti})
		cases = append(cases, tc{e.token(t, func(c map[string]any) { c["jti"] = jti }), jti, authz.ReasonRevoked, authz.KindToken})
		sid := fmt.Sprintf("sid-%d", i)
		e.revoke(authz.Record{Kind: authz.KindSession, Issuer: issA, Value: sid})
		jti = fmt.Sprintf("session-%d", i)
		cases = append(cases, tc{e.token(t, func(c map[string]any) { c["jti"], c["sid"] = jti, sid }), jti, authz.ReasonRevoked, authz.KindSession})
		jti = fmt.Sprintf("ok-%d", i)
		cases = append(cases, tc{e.token(t, func(c map[string]any) { c["jti"] = jti }), jti, authz.ReasonOK, ""})
		jti = fmt.Sprintf("forged-%d", i)
		cases = append(cases, tc{forge(t, e, forger, jti), "", authz.ReasonBadSignature, ""})
	}
	a := envoy.NewAuthorization(e.checker, envoy.WithLogger(slog.New(slog.DiscardHandler)))
	var wg sync.WaitGroup
	errs := make(chan error, len(cases)*4)
	for round := range 4 {
		for _, c := range cases {
			wg.Go(func() {
				var resp *authv3.CheckResponse
				if round%2 == 0 {
					resp = e.check(t, map[string]string{"authorization": "Bearer " + c.tok}) // marshalled by gRPC
				} else {
					var err error
					if resp, err = a.Check(context.Background(), bearerRequest(c.tok)); err != nil {
						errs <- err
						return
					}
					if _, err := proto.Marshal(resp); err != nil {
						errs <- err
						return
					}
				}
				o := outcomeOf(t, resp)
				got := authz.ReasonOK
				if !o.allowed {
					got = authz.Reason(o.reason)
				}
				if got != c.want || o.metadata["jti"] != c.jti || o.metadata["revoked_by"] != string(c.kind) {
					errs <- fmt.Errorf("token %s: got %s, metadata %v; want %s, jti %q, revoked_by %q", c.jti, got, o.metadata, c.want, c.jti, c.kind)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCheckAllocs bounds the allocations of a whole gRPC Check (without
// the transport) on a cached token, allowed and revoked: the responses are
// built from per-reason parts made once and a block per response. An
// observer adds none.
func TestCheckAllocs(t *testing.T) {
	e := newEnv(t)
	e.revoke(authz.Record{Kind: authz.KindToken, Issuer: issA, Value: "revoked-1"})
	plain := envoy.NewAuthorization(e.checker, envoy.WithLogger(slog.New(slog.DiscardHandler)))
	observed := envoy.NewAuthorization(e.checker, envoy.WithLogger(slog.New(slog.DiscardHandler)), envoy.WithObserver(&counter{}))
	tests := []struct {
		name string
		a    *envoy.Authorization
		jti  string
		want authz.Reason
		max  float64
	}{
		{"allowed", plain, "ok-1", authz.ReasonOK, 6},
		{"revoked", plain, "revoked-1", authz.ReasonRevoked, 3},
		{"allowed observed", observed, "ok-1", authz.ReasonOK, 6},
		{"revoked observed", observed, "revoked-1", authz.ReasonRevoked, 3},
	}
	for _, tt := range tests {
		a := tt.a
		t.Run(tt.name, func(t *testing.T) {
			req := bearerRequest(e.token(t, func(c map[string]any) { c["jti"] = tt.jti }))
			resp, err := a.Check(context.Background(), req) // verified and cached
			if err != nil {
				t.Fatal(err)
			}
			if o := outcomeOf(t, resp); o.allowed != (tt.want == authz.ReasonOK) || (!o.allowed && o.reason != string(tt.want)) {
				t.Fatalf("outcome %+v, want %s", o, tt.want)
			}
			got := testing.AllocsPerRun(200, func() { _, _ = a.Check(context.Background(), req) })
			if got > tt.max {
				t.Errorf("%.0f allocs per Check, want at most %.0f", got, tt.max)
			}
		})
	}
}

// counter is an observer that counts events, as a cheap real one would.
type counter struct{ n atomic.Int64 }

func (c *counter) Observe(*envoy.Event) { c.n.Add(1) }

func BenchmarkCheckResponse(b *testing.B) {
	e := newEnv(b)
	e.revoke(authz.Record{Kind: authz.KindToken, Issuer: issA, Value: "revoked-1"})
	a := envoy.NewAuthorization(e.checker, envoy.WithLogger(slog.New(slog.DiscardHandler)))
	for _, jti := range []string{"ok-1", "revoked-1"} {
		req := bearerRequest(e.token(b, func(c map[string]any) { c["jti"] = jti }))
		b.Run(jti, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, _ := a.Check(context.Background(), req)
				if _, err := proto.Marshal(resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// forge signs e's standard claims, with jti, with forger's key.
func forge(t testing.TB, e *env, forger *mint.Key, jti string) string {
	t.Helper()
	parts := strings.Split(e.token(t, func(c map[string]any) { c["jti"] = jti }), ".")
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tok, err := forger.SignRaw(header, payload)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
