package redis

// The mesh scale run of bench/SCALE.md: many in-process followers, each a
// real source.Follower with its own Source (its own connection pool) and
// its own revocation state, on one real redis-server or a real three-master
// Redis Cluster. Sizes come from environment variables and default small,
// so that the test command's single run (-benchtime 1x) takes seconds:
//
//	JWTGUARD_MESH_FOLLOWERS     followers (default 10)
//	JWTGUARD_MESH_REVOCATIONS   revocations written (default 50)
//	JWTGUARD_MESH_RATE          revocations per second, in a Put every 10 ms
//	                            (every 1/rate below 100/s) (default 100)
//	JWTGUARD_MESH_IDLE          idle window measured, e.g. 60s (default 1s)
//	JWTGUARD_MESH_MASS          records of a mass revocation written after,
//	                            in Puts of MaxBatch, four at a time, as
//	                            revoke --from-file (default 0)
//	JWTGUARD_MESH_PUBLISH       1: a Publisher (the lease holder's, follower
//	                            0 its node) runs from the mass revocation on,
//	                            so that followers far behind load its
//	                            snapshot (default 0: they read the whole feed)
//	JWTGUARD_MESH_CLUSTER       1: a three-master Redis Cluster
//	JWTGUARD_MESH_PROCS         N: the followers run in N child processes
//	                            (the benchmark's binary run again as
//	                            TestMeshFollowers), apart from the writer,
//	                            so that neither the writer nor the arrival
//	                            times wait in one scheduler's queue behind
//	                            all the followers (default 0: all in this
//	                            process; not with JWTGUARD_MESH_MASS)
//
// The harness runs in the benchmark's processes and Redis in its own: their
// CPU is told apart by reading Redis's from INFO cpu (used_cpu_sys and
// used_cpu_user of the redis-server process) and the harness's from
// getrusage (of each child process too), over the same window.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/redis/redistest"
	"github.com/jwtguard/jwtguard/sync/source"
)

// envInt returns the integer in environment variable name, or def.
func envInt(b testing.TB, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a count", name, v)
	}
	return n
}

// envDuration returns the duration in environment variable name, or def.
func envDuration(b testing.TB, name string, def time.Duration) time.Duration {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a duration such as 60s", name, v)
	}
	return d
}

// redisNodes is where a mesh run's Redis lives: one server, or the masters
// of a cluster; Options selects it for a Source.
type redisNodes struct {
	url     string
	cluster []string
	clients []*goredis.Client // one per server, for INFO
}

func (n redisNodes) open(b testing.TB, ctx context.Context) *Source {
	b.Helper()
	s, err := Open(ctx, n.url, Options{ClusterAddrs: n.cluster})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// info sums an INFO field over the servers.
func (n redisNodes) info(b testing.TB, section, field string) float64 {
	b.Helper()
	var sum float64
	for _, c := range n.clients {
		info, err := c.Info(context.Background(), section).Result()
		if err != nil {
			b.Fatal(err)
		}
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					b.Fatalf("INFO %s: %q", field, v)
				}
				sum += f
			}
		}
	}
	return sum
}

// redisCPU is the CPU time the servers have used, in seconds.
func (n redisNodes) redisCPU(b testing.TB) float64 {
	return n.info(b, "cpu", "used_cpu_sys") + n.info(b, "cpu", "used_cpu_user")
}

// calls sums the calls of each command (INFO commandstats) over the servers.
func (n redisNodes) calls(b *testing.B) map[string]int {
	b.Helper()
	out := map[string]int{}
	for _, c := range n.clients {
		for k, v := range commandCalls(b, c) {
			out[k] += v
		}
	}
	return out
}

