package examples

import (
	"fmt"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/jwtguard/jwtguard/envoy"
)

// The typed extensions envoy.yaml uses. Importing their packages registers
// the types, so protojson can resolve each "@type"; an example that names
// an extension not listed here fails to decode.
var (
	_ = (*hcmv3.HttpConnectionManager)(nil)
	_ = (*extauthzv3.ExtAuthz)(nil)
	_ = (*routerv3.Router)(nil)
	_ = (*streamv3.StdoutAccessLog)(nil)
	_ = (*upstreamhttpv3.HttpProtocolOptions)(nil)
)

// loadEnvoyBootstrap decodes an Envoy v3 bootstrap YAML with every typed
// extension resolved, and runs the proto validation rules of the bootstrap
// and of every Any inside it.
func loadEnvoyBootstrap(t *testing.T, path string) *bootstrapv3.Bootstrap {
	t.Helper()
	bs := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(yamlJSON(t, path, readExample(t, path)), bs); err != nil {
		t.Fatalf("%s: decode Bootstrap: %v", path, err)
	}
	if err := validateTree(bs.ProtoReflect(), "bootstrap"); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return bs
}

// validateTree runs ValidateAll on m and on every message under it,
// unpacking each Any: the generated validators stop at an Any.
func validateTree(m protoreflect.Message, at string) error {
	if v, ok := m.Interface().(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
	}
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("%s: %s: %w", at, a.GetTypeUrl(), err)
		}
		return validateTree(inner.ProtoReflect(), at+"("+string(inner.ProtoReflect().Descriptor().FullName())+")")
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil {
			return true
		}
		name := at + "." + string(fd.Name())
		switch {
		case fd.IsList():
			for i := 0; i < v.List().Len() && err == nil; i++ {
				err = validateTree(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", name, i))
			}
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				err = validateTree(mv.Message(), fmt.Sprintf("%s[%s]", name, k))
				return err == nil
			})
		default:
			err = validateTree(v.Message(), name)
		}
		return err == nil
	})
	return err
}

// unpack decodes an Any into a new T, failing the test on a type mismatch.
func unpack[T proto.Message](t *testing.T, a *anypb.Any, m T) T {
	t.Helper()
	if err := a.UnmarshalTo(m); err != nil {
		t.Fatalf("typed config %s: %v", a.GetTypeUrl(), err)
	}
	return m
}

