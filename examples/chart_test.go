// SPDX-License-Identifier: Apache-2.0

package examples

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/jwtguard/jwtguard/cmd/jwtguard/node"
)

// chartDir is the Helm chart, relative to examples/.
const chartDir = "../deploy/chart/jwtguard"

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor
// (monitoring.coreos.com/v1) the chart writes; decoding strictly into it
// catches a misspelt field as the CRD's schema would.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// chartKinds are the kinds the chart renders beyond kubeKinds.
var chartKinds = map[string]func() any{
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return &networkingv1.NetworkPolicy{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &serviceMonitor{} },
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return ch
}

// chartAppVersion is jwtguard's version the chart deploys: the image tag.
func chartAppVersion(t *testing.T) string {
	t.Helper()
	v := loadChart(t).Metadata.AppVersion
	if v == "" {
		t.Fatal("Chart.yaml has no appVersion")
	}
	return v
}

// imageRef is the image every manifest and the chart run.
func imageRef(t *testing.T) string {
	t.Helper()
	return imageRepository + ":" + chartAppVersion(t)
}

// renderChart renders the chart as `helm template` would for a release
// in namespace ns with the values in valuesYAML (as from helm -f).
func renderChart(t *testing.T, release, ns, valuesYAML string) (map[string]string, error) {
	t.Helper()
	ch := loadChart(t)
	vals, err := chartutil.ReadValues([]byte(valuesYAML))
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: release, Namespace: ns, Revision: 1, IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	return engine.Engine{Strict: true}.Render(ch, rv)
}

// decodeChart decodes every rendered object strictly into its API type.
func decodeChart(t *testing.T, files map[string]string) *kubeObjects {
	t.Helper()
	ko := &kubeObjects{where: map[any]string{}}
	names := slices.Sorted(maps.Keys(files))
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		for i, doc := range yamlDocs([]byte(files[name])) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s#%d: %v\n%s", name, i, err, doc)
			}
			newObj, ok := kubeKinds[tm.APIVersion+"/"+tm.Kind]
			if !ok {
				newObj, ok = chartKinds[tm.APIVersion+"/"+tm.Kind]
			}
			if !ok {
				t.Fatalf("%s#%d: no schema for apiVersion %q kind %q", name, i, tm.APIVersion, tm.Kind)
			}
			obj := newObj()
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s#%d (%s): %v\n%s", name, i, tm.Kind, err, doc)
			}
			ko.objs = append(ko.objs, obj)
			ko.where[obj] = fmt.Sprintf("%s#%d %s/%s", name, i, tm.Kind, obj.(metav1.Object).GetName())
		}
	}
	return ko
}

