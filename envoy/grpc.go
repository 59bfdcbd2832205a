package envoy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/jwtguard/jwtguard/authz"
)

// MetadataNamespace is where Envoy files the dynamic metadata jwtguard
// returns (the ext_authz HTTP filter's name).
const MetadataNamespace = "envoy.filters.http.ext_authz"

// JWTAuthnNamespace is where Envoy's jwt_authn filter writes the payloads
// it verified (payload_in_metadata, header_in_metadata). ext_authz sends it
// when its metadata_context_namespaces lists it; revocation-only issuers
// are decided from it (authz.Checker.CheckVerified). Forward-auth never
// reads it: a forward-auth request carries headers only, which a client
// could forge.
const JWTAuthnNamespace = "envoy.filters.http.jwt_authn"

// Authorization is the ext_authz v3 gRPC service over an authz.Checker.
type Authorization struct {
	authv3.UnimplementedAuthorizationServer
	checker    atomic.Pointer[authz.Checker]
	metrics    *Metrics
	log        *slog.Logger
	removeAuth bool
	observers  []Observer
	blocker    Blocker
	trusted    []netip.Prefix // proxies whose X-Forwarded-For is believed
}

// AuthorizationOption configures an Authorization.
type AuthorizationOption func(*Authorization)

// WithMetrics records decisions in m.
func WithMetrics(m *Metrics) AuthorizationOption { return func(a *Authorization) { a.metrics = m } }

// WithLogger sets the logger of the service's own messages. Decisions are
// not logged here: they go to the observers (the decision log).
func WithLogger(l *slog.Logger) AuthorizationOption { return func(a *Authorization) { a.log = l } }

// WithRemoveAuthorization removes the Authorization header from allowed
// requests before they reach the upstream (forward-auth: names it in
// X-Envoy-Auth-Headers-To-Remove).
func WithRemoveAuthorization(on bool) AuthorizationOption {
	return func(a *Authorization) { a.removeAuth = on }
}

// SetChecker makes c decide the checks that start from now on (a reloaded
// configuration); checks in flight finish with the checker they began with.
func (a *Authorization) SetChecker(c *authz.Checker) { a.checker.Store(c) }

// NewAuthorization returns the ext_authz service deciding with c.
func NewAuthorization(c *authz.Checker, opts ...AuthorizationOption) *Authorization {
	a := &Authorization{log: slog.Default()}
	a.checker.Store(c)
	for _, o := range opts {
		o(a)
	}
	return a
}

// Check implements envoy.service.auth.v3.Authorization/Check.
func (a *Authorization) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	c := a.checker.Load()
	var d authz.Decision
	if a.blocker != nil && a.blocker.BlockedAddr(grpcSource(req), start) {
		d = authz.Decision{Reason: authz.ReasonBlocked}
	} else {
		rt := grpcRoute(req)
		md := req.GetAttributes().GetMetadataContext().GetFilterMetadata()[JWTAuthnNamespace]
		d = a.decide(ctx, c, md, requestHeaders(req), &rt, start)
	}
	a.observe(&d, start, transportGRPC)
	if len(a.observers) > 0 {
		r := grpcRequest(req)
		a.notify(&r, &d, start)
	}
	if d.Allowed() {
		return a.okResponse(c, &d), nil
	}
	return deniedResponse(&d), nil
}

// decide is c's decision on h to rt, the same for both adapters: with md,
// jwt_authn's metadata (gRPC only; nil for none), a payload it verified
// for a revocation-only issuer is trusted. A token, session or subject the
// blocker holds is denied blocked.
func (a *Authorization) decide(ctx context.Context, c *authz.Checker, md *structpb.Struct, h authz.Headers, rt *authz.Route, now time.Time) authz.Decision {
	d := c.CheckVerifiedRoute(ctx, md, h, rt)
	if a.blocker != nil && d.Claims.TokenID != "" && a.blocker.BlockedToken(d.Claims.Issuer, d.Claims.TokenID, d.Claims.Session, d.Claims.Subject, now) {
		return authz.Decision{Reason: authz.ReasonBlocked, Claims: d.Claims}
	}
	return d
}

// requestHeaders returns the original request's headers: Envoy sends them
// as a map of lower-case names, or as a header map when configured to send
// raw header values.
func requestHeaders(req *authv3.CheckRequest) authz.Headers {
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	if h := httpReq.GetHeaders(); h != nil {
		return authz.MapHeaders(h)
	}
	m := authz.MapHeaders{}
	for _, hv := range httpReq.GetHeaderMap().GetHeaders() {
		v := hv.GetValue()
		if v == "" {
			v = string(hv.GetRawValue())
		}
		k := strings.ToLower(hv.GetKey())
		if old, ok := m[k]; ok {
			sep := ","
			if k == "cookie" {
				sep = "; "
			}
			v = old + sep + v
		}
		m[k] = v
	}
	return m
}

