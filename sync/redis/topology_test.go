package redis

import (
	"context"
	"fmt"
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
	host, port, _ := net.SplitHostPort(addrs[0])
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(redisCLI(t, "-h", host, "-p", port, "cluster", "info"), "cluster_state:ok"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the cluster did not reach cluster_state:ok within 15s")
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