// all returns every object of type T.
func all[T any](ko *kubeObjects) []T {
	var out []T
	for _, o := range ko.objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// Values every case shares: an issuer jwtguard accepts.
const chartIssuers = `
config:
  issuers:
  - issuer: https://auth.example.com/
    audiences: [shop-api]
    jwks-url: https://auth.example.com/.well-known/jwks.json
    algs: [RS256, ES256]
`

const (
	testAdminToken = "0123456789abcdef0123456789abcdef"
	testRedisURL   = "redis://:secret@redis.auth.svc.cluster.local:6379/0"
)

func TestChart(t *testing.T) {
	for _, tc := range []struct {
		name, release, values string
		// Secrets the user made beforehand: name -> key -> value.
		existing       map[string]map[string]string
		kind           string // Deployment or DaemonSet
		replicas       int32
		pdb, netpol    bool
		serviceMonitor bool
	}{
		{
			name: "kubernetes", release: "jwtguard",
			values: "admin: {token: " + testAdminToken + "}\nredis: {url: '" + testRedisURL + "'}\n",
			kind:   "Deployment", replicas: 2, netpol: true,
		},
		{
			name: "pool with existing Secrets and a ServiceMonitor", release: "edge",
			values: `shape: pool
admin: {existingSecret: ops-admin, existingSecretKey: bearer}
redis: {existingSecret: revocations}
serviceMonitor: {enabled: true, labels: {release: prometheus}}
`,
			existing: map[string]map[string]string{"ops-admin": {"bearer": testAdminToken}, "revocations": {"url": testRedisURL}},
			kind:     "Deployment", replicas: 3, pdb: true, netpol: true, serviceMonitor: true,
		},
		{
			name: "daemonset without NetworkPolicy", release: "jwtguard",
			values: "shape: daemonset\nnetworkPolicy: {enabled: false}\nadmin: {token: " + testAdminToken + "}\nredis: {url: '" + testRedisURL + "'}\n",
			kind:   "DaemonSet", netpol: false,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const ns = "auth"
			files, err := renderChart(t, tc.release, ns, tc.values+chartIssuers)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			again, err := renderChart(t, tc.release, ns, tc.values+chartIssuers)
			if err != nil || !maps.Equal(files, again) {
				t.Errorf("rendering twice gives different manifests (%v)", err)
			}
			ko := decodeChart(t, files)
			for name, data := range tc.existing {
				s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: data}
				ko.objs = append(ko.objs, s)
				ko.where[s] = "existing Secret " + name
			}
			checkWorkloads(t, ko)
			checkServices(t, ko)

			ws := ko.workloads()
			if len(ws) != 1 {
				t.Fatalf("%d workloads, want 1", len(ws))
			}
			w := ws[0]
			if !strings.Contains(w.where, " "+tc.kind+"/") {
				t.Errorf("%s: want a %s", w.where, tc.kind)
			}
			if d := all[*appsv1.Deployment](ko); len(d) == 1 && (d[0].Spec.Replicas == nil || *d[0].Spec.Replicas != tc.replicas) {
				t.Errorf("%s: replicas %v, want %d", w.where, d[0].Spec.Replicas, tc.replicas)
			}
			c := jwtguardContainer(w)
			if c == nil {
				t.Fatalf("%s: no container named jwtguard", w.where)
			}
			checkJWTGuardContainer(t, w.where, c)
			for _, cc := range w.pod.Spec.Containers {
				if cc.Image != imageRef(t) {
					t.Errorf("%s: container %s runs %s, want %s", w.where, cc.Name, cc.Image, imageRef(t))
				}
			}
			checkPodSecurity(t, w, c)
			cfg := checkChartConfig(t, ko, w, c)
			if cfg.Source != testRedisURL {
				t.Errorf("source %q, want the URL of the Secret", node.RedactURL(cfg.Source))
			}

			checkChartServices(t, ko, w, tc.kind == "DaemonSet")
			checkNetworkPolicy(t, ko, w, c, tc.netpol)
			checkPDB(t, ko, w, tc.pdb, tc.replicas)
			checkServiceMonitor(t, ko, tc.serviceMonitor)
		})
	}
}

// checkPodSecurity: non-root, read-only root filesystem, no privilege.
func checkPodSecurity(t *testing.T, w workload, c *corev1.Container) {
	t.Helper()
	ps, cs := w.pod.Spec.SecurityContext, c.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
		t.Errorf("%s: pod securityContext %+v, want runAsNonRoot and a non-zero runAsUser", w.where, ps)
	}
	if cs == nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem ||
		cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation ||
		cs.Capabilities == nil || !slices.Equal(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("%s: container securityContext %+v, want a read-only root filesystem, no privilege escalation, all capabilities dropped", w.where, cs)
	}
	if w.pod.Spec.AutomountServiceAccountToken == nil || *w.pod.Spec.AutomountServiceAccountToken {
		t.Errorf("%s: the pod gets a service account token it does not use", w.where)
	}
}

