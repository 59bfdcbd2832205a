package examples

import (
	"encoding/json"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// configIssuer mirrors one entry of the `issuers` list of a jwtguard
// --config file; decoding into it strictly catches a misspelt key.
type configIssuer struct {
	Issuer         string   `json:"issuer"`
	Audiences      []string `json:"audiences"`
	JWKSURL        string   `json:"jwks-url"`
	JWKSFile       string   `json:"jwks-file"`
	HMACSecretFile string   `json:"hmac-secret-file"`
	Algs           []string `json:"algs"`
	JWKSRefresh    string   `json:"jwks-refresh"`
	JWKSMinRefetch string   `json:"jwks-min-refetch"`
}

// mountedFile returns the content a container sees at file, served from a
// ConfigMap or Secret volume of ko, and whether one serves it.
func mountedFile(ko *kubeObjects, w workload, c *corev1.Container, file string) (string, bool) {
	volumes := map[string]corev1.Volume{}
	for _, v := range w.pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		v := volumes[m.Name]
		switch {
		case v.ConfigMap != nil:
			cm := find[*corev1.ConfigMap](ko, w.namespace, v.ConfigMap.Name)
			if cm == nil {
				return "", false
			}
			s, ok := cm.Data[itemKey(v.ConfigMap.Items, rel)]
			return s, ok
		case v.Secret != nil:
			sec := find[*corev1.Secret](ko, w.namespace, v.Secret.SecretName)
			if sec == nil {
				return "", false
			}
			key := itemKey(v.Secret.Items, rel)
			if s, ok := sec.StringData[key]; ok {
				return s, true
			}
			b, ok := sec.Data[key]
			return string(b), ok
		}
	}
	return "", false
}

// itemKey is the key a volume file comes from: its own name unless the
// volume maps keys to paths.
func itemKey(items []corev1.KeyToPath, rel string) string {
	for _, it := range items {
		if it.Path == rel {
			return it.Key
		}
	}
	if len(items) > 0 {
		return ""
	}
	return rel
}

// listenPort is the port of a listen address such as ":9191".
func listenPort(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	return int32(n)
}

func TestKubernetes(t *testing.T) {
	ko := loadKube(t, kubeFiles(t, "kubernetes")...)
	checkWorkloads(t, ko)
	checkServices(t, ko)

	var jw workload
	var c *corev1.Container
	for _, w := range ko.workloads() {
		if jc := jwtguardContainer(w); jc != nil {
			jw, c = w, jc
		}
	}
	if c == nil {
		t.Fatal("no workload with a container named jwtguard")
	}
	checkJWTGuardContainer(t, jw.where, c)

	configPath, ok := argValue(c.Args, "config")
	if !ok {
		t.Fatalf("%s: no --config in args %v", jw.where, c.Args)
	}
	raw, ok := mountedFile(ko, jw, c, configPath)
	if !ok {
		t.Fatalf("%s: --config %s is not a file of a mounted ConfigMap", jw.where, configPath)
	}
	var cfg map[string]json.RawMessage
	if err := decodeStrict(yamlJSON(t, configPath, []byte(raw)), &cfg); err != nil {
		t.Fatalf("config file: %v", err)
	}
	str := func(key string) string {
		t.Helper()
		var s string
		if v, ok := cfg[key]; ok {
			if err := json.Unmarshal(v, &s); err != nil {
				t.Errorf("config %s: %v", key, err)
			}
		}
		return s
	}

	t.Run("config keys", func(t *testing.T) {
		for key := range cfg {
			if key == "config" || (key != "issuers" && !slices.Contains(serveFlags(t), key)) {
				t.Errorf("config file key %q is no setting of jwtguard serve", key)
			}
		}
		var issuers []configIssuer
		if err := decodeStrict(cfg["issuers"], &issuers); err != nil {
			t.Fatalf("issuers: %v", err)
		}
		if len(issuers) == 0 {
			t.Fatal("no issuers")
		}
		for i, is := range issuers {
			if is.Issuer == "" || len(is.Audiences) == 0 || (is.JWKSURL == "") == (is.JWKSFile == "") {
				t.Errorf("issuers[%d] %+v: want an issuer, audiences and one of jwks-url, jwks-file", i, is)
			}
		}
	})

	t.Run("listeners", func(t *testing.T) {
		var declared []int32
		for _, p := range c.Ports {
			declared = append(declared, p.ContainerPort)
		}
		for _, key := range []string{"grpc-addr", "http-addr", "admin-addr"} {
			if p := listenPort(t, str(key)); !slices.Contains(declared, p) {
				t.Errorf("config %s %q: port %d is not a container port %v", key, str(key), p, declared)
			}
		}
		if want := []int32{grpcPort, httpPort}; listenPort(t, str("grpc-addr")) != want[0] || listenPort(t, str("http-addr")) != want[1] {
			t.Errorf("grpc-addr %q, http-addr %q: want ports %v", str("grpc-addr"), str("http-addr"), want)
		}
	})

	t.Run("admin token", func(t *testing.T) {
		host, _, _ := net.SplitHostPort(str("admin-addr"))
		if isLoopback(host) {
			t.Fatalf("admin-addr %q is loopback: no Service can reach the admin API", str("admin-addr"))
		}
		file := str("admin-token-file")
		if file == "" {
			t.Fatal("admin-addr is not loopback but no admin-token-file is set: jwtguard refuses to start")
		}
		if _, ok := mountedFile(ko, jw, c, file); !ok {
			t.Errorf("admin-token-file %s is not a key of a mounted Secret", file)
		}
	})

	t.Run("source", func(t *testing.T) {
		redis := find[*corev1.Service](ko, jw.namespace, "redis")
		if redis == nil || !servicePort(redis, 6379) {
			t.Fatal("no Service redis on port 6379 beside jwtguard")
		}
		if want := "redis://" + serviceDNS(redis) + ":6379/0"; str("source") != want {
			t.Errorf("source %q, want %q", str("source"), want)
		}
	})
}
