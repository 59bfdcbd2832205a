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
//	JWTGUARD_MESH_PUBLISH       1: a lease holder runs from the mass
//	                            revocation on, in a process of its own (this
//	                            test binary run again, TestMeshLeaseHolder):
//	                            a node following the feed and a Publisher
//	                            sending that node's filter, as a real lease
//	                            holder is a machine of its own; followers far
//	                            behind wait for and load its snapshot
//	                            (default 0: no snapshot is published, they
//	                            read the whole feed after SnapshotWait)
//	JWTGUARD_MESH_WAIT_LAG      N: the followers' FollowerConfig.WaitLag
//	                            (default: ReloadLag, 50,000; the runs of
//	                            bench/SCALE.md's "Mass revocation to 1,000
//	                            followers, measured" waited from 5,000)
//	JWTGUARD_MESH_CLUSTER       1: a three-master Redis Cluster
//	JWTGUARD_MESH_NICE          N: once Redis and the lease holder run, the
//	                            harness lowers its own threads' priority by N
//	                            (setpriority), so that on a shared machine
//	                            Redis and the lease holder get the CPU they
//	                            ask for before the followers do, as on the
//	                            machines of their own a real mesh gives them
//	                            (default 0)
//	JWTGUARD_MESH_PROCS         N: the followers run in N child processes
//	                            (the benchmark's binary run again as
//	                            TestMeshFollowers), apart from the writer,
//	                            so that neither the writer nor the arrival
//	                            times wait in one scheduler's queue behind
//	                            all the followers (default 0: all in this
//	                            process); with JWTGUARD_MESH_NICE the
//	                            children lower their own priority, not the
//	                            writer's process; with JWTGUARD_MESH_MASS
//	                            each child runs with GOMAXPROCS=1
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
	if procs > followers {
		b.Fatal("JWTGUARD_MESH_PROCS: at most one a follower")
	}
	for b.Loop() {
		meshRun(b, followers, revocations, rate, idle, mass, cluster, publish, procs)
	}
}

// meshFollowers starts n followers on nodes, each noting in arrived[f][i]
// when revocation i ("mesh-i") reached follower f (unix ns), and in
// fed[f] (when not nil) the records it read from the feed; stop ends them.
func meshFollowers(tb testing.TB, ctx context.Context, nodes redisNodes, n, revocations int, cfg bloom.Config, fed []atomic.Int64) (fols []*source.Follower, revs []*authz.Revocations, arrived [][]int64, stop func()) {
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
			if fed != nil {
				fed[f].Add(int64(len(recs)))
			}
			for _, r := range recs {
				if i, ok := strings.CutPrefix(r.Value, "mesh-"); ok {
					if n, err := strconv.Atoi(i); err == nil && n < revocations {
						atomic.StoreInt64(&arrived[f][n], at.UnixNano())
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
		if v := os.Getenv("JWTGUARD_MESH_WAIT_LAG"); v != "" {
			if fcfg.WaitLag, err = strconv.ParseUint(v, 10, 64); err != nil {
				tb.Fatalf("JWTGUARD_MESH_WAIT_LAG: %v", err)
			}
		}
		fols[f], revs[f] = source.NewFollower(src, rev, fcfg, quiet), rev
		if err := fols[f].Start(ctx); err != nil {
			tb.Fatal(err)
		}
		wg.Go(func() { fols[f].Run(ctx) })
	}
	return fols, revs, arrived, func() { cancel(); wg.Wait() }
}

// meshBloom sizes the followers' and the published filters for a run: twice
// the mass revocation, and a delta large enough that the followers that
// read the feed compact their filters seldom.
func meshBloom(mass, revocations int) bloom.Config {
	return bloom.Config{Entries: uint(max(100_000, 2*mass)), FPRate: 0.001, DeltaEntries: uint(max(10_000, min(mass+revocations+16, 1<<17)))}
}

// niceThreads lowers the priority of every thread of this process by n
// (threads made later inherit it); the processes it started before keep
// theirs.
func niceThreads(b testing.TB, n int) {
	b.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, n); err != nil {
			b.Fatalf("setpriority of thread %d: %v", tid, err)
		}
	}
	b.Logf("harness threads at nice %d", n)
}