// checkChartConfig loads the container's settings with the real loader:
// its args, its --config file from the ConfigMap, its variables from
// their Secrets. The admin token must come from a Secret, the data
// directory must be a writable volume.
func checkChartConfig(t *testing.T, ko *kubeObjects, w workload, c *corev1.Container) *node.Config {
	t.Helper()
	dir := t.TempDir()
	var args []string
	for _, a := range c.Args[1:] {
		if flagName(a) == "config" {
			configPath, _ := argValue(c.Args, "config")
			raw, ok := mountedFile(ko, w, c, configPath)
			if !ok {
				t.Fatalf("%s: --config %s is not a file of a mounted ConfigMap", w.where, configPath)
			}
			if strings.Contains(raw, "source") {
				t.Errorf("%s: the config file names a source; it comes from a Secret", w.where)
			}
			file := filepath.Join(dir, filepath.Base(configPath))
			if err := os.WriteFile(file, []byte(raw), 0o600); err != nil {
				t.Fatal(err)
			}
			a = "--config=" + file
		}
		args = append(args, a)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		ref := e.ValueFrom
		if ref == nil || ref.SecretKeyRef == nil {
			t.Errorf("%s: variable %s is not from a Secret", w.where, e.Name)
			continue
		}
		s := find[*corev1.Secret](ko, w.namespace, ref.SecretKeyRef.Name)
		if s == nil {
			t.Fatalf("%s: variable %s: no Secret %s", w.where, e.Name, ref.SecretKeyRef.Name)
		}
		v, ok := s.StringData[ref.SecretKeyRef.Key]
		if b, inData := s.Data[ref.SecretKeyRef.Key]; inData {
			v, ok = string(b), true
		}
		if !ok {
			t.Errorf("%s: variable %s: Secret %s has no key %s", w.where, e.Name, s.Name, ref.SecretKeyRef.Key)
		}
		env[e.Name] = v
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg, err := node.Load(args, func(k string) string { return env[k] }, fs)
	if err != nil {
		t.Fatalf("%s: jwtguard refuses its settings: %v", w.where, err)
	}
	if len(cfg.Authz.Issuers) == 0 {
		t.Errorf("%s: no issuer", w.where)
	}
	for _, l := range []struct {
		name, addr string
		port       int32
	}{{"grpc-addr", cfg.GRPCAddr, grpcPort}, {"http-addr", cfg.HTTPAddr, httpPort}, {"admin-addr", cfg.AdminAddr, 8182}} {
		if host, _, _ := strings.Cut(l.addr, ":"); host != "" || listenPort(t, l.addr) != l.port || !declaresPort(w.pod, intstr.FromInt32(l.port)) {
			t.Errorf("%s: %s %q, want all interfaces on the declared port %d", w.where, l.name, l.addr, l.port)
		}
	}
	if tok, ok := mountedFile(ko, w, c, cfg.AdminTokenFile); !ok || len(strings.TrimSpace(tok)) < 16 {
		t.Errorf("%s: admin-token-file %q is not a token of at least 16 characters from a mounted Secret", w.where, cfg.AdminTokenFile)
	}
	writable := false
	for _, m := range c.VolumeMounts {
		for _, v := range w.pod.Spec.Volumes {
			if v.Name == m.Name && m.MountPath == cfg.DataDir && !m.ReadOnly && v.EmptyDir != nil {
				writable = true
			}
		}
	}
	if !writable {
		t.Errorf("%s: data-dir %s is not a writable volume (the root filesystem is read-only)", w.where, cfg.DataDir)
	}
	return cfg
}

// checkChartServices: one Service for the checks (node-local for a
// DaemonSet), one for the admin API.
func checkChartServices(t *testing.T, ko *kubeObjects, w workload, local bool) {
	t.Helper()
	var checks, admin int
	for _, s := range ko.services() {
		switch {
		case servicePort(s, grpcPort) && servicePort(s, httpPort) && !servicePort(s, 8182):
			checks++
			isLocal := s.Spec.InternalTrafficPolicy != nil && *s.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
			if isLocal != local {
				t.Errorf("%s: internalTrafficPolicy local %v, want %v", ko.where[s], isLocal, local)
			}
		case servicePort(s, 8182) && len(s.Spec.Ports) == 1:
			admin++
		default:
			t.Errorf("%s: ports %v mix the checks and the admin API", ko.where[s], s.Spec.Ports)
		}
	}
	if checks != 1 || admin != 1 {
		t.Errorf("%d check Services and %d admin Services, want 1 each", checks, admin)
	}
}

// checkNetworkPolicy: when enabled, one policy selects the pods, opens
// the checks' ports to the clients and the admin port to the admins only.
func checkNetworkPolicy(t *testing.T, ko *kubeObjects, w workload, c *corev1.Container, want bool) {
	t.Helper()
	nps := all[*networkingv1.NetworkPolicy](ko)
	if !want {
		if len(nps) != 0 {
			t.Errorf("%d NetworkPolicies, want none", len(nps))
		}
		return
	}
	if len(nps) != 1 {
		t.Fatalf("%d NetworkPolicies, want 1", len(nps))
	}
	np := nps[0]
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || sel.Empty() || np.Namespace != w.namespace || !sel.Matches(labels.Set(w.pod.Labels)) {
		t.Errorf("%s: podSelector %v does not select the pods %v of %s (%v)", ko.where[np], np.Spec.PodSelector, w.pod.Labels, w.where, err)
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("%s: policyTypes %v, want [Ingress]", ko.where[np], np.Spec.PolicyTypes)
	}
	opened := map[int32]int{}
	for _, rule := range np.Spec.Ingress {
		var ports []int32
		for _, p := range rule.Ports {
			if p.Port == nil || !declaresPort(w.pod, *p.Port) {
				t.Errorf("%s: port %v is not a port of the jwtguard container", ko.where[np], p.Port)
				continue
			}
			port := p.Port.IntVal
			if p.Port.Type == intstr.String {
				for _, cp := range c.Ports {
					if cp.Name == p.Port.StrVal {
						port = cp.ContainerPort
					}
				}
			}
			ports = append(ports, port)
			opened[port]++
		}
		if slices.Contains(ports, 8182) && (len(ports) != 1 || len(rule.From) == 0) {
			t.Errorf("%s: the admin port is opened with %v to %v, want alone and to named admins", ko.where[np], ports, rule.From)
		}
	}
	for _, p := range []int32{grpcPort, httpPort, 8182} {
		if opened[p] != 1 {
			t.Errorf("%s: port %d opened by %d rules, want 1", ko.where[np], p, opened[p])
		}
	}
}

// checkPDB: a PodDisruptionBudget for the pool only, selecting its pods
// and leaving room to drain a node.
func checkPDB(t *testing.T, ko *kubeObjects, w workload, want bool, replicas int32) {
	t.Helper()
	pdbs := all[*policyv1.PodDisruptionBudget](ko)
	if !want {
		if len(pdbs) != 0 {
			t.Errorf("%d PodDisruptionBudgets, want none outside the pool shape", len(pdbs))
		}
		return
	}
	if len(pdbs) != 1 {
		t.Fatalf("%d PodDisruptionBudgets, want 1", len(pdbs))
	}
	p := pdbs[0]
	sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
	if err != nil || sel.Empty() || p.Namespace != w.namespace || !sel.Matches(labels.Set(w.pod.Labels)) {
		t.Errorf("%s: selector %v does not select the pods of %s (%v)", ko.where[p], p.Spec.Selector, w.where, err)
	}
	if p.Spec.MinAvailable == nil || p.Spec.MinAvailable.IntVal < 1 || p.Spec.MinAvailable.IntVal >= replicas {
		t.Errorf("%s: minAvailable %v, want between 1 and %d", ko.where[p], p.Spec.MinAvailable, replicas-1)
	}
}

// checkServiceMonitor: when enabled, it selects the checks Service alone
// and scrapes /metrics on its HTTP port.
func checkServiceMonitor(t *testing.T, ko *kubeObjects, want bool) {
	t.Helper()
	sms := all[*serviceMonitor](ko)
	if !want {
		if len(sms) != 0 {
			t.Errorf("%d ServiceMonitors, want none unless enabled", len(sms))
		}
		return
	}
	if len(sms) != 1 {
		t.Fatalf("%d ServiceMonitors, want 1", len(sms))
	}
	sm := sms[0]
	if sm.Labels["release"] != "prometheus" {
		t.Errorf("%s: labels %v lack serviceMonitor.labels", ko.where[sm], sm.Labels)
	}
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil || sel.Empty() {
		t.Fatalf("%s: selector %v (%v)", ko.where[sm], sm.Spec.Selector, err)
	}
	var selected []*corev1.Service
	for _, s := range ko.services() {
		if s.Namespace == sm.Namespace && sel.Matches(labels.Set(s.Labels)) {
			selected = append(selected, s)
		}
	}
	if len(selected) != 1 || !servicePort(selected[0], httpPort) {
		t.Fatalf("%s: selects %d Services, want the checks Service alone", ko.where[sm], len(selected))
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("%s: %d endpoints, want 1", ko.where[sm], len(sm.Spec.Endpoints))
	}
	ep := sm.Spec.Endpoints[0]
	var port *corev1.ServicePort
	for i, p := range selected[0].Spec.Ports {
		if p.Name == ep.Port {
			port = &selected[0].Spec.Ports[i]
		}
	}
	if port == nil || port.Port != httpPort || ep.Path != "/metrics" {
		t.Errorf("%s: scrapes %s on port %q, want /metrics on the Service's HTTP port", ko.where[sm], ep.Path, ep.Port)
	}
}

// TestChartRefuses: values that would deploy a jwtguard that cannot
// start, or one less safe than asked, fail at render time.
func TestChartRefuses(t *testing.T) {
	const ok = "admin: {token: " + testAdminToken + "}\nredis: {url: '" + testRedisURL + "'}\n" + chartIssuers
	for _, tc := range []struct{ name, values, want string }{
		{"no admin token", "redis: {url: '" + testRedisURL + "'}\n" + chartIssuers, "admin: set exactly one"},
		{"two admin tokens", "admin: {token: " + testAdminToken + ", existingSecret: x}\nredis: {url: '" + testRedisURL + "'}\n" + chartIssuers, "admin: set exactly one"},
		{"two sources", "admin: {token: " + testAdminToken + "}\nredis: {url: '" + testRedisURL + "', existingSecret: x}\n" + chartIssuers, "redis: set exactly one"},
		{"short admin token", "admin: {token: short}\nredis: {url: '" + testRedisURL + "'}\n" + chartIssuers, "shorter than 16"},
		{"no source", "admin: {token: " + testAdminToken + "}\n" + chartIssuers, "redis: set exactly one"},
		{"not a redis URL", "admin: {token: " + testAdminToken + "}\nredis: {url: 'http://redis:6379'}\n" + chartIssuers, "redis.url"},
		{"no issuer", "admin: {token: " + testAdminToken + "}\nredis: {url: '" + testRedisURL + "'}\n", "config.issuers"},
		{"source in the config", ok + "  source: embedded\n", "config.source"},
		{"listener in the config", ok + "  admin-addr: 127.0.0.1:8182\n", "config.admin-addr"},
		{"unknown shape", ok + "shape: sidecar\n", "shape"},
		{"misspelt value", ok + "serviceMonitor: {enable: true}\n", "enable"},
		{"misspelt top-level value", ok + "shpe: pool\n", "shpe"},
		{"pool that cannot drain", ok + "shape: pool\npool: {replicas: 2, minAvailable: 2}\n", "pool.minAvailable"},
		{"admin API open to all", ok + "networkPolicy: {admins: []}\n", "networkPolicy.admins"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderChart(t, "jwtguard", "auth", tc.values)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render: %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// TestImageNames: the chart, every example manifest and the README name
// one image, imageRepository tagged with the chart's appVersion.
func TestImageNames(t *testing.T) {
	ch := loadChart(t)
	img, _ := ch.Values["image"].(map[string]any)
	if img["repository"] != imageRepository || img["tag"] != "" {
		t.Errorf("chart values image %v, want repository %s and the appVersion as tag", img, imageRepository)
	}
	var files []string
	for _, dir := range []string{"kubernetes", "istio"} {
		files = append(files, kubeFiles(t, dir)...)
	}
	sort.Strings(files)
	seen := 0
	for _, f := range files {
		if strings.HasSuffix(f, "authorizationpolicy.yaml") || strings.HasSuffix(f, "meshconfig.yaml") || strings.HasSuffix(f, "revocation-only.yaml") {
			continue // Istio's own kinds and jwtguard's file, checked by istio_test.go and revocation_only_test.go
		}
		for _, w := range loadKube(t, f).workloads() {
			if c := jwtguardContainer(w); c != nil {
				seen++
				if c.Image != imageRef(t) {
					t.Errorf("%s: image %s, want %s", w.where, c.Image, imageRef(t))
				}
			}
		}
	}
	if seen < 3 {
		t.Errorf("%d jwtguard containers in the examples, want the three shapes", seen)
	}
	if readme := string(readExample(t, "../README.md")); !strings.Contains(readme, imageRef(t)) {
		t.Errorf("README.md does not name the image %s", imageRef(t))
	}
}
