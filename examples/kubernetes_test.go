package examples

import (
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jwtguard/jwtguard/cmd/jwtguard/node"
	corev1 "k8s.io/api/core/v1"
)

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
	// The file as jwtguard itself reads it: unknown keys, bad values and
	// incomplete issuers are refused by the real loader.
	file := filepath.Join(t.TempDir(), filepath.Base(configPath))
	if err := os.WriteFile(file, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg, err := node.Load([]string{"--config", file}, func(string) string { return "" }, fs)
	if err != nil {
		t.Fatalf("config file %s: %v", configPath, err)
	}
	t.Run("issuers", func(t *testing.T) {
		for i, is := range cfg.Authz.Issuers {
			if len(is.Audiences) == 0 || (is.JWKSURL == "") == (is.JWKSFile == "") {
				t.Errorf("issuers[%d] %+v: want audiences and one of jwks-url, jwks-file", i, is)
			}
		}
	})
	str := func(key string) string {
		return map[string]string{
			"grpc-addr": cfg.GRPCAddr, "http-addr": cfg.HTTPAddr, "admin-addr": cfg.AdminAddr,
			"admin-token-file": cfg.AdminTokenFile, "source": cfg.Source,
		}[key]
	}

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