func meshRun(b *testing.B, followers, revocations, rate int, idle time.Duration, mass int, cluster, publish bool, procs int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nodes := startRedis(b, cluster)
	writer := nodes.open(b, ctx)
	put(b, writer, token("https://idp", "warm", time.Hour)) // the epoch
	var lease *leaseHolder
	if publish && mass > 0 {
		lease = startLeaseHolder(b, nodes, mass, revocations)
	}
	if n := envInt(b, "JWTGUARD_MESH_NICE", 0); n > 0 && procs == 0 {
		niceThreads(b, n) // with procs, the children nice themselves
	}
	// The mass revocation's senders, connected before the followers are.
	const senders = 4
	writers := []*Source{writer}
	for len(writers) < senders && mass > 0 {
		w := nodes.open(b, ctx)
		put(b, w, token("https://idp", fmt.Sprint("sender-", len(writers)), time.Hour))
		writers = append(writers, w)
	}

	// sent[i] is when revocation i was written (unix ns); arrived[f][i]
	// when follower f received it.
	sent := make([]atomic.Int64, revocations)
	cfg := meshBloom(mass, revocations)
	fed := make([]atomic.Int64, followers) // records each follower read from the feed
	start := time.Now()
	var (
		fols     []*source.Follower
		arrived  [][]int64
		children []*meshChild
	)
	if procs == 0 {
		var stop func()
		fols, _, arrived, stop = meshFollowers(b, ctx, nodes, followers, revocations, cfg, fed)
		defer stop()
	} else {
		for c := range procs {
			children = append(children, startMeshChild(b, nodes, followers*(c+1)/procs-followers*c/procs, revocations, mass))
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
		childCPU -= c.cpu(b, 6*time.Minute)
	}
	perPut := max(1, rate/100)
	tick := time.NewTicker(time.Second * time.Duration(perPut) / time.Duration(rate))
	writeStart := time.Now()
	batch := make([]authz.Record, 0, perPut)
	var lastRevocation uint64
	for i := 0; i < revocations; i += perPut {
		<-tick.C
		batch = batch[:0]
		now := time.Now().UnixNano()
		for j := i; j < min(i+perPut, revocations); j++ {
			sent[j].Store(now)
			batch = append(batch, token("https://idp", fmt.Sprint("mesh-", j), time.Hour))
		}
		stored, err := writer.Put(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		lastRevocation = stored[len(stored)-1].Position
	}
	tick.Stop()
	// Below rate when Puts take longer than a tick (the ticker drops ticks).
	b.ReportMetric(float64(revocations)/time.Since(writeStart).Seconds(), "written/s")
	last := func() bool {
		for _, f := range fols {
			if f.Position() < lastRevocation {
				return false
			}
		}
		return true
	}
	if procs == 0 {
		waitFor(b, 5*time.Minute, "every follower applies every revocation", last)
	}
	for _, c := range children {
		childCPU += c.cpu(b, 6*time.Minute)
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
	for f := range fed {
		fed[f].Store(0)
	}
	var childCPUMass float64
	for _, c := range children {
		c.send(b, "mass")
	}
	for _, c := range children {
		childCPUMass -= c.cpu(b, time.Minute)
	}
	load0 := loadAvg()
	w = openWindow(b, nodes)
	first := time.Now()
	if procs == 0 {
		progressDone := make(chan struct{})
		defer close(progressDone)
		go massProgress(fols, fed, progressDone)
	}
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
				// Each Put bounded as revoke --from-file --redis bounds its
				// calls, not by the source's 5 s default.
				pctx, pcancel := context.WithTimeout(ctx, time.Minute)
				stored, err := wr.Put(pctx, recs)
				pcancel()
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
	fmt.Fprintf(os.Stderr, "progress: writes ended +%.1fs at position %d, load %s\n", time.Since(first).Seconds(), top.Load(), loadAvg())
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	written := time.Since(first)
	writeCPU := nodes.redisCPU(b) - w.redisCPU
	// when[f]: how long after the first write follower f enforced the last
	// record (seen at a 20 ms poll).
	when := make([]time.Duration, followers)
	fm := make([]followerMass, followers)
	if procs == 0 {
		waitFor(b, 10*time.Minute, "every follower applies the mass revocation", func() bool {
			all := true
			for f := range followers {
				if when[f] == 0 && fols[f].Position() >= top.Load() {
					when[f] = time.Since(first)
				}
				all = all && when[f] != 0
			}
			return all
		})
		for i, f := range fols {
			fm[i] = followerMass{skips: f.Skips(), reloads: f.Reloads(), waits: f.SnapshotWaits(), fed: fed[i].Load()}
		}
	} else {
		for _, c := range children {
			c.send(b, fmt.Sprint("top ", top.Load()))
		}
		fm = fm[:0]
		for _, c := range children {
			childCPUMass += c.cpu(b, 10*time.Minute)
			fm = append(fm, c.massRows(b)...)
		}
		for i := range fm {
			when[i] = time.Duration(fm[i].at - first.UnixNano())
		}
	}
	enforced := slices.Max(when)
	slices.Sort(when)
	b.Logf("mass revocation: followers enforcing the last record after the first write: p50 %v, p90 %v, p99 %v, max %v",
		percentile(when, 0.5).Round(time.Millisecond), percentile(when, 0.9).Round(time.Millisecond), percentile(when, 0.99).Round(time.Millisecond), when[followers-1].Round(time.Millisecond))
	b.ReportMetric(percentile(when, 0.5).Seconds(), "mass-enforced-p50-s")
	load1 := loadAvg()
	out := nodes.info(b, "stats", "total_net_output_bytes") - w.netOut
	_, massCPU, harnessCPU, _, _, _ := w.close(b, nodes, fmt.Sprintf("mass revocation of %d records", mass))
	harnessCPU += childCPUMass
	var skips, took, waits uint64
	feeds := make([]int64, followers)
	for i, m := range fm {
		skips += m.skips + m.reloads
		if m.skips+m.reloads > 0 {
			took++
		}
		waits += m.waits
		feeds[i] = m.fed
	}
	slices.Sort(feeds)
	var feedSum int64
	for _, n := range feeds {
		feedSum += n
	}
	b.Logf("mass revocation: written in %v (Redis CPU %.1fs meanwhile), every follower enforcing the last record %v after the first write (position %d); load average %s at the first write, %s at the last enforced",
		written.Round(time.Millisecond), writeCPU, enforced.Round(time.Millisecond), top.Load(), load0, load1)
	b.Logf("mass revocation: %d of %d followers loaded a snapshot (%d loads), %d read the feed alone; %d waits ended in the feed; records read from the feed a follower: min %d, median %d, max %d, mean %.0f; Redis sent %.1f MiB (%.2f MiB a follower); harness CPU %.1fs",
		took, followers, skips, uint64(followers)-took, waits, feeds[0], feeds[followers/2], feeds[followers-1], float64(feedSum)/float64(followers), out/(1<<20), out/(1<<20)/float64(followers), harnessCPU)
	if lease != nil {
		lease.stop(b, first)
	}
	b.ReportMetric(float64(took), "mass-followers-loaded-snapshot")
	b.ReportMetric(float64(feedSum)/float64(followers), "mass-feed-records/follower")
	b.ReportMetric(harnessCPU, "mass-harness-cpu-s")
	b.ReportMetric(float64(mass)/written.Seconds(), "mass-records/s")
	b.ReportMetric(enforced.Seconds(), "mass-enforced-s")
	b.ReportMetric(1e6*massCPU/float64(mass), "mass-redis-µs/record")
	b.ReportMetric(out/float64(mass)/float64(followers), "mass-bytes/record/follower")
	b.ReportMetric(nodes.info(b, "memory", "used_memory")/float64(mass+revocations+1), "redis-bytes/record")
}

// followerMass is what one follower did in a mass revocation: when it
// enforced the last record (unix ns, from a child process), its snapshot
// loads (Skips, Reloads), its waits that ended in the feed and the records
// it read from the feed.
type followerMass struct {
	at                    int64
	skips, reloads, waits uint64
	fed                   int64
}

// meshChild is a child process running some of a mesh run's followers
// (TestMeshFollowers), driven over its standard input and output, one line
// at a time: it says "ready" once its followers have started, answers "go"
// with its CPU time so far ("cpu S"), and, once every follower has every
// revocation, says its CPU time again, then "arrived T0 T1 ..." for each
// follower and "done". For a mass revocation it then answers "mass" with
// its CPU time (once it has zeroed its counts of records read) and
// "top POS" with its CPU time once every follower enforces POS, then
// "mass AT SKIPS RELOADS WAITS FED" for each follower and "done". It ends
// when its input closes.
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

func startMeshChild(b *testing.B, nodes redisNodes, followers, revocations, mass int) *meshChild {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMeshFollowers$", "-test.count=1", "-test.timeout=30m")
	cmd.Env = append(os.Environ(), meshChildURL+"="+nodes.url, meshChildCluster+"="+strings.Join(nodes.cluster, ","),
		meshChildFollowers+"="+strconv.Itoa(followers), "JWTGUARD_MESH_REVOCATIONS="+strconv.Itoa(revocations),
		"JWTGUARD_MESH_MASS="+strconv.Itoa(mass))
	if mass > 0 {
		// One thread running Go a child: on two shared cores, N children
		// with two each would outnumber Redis and the lease holder in the
		// CPU's run queue, niced or not.
		cmd.Env = append(cmd.Env, "GOMAXPROCS=1")
	}
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
			if k, _, _ := strings.Cut(l, " "); k == "ready" || k == "cpu" || k == "arrived" || k == "mass" || k == "done" {
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

// cpu reads the child's CPU time line, in seconds, said within the time
// given.
func (c *meshChild) cpu(b *testing.B, within time.Duration) float64 {
	b.Helper()
	l := c.next(b, within)
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

// massProgress writes to stderr, every 5 s for up to 10 minutes, where a
// mass revocation's followers stand, so that a run cut short still tells:
// their lowest and median positions, snapshot loads, waits that ended in
// the feed and records read from the feed; it stops when done closes.
func massProgress(fols []*source.Follower, fed []atomic.Int64, done <-chan struct{}) {
	start := time.Now()
	for time.Since(start) < 10*time.Minute {
		select {
		case <-done:
			return
		case <-time.After(5 * time.Second):
		}
		pos := make([]uint64, len(fols))
		var skips, waits uint64
		var read int64
		for i, f := range fols {
			pos[i] = f.Position()
			skips += f.Skips() + f.Reloads()
			waits += f.SnapshotWaits()
			read += fed[i].Load()
		}
		slices.Sort(pos)
		fmt.Fprintf(os.Stderr, "progress pid %d +%.0fs: positions min %d median %d, loads %d, waits ended in the feed %d, records read %d, load %s\n",
			os.Getpid(), time.Since(start).Seconds(), pos[0], pos[len(pos)/2], skips, waits, read, loadAvg())
	}
}

// massRows reads the child's lines of a mass revocation, up to "done".
func (c *meshChild) massRows(b *testing.B) []followerMass {
	b.Helper()
	var out []followerMass
	for {
		l := c.next(b, time.Minute)
		if l == "done" {
			return out
		}
		var m followerMass
		if _, err := fmt.Sscanf(l, "mass %d %d %d %d %d", &m.at, &m.skips, &m.reloads, &m.waits, &m.fed); err != nil {
			b.Fatalf("mesh child said %q, want a follower's mass line: %v", l, err)
		}
		out = append(out, m)
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
	mass := envInt(t, "JWTGUARD_MESH_MASS", 0)
	nodes := redisNodes{url: url, cluster: cluster}
	if n := envInt(t, "JWTGUARD_MESH_NICE", 0); n > 0 {
		niceThreads(t, n)
	}
	fed := make([]atomic.Int64, followers)
	fols, _, arrived, stop := meshFollowers(t, context.Background(), nodes, followers, revocations, meshBloom(mass, revocations), fed)
	defer stop()
	in := bufio.NewScanner(os.Stdin)
	fmt.Println("ready")
	if !in.Scan() || in.Text() != "go" {
		t.Fatalf("want go, got %q (%v)", in.Text(), in.Err())
	}
	fmt.Printf("cpu %f\n", selfCPU())
	waitFor(t, 5*time.Minute, "every follower applies every revocation", func() bool {
		for _, row := range arrived {
			for i := range row {
				if atomic.LoadInt64(&row[i]) == 0 {
					return false
				}
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
		switch l := in.Text(); {
		case l == "mass":
			for f := range fed {
				fed[f].Store(0)
			}
			fmt.Printf("cpu %f\n", selfCPU())
			go massProgress(fols, fed, nil)
		case strings.HasPrefix(l, "top "):
			top, err := strconv.ParseUint(strings.TrimPrefix(l, "top "), 10, 64)
			if err != nil {
				t.Fatalf("want top POS, got %q", l)
			}
			at := make([]int64, len(fols))
			waitFor(t, 10*time.Minute, "every follower applies the mass revocation", func() bool {
				all := true
				for i, f := range fols {
					if at[i] == 0 && f.Position() >= top {
						at[i] = time.Now().UnixNano()
					}
					all = all && at[i] != 0
				}
				return all
			})
			fmt.Printf("cpu %f\n", selfCPU())
			for i, f := range fols {
				fmt.Fprintf(w, "mass %d %d %d %d %d\n", at[i], f.Skips(), f.Reloads(), f.SnapshotWaits(), fed[i].Load())
			}
			w.WriteString("done\n")
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// loadAvg returns the machine's load averages (/proc/loadavg).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// leaseHolder is the lease holder of a mesh run: this test binary run
// again as TestMeshLeaseHolder, in a process of its own.
type leaseHolder struct {
	cmd       *exec.Cmd
	stdin     io.Closer
	mu        sync.Mutex
	published []string // "position at unix-ns", as the process saw them
	done      chan struct{}
}

// startLeaseHolder starts the lease holder's process and waits until it
// holds the lease.
func startLeaseHolder(b *testing.B, nodes redisNodes, mass, revocations int) *leaseHolder {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMeshLeaseHolder$", "-test.v", "-test.timeout=60m")
	cmd.Env = append(os.Environ(), "JWTGUARD_MESH_LEASE_URL="+nodes.url, "JWTGUARD_MESH_LEASE_CLUSTER="+strings.Join(nodes.cluster, ","),
		fmt.Sprint("JWTGUARD_MESH_LEASE_MASS=", mass), fmt.Sprint("JWTGUARD_MESH_LEASE_REVOCATIONS=", revocations))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	l := &leaseHolder{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		defer close(l.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if line == "lease-holder ready" {
				close(ready)
			}
			if p, ok := strings.CutPrefix(line, "published "); ok {
				l.mu.Lock()
				l.published = append(l.published, p)
				l.mu.Unlock()
			}
		}
	}()
	b.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); <-l.done; _ = cmd.Wait() })
	select {
	case <-ready:
	case <-l.done:
		b.Fatal("the lease holder's process ended before it held the lease")
	case <-time.After(2 * time.Minute):
		b.Fatal("the lease holder's process did not take the lease in 2 minutes")
	}
	return l
}

// stop ends the lease holder's process and logs its publishes (seconds
// after first) and its CPU.
func (l *leaseHolder) stop(b *testing.B, first time.Time) {
	b.Helper()
	l.stdin.Close()
	select {
	case <-l.done:
	case <-time.After(time.Minute):
		_ = l.cmd.Process.Kill()
		<-l.done
	}
	_ = l.cmd.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	var at []string
	for _, p := range l.published {
		var pos, ns int64
		if _, err := fmt.Sscanf(p, "%d at %d", &pos, &ns); err == nil {
			at = append(at, fmt.Sprintf("%d@%.1fs", pos, time.Duration(ns-first.UnixNano()).Seconds()))
		}
	}
	cpu := 0.0
	if st := l.cmd.ProcessState; st != nil {
		cpu = (st.UserTime() + st.SystemTime()).Seconds()
	}
	b.Logf("lease holder (own process): CPU %.1fs; snapshots published (position@seconds after the first write): %s", cpu, strings.Join(at, " "))
	b.ReportMetric(cpu, "mass-lease-holder-cpu-s")
	b.ReportMetric(float64(len(at)), "mass-publishes")
}

// TestMeshLeaseHolder is the lease holder of BenchmarkMeshScale's mass
// revocation, run by it in a process of its own (JWTGUARD_MESH_LEASE_URL
// set): a node following the feed (it never waits for a snapshot: it makes
// them) and a Publisher sending that node's filter. It prints "lease-holder
// ready" once it holds the lease and "published POS at UNIX-NS" for each
// snapshot it sees published, and ends when its stdin closes.
func TestMeshLeaseHolder(t *testing.T) {
	url := os.Getenv("JWTGUARD_MESH_LEASE_URL")
	if url == "" {
		t.Skip("run by BenchmarkMeshScale (JWTGUARD_MESH_PUBLISH=1)")
	}
	var cluster []string
	if c := os.Getenv("JWTGUARD_MESH_LEASE_CLUSTER"); c != "" {
		cluster = strings.Split(c, ",")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	s, err := Open(ctx, url, Options{ClusterAddrs: cluster})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cfg := meshBloom(envInt(t, "JWTGUARD_MESH_LEASE_MASS", 0), envInt(t, "JWTGUARD_MESH_LEASE_REVOCATIONS", 0))
	filter, err := bloom.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := authz.NewRevocations(filter, s, authz.DefaultRevocationConfig())
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	pub, err := NewPublisher(s, PublisherConfig{Bloom: cfg, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), Filter: rev.Filter})
	if err != nil {
		t.Fatal(err)
	}
	fcfg := source.DefaultFollowerConfig()
	fcfg.Bloom, fcfg.Publishing = cfg, pub.Holding
	fol := source.NewFollower(s, rev, fcfg, quiet)
	if err := fol.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { fol.Run(ctx) })
	wg.Go(func() { pub.Run(ctx) })
	for !pub.Holding() {
		select {
		case <-ctx.Done():
			t.Fatal("stopped before holding the lease")
		case <-time.After(10 * time.Millisecond):
		}
	}
	fmt.Println("lease-holder ready")
	var last uint64
	for ctx.Err() == nil {
		if pos, ok, err := s.SnapshotPosition(ctx); err == nil && ok && pos != last {
			fmt.Printf("published %d at %d\n", pos, time.Now().UnixNano())
			last = pos
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}