// okStatus is the status of every allowed response, shared: gRPC only
// reads it.
var okStatus = &status.Status{Code: int32(codes.OK)}

// okBlock holds every message of one allowed response, allocated at once.
type okBlock struct {
	resp authv3.CheckResponse
	wrap authv3.CheckResponse_OkResponse
	ok   authv3.OkHttpResponse
	meta metaBlock
}

func (a *Authorization) okResponse(c *authz.Checker, d *authz.Decision) *authv3.CheckResponse {
	b := &okBlock{}
	headers := c.ClaimHeaders()
	n := len(headers)
	if a.removeAuth {
		n++
	}
	// The header messages of the response, in two allocations.
	opts := make([]corev3.HeaderValueOption, 0, n)
	vals := make([]corev3.HeaderValue, 0, n)
	var set []*corev3.HeaderValueOption
	a.upstreamHeaders(c, d, func(name, value string) {
		vals = append(vals, corev3.HeaderValue{Key: name, Value: value})
		opts = append(opts, corev3.HeaderValueOption{
			Header:       &vals[len(vals)-1],
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
		if set == nil {
			set = make([]*corev3.HeaderValueOption, 0, n)
		}
		set = append(set, &opts[len(opts)-1])
	}, func(name string) {
		if b.ok.HeadersToRemove == nil {
			b.ok.HeadersToRemove = make([]string, 0, n)
		}
		b.ok.HeadersToRemove = append(b.ok.HeadersToRemove, name)
	})
	b.ok.Headers = set
	b.wrap.OkResponse = &b.ok
	b.resp.Status = okStatus
	b.resp.HttpResponse = &b.wrap
	b.resp.DynamicMetadata = b.meta.fill(d)
	return &b.resp
}

// denied holds the parts of a denied response that depend on its reason
// only, built once per reason and shared by every response of that reason:
// gRPC only reads (marshals) them, and nothing may ever modify them.
type denied struct {
	status *status.Status
	http   *authv3.CheckResponse_DeniedResponse
	reason *structpb.Value // the metadata's "reason"
}

func newDenied(r authz.Reason) *denied { return newDeniedAs(r, denialOf(r)) }

// newDeniedAs is newDenied rendering den.
func newDeniedAs(r authz.Reason, den denial) *denied {
	code := codes.Unauthenticated
	switch {
	case unavailable(r):
		code = codes.Unavailable
	case den.status == http.StatusForbidden:
		code = codes.PermissionDenied
	case den.status == http.StatusBadRequest:
		code = codes.InvalidArgument
	}
	headers := []*corev3.HeaderValueOption{{
		Header:       &corev3.HeaderValue{Key: "content-type", Value: "application/json"},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}}
	if den.wwwAuthenticate != "" {
		headers = append(headers, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: "www-authenticate", Value: den.wwwAuthenticate},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	return &denied{
		status: &status.Status{Code: int32(code), Message: string(r)},
		http: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(den.status)},
			Headers: headers,
			Body:    string(den.body),
		}},
		reason: structpb.NewStringValue(string(r)),
	}
}

// deniedByReason and revokedByKind are built once, read-only after.
var (
	deniedByReason = func() map[authz.Reason]*denied {
		m := make(map[authz.Reason]*denied, len(authz.Reasons))
		for _, r := range authz.Reasons {
			if r != authz.ReasonOK {
				m[r] = newDenied(r)
			}
		}
		return m
	}()
	revokedByKind = func() map[authz.Kind]*structpb.Value {
		m := make(map[authz.Kind]*structpb.Value, len(authz.Kinds))
		for _, k := range authz.Kinds {
			m[k] = structpb.NewStringValue(string(k))
		}
		return m
	}()
)

// deniedBlock holds the messages of one denied response made per request.
type deniedBlock struct {
	resp authv3.CheckResponse
	meta metaBlock
}

func deniedResponse(d *authz.Decision) *authv3.CheckResponse {
	den, ok := deniedByReason[d.Reason]
	switch {
	case d.RequiredScope != "":
		den = scopeDenied(d)
	case !ok:
		den = newDenied(d.Reason)
	}
	b := &deniedBlock{}
	b.resp.Status = den.status
	b.resp.HttpResponse = den.http
	b.resp.DynamicMetadata = b.meta.fill(d)
	return &b.resp
}

