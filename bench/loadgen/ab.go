package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// ABConfig is an interleaved comparison of two servers running side by
// side: short slices of the same load go to A and B in turn (A B, then
// B A, ...), so that whatever else the machine does in a stretch of time
// weighs on both alike, and each pair of slices gives one ratio. On a
// shared machine, where two runs a minute apart differ by more than what
// is compared, the median of those ratios is the figure to read.
type ABConfig struct {
	// Run holds the load: Keys, Conns, Streams, Mix, RepeatedTokens,
	// RequestTimeout, Progress, and WarmFresh (fresh tokens each server
	// verifies before the slices, as a long-lived server has). Its Target is A's address; its Duration,
	// Requests, Expect, ServerPID and Label are not used.
	Run RunConfig
	// TargetB is B's gRPC address.
	TargetB string
	// LabelA and LabelB name the two servers in the output.
	LabelA, LabelB string
	// ExpectA and ExpectB check each decision of A and of B against the
	// mix (off for a no-op baseline).
	ExpectA, ExpectB bool
	// PIDA and PIDB, when set, are the servers' process ids: their CPU
	// time per request is reported for each slice (Linux).
	PIDA, PIDB int
	// Pairs is the number of slice pairs; Slice the length of each slice.
	Pairs int
	Slice time.Duration
	// MixB, when set, is B's mix (A's is Run.Mix): two kinds of request
	// compared, on one server (TargetB = Target) or two.
	MixB Mix
	// Category, when set, is the category whose throughput and latency
	// are compared (the valid requests of a flood, say); all requests are
	// sent as the mix says either way.
	Category Category
}

// ABPair is one pair of slices.
type ABPair struct {
	// AFirst: A's slice came first in this pair.
	AFirst bool `json:"a_first"`
	// Throughput of each slice in requests per second (of Category only,
	// when set).
	ThroughputA float64 `json:"throughput_a"`
	ThroughputB float64 `json:"throughput_b"`
	// Server CPU microseconds per request of any category (0 without
	// PIDs).
	CPUPerRequestA float64 `json:"cpu_per_request_a_us,omitempty"`
	// P99A and P99B are each slice's 99th percentile latency in
	// microseconds (of Category only, when set).
	P99A           float64 `json:"p99_a_us"`
	P99B           float64 `json:"p99_b_us"`
	CPUPerRequestB float64 `json:"cpu_per_request_b_us,omitempty"`
}

// ABResult is the outcome of RunAB.
type ABResult struct {
	LabelA string `json:"label_a"`
	LabelB string `json:"label_b"`
	Mix    string `json:"mix"`
	MixB   string `json:"mix_b,omitempty"`
	Slice  string `json:"slice"`
	// Category is the category compared; empty for every request.
	Category string   `json:"category,omitempty"`
	Pairs    []ABPair `json:"pairs"`
	// ThroughputRatio is the median over the pairs of B's throughput over
	// A's; CPURatio the median of B's server CPU per request over A's.
	ThroughputRatio float64 `json:"throughput_ratio"`
	CPURatio        float64 `json:"cpu_per_request_ratio,omitempty"`
	// P99A and P99B are the 99th percentile latencies over all of each
	// server's slices, in microseconds; P99Ratio is the median over the
	// pairs of B's slice p99 over A's (a tail event of one slice weighs
	// on one pair, not on the figure).
	P99A     float64 `json:"p99_a_us"`
	P99B     float64 `json:"p99_b_us"`
	P99Ratio float64 `json:"p99_ratio"`
	// A and B hold each server's totals (requests, outcomes, wrong
	// decisions, transport errors) over its slices.
	A *Result `json:"a"`
	B *Result `json:"b"`
}

// Validate says which field is wrong.
func (c *ABConfig) Validate() error {
	switch {
	case c.Run.Target == "" || c.TargetB == "":
		return errors.New("ab: both targets are needed")
	case c.Run.HTTPTarget != "":
		return errors.New("ab: gRPC targets only")
	case c.Pairs < 1 || c.Pairs > 1000:
		return fmt.Errorf("ab: pairs %d, want 1 to 1000", c.Pairs)
	case c.Slice < 100*time.Millisecond || c.Slice > time.Minute:
		return fmt.Errorf("ab: slice %s, want 100ms to 1m", c.Slice)
	case c.Category != "" && (c.Run.Mix[c.Category] == 0 || c.MixB.total() > 0 && c.MixB[c.Category] == 0):
		return fmt.Errorf("ab: category %q is not in the mix", c.Category)
	}
	run := c.Run
	run.Duration = c.Slice
	return run.Validate()
}

