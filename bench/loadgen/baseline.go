package loadgen

import (
	"context"
	"net/http"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/jwtguard/jwtguard/envoy"
)

// baselineSub and baselineIss are the claim values the baseline answers
// with: it reads no token, so it has none of its own.
const (
	baselineSub = "baseline-user"
	baselineIss = Issuer
)

// baseline is an ext_authz service that allows every request without
// looking at it, answering with the shape of jwtguard's OK response (the
// two claim headers and the dynamic metadata). Measured against it, the
// real server's cost is the check itself, not gRPC.
type baseline struct {
	authv3.UnimplementedAuthorizationServer
}

// Check implements envoy.service.auth.v3.Authorization/Check.
func (baseline) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	header := func(k, v string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: v},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}
	}
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{header("x-jwt-sub", baselineSub), header("x-jwt-iss", baselineIss)},
		}},
		DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			"iss": structpb.NewStringValue(baselineIss),
			"sub": structpb.NewStringValue(baselineSub),
			"jti": structpb.NewStringValue("baseline-jti"),
			"kid": structpb.NewStringValue(SigningKID),
		}},
	}, nil
}

// ServeHTTP is the baseline's forward-auth answer: 200 with the claim
// headers, as jwtguard answers an allowed request.
func (baseline) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("x-jwt-sub", baselineSub)
	h.Set("x-jwt-iss", baselineIss)
	w.WriteHeader(http.StatusOK)
}

// newBaselineGRPCServer is the baseline on jwtguard's own gRPC server:
// the same services registered on a server with the same options.
func newBaselineGRPCServer(hs *health.Server) *grpc.Server {
	s, err := envoy.NewAuthorizationServer(baseline{}, hs, envoy.TLSConfig{})
	if err != nil {
		panic(err) // no TLS: there is nothing to fail
	}
	return s
}
