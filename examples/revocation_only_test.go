package examples

import (
	"flag"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1 "istio.io/api/security/v1"
	"sigs.k8s.io/yaml"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/cmd/jwtguard/node"
	"github.com/jwtguard/jwtguard/envoy"
)

// The typed extensions of revocation-only.yaml, registered for protojson.
var (
	_ = (*jwtauthnv3.JwtAuthentication)(nil)
	_ = (*tlsv3.UpstreamTlsContext)(nil)
)

// loadNodeConfig reads a jwtguard config file of the examples with the
// real loader.
func loadNodeConfig(t *testing.T, path string) *node.Config {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg, err := node.Load([]string{"--config", filepath.Join(".", path)}, func(string) string { return "" }, fs)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cfg
}

// revocationOnlyIssuer finds issuer iss in cfg and checks it is
// revocation-only.
func revocationOnlyIssuer(t *testing.T, cfg *node.Config, iss string) authz.IssuerConfig {
	t.Helper()
	for _, ic := range cfg.Authz.Issuers {
		if ic.Issuer == iss {
			if !ic.RevocationOnly {
				t.Fatalf("issuer %s is not revocation-only", iss)
			}
			return ic
		}
	}
	t.Fatalf("issuer %s not configured in jwtguard's file", iss)
	return authz.IssuerConfig{}
}

// TestEnvoyRevocationOnly: jwt_authn runs before ext_authz under the
// namespace jwtguard reads, ext_authz sends that namespace, and jwtguard's
// file names the very metadata keys and issuer of the provider.
func TestEnvoyRevocationOnly(t *testing.T) {
	bs := loadEnvoyBootstrap(t, "envoy/revocation-only.yaml")
	cfg := loadNodeConfig(t, "envoy/jwtguard-revocation-only.yaml")
	var hcm *hcmv3.HttpConnectionManager
	for _, f := range bs.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters() {
		if f.GetTypedConfig().MessageIs((*hcmv3.HttpConnectionManager)(nil)) {
			hcm = unpack(t, f.GetTypedConfig(), &hcmv3.HttpConnectionManager{})
		}
	}
	if hcm == nil {
		t.Fatal("no http_connection_manager")
	}
	jwtAt, authzAt := -1, -1
	var ja *jwtauthnv3.JwtAuthentication
	var ea *extauthzv3.ExtAuthz
	for i, f := range hcm.GetHttpFilters() {
		switch {
		case f.GetTypedConfig().MessageIs((*jwtauthnv3.JwtAuthentication)(nil)):
			jwtAt, ja = i, unpack(t, f.GetTypedConfig(), &jwtauthnv3.JwtAuthentication{})
			if f.GetName() != envoy.JWTAuthnNamespace {
				t.Errorf("jwt_authn filter named %q: it writes its metadata under its name, and jwtguard reads %q", f.GetName(), envoy.JWTAuthnNamespace)
			}
		case f.GetTypedConfig().MessageIs((*extauthzv3.ExtAuthz)(nil)):
			authzAt, ea = i, unpack(t, f.GetTypedConfig(), &extauthzv3.ExtAuthz{})
		}
	}
	if jwtAt < 0 || authzAt < jwtAt {
		t.Fatalf("jwt_authn at %d, ext_authz at %d: jwt_authn must come first", jwtAt, authzAt)
	}
	if !slices.Contains(ea.GetMetadataContextNamespaces(), envoy.JWTAuthnNamespace) {
		t.Errorf("ext_authz metadata_context_namespaces %v lacks %s", ea.GetMetadataContextNamespaces(), envoy.JWTAuthnNamespace)
	}
	if ea.GetFailureModeAllow() {
		t.Error("failure_mode_allow: an unreachable jwtguard would let revoked tokens through")
	}
	if len(ja.GetProviders()) == 0 {
		t.Fatal("no jwt_authn provider")
	}
	for name, p := range ja.GetProviders() {
		ic := revocationOnlyIssuer(t, cfg, p.GetIssuer())
		if want := cmpOr(ic.PayloadKey, ic.Issuer); p.GetPayloadInMetadata() != want {
			t.Errorf("provider %s: payload_in_metadata %q, jwtguard's payload-metadata-key %q", name, p.GetPayloadInMetadata(), want)
		}
		if ic.HeaderKey != "" && p.GetHeaderInMetadata() != ic.HeaderKey {
			t.Errorf("provider %s: header_in_metadata %q, jwtguard's header-metadata-key %q", name, p.GetHeaderInMetadata(), ic.HeaderKey)
		}
		if ic.HeaderKey == "" && !p.GetForward() {
			t.Errorf("provider %s: without header-metadata-key jwtguard reads the kid from the token: set forward: true", name)
		}
	}
}

