package examples

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// kubeKinds maps apiVersion/kind to the k8s.io/api type a document decodes
// into. A kind missing here fails the test rather than going unchecked.
var kubeKinds = map[string]func() any{
	"apps/v1/Deployment":            func() any { return &appsv1.Deployment{} },
	"apps/v1/DaemonSet":             func() any { return &appsv1.DaemonSet{} },
	"v1/Service":                    func() any { return &corev1.Service{} },
	"v1/ConfigMap":                  func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                     func() any { return &corev1.Secret{} },
	"v1/ServiceAccount":             func() any { return &corev1.ServiceAccount{} },
	"policy/v1/PodDisruptionBudget": func() any { return &policyv1.PodDisruptionBudget{} },
}

// kubeObjects is every object of a set of manifests, decoded strictly.
type kubeObjects struct {
	objs  []any
	where map[any]string // object -> "file#index kind/name", for messages
}

// loadKube decodes every document of the manifests at paths into the type
// named by its apiVersion and kind, rejecting unknown fields.
func loadKube(t *testing.T, paths ...string) *kubeObjects {
	t.Helper()
	ko := &kubeObjects{where: map[any]string{}}
	for _, path := range paths {
		for i, doc := range yamlDocs(readExample(t, path)) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s#%d: %v", path, i, err)
			}
			newObj, ok := kubeKinds[tm.APIVersion+"/"+tm.Kind]
			if !ok {
				t.Fatalf("%s#%d: no schema for apiVersion %q kind %q", path, i, tm.APIVersion, tm.Kind)
			}
			obj := newObj()
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s#%d (%s): %v", path, i, tm.Kind, err)
			}
			ko.objs = append(ko.objs, obj)
			ko.where[obj] = fmt.Sprintf("%s#%d %s/%s", path, i, tm.Kind, obj.(metav1.Object).GetName())
		}
	}
	return ko
}

// kubeFiles lists the YAML files of an example folder.
func kubeFiles(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no YAML in %s: %v", dir, err)
	}
	return paths
}

// workload is a Deployment or DaemonSet seen through its pod template.
type workload struct {
	where     string
	namespace string
	selector  *metav1.LabelSelector
	pod       *corev1.PodTemplateSpec
}

func (ko *kubeObjects) workloads() []workload {
	var out []workload
	for _, o := range ko.objs {
		switch w := o.(type) {
		case *appsv1.Deployment:
			out = append(out, workload{ko.where[o], w.Namespace, w.Spec.Selector, &w.Spec.Template})
		case *appsv1.DaemonSet:
			out = append(out, workload{ko.where[o], w.Namespace, w.Spec.Selector, &w.Spec.Template})
		}
	}
	return out
}

func (ko *kubeObjects) services() []*corev1.Service {
	var out []*corev1.Service
	for _, o := range ko.objs {
		if s, ok := o.(*corev1.Service); ok {
			out = append(out, s)
		}
	}
	return out
}

// find returns the object of type T with that namespace and name, or nil.
func find[T metav1.Object](ko *kubeObjects, namespace, name string) T {
	var zero T
	for _, o := range ko.objs {
		if v, ok := o.(T); ok && v.GetNamespace() == namespace && v.GetName() == name {
			return v
		}
	}
	return zero
}

// checkWorkloads checks what every Deployment and DaemonSet must get right
// for Kubernetes to run it: its selector selects its own pods, every mount
// has a volume, and every ConfigMap or Secret volume exists in ko.
func checkWorkloads(t *testing.T, ko *kubeObjects) {
	t.Helper()
	for _, w := range ko.workloads() {
		sel, err := metav1.LabelSelectorAsSelector(w.selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(w.pod.Labels)) {
			t.Errorf("%s: selector %v does not select its pod labels %v (%v)", w.where, w.selector, w.pod.Labels, err)
		}
		volumes := map[string]corev1.Volume{}
		for _, v := range w.pod.Spec.Volumes {
			volumes[v.Name] = v
		}
		for _, c := range w.pod.Spec.Containers {
			for _, m := range c.VolumeMounts {
				for _, inner := range c.VolumeMounts {
					if v := volumes[m.Name]; (v.ConfigMap != nil || v.Secret != nil) &&
						strings.HasPrefix(inner.MountPath, strings.TrimSuffix(m.MountPath, "/")+"/") {
						t.Errorf("%s: container %s mounts %s inside the %s volume at %s; kubelet rewrites that directory on updates",
							w.where, c.Name, inner.MountPath, m.Name, m.MountPath)
					}
				}
				v, ok := volumes[m.Name]
				if !ok {
					t.Errorf("%s: container %s mounts undeclared volume %q", w.where, c.Name, m.Name)
					continue
				}
				switch {
				case v.ConfigMap != nil:
					if find[*corev1.ConfigMap](ko, w.namespace, v.ConfigMap.Name) == nil {
						t.Errorf("%s: volume %s: no ConfigMap %s/%s", w.where, v.Name, w.namespace, v.ConfigMap.Name)
					}
				case v.Secret != nil:
					if find[*corev1.Secret](ko, w.namespace, v.Secret.SecretName) == nil {
						t.Errorf("%s: volume %s: no Secret %s/%s", w.where, v.Name, w.namespace, v.Secret.SecretName)
					}
				}
			}
		}
	}
}