// startRedis starts one redis-server, or three clustered masters.
func startRedis(b *testing.B, cluster bool) redisNodes {
	b.Helper()
	// Room for thousands of clients; the default maxclients is 10000.
	args := []redistest.Option{redistest.Args("--maxclients", "20000")}
	if !cluster {
		srv := redistest.Start(b, args...)
		c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
		b.Cleanup(func() { c.Close() })
		return redisNodes{url: srv.URL(), clients: []*goredis.Client{c}}
	}
	var n redisNodes
	for range 3 {
		srv := redistest.Start(b, append(args, redistest.Args("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"))...)
		n.cluster = append(n.cluster, srv.Addr())
		c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
		b.Cleanup(func() { c.Close() })
		n.clients = append(n.clients, c)
	}
	cli := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput()
		if err != nil {
			b.Fatalf("redis-cli %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	cli(append(append([]string{"--cluster", "create"}, n.cluster...), "--cluster-replicas", "0", "--cluster-yes")...)
	for _, addr := range n.cluster {
		host, port, _ := net.SplitHostPort(addr)
		waitFor(b, 30*time.Second, "cluster_state:ok on "+addr, func() bool {
			return strings.Contains(cli("-h", host, "-p", port, "cluster", "info"), "cluster_state:ok")
		})
	}
	return n
}

// selfCPU is the CPU time this process has used, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// window measures Redis's CPU, the harness's CPU and Redis's commands over
// a stretch of a run.
type window struct {
	start              time.Time
	redisCPU, selfCPU  float64
	calls              map[string]int
	totalCommands      float64
	connectionsStarted float64
	netOut             float64
}

func openWindow(b *testing.B, n redisNodes) window {
	return window{
		start: time.Now(), redisCPU: n.redisCPU(b), selfCPU: selfCPU(), calls: n.calls(b),
		totalCommands:      n.info(b, "stats", "total_commands_processed"),
		connectionsStarted: n.info(b, "stats", "total_connections_received"),
		netOut:             n.info(b, "stats", "total_net_output_bytes"),
	}
}

// closeWindow logs and returns what happened since w opened.
func (w window) close(b *testing.B, n redisNodes, what string) (secs, redisCPU, harnessCPU float64, calls map[string]int, cmds, conns float64) {
	secs = time.Since(w.start).Seconds()
	redisCPU = n.redisCPU(b) - w.redisCPU
	harnessCPU = selfCPU() - w.selfCPU
	calls, _ = diffCalls(w.calls, n.calls(b))
	cmds = n.info(b, "stats", "total_commands_processed") - w.totalCommands
	conns = n.info(b, "stats", "total_connections_received") - w.connectionsStarted
	out := n.info(b, "stats", "total_net_output_bytes") - w.netOut
	b.Logf("%s: %.1fs, Redis CPU %.1f%% of a core (%.1fs), harness CPU %.1f%% (%.1fs), %0.f commands (%v), %0.f connections, Redis sent %.1f MiB",
		what, secs, 100*redisCPU/secs, redisCPU, 100*harnessCPU/secs, harnessCPU, cmds, calls, conns, out/(1<<20))
	return
}

// timedSource is a follower's source that notes when each record reaches
// the follower (which applies it at once, in memory).
type timedSource struct {
	*Source
	got func(recs []authz.Record, at time.Time)
}

func (t *timedSource) Feed(ctx context.Context, after uint64, limit int) ([]authz.Record, error) {
	recs, err := t.Source.Feed(ctx, after, limit)
	if len(recs) > 0 {
		t.got(recs, time.Now())
	}
	return recs, err
}

// BenchmarkMeshScale: followers, idle then under revocations at a rate;
// see the top of this file and bench/SCALE.md.
func BenchmarkMeshScale(b *testing.B) {
	followers := envInt(b, "JWTGUARD_MESH_FOLLOWERS", 10)
	revocations := envInt(b, "JWTGUARD_MESH_REVOCATIONS", 50)
	rate := envInt(b, "JWTGUARD_MESH_RATE", 100)
	idle := envDuration(b, "JWTGUARD_MESH_IDLE", time.Second)
	mass := envInt(b, "JWTGUARD_MESH_MASS", 0)
	cluster := os.Getenv("JWTGUARD_MESH_CLUSTER") == "1"
	publish := os.Getenv("JWTGUARD_MESH_PUBLISH") == "1"
	procs := envInt(b, "JWTGUARD_MESH_PROCS", 0)
	if rate < 1 || followers < 1 {
		b.Fatal("JWTGUARD_MESH_RATE and JWTGUARD_MESH_FOLLOWERS must be at least 1")
	}
	if procs > 0 && (mass > 0 || procs > followers) {
		b.Fatal("JWTGUARD_MESH_PROCS: at most one a follower, and not with JWTGUARD_MESH_MASS")
	}
	for b.Loop() {
		meshRun(b, followers, revocations, rate, idle, mass, cluster, publish, procs)
	}
}

// meshFollowers starts n followers on nodes, each noting in arrived[f][i]
// when revocation i ("mesh-i") reached follower f (unix ns); stop ends
// them.
func meshFollowers(tb testing.TB, ctx context.Context, nodes redisNodes, n, revocations int, cfg bloom.Config) (fols []*source.Follower, revs []*authz.Revocations, arrived [][]int64, stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	fols = make([]*source.Follower, n)
	revs = make([]*authz.Revocations, n)
	arrived = make([][]int64, n)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for f := range n {
		arrived[f] = make([]int64, revocations)
		src := &timedSource{Source: nodes.open(tb, ctx), got: func(recs []authz.Record, at time.Time) {
			for _, r := range recs {
				if i, ok := strings.CutPrefix(r.Value, "mesh-"); ok {
					if n, err := strconv.Atoi(i); err == nil && n < revocations {
						arrived[f][n] = at.UnixNano()
					}
				}
			}
		}}
		filter, err := bloom.New(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		rev, err := authz.NewRevocations(filter, src, authz.DefaultRevocationConfig())
		if err != nil {
			tb.Fatal(err)
		}
		fcfg := source.DefaultFollowerConfig()
		fcfg.Bloom = cfg
		fols[f], revs[f] = source.NewFollower(src, rev, fcfg, quiet), rev
		if err := fols[f].Start(ctx); err != nil {
			tb.Fatal(err)
		}
		wg.Go(func() { fols[f].Run(ctx) })
	}
	return fols, revs, arrived, func() { cancel(); wg.Wait() }
}

// meshBloom is the followers' filter configuration.
func meshBloom(mass, revocations int) bloom.Config {
	return bloom.Config{Entries: uint(max(100_000, 2*mass)), FPRate: 0.001, DeltaEntries: uint(max(10_000, mass+revocations+16))}
}

func meshRun(b *testing.B, followers, revocations, rate int, idle time.Duration, mass int, cluster, publish bool, procs int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nodes := startRedis(b, cluster)
	writer := nodes.open(b, ctx)
	put(b, writer, token("https://idp", "warm", time.Hour)) // the epoch

	// sent[i] is when revocation i was written (unix ns); arrived[f][i]
	// when follower f received it.
	sent := make([]atomic.Int64, revocations)
	cfg := meshBloom(mass, revocations)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := time.Now()
	var (
		fols     []*source.Follower
		revs     []*authz.Revocations
		arrived  [][]int64
		children []*meshChild
	)
	if procs == 0 {
		var stop func()
		fols, revs, arrived, stop = meshFollowers(b, ctx, nodes, followers, revocations, cfg)
		defer stop()
	} else {
		for c := range procs {
			children = append(children, startMeshChild(b, nodes, followers*(c+1)/procs-followers*c/procs, revocations))
		}
		for _, c := range children {
			c.expect(b, time.Minute, "ready")
		}
	}
	b.Logf("%d followers started in %v (child processes: %d, cluster: %v)", followers, time.Since(start).Round(time.Millisecond), procs, cluster)
	waitFor(b, time.Minute, "every follower blocks in XREAD", func() bool {
		return int(nodes.info(b, "clients", "blocked_clients")) >= followers
	})

	b.ReportMetric(nodes.info(b, "memory", "mem_clients_normal")/float64(followers), "redis-client-bytes/follower")
	b.ReportMetric(nodes.info(b, "clients", "connected_clients"), "redis-connections")

	// Idle.
	w := openWindow(b, nodes)
	time.Sleep(idle) // the window measured, not a synchronisation
	secs, rcpu, _, idleCalls, _, conns := w.close(b, nodes, "idle")
	idleCmds := 0
	for _, n := range idleCalls {
		idleCmds += n
	}
	b.ReportMetric(float64(idleCmds)/secs/float64(followers), "idle-cmds/s/follower")
	b.ReportMetric(100*rcpu/secs, "idle-redis-cpu-%")
	b.ReportMetric(conns, "idle-redials")

	// Revocations at rate: a Put every 10 ms (every 1/rate when slower)
	// of the revocations due, as a busy writer batches them.
	w = openWindow(b, nodes)
	var childCPU float64
	for _, c := range children {
		c.send(b, "go")
		childCPU -= c.cpu(b)
	}
	perPut := max(1, rate/100)
	tick := time.NewTicker(time.Second * time.Duration(perPut) / time.Duration(rate))
	writeStart := time.Now()
	batch := make([]authz.Record, 0, perPut)
	for i := 0; i < revocations; i += perPut {
		<-tick.C
		batch = batch[:0]
		now := time.Now().UnixNano()
		for j := i; j < min(i+perPut, revocations); j++ {
			sent[j].Store(now)
			batch = append(batch, token("https://idp", fmt.Sprint("mesh-", j), time.Hour))
		}
		if _, err := writer.Put(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	tick.Stop()
	// Below rate when Puts take longer than a tick (the ticker drops ticks).
	b.ReportMetric(float64(revocations)/time.Since(writeStart).Seconds(), "written/s")
	last := func() bool {
		for _, f := range fols {
			if f.Position() < uint64(revocations)+1 {
				return false
			}
		}
		return true
	}
	if procs == 0 {
		waitFor(b, 5*time.Minute, "every follower applies every revocation", last)
	}
	for _, c := range children {
		childCPU += c.cpu(b)
		arrived = append(arrived, c.arrivals(b)...)
	}
	secs, rcpu, hcpu, calls, cmds, _ := w.close(b, nodes, fmt.Sprintf("%d revocations at %d/s", revocations, rate))
	hcpu += childCPU
	b.Logf("harness CPU with the child processes: %.1fs (%.1f%% of a core)", hcpu, 100*hcpu/secs)
	var pairs, all []time.Duration
	for i := range revocations {
		worst := time.Duration(0)
		for f := range followers {
			d := time.Duration(arrived[f][i] - sent[i].Load())
			pairs = append(pairs, d)
			worst = max(worst, d)
		}
		all = append(all, worst)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(percentile(pairs, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(pairs, 0.99)), "p99-ms")
	b.ReportMetric(ms(slices.Max(pairs)), "max-ms")
	b.ReportMetric(ms(percentile(all, 0.50)), "all-p50-ms")
	b.ReportMetric(ms(percentile(all, 0.99)), "all-p99-ms")
	b.ReportMetric(100*rcpu/secs, "load-redis-cpu-%")
	b.ReportMetric(100*hcpu/secs, "load-harness-cpu-%")
	b.ReportMetric(1e6*hcpu/float64(revocations*followers), "harness-µs/delivery")
	b.ReportMetric(1e6*rcpu/float64(revocations*followers), "redis-µs/delivery")
	// The followers' commands: all but the writer's scripts (and the
	// commands they run: 3 GETs, SET, ZADD... per record).
	puts := (revocations + perPut - 1) / perPut
	fcmds := calls["xread"] + calls["mget"] + calls["zcount"] + calls["xrange"] + calls["zscan"] + calls["get"] - 3*puts
	b.ReportMetric(float64(fcmds)/float64(revocations*followers), "cmds/revocation/follower")
	b.ReportMetric(cmds/secs, "load-redis-cmds/s")

	if mass == 0 {
		return
	}
	// A mass revocation: mass records in Puts of MaxBatch, four at a time,
	// as revoke --from-file sends them.
	const senders = 4
	writers := []*Source{writer}
	for len(writers) < senders {
		writers = append(writers, nodes.open(b, ctx))
	}
	var pwg sync.WaitGroup
	defer func() { cancel(); pwg.Wait() }()
	if publish {
		// The lease holder is a node: follower 0's filter.
		pub, err := NewPublisher(writers[0], PublisherConfig{Bloom: cfg, Log: quiet, Filter: revs[0].Filter})
		if err != nil {
			b.Fatal(err)
		}
		pwg.Go(func() { pub.Run(ctx) })
	}
	w = openWindow(b, nodes)
	first := time.Now()
	next := make(chan int)
	var top atomic.Uint64
	var swg sync.WaitGroup
	errs := make(chan error, senders)
	for _, wr := range writers {
		swg.Go(func() {
			for i := range next {
				recs := make([]authz.Record, 0, MaxBatch)
				for j := i; j < min(i+MaxBatch, mass); j++ {
					recs = append(recs, token("https://idp", fmt.Sprintf("mass-%031x", uint64(j)*0x9E3779B97F4A7C15), time.Hour))
				}
				stored, err := wr.Put(ctx, recs)
				if err != nil {
					errs <- err
					return
				}
				for p := stored[len(stored)-1].Position; ; {
					t := top.Load()
					if p <= t || top.CompareAndSwap(t, p) {
						break
					}
				}
			}
		})
	}
	for i := 0; i < mass; i += MaxBatch {
		select {
		case next <- i:
		case err := <-errs:
			b.Fatal(err)
		}
	}
	close(next)
	swg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	written := time.Since(first)
	writeCPU := nodes.redisCPU(b) - w.redisCPU
	waitFor(b, 10*time.Minute, "every follower applies the mass revocation", func() bool {
		for f := range followers {
			if fols[f].Position() < top.Load() {
				return false
			}
		}
		return true
	})
	enforced := time.Since(first)
	out := nodes.info(b, "stats", "total_net_output_bytes") - w.netOut
	_, massCPU, _, _, _, _ := w.close(b, nodes, fmt.Sprintf("mass revocation of %d records", mass))
	var skips uint64
	for _, f := range fols {
		skips += f.Skips() + f.Reloads()
	}
	b.Logf("mass revocation: written in %v (Redis CPU %.1fs meanwhile), every follower enforcing the last record %v after the first write; %d snapshot loads",
		written.Round(time.Millisecond), writeCPU, enforced.Round(time.Millisecond), skips)
	b.ReportMetric(float64(mass)/written.Seconds(), "mass-records/s")
	b.ReportMetric(enforced.Seconds(), "mass-enforced-s")
	b.ReportMetric(1e6*massCPU/float64(mass), "mass-redis-µs/record")
	b.ReportMetric(out/float64(mass)/float64(followers), "mass-bytes/record/follower")
	b.ReportMetric(nodes.info(b, "memory", "used_memory")/float64(mass+revocations+1), "redis-bytes/record")
}

// meshChild is a child process running some of a mesh run's followers
// (TestMeshFollowers), driven over its standard input and output, one line
// at a time: it says "ready" once its followers have started, answers "go"
// with its CPU time so far ("cpu S"), and, once every follower has every
// revocation, says its CPU time again, then "arrived T0 T1 ..." for each
// follower and "done". It ends when its input closes.
type meshChild struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

// The child's environment: what to follow and how many followers.
const (
	meshChildURL       = "JWTGUARD_MESH_CHILD_URL"
	meshChildCluster   = "JWTGUARD_MESH_CHILD_CLUSTER"
	meshChildFollowers = "JWTGUARD_MESH_CHILD_FOLLOWERS"
)

func startMeshChild(b *testing.B, nodes redisNodes, followers, revocations int) *meshChild {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMeshFollowers$", "-test.count=1", "-test.timeout=30m")
	cmd.Env = append(os.Environ(), meshChildURL+"="+nodes.url, meshChildCluster+"="+strings.Join(nodes.cluster, ","),
		meshChildFollowers+"="+strconv.Itoa(followers), "JWTGUARD_MESH_REVOCATIONS="+strconv.Itoa(revocations))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &meshChild{cmd: cmd, in: in, lines: make(chan string, 16)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	b.Cleanup(func() {
		in.Close()
		if b.Failed() {
			_ = cmd.Process.Kill() // it may be waiting for revocations that never come
		}
		if err := cmd.Wait(); err != nil && !b.Failed() {
			b.Errorf("mesh child: %v", err)
		}
	})
	return c
}

// next returns the child's next line of the protocol (other output, such
// as the test framework's, is skipped).
func (c *meshChild) next(b *testing.B, within time.Duration) string {
	b.Helper()
	timeout := time.After(within)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				b.Fatal("mesh child ended early")
			}
			if k, _, _ := strings.Cut(l, " "); k == "ready" || k == "cpu" || k == "arrived" || k == "done" {
				return l
			}
		case <-timeout:
			b.Fatalf("mesh child silent for %v", within)
		}
	}
}

func (c *meshChild) expect(b *testing.B, within time.Duration, want string) {
	b.Helper()
	if l := c.next(b, within); l != want {
		b.Fatalf("mesh child said %q, want %q", l, want)
	}
}

func (c *meshChild) send(b *testing.B, l string) {
	b.Helper()
	if _, err := io.WriteString(c.in, l+"\n"); err != nil {
		b.Fatal(err)
	}
}

// cpu reads the child's CPU time line, in seconds.
func (c *meshChild) cpu(b *testing.B) float64 {
	b.Helper()
	l := c.next(b, 6*time.Minute)
	v, ok := strings.CutPrefix(l, "cpu ")
	secs, err := strconv.ParseFloat(v, 64)
	if !ok || err != nil {
		b.Fatalf("mesh child said %q, want its CPU time", l)
	}
	return secs
}

// arrivals reads the child's arrival times, up to "done".
func (c *meshChild) arrivals(b *testing.B) [][]int64 {
	b.Helper()
	var out [][]int64
	for {
		l := c.next(b, time.Minute)
		if l == "done" {
			return out
		}
		fields, ok := strings.CutPrefix(l, "arrived ")
		if !ok {
			b.Fatalf("mesh child said %q, want arrival times", l)
		}
		var row []int64
		for v := range strings.FieldsSeq(fields) {
			t, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatalf("mesh child arrival %q: %v", v, err)
			}
			row = append(row, t)
		}
		out = append(out, row)
	}
}

// TestMeshFollowers is the child process of a mesh run with
// JWTGUARD_MESH_PROCS (see meshChild); without its environment it is
// skipped.
func TestMeshFollowers(t *testing.T) {
	url := os.Getenv(meshChildURL)
	if url == "" {
		t.Skip("a child process of BenchmarkMeshScale")
	}
	var cluster []string
	if c := os.Getenv(meshChildCluster); c != "" {
		cluster = strings.Split(c, ",")
	}
	followers := envInt(t, meshChildFollowers, 1)
	revocations := envInt(t, "JWTGUARD_MESH_REVOCATIONS", 50)
	nodes := redisNodes{url: url, cluster: cluster}
	fols, _, arrived, stop := meshFollowers(t, context.Background(), nodes, followers, revocations, meshBloom(0, revocations))
	defer stop()
	in := bufio.NewScanner(os.Stdin)
	fmt.Println("ready")
	if !in.Scan() || in.Text() != "go" {
		t.Fatalf("want go, got %q (%v)", in.Text(), in.Err())
	}
	fmt.Printf("cpu %f\n", selfCPU())
	waitFor(t, 5*time.Minute, "every follower applies every revocation", func() bool {
		for _, f := range fols {
			if f.Position() < uint64(revocations)+1 {
				return false
			}
		}
		return true
	})
	fmt.Printf("cpu %f\n", selfCPU())
	w := bufio.NewWriter(os.Stdout)
	for _, row := range arrived {
		w.WriteString("arrived")
		for _, t := range row {
			w.WriteString(" " + strconv.FormatInt(t, 10))
		}
		w.WriteString("\n")
	}
	w.WriteString("done\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	for in.Scan() { // until the benchmark closes the input
	}
}