// TestIstioRevocationOnly: RequestAuthentication writes each payload under
// its issuer (Istio sets payload_in_metadata to the issuer), forwards the
// token (the kid comes from it), and the EnvoyFilter makes ext_authz send
// jwt_authn's metadata; jwtguard's file trusts exactly those issuers.
func TestIstioRevocationOnly(t *testing.T) {
	cfg := loadNodeConfig(t, "istio/jwtguard-revocation-only.yaml")
	var ra *securityv1.RequestAuthentication
	var ef *networkingv1alpha3.EnvoyFilter
	for _, doc := range yamlDocs(readExample(t, "istio/revocation-only.yaml")) {
		var obj istioObject
		if err := yaml.UnmarshalStrict(doc, &obj); err != nil {
			t.Fatal(err)
		}
		switch obj.APIVersion + " " + obj.Kind {
		case "security.istio.io/v1 RequestAuthentication":
			ra = &securityv1.RequestAuthentication{}
			if err := strictProto.Unmarshal(obj.Spec, ra); err != nil {
				t.Fatalf("RequestAuthentication: %v", err)
			}
		case "networking.istio.io/v1alpha3 EnvoyFilter":
			ef = &networkingv1alpha3.EnvoyFilter{}
			if err := strictProto.Unmarshal(obj.Spec, ef); err != nil {
				t.Fatalf("EnvoyFilter: %v", err)
			}
		default:
			t.Fatalf("unexpected %s %s", obj.APIVersion, obj.Kind)
		}
	}
	if ra == nil || ef == nil {
		t.Fatal("want a RequestAuthentication and an EnvoyFilter")
	}
	for _, rule := range ra.GetJwtRules() {
		ic := revocationOnlyIssuer(t, cfg, rule.GetIssuer())
		if ic.PayloadKey != "" && ic.PayloadKey != rule.GetIssuer() {
			t.Errorf("issuer %s: payload-metadata-key %q, but Istio writes the payload under the issuer", ic.Issuer, ic.PayloadKey)
		}
		if ic.HeaderKey != "" {
			t.Errorf("issuer %s: header-metadata-key %q, but Istio writes no header", ic.Issuer, ic.HeaderKey)
		}
		if !rule.GetForwardOriginalToken() {
			t.Errorf("issuer %s: forwardOriginalToken is false: jwtguard needs the token for its kid", ic.Issuer)
		}
	}
	sent := false
	for _, p := range ef.GetConfigPatches() {
		if p.GetApplyTo() != networkingv1alpha3.EnvoyFilter_HTTP_FILTER || p.GetMatch().GetListener().GetFilterChain().GetFilter().GetSubFilter().GetName() != envoy.MetadataNamespace {
			continue
		}
		if p.GetPatch().GetOperation() != networkingv1alpha3.EnvoyFilter_Patch_MERGE {
			t.Errorf("patch of ext_authz is %s, want MERGE", p.GetPatch().GetOperation())
		}
		raw, err := p.GetPatch().GetValue().MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		tc := p.GetPatch().GetValue().GetFields()["typed_config"]
		if tc == nil {
			t.Fatalf("patch value %s has no typed_config", raw)
		}
		j, err := tc.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(j), "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz") {
			t.Fatalf("typed_config %s is not an ExtAuthz", j)
		}
		ea := &extauthzv3.ExtAuthz{}
		j = []byte(strings.Replace(string(j), `"@type":"type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",`, "", 1))
		if err := strictProto.Unmarshal(j, ea); err != nil {
			t.Fatalf("typed_config as ExtAuthz: %v", err)
		}
		sent = slices.Contains(ea.GetMetadataContextNamespaces(), envoy.JWTAuthnNamespace)
	}
	if !sent {
		t.Errorf("no EnvoyFilter patch makes ext_authz send %s", envoy.JWTAuthnNamespace)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