func TestEnvoyBootstrap(t *testing.T) {
	const path = "envoy/envoy.yaml"
	bs := loadEnvoyBootstrap(t, path)

	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range bs.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = c
	}
	listeners := bs.GetStaticResources().GetListeners()
	if len(listeners) != 1 {
		t.Fatalf("%d listeners, want 1", len(listeners))
	}
	if got := listeners[0].GetAddress().GetSocketAddress().GetPortValue(); got != 8080 {
		t.Errorf("listener port %d, want 8080", got)
	}
	var hcm *hcmv3.HttpConnectionManager
	for _, fc := range listeners[0].GetFilterChains() {
		for _, f := range fc.GetFilters() {
			if f.GetTypedConfig().MessageIs((*hcmv3.HttpConnectionManager)(nil)) {
				hcm = unpack(t, f.GetTypedConfig(), &hcmv3.HttpConnectionManager{})
			}
		}
	}
	if hcm == nil {
		t.Fatal("no http_connection_manager on the listener")
	}

	// The filter chain: ext_authz first, router last.
	filters := hcm.GetHttpFilters()
	if len(filters) < 2 {
		t.Fatalf("%d HTTP filters, want ext_authz and router", len(filters))
	}
	var authzFilter string
	var ea *extauthzv3.ExtAuthz
	for _, f := range filters {
		if f.GetTypedConfig().MessageIs((*extauthzv3.ExtAuthz)(nil)) {
			authzFilter = f.GetName()
			ea = unpack(t, f.GetTypedConfig(), &extauthzv3.ExtAuthz{})
		}
	}
	if ea == nil {
		t.Fatal("no ext_authz HTTP filter")
	}
	if !filters[len(filters)-1].GetTypedConfig().MessageIs((*routerv3.Router)(nil)) {
		t.Errorf("last HTTP filter is %s, want the router", filters[len(filters)-1].GetName())
	}

	t.Run("ext_authz", func(t *testing.T) {
		if authzFilter != envoy.MetadataNamespace {
			t.Errorf("ext_authz filter named %q: jwtguard's metadata and the access log use %q", authzFilter, envoy.MetadataNamespace)
		}
		if ea.GetTransportApiVersion() != corev3.ApiVersion_V3 {
			t.Errorf("transport_api_version %s, want V3", ea.GetTransportApiVersion())
		}
		if ea.GetFailureModeAllow() {
			t.Error("failure_mode_allow is true: an unreachable jwtguard would let every request through")
		}
		if got := ea.GetStatusOnError().GetCode(); got != typev3.StatusCode_ServiceUnavailable {
			t.Errorf("status_on_error %s, want ServiceUnavailable", got)
		}
		grpc := ea.GetGrpcService()
		if got := grpc.GetTimeout().AsDuration(); got != 250*time.Millisecond {
			t.Errorf("gRPC timeout %s, want 250ms", got)
		}
		if !hasExact(ea.GetAllowedHeaders(), "authorization") {
			t.Error("allowed_headers does not pass authorization: jwtguard would never see the token")
		}

		name := grpc.GetEnvoyGrpc().GetClusterName()
		c, ok := clusters[name]
		if !ok {
			t.Fatalf("ext_authz cluster %q is not defined", name)
		}
		var addrs []string
		for _, le := range c.GetLoadAssignment().GetEndpoints() {
			for _, lb := range le.GetLbEndpoints() {
				sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
				addrs = append(addrs, fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()))
			}
		}
		if want := fmt.Sprintf("127.0.0.1:%d", grpcPort); len(addrs) != 1 || addrs[0] != want {
			t.Errorf("cluster %q endpoints %v, want [%s]", name, addrs, want)
		}
		opts, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
		if !ok {
			t.Fatalf("cluster %q has no HttpProtocolOptions: gRPC needs HTTP/2", name)
		}
		po := unpack(t, opts, &upstreamhttpv3.HttpProtocolOptions{})
		if po.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
			t.Errorf("cluster %q does not speak HTTP/2", name)
		}
	})

	t.Run("routes", func(t *testing.T) {
		var healthChecked, sawHealth bool
		for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				if c := r.GetRoute().GetCluster(); c != "" {
					if _, ok := clusters[c]; !ok {
						t.Errorf("route %v goes to undefined cluster %q", r.GetMatch(), c)
					}
				}
				if r.GetMatch().GetPath() != healthzPath {
					continue
				}
				sawHealth = true
				healthChecked = !authzDisabled(t, r, authzFilter)
			}
		}
		if !sawHealth {
			t.Fatalf("no route for %s", healthzPath)
		}
		if healthChecked {
			t.Errorf("route %s does not disable %s", healthzPath, authzFilter)
		}
	})

	t.Run("access log", func(t *testing.T) {
		logs := hcm.GetAccessLog()
		if len(logs) == 0 {
			t.Fatal("no access log")
		}
		sl := unpack(t, logs[0].GetTypedConfig(), &streamv3.StdoutAccessLog{})
		format := sl.GetLogFormat().GetTextFormatSource().GetInlineString()
		for _, field := range []string{"sub", "reason"} {
			want := fmt.Sprintf("%%DYNAMIC_METADATA(%s:%s)%%", envoy.MetadataNamespace, field)
			if !strings.Contains(format, want) {
				t.Errorf("access log format lacks %s", want)
			}
		}
	})
}

// authzDisabled reports whether route r turns filter off through an
// ExtAuthzPerRoute with disabled: true.
func authzDisabled(t *testing.T, r *routev3.Route, filter string) bool {
	t.Helper()
	a, ok := r.GetTypedPerFilterConfig()[filter]
	if !ok {
		return false
	}
	return unpack(t, a, &extauthzv3.ExtAuthzPerRoute{}).GetDisabled()
}

// hasExact reports whether l has an exact matcher for s.
func hasExact(l *matcherv3.ListStringMatcher, s string) bool {
	for _, p := range l.GetPatterns() {
		if p.GetExact() == s {
			return true
		}
	}
	return false
}
