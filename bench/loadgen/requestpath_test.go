package loadgen

import (
	"context"
	"log/slog"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/envoy"
)

// noRecords is the exact lookup of a source without records.
type noRecords struct{}

func (noRecords) Lookup(context.Context, authz.LookupKey) ([]authz.Record, error) { return nil, nil }

// BenchmarkRequestPath splits what the server spends on one check of the
// repeated, verified and verified-only scenarios (the same requests as the
// load generator's), without the transport: decode is the CheckRequest's
// decoding by the server's codec (envoy.NewCheckCodec, what gRPC does
// before jwtguard sees it), check is jwtguard's Authorization.Check on the
// decoded request, all the decoding, the check and the response's
// encoding. Each request is encoded 64 times beforehand: maps are encoded
// in no fixed order, as Envoy's are. Compare the scenarios in the same run.
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
	codec := envoy.NewCheckCodec()
	decode := func(b *testing.B, wire []byte) *authv3.CheckRequest {
		var req authv3.CheckRequest
		if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, &req); err != nil {
			b.Fatal(err)
		}
		return &req
	}
	for _, tc := range []struct {
		name string
		tok  *Token
	}{{"repeated", &ts.Repeated[0]}, {"verified", &ts.Verified[0]}, {"verified-only", &ts.VerifiedOnly[0]}} {
		wires := make([][]byte, 64)
		for i := range wires {
			if wires[i], err = proto.Marshal(tc.tok.req); err != nil {
				b.Fatal(err)
			}
		}
		check := func(b *testing.B, req *authv3.CheckRequest) *authv3.CheckResponse {
			resp, err := a.Check(ctx, req)
			if err != nil || resp.GetStatus().GetCode() != 0 {
				b.Fatalf("check: %v, status %v", err, resp.GetStatus())
			}
			return resp
		}
		b.Run(tc.name+"/decode", func(b *testing.B) {
			b.SetBytes(int64(len(wires[0])))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				decode(b, wires[i%len(wires)])
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
			for i := 0; b.Loop(); i++ {
				if _, err := proto.Marshal(check(b, decode(b, wires[i%len(wires)]))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
