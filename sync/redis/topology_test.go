package redis

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/redis/redistest"
)

// exercise runs what a node and the admin side do against s: writes, the
// feed, exact lookups, a published snapshot and stats.
func exercise(t *testing.T, s *Source) {
	t.Helper()
	ctx := ctxT(t)
	stored := put(t, s, tokens("topo", 3)...)
	recs, err := s.Feed(ctx, 0, 10)
	if err != nil || len(recs) != 3 || recs[2].Position != stored[2].Position {
		t.Fatalf("Feed: %d records, %v", len(recs), err)
	}
	got, err := s.Lookup(ctx, stored[1].LookupKey())
	if err != nil || len(got) != 1 || got[0].ID != stored[1].ID {
		t.Fatalf("Lookup: %v %v", got, err)
	}
	cfg := bloom.Config{Entries: 1000, FPRate: 0.001, DeltaEntries: 100}
	if err := s.Publish(ctx, cfg); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	f, err := s.Snapshot(ctx, cfg)
	if err != nil || f.Position() != stored[2].Position || !f.MayContain(stored[0].LookupKey().FilterKey()) {
		t.Fatalf("Snapshot: %v", err)
	}
	if st, err := s.Stats(ctx); err != nil || st.Records != 3 {
		t.Fatalf("Stats: %+v %v", st, err)
	}
}

func redisCLI(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestRedisCluster runs the source on a real three-master Redis Cluster:
// every key shares the prefix's hash tag, so scripts and pipelines stay on
// one slot.
func TestRedisCluster(t *testing.T) {
	var addrs []string
	for i := 0; i < 3; i++ {
		srv := redistest.Start(t, redistest.Args("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"))
		addrs = append(addrs, srv.Addr())
	}
	redisCLI(t, append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...)
	// Every node must see the cluster ok: one that does not yet answers
	// CLUSTERDOWN to the commands routed to it.
	for _, addr := range addrs {
		host, port, _ := net.SplitHostPort(addr)
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(redisCLI(t, "-h", host, "-p", port, "cluster", "info"), "cluster_state:ok"); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s did not reach cluster_state:ok within 30s", addr)
			}
		}
	}
	s, err := Open(ctxT(t), "", Options{ClusterAddrs: addrs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	exercise(t, s)
}

// TestRedisSentinel runs the source through a real Sentinel watching the
// master.
func TestRedisSentinel(t *testing.T) {
	master := redistest.Start(t)
	host, mport, _ := net.SplitHostPort(master.Addr())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sport := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor main %s %s 1\nsentinel down-after-milliseconds main 2000\n", sport, dir, host, mport)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not found on PATH; install it: apt-get install -y redis-server")
	}
	cmd := exec.Command(bin, conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sentinel := net.JoinHostPort("127.0.0.1", strconv.Itoa(sport))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, _ := exec.Command("redis-cli", "-p", strconv.Itoa(sport), "sentinel", "get-master-addr-by-name", "main").Output()
		if strings.Contains(string(out), mport) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel on %s does not know the master: %s", sentinel, out)
		}
	}
	s, err := Open(ctxT(t), "", Options{SentinelMaster: "main", SentinelAddrs: []string{sentinel}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	exercise(t, s)
}

// TestRedisTLSAndACL runs the source over TLS (rediss://) as an ACL user
// named in the URL, on a Redis whose default user is off: the password is
// taken from the URL, and a wrong one is refused.
func TestRedisTLSAndACL(t *testing.T) {
	dir := t.TempDir()
	caPEM, certPEM, keyPEM := testCertificates(t)
	for name, b := range map[string][]byte{"ca.pem": caPEM, "redis.pem": certPEM, "redis.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not found on PATH; install it: apt-get install -y redis-server")
	}
	cmd := exec.Command(bin, "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--tls-cert-file", filepath.Join(dir, "redis.pem"),
		"--tls-key-file", filepath.Join(dir, "redis.key"), "--tls-ca-cert-file", filepath.Join(dir, "ca.pem"),
		"--tls-auth-clients", "no", "--user", "default", "off", "--user", "jwtguard", "on", ">s3cret-pass", "~*", "&*", "+@all")
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TLS redis-server did not listen within 10s:\n%s", log.String())
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tlsCfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if _, err := Open(ctxT(t), "rediss://jwtguard:wrong@"+addr+"/0", Options{TLS: tlsCfg}); err == nil {
		t.Fatal("a wrong ACL password was accepted")
	}
	s, err := Open(ctxT(t), "rediss://jwtguard:s3cret-pass@"+addr+"/0", Options{TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	exercise(t, s)
}

// testCertificates returns a CA and a server certificate for 127.0.0.1 it
// signed, in PEM.
func testCertificates(t *testing.T) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}