// RunAB primes both servers with the mix's tokens, then sends Pairs pairs
// of slices, alternating which server goes first, and returns the
// per-pair figures and their medians. A run that completes returns its
// result even when decisions were wrong: see ABResult.Err.
func RunAB(ctx context.Context, cfg ABConfig) (*ABResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tokens, err := NewTokenSet(cfg.Run.Keys, TokenOptions{
		Repeated: cfg.Run.RepeatedTokens,
		Warm:     cfg.Run.WarmFresh,
		Fresh:    abPool(&cfg, Fresh, cfg.Run.FreshPool),
		Forged:   abPool(&cfg, Forged, cfg.Run.ForgedPool),
	})
	if err != nil {
		return nil, err
	}
	side := func(target, label string, expect bool, mix Mix) (*runner, *Result, *stats, error) {
		rc := cfg.Run
		rc.Target, rc.Label, rc.Expect, rc.Mix, rc.Progress = target, label, expect, mix, nil
		r := &runner{cfg: &rc, tokens: tokens}
		if r.tgt, err = dialGRPC(target, rc.Conns); err != nil {
			return nil, nil, nil, err
		}
		res := &Result{Label: label, Transport: "grpc", Target: target, Mix: rc.Mix.String(), Conns: rc.Conns,
			Streams: rc.Streams, Expect: expect, Outcomes: map[string]int64{}}
		return r, res, newStats(), nil
	}
	mixB := cfg.Run.Mix
	if cfg.MixB.total() > 0 {
		mixB = cfg.MixB
	}
	ra, resA, allA, err := side(cfg.Run.Target, cfg.LabelA, cfg.ExpectA, cfg.Run.Mix)
	if err != nil {
		return nil, err
	}
	defer ra.tgt.close()
	rb, resB, allB, err := side(cfg.TargetB, cfg.LabelB, cfg.ExpectB, mixB)
	if err != nil {
		return nil, err
	}
	defer rb.tgt.close()
	ra.warmUp(ctx, resA)
	rb.warmUp(ctx, resB)

	var seq int64 // shared: one-use tokens are never sent twice
	// slice sends one slice to r and returns its throughput, server CPU
	// per request and p99.
	slice := func(r *runner, res *Result, all *stats, pid int) (float64, float64, float64, error) {
		sched := r.cfg.Mix.schedule()
		next := func(i int64) *Token { return tokens.pick(sched[(seq+i)%int64(len(sched))]) }
		var cpu0 time.Duration
		if pid > 0 {
			if cpu0, err = processCPU(pid); err != nil {
				return 0, 0, 0, err
			}
		}
		began := time.Now()
		sts := r.phase(ctx, "slice", next, cfg.Slice)
		secs := time.Since(began).Seconds()
		var n, counted int64
		mine := newHist()
		for _, st := range sts {
			n += st.hist.TotalCount()
			h := st.hist
			if cfg.Category != "" {
				if h = st.cats[cfg.Category]; h == nil {
					h = newHist()
				}
			}
			counted += h.TotalCount()
			all.hist.Merge(h)
			mine.Merge(h)
			res.add(st, true)
		}
		seq += n
		res.Requests += n
		res.Seconds += secs
		var perReq float64
		if pid > 0 {
			cpu1, err := processCPU(pid)
			if err != nil {
				return 0, 0, 0, err
			}
			if n > 0 {
				perReq = (cpu1 - cpu0).Seconds() / float64(n) * 1e6
			}
		}
		return float64(counted) / secs, perReq, float64(mine.ValueAtQuantile(99)) / 1e3, nil
	}
	out := &ABResult{LabelA: cfg.LabelA, LabelB: cfg.LabelB, Mix: cfg.Run.Mix.String(), Slice: cfg.Slice.String(),
		Category: string(cfg.Category), A: resA, B: resB}
	if cfg.MixB.total() > 0 {
		out.MixB = cfg.MixB.String()
	}
	for i := range cfg.Pairs {
		p := ABPair{AFirst: i%2 == 0}
		for _, first := range []bool{true, false} {
			var err error
			if first == p.AFirst {
				p.ThroughputA, p.CPUPerRequestA, p.P99A, err = slice(ra, resA, allA, cfg.PIDA)
			} else {
				p.ThroughputB, p.CPUPerRequestB, p.P99B, err = slice(rb, resB, allB, cfg.PIDB)
			}
			if err != nil {
				return nil, err
			}
		}
		out.Pairs = append(out.Pairs, p)
		if w := cfg.Run.Progress; w != nil {
			fmt.Fprintf(w, "pair %d/%d: %s %.0f req/s, %s %.0f req/s (%.3fx)\n", i+1, cfg.Pairs,
				cfg.LabelA, p.ThroughputA, cfg.LabelB, p.ThroughputB, p.ThroughputB/p.ThroughputA)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	out.ThroughputRatio = medianRatio(out.Pairs, func(p ABPair) (float64, float64) { return p.ThroughputB, p.ThroughputA })
	if cfg.PIDA > 0 && cfg.PIDB > 0 {
		out.CPURatio = medianRatio(out.Pairs, func(p ABPair) (float64, float64) { return p.CPUPerRequestB, p.CPUPerRequestA })
	}
	out.P99A = float64(allA.hist.ValueAtQuantile(99)) / 1e3
	out.P99B = float64(allB.hist.ValueAtQuantile(99)) / 1e3
	out.P99Ratio = medianRatio(out.Pairs, func(p ABPair) (float64, float64) { return p.P99B, p.P99A })
	for _, r := range []*Result{resA, resB} {
		if r.Seconds > 0 {
			r.Throughput = float64(r.Requests) / r.Seconds
		}
	}
	return out, nil
}

// abPool is the one-use tokens of cat to mint for every slice of cfg.
func abPool(cfg *ABConfig, cat Category, set int) int {
	rc := cfg.Run
	rc.Duration = 2 * time.Duration(cfg.Pairs) * cfg.Slice
	if cfg.MixB[cat] > rc.Mix[cat] {
		rc.Mix = cfg.MixB
	}
	rc.MaxDuration = max(rc.MaxDuration, rc.Duration)
	return rc.pool(cat, set)
}

// medianRatio is the median over pairs of num/den, skipping pairs where
// den is 0.
func medianRatio(pairs []ABPair, f func(ABPair) (num, den float64)) float64 {
	var rs []float64
	for _, p := range pairs {
		if n, d := f(p); d > 0 {
			rs = append(rs, n/d)
		}
	}
	if len(rs) == 0 {
		return 0
	}
	slices.Sort(rs)
	if len(rs)%2 == 1 {
		return rs[len(rs)/2]
	}
	return (rs[len(rs)/2-1] + rs[len(rs)/2]) / 2
}

// Err is an error when a decision was wrong or a request failed.
func (r *ABResult) Err() error {
	return errors.Join(r.A.Err(), r.B.Err())
}

// WriteText prints every pair and the medians.
func (r *ABResult) WriteText(w io.Writer) {
	mix := "mix " + r.Mix
	if r.MixB != "" {
		mix = "mix A " + r.Mix + ", mix B " + r.MixB
	}
	fmt.Fprintf(w, "interleaved: A %s, B %s, %s, %d pairs of %s slices\n", r.LabelA, r.LabelB, mix, len(r.Pairs), r.Slice)
	what := ""
	if r.Category != "" {
		what = r.Category + " requests: " // throughput and p99 of that category; CPU of all
	}
	for i, p := range r.Pairs {
		order := "A B"
		if !p.AFirst {
			order = "B A"
		}
		fmt.Fprintf(w, "  pair %2d (%s): A %8.0f req/s %6.1f µs CPU p99 %6.0f µs, B %8.0f req/s %6.1f µs CPU p99 %6.0f µs: %.3fx\n",
			i+1, order, p.ThroughputA, p.CPUPerRequestA, p.P99A, p.ThroughputB, p.CPUPerRequestB, p.P99B, p.ThroughputB/p.ThroughputA)
	}
	fmt.Fprintf(w, "%s vs %s: %sthroughput %.3fx (median of %d pairs), p99 %.3fx (median; over all slices %.0f vs %.0f µs), server CPU per request %.3fx\n",
		r.LabelB, r.LabelA, what, r.ThroughputRatio, len(r.Pairs), r.P99Ratio, r.P99B, r.P99A, r.CPURatio)
	for _, s := range []*Result{r.A, r.B} {
		fmt.Fprintf(w, "  %s: %d requests, %d wrong decisions, %d transport errors\n", s.Label, s.Requests, s.Wrong, s.TransportErrors)
	}
}
