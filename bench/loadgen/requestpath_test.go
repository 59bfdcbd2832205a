package loadgen

import (
	"context"
	"log/slog"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/envoy"
)

// noRecords is the exact lookup of a source without records.
type noRecords struct{}

func (noRecords) Lookup(context.Context, authz.LookupKey) ([]authz.Record, error) { return nil, nil }

// BenchmarkRequestPath splits what the server spends on one check of the
// repeated and verified scenarios (the same requests as the load
// generator's), without the transport: decode is the CheckRequest's
// protobuf decoding (what gRPC does before jwtguard sees it, the baseline
// too), check is jwtguard's Authorization.Check on the decoded request,
// encode the response's encoding, all the three of them. Compare
// verified with repeated in the same run.
func BenchmarkRequestPath(b *testing.B) {
	keys, err := CreateKeys(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ts, err := NewTokenSet(keys, TokenOptions{Repeated: 1})
	if err != nil {
		b.Fatal(err)
	}
	filter, err := bloom.New(bloom.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	rev, err := authz.NewRevocations(filter, noRecords{}, authz.DefaultRevocationConfig())
	if err != nil {
		b.Fatal(err)
	}
	rev.SetReady(true)
	cfg := authz.DefaultConfig() // the issuers as serveJWTGuard configures them
	ic := authz.DefaultIssuerConfig(Issuer)
	ic.JWKSFile, ic.Audiences, ic.Algs = keys.JWKSFile, []string{Audience}, []string{Alg}
	mesh := authz.DefaultIssuerConfig(MeshIssuer)
	mesh.RevocationOnly, mesh.PayloadKey, mesh.HeaderKey, mesh.Audiences = true, PayloadKey, HeaderKey, []string{Audience}
	cfg.Issuers = []authz.IssuerConfig{ic, mesh}
	c, err := authz.NewChecker(cfg, rev)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := c.LoadKeys(ctx); err != nil {
		b.Fatal(err)
	}
	a := envoy.NewAuthorization(c, envoy.WithLogger(slog.New(slog.DiscardHandler)))
	for _, tc := range []struct {
		name string
		tok  *Token
	}{{"repeated", &ts.Repeated[0]}, {"verified", &ts.Verified[0]}} {
		wire, err := proto.Marshal(tc.tok.req)
		if err != nil {
			b.Fatal(err)
		}
		check := func(b *testing.B, req *authv3.CheckRequest) *authv3.CheckResponse {
			resp, err := a.Check(ctx, req)
			if err != nil || resp.GetStatus().GetCode() != 0 {
				b.Fatalf("check: %v, status %v", err, resp.GetStatus())
			}
			return resp
		}
		b.Run(tc.name+"/decode", func(b *testing.B) {
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				var req authv3.CheckRequest
				if err := proto.Unmarshal(wire, &req); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/check", func(b *testing.B) {
			check(b, tc.tok.req) // the token cached
			b.ReportAllocs()
			for b.Loop() {
				check(b, tc.tok.req)
			}
		})
		b.Run(tc.name+"/all", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var req authv3.CheckRequest
				if err := proto.Unmarshal(wire, &req); err != nil {
					b.Fatal(err)
				}
				if _, err := proto.Marshal(check(b, &req)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
