package examples

import (
	"context"
	"flag"
	"io"
	"maps"
	"testing"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/cmd/jwtguard/node"
	"github.com/jwtguard/jwtguard/envoy"
)

type noRecords struct{}

func (noRecords) Lookup(context.Context, authz.LookupKey) ([]authz.Record, error) { return nil, nil }

// TestEnvoyRoutes checks envoy-routes/: Envoy's bootstrap against its
// schema, jwtguard.yaml through jwtguard's own loader, and that they agree:
// the context_extensions every route sends (the virtual host's, overridden
// per route) select the rule of that name, public routes need no token,
// and every header a rule compares a claim to reaches jwtguard.
func TestEnvoyRoutes(t *testing.T) {
	bs := loadEnvoyBootstrap(t, "envoy-routes/envoy.yaml")
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg, err := node.Load([]string{"--config", "envoy-routes/jwtguard.yaml"}, func(string) string { return "" }, fs)
	if err != nil {
		t.Fatalf("jwtguard.yaml: %v", err)
	}
	filter, err := bloom.New(bloom.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rev, err := authz.NewRevocations(filter, noRecords{}, authz.DefaultRevocationConfig())
	if err != nil {
		t.Fatal(err)
	}
	checker, err := authz.NewChecker(cfg.Authz, rev) // keys are not fetched: no decision below needs them
	if err != nil {
		t.Fatal(err)
	}

	var hcm *hcmv3.HttpConnectionManager
	var ea *extauthzv3.ExtAuthz
	for _, fc := range bs.GetStaticResources().GetListeners()[0].GetFilterChains() {
		for _, f := range fc.GetFilters() {
			if f.GetTypedConfig().MessageIs((*hcmv3.HttpConnectionManager)(nil)) {
				hcm = unpack(t, f.GetTypedConfig(), &hcmv3.HttpConnectionManager{})
			}
		}
	}
	if hcm == nil {
		t.Fatal("no http_connection_manager")
	}
	if !hcm.GetNormalizePath().GetValue() || !hcm.GetMergeSlashes() {
		t.Error("normalize_path and merge_slashes must be on: jwtguard matches the path Envoy sends")
	}
	for _, f := range hcm.GetHttpFilters() {
		if f.GetTypedConfig().MessageIs((*extauthzv3.ExtAuthz)(nil)) {
			ea = unpack(t, f.GetTypedConfig(), &extauthzv3.ExtAuthz{})
		}
	}
	if ea == nil || ea.GetFailureModeAllow() {
		t.Fatal("no fail-closed ext_authz filter")
	}
	for _, r := range cfg.Authz.Rules {
		for _, c := range r.Claims {
			if c.EqualsHeader != "" && !hasExact(ea.GetAllowedHeaders(), c.EqualsHeader) {
				t.Errorf("rule %s compares %s to header %s, which allowed_headers does not send", r.Name, c.Claim, c.EqualsHeader)
			}
		}
	}

	routes := 0
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		hostExt := contextExtensions(t, vh.GetTypedPerFilterConfig()[envoy.MetadataNamespace])
		for _, r := range vh.GetRoutes() {
			ext := maps.Clone(hostExt)
			if ext == nil {
				ext = map[string]string{}
			}
			maps.Copy(ext, contextExtensions(t, r.GetTypedPerFilterConfig()[envoy.MetadataNamespace]))
			service := ext["service"]
			if service == "" {
				t.Errorf("virtual host %s, route %v: no service in context_extensions", vh.GetName(), r.GetMatch())
				continue
			}
			routes++
			rt := authz.Route{Method: "GET", Host: vh.GetDomains()[0], Path: r.GetMatch().GetPrefix(), ContextExtensions: ext}
			d := checker.CheckRoute(context.Background(), authz.MapHeaders{}, &rt)
			want := map[string]authz.Reason{"catalog": authz.ReasonOK}[service]
			if want == "" {
				want = authz.ReasonMissingToken
			}
			if d.Reason != want || (d.Rule != service && d.Rule != service+"-read") {
				t.Errorf("route %s %v (service %s): %s by rule %q, want %s by rule %s", vh.GetName(), r.GetMatch(), service, d.Reason, d.Rule, want, service)
			}
		}
	}
	if routes < 5 {
		t.Errorf("%d routes checked, want every route of the example", routes)
	}
}

// contextExtensions are the context_extensions of an ExtAuthzPerRoute
// (nil: none).
func contextExtensions(t *testing.T, a *anypb.Any) map[string]string {
	t.Helper()
	if a == nil {
		return nil
	}
	return unpack(t, a, &extauthzv3.ExtAuthzPerRoute{}).GetCheckSettings().GetContextExtensions()
}
