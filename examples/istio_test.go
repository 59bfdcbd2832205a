package examples

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1 "istio.io/api/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"google.golang.org/protobuf/encoding/protojson"
)

// strictProto rejects fields the schema does not have, as istiod does.
var strictProto = protojson.UnmarshalOptions{DiscardUnknown: false}

// loadMeshConfig decodes the istiod Helm values file: a meshConfig key and
// nothing else, holding a MeshConfig.
func loadMeshConfig(t *testing.T, path string) *meshv1alpha1.MeshConfig {
	t.Helper()
	var values struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	}
	if err := decodeStrict(yamlJSON(t, path, readExample(t, path)), &values); err != nil {
		t.Fatalf("%s: want only a meshConfig key: %v", path, err)
	}
	mc := &meshv1alpha1.MeshConfig{}
	if err := strictProto.Unmarshal(values.MeshConfig, mc); err != nil {
		t.Fatalf("%s: decode MeshConfig: %v", path, err)
	}
	return mc
}

// istioObject is the envelope of an Istio custom resource; its spec is
// decoded with the Istio proto.
type istioObject struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            json.RawMessage   `json:"spec"`
}

func loadAuthorizationPolicy(t *testing.T, path string) (*istioObject, *securityv1.AuthorizationPolicy) {
	t.Helper()
	var obj istioObject
	if err := yaml.UnmarshalStrict(readExample(t, path), &obj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if obj.APIVersion != "security.istio.io/v1" || obj.Kind != "AuthorizationPolicy" {
		t.Fatalf("%s: %s %s, want security.istio.io/v1 AuthorizationPolicy", path, obj.APIVersion, obj.Kind)
	}
	ap := &securityv1.AuthorizationPolicy{}
	if err := strictProto.Unmarshal(obj.Spec, ap); err != nil {
		t.Fatalf("%s: decode AuthorizationPolicy spec: %v", path, err)
	}
	return &obj, ap
}

func TestIstio(t *testing.T) {
	mc := loadMeshConfig(t, "istio/meshconfig.yaml")
	obj, ap := loadAuthorizationPolicy(t, "istio/authorizationpolicy.yaml")

	providers := map[string]*meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider{}
	for _, p := range mc.GetExtensionProviders() {
		if g := p.GetEnvoyExtAuthzGrpc(); g != nil {
			providers[p.GetName()] = g
		}
	}
	name := ap.GetProvider().GetName()
	provider, ok := providers[name]
	if !ok {
		t.Fatalf("AuthorizationPolicy provider %q is no envoyExtAuthzGrpc provider of the mesh config (have %v)", name, providers)
	}

	t.Run("provider", func(t *testing.T) {
		if provider.GetPort() != grpcPort {
			t.Errorf("provider port %d, want %d", provider.GetPort(), grpcPort)
		}
		if provider.GetFailOpen() {
			t.Error("failOpen is true: an unreachable jwtguard would let every request through")
		}
		if provider.GetStatusOnError() != "503" {
			t.Errorf("statusOnError %q, want 503", provider.GetStatusOnError())
		}
		if d := provider.GetTimeout().AsDuration(); d <= 0 || d > time.Second {
			t.Errorf("timeout %s, want a bound under a second", d)
		}
		// The provider's host is the Service of either deployment.
		for _, path := range []string{"istio/daemonset.yaml", "istio/central.yaml"} {
			ko := loadKube(t, path)
			var hosts []string
			for _, s := range ko.services() {
				hosts = append(hosts, serviceDNS(s))
				if serviceDNS(s) == provider.GetService() && !servicePort(s, grpcPort) {
					t.Errorf("%s: Service %s has no port %d", path, s.Name, grpcPort)
				}
			}
			if !slices.Contains(hosts, provider.GetService()) {
				t.Errorf("provider service %q is none of the Services of %s: %v", provider.GetService(), path, hosts)
			}
		}
	})

	t.Run("policy", func(t *testing.T) {
		if ap.GetAction() != securityv1.AuthorizationPolicy_CUSTOM {
			t.Errorf("action %s, want CUSTOM", ap.GetAction())
		}
		if len(ap.GetSelector().GetMatchLabels()) == 0 {
			t.Error("no workload selector: the policy would apply to the whole namespace")
		}
		if obj.Metadata.Namespace == "" || obj.Metadata.Name == "" {
			t.Errorf("metadata %+v, want a name and a namespace", obj.Metadata)
		}
		if len(ap.GetRules()) == 0 {
			t.Error("no rules: a CUSTOM policy without rules checks nothing")
		}
	})
}

func TestIstioDeployments(t *testing.T) {
	redis := loadKube(t, "istio/redis.yaml")
	checkWorkloads(t, redis)
	checkServices(t, redis)
	redisSvc := find[*corev1.Service](redis, "jwtguard", "redis")
	if redisSvc == nil || !servicePort(redisSvc, 6379) {
		t.Fatal("istio/redis.yaml: no Service jwtguard/redis on port 6379")
	}
	wantSource := "redis://" + serviceDNS(redisSvc) + ":6379/0"

	for _, tc := range []struct {
		path  string
		check func(t *testing.T, ko *kubeObjects)
	}{
		{"istio/daemonset.yaml", func(t *testing.T, ko *kubeObjects) {
			ds := find[*appsv1.DaemonSet](ko, "jwtguard", "jwtguard")
			if ds == nil {
				t.Fatal("no DaemonSet jwtguard/jwtguard")
			}
			if ds.Spec.Template.Spec.HostNetwork {
				t.Error("hostNetwork is true: jwtguard's ports would take the node's")
			}
			for _, s := range ko.services() {
				if p := s.Spec.InternalTrafficPolicy; p == nil || *p != corev1.ServiceInternalTrafficPolicyLocal {
					t.Errorf("%s: internalTrafficPolicy %s, want Local: checks would cross nodes", ko.where[s], deref(p))
				}
			}
		}},
		{"istio/central.yaml", func(t *testing.T, ko *kubeObjects) {
			d := find[*appsv1.Deployment](ko, "jwtguard", "jwtguard")
			if d == nil {
				t.Fatal("no Deployment jwtguard/jwtguard")
			}
			if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
				t.Errorf("replicas %d, want 3", deref(d.Spec.Replicas))
			}
		}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			ko := loadKube(t, tc.path)
			checkWorkloads(t, ko)
			checkServices(t, ko)
			ws := ko.workloads()
			if len(ws) != 1 {
				t.Fatalf("%d workloads, want 1", len(ws))
			}
			c := jwtguardContainer(ws[0])
			if c == nil {
				t.Fatalf("%s: no container named jwtguard", ws[0].where)
			}
			checkJWTGuardContainer(t, ws[0].where, c)
			if src, _ := argValue(c.Args, "source"); src != wantSource {
				t.Errorf("%s: --source %q, want %q (the Service of istio/redis.yaml)", ws[0].where, src, wantSource)
			}
			tc.check(t, ko)
		})
	}
}

// deref returns *p, or the zero value for nil, for messages.
func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