// metaFields is the most fields metadata has.
const metaFields = 7

// metaBlock holds the messages of one response's dynamic metadata.
type metaBlock struct {
	s    structpb.Struct
	vals [metaFields]structpb.Value
	strs [metaFields]structpb.Value_StringValue
	n    int
}

// fill makes b the dynamic metadata Envoy can print in access logs: the
// verified claims that identify the token (never the token), and the
// reason of a deny; the reason and kind values are the shared ones.
func (b *metaBlock) fill(d *authz.Decision) *structpb.Struct {
	b.s.Fields = make(map[string]*structpb.Value, metaFields)
	add := func(k, v string) {
		if v != "" {
			b.strs[b.n].StringValue = v
			b.vals[b.n].Kind = &b.strs[b.n]
			b.s.Fields[k] = &b.vals[b.n]
			b.n++
		}
	}
	if !d.Allowed() {
		if den, ok := deniedByReason[d.Reason]; ok {
			b.s.Fields["reason"] = den.reason
		} else {
			add("reason", string(d.Reason))
		}
		if v, ok := revokedByKind[d.RevokedBy]; ok {
			b.s.Fields["revoked_by"] = v
		} else {
			add("revoked_by", string(d.RevokedBy))
		}
	}
	add("iss", d.Claims.Issuer)
	add("sub", d.Claims.Subject)
	add("jti", d.Claims.JTI)
	add("sid", d.Claims.Session)
	add("kid", d.Claims.KeyID)
	return &b.s
}

// observe records a decision in metrics, by transport t. Decisions are
// logged by the decision log, an observer, never here.
func (a *Authorization) observe(d *authz.Decision, start time.Time, t transport) {
	if a.metrics != nil {
		a.metrics.observe(d, t, time.Since(start))
	}
}

// TLSConfig is the gRPC listener's TLS: both files for TLS, plus ClientCA
// for mTLS (client certificates required and verified).
type TLSConfig struct {
	CertFile, KeyFile, ClientCAFile string
}

// Validate says which field is wrong.
func (c TLSConfig) Validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("tls-cert and tls-key go together")
	}
	if c.ClientCAFile != "" && c.CertFile == "" {
		return errors.New("client-ca needs tls-cert and tls-key")
	}
	return nil
}

func (c TLSConfig) credentials() (credentials.TransportCredentials, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS key pair: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s: no PEM certificate found", c.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return credentials.NewTLS(cfg), nil
}

// MaxConcurrentStreams bounds the checks in flight on one gRPC connection;
// Envoy opens another connection when it needs more.
const MaxConcurrentStreams = 1024

// ServerOptions are the options of jwtguard's gRPC server: stream workers,
// the codec that decodes each jwt_authn payload once (checkCodec) and,
// when tc names a certificate, TLS.
func ServerOptions(tc TLSConfig) ([]grpc.ServerOption, error) {
	if err := tc.Validate(); err != nil {
		return nil, err
	}
	// Stream workers reuse goroutines whose stacks have already grown: with
	// a goroutine per request, growing and copying stacks took 14% of the
	// server's CPU (bench/README.md, "Profile"). Enough workers that a
	// request rarely finds them all busy.
	opts := []grpc.ServerOption{
		grpc.NumStreamWorkers(uint32(32 * runtime.GOMAXPROCS(0))),
		// Bounds per client: streams in flight on one connection, and a
		// ping to a connection idle for 2 minutes, closed when unanswered,
		// so a vanished peer does not keep its file descriptor.
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		grpc.ForceServerCodecV2(NewCheckCodec()),
	}
	if tc.CertFile != "" {
		creds, err := tc.credentials()
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(creds))
	}
	return opts, nil
}

// NewGRPCServer returns a gRPC server offering ext_authz, health and
// reflection, with the options of ServerOptions.
func NewGRPCServer(a *Authorization, hs *health.Server, tc TLSConfig) (*grpc.Server, error) {
	return NewAuthorizationServer(a, hs, tc)
}

// NewAuthorizationServer is NewGRPCServer for any ext_authz service: the
// load generator's baseline runs on it, so that it is measured on the very
// server, services and options jwtguard runs on.
func NewAuthorizationServer(a authv3.AuthorizationServer, hs *health.Server, tc TLSConfig) (*grpc.Server, error) {
	opts, err := ServerOptions(tc)
	if err != nil {
		return nil, err
	}
	s := grpc.NewServer(opts...)
	authv3.RegisterAuthorizationServer(s, a)
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
	return s, nil
}