// checkServices checks that every Service selects pods of a workload in ko
// and that each named target port is a port those pods declare.
func checkServices(t *testing.T, ko *kubeObjects) {
	t.Helper()
	for _, s := range ko.services() {
		var backends []workload
		for _, w := range ko.workloads() {
			if w.namespace == s.Namespace && len(s.Spec.Selector) > 0 &&
				labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.pod.Labels)) {
				backends = append(backends, w)
			}
		}
		if len(backends) == 0 {
			t.Errorf("%s: selector %v matches no pods", ko.where[s], s.Spec.Selector)
			continue
		}
		for _, p := range s.Spec.Ports {
			for _, w := range backends {
				if !declaresPort(w.pod, p.TargetPort) {
					t.Errorf("%s: port %s targets %s, which %s does not declare", ko.where[s], p.Name, p.TargetPort.String(), w.where)
				}
			}
		}
	}
}

// declaresPort reports whether a container of pod declares the port, by
// name or number (an unset target port means the service port, checked
// by the caller's port list).
func declaresPort(pod *corev1.PodTemplateSpec, target intstr.IntOrString) bool {
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			if (target.Type == intstr.String && cp.Name == target.StrVal) ||
				(target.Type == intstr.Int && cp.ContainerPort == target.IntVal) {
				return true
			}
		}
	}
	return false
}

// jwtguardContainer is the container named jwtguard of a workload, or nil.
func jwtguardContainer(w workload) *corev1.Container {
	for i := range w.pod.Spec.Containers {
		if c := &w.pod.Spec.Containers[i]; c.Name == "jwtguard" {
			return c
		}
	}
	return nil
}

// checkJWTGuardContainer checks a jwtguard container against what
// `jwtguard serve` offers: the subcommand and its flags, the gRPC and HTTP
// ports, the health probes and the documented resource figures.
func checkJWTGuardContainer(t *testing.T, where string, c *corev1.Container) {
	t.Helper()
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Errorf("%s: args %v, want `serve` first", where, c.Args)
	}
	checkServeArgs(t, where, c.Args)
	var ports []int32
	for _, p := range c.Ports {
		ports = append(ports, p.ContainerPort)
	}
	for _, want := range []int32{grpcPort, httpPort} {
		if !slices.Contains(ports, want) {
			t.Errorf("%s: container ports %v lack %d", where, ports, want)
		}
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"liveness", c.LivenessProbe, healthzPath},
		{"readiness", c.ReadinessProbe, readyzPath},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s probe", where, p.name)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path || !probePortIs(c, g.Port, httpPort) {
			t.Errorf("%s: %s probe GET %s on %s, want %s on %d", where, p.name, g.Path, g.Port.String(), p.path, httpPort)
		}
	}
	for _, r := range []struct {
		got  string
		want string
		what string
	}{
		{c.Resources.Requests.Cpu().String(), "250m", "cpu request"},
		{c.Resources.Requests.Memory().String(), "128Mi", "memory request"},
		{c.Resources.Limits.Memory().String(), "512Mi", "memory limit"},
	} {
		if r.got != r.want {
			t.Errorf("%s: %s %s, want %s (the figure the README explains)", where, r.what, r.got, r.want)
		}
	}
}

// probePortIs reports whether a probe port (number or container port
// name) is port.
func probePortIs(c *corev1.Container, p intstr.IntOrString, port int32) bool {
	if p.Type == intstr.Int {
		return p.IntVal == port
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort == port
		}
	}
	return false
}

// argValue returns the value of --name=value in args, and whether it is set.
func argValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if flagName(a) != name {
			continue
		}
		if _, v, ok := strings.Cut(a, "="); ok {
			return v, true
		}
		if i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// servicePort reports whether Service s exposes port.
func servicePort(s *corev1.Service, port int32) bool {
	for _, p := range s.Spec.Ports {
		if p.Port == port {
			return true
		}
	}
	return false
}

// serviceDNS is the cluster DNS name of a Service.
func serviceDNS(s *corev1.Service) string {
	return s.Name + "." + s.Namespace + ".svc.cluster.local"
}

func TestKubeDecodeRejectsUnknownFields(t *testing.T) {
	doc := "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  internalTraficPolicy: Local\n"
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict([]byte(doc), kubeKinds[tm.APIVersion+"/"+tm.Kind]()); err == nil {
		t.Error("a misspelt field decoded without error")
	}
}
