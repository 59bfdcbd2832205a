package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/jwtguard/jwtguard/authz"
)

// RunConfig is one run of the generator.
type RunConfig struct {
	// Target is the gRPC address of the ext_authz server.
	Target string
	// HTTPTarget, when set, is a forward-auth URL called instead of gRPC.
	HTTPTarget string
	Keys       *Keys
	// Conns is the number of gRPC connections (HTTP: one per stream).
	Conns int
	// Streams is the number of requests in flight at any time, in total.
	Streams int
	// Duration bounds the measured phase; Requests, when set, ends it
	// earlier. The phase never lasts more than MaxDuration.
	Duration    time.Duration
	Requests    int64
	MaxDuration time.Duration
	Mix         Mix
	// Expect checks every decision against the token's expected one.
	Expect bool
	// WarmFresh fresh tokens are sent before the measured phase.
	WarmFresh int
	// FreshPool is how many fresh tokens to mint ahead; 0 picks a size
	// from Requests or Duration.
	FreshPool int
	// ForgedPool is how many forged tokens to mint ahead; 0 picks a size
	// from Requests or Duration.
	ForgedPool int
	// RepeatedTokens is the size of the repeated set.
	RepeatedTokens int
	// RequestTimeout is each request's deadline (Envoy sets one too).
	RequestTimeout time.Duration
	Label          string
	// ServerPID, when set, is the server's process id on this machine:
	// its CPU time during the measured phase is reported (Linux).
	ServerPID int
	// Progress receives a line a second while running; nil for none.
	Progress io.Writer
}

// DefaultRunConfig returns the defaults of `loadgen run`.
func DefaultRunConfig() RunConfig {
	return RunConfig{
		Conns: 4, Streams: 64, Duration: 10 * time.Second, MaxDuration: 60 * time.Second,
		Mix: Mix{Repeated: 90, Revoked: 10}, Expect: true, RepeatedTokens: 64,
		RequestTimeout: 5 * time.Second, Label: "run",
	}
}

// freshPerSecond is the fresh-token rate the automatic pool size assumes:
// above what one small machine verifies, so a pool lasts the whole phase.
const freshPerSecond = 25_000

// Validate says which field is wrong.
func (c *RunConfig) Validate() error {
	switch {
	case c.Target == "" && c.HTTPTarget == "":
		return errors.New("target: a gRPC address or an HTTP forward-auth URL is needed")
	case c.Keys == nil:
		return errors.New("keys: none loaded")
	case c.Conns < 1:
		return fmt.Errorf("conns: %d, want at least 1", c.Conns)
	case c.Streams < 1:
		return fmt.Errorf("streams: %d, want at least 1", c.Streams)
	case c.Requests < 0:
		return fmt.Errorf("requests: %d, want zero (no limit) or more", c.Requests)
	case c.MaxDuration <= 0:
		return fmt.Errorf("max-duration: %s, want a positive duration", c.MaxDuration)
	case c.Duration < 0:
		return fmt.Errorf("duration: %s, want zero or more", c.Duration)
	case c.Duration == 0 && c.Requests == 0:
		return errors.New("duration and requests: give at least one")
	case c.Mix.total() == 0:
		return errors.New("mix: no positive weight")
	case c.WarmFresh < 0 || c.FreshPool < 0 || c.ForgedPool < 0:
		return errors.New("warm-fresh, fresh-pool and forged-pool: want zero or more")
	case c.HTTPTarget != "" && (c.Mix[Verified] > 0 || c.Mix[VerifiedOnly] > 0):
		return errors.New("mix: the verified categories need gRPC: forward-auth never trusts a payload")
	case c.RequestTimeout <= 0:
		return fmt.Errorf("request-timeout: %s, want a positive duration", c.RequestTimeout)
	}
	return nil
}

// phase returns how long the measured phase may last.
func (c *RunConfig) phase() time.Duration {
	if c.Duration > 0 && c.Duration < c.MaxDuration {
		return c.Duration
	}
	return c.MaxDuration
}

// pool is the number of tokens of the one-use category cat to mint:
// given (set), or enough for the phase at freshPerSecond.
func (c *RunConfig) pool(cat Category, set int) int {
	w := c.Mix[cat]
	if w == 0 {
		return 0
	}
	if set > 0 {
		return set
	}
	n := int64(c.phase().Seconds() * freshPerSecond)
	if c.Requests > 0 {
		n = min(n, c.Requests)
	}
	return int(n*int64(w)/int64(c.Mix.total())) + 1
}

// maxWrongExamples bounds the wrong decisions a result shows.
const maxWrongExamples = 5

// stats is one worker's tally; workers own theirs until the phase ends.
type stats struct {
	hist *hdrhistogram.Histogram
	// cats holds the latencies of each category's decisions.
	cats     map[Category]*hdrhistogram.Histogram
	outcomes map[string]int64
	// wrongCount counts wrong decisions; wrong describes the first few.
	wrongCount int64
	wrong      []string
	firstErr   string // the first transport error
}

func newStats() *stats {
	return &stats{hist: newHist(), cats: map[Category]*hdrhistogram.Histogram{}, outcomes: map[string]int64{}}
}

// newHist is a latency histogram: 1 ns to 1 minute at 3 significant digits.
func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, int64(time.Minute), 3) }

// record counts a decision on a token of c that took ns.
func (st *stats) record(c Category, ns int64) {
	_ = st.hist.RecordValue(ns)
	h := st.cats[c]
	if h == nil {
		h = newHist()
		st.cats[c] = h
	}
	_ = h.RecordValue(ns)
}

// runner is the state of one run shared by its workers.
type runner struct {
	cfg    *RunConfig
	tokens *TokenSet
	tgt    target
	// done, wrong and errs are live totals for progress lines.
	done, wrong, errs atomic.Int64
}

// Run mints the tokens, primes the server with every non-fresh token once,
// sends the warm-up tokens, then measures. A run that completes returns its
// Result even when decisions were wrong: see Result.Err.
func Run(ctx context.Context, cfg RunConfig) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("run config: %w", err)
	}
	r := &runner{cfg: &cfg}
	res := &Result{
		Label: cfg.Label, Transport: "grpc", Target: cfg.Target, Mix: cfg.Mix.String(),
		Conns: cfg.Conns, Streams: cfg.Streams, Expect: cfg.Expect, WarmFresh: cfg.WarmFresh,
		Outcomes: map[string]int64{},
		Machine: Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(),
			GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version()},
	}
	if cfg.HTTPTarget != "" {
		res.Transport, res.Target, res.Conns = "http", cfg.HTTPTarget, cfg.Streams
	}

	start := time.Now()
	var err error
	r.tokens, err = NewTokenSet(cfg.Keys, TokenOptions{
		Repeated: cfg.RepeatedTokens, Fresh: cfg.pool(Fresh, cfg.FreshPool), Warm: cfg.WarmFresh,
		Forged: cfg.pool(Forged, cfg.ForgedPool),
	})
	if err != nil {
		return nil, err
	}
	res.FreshPreMinted, res.ForgedPreMinted = len(r.tokens.Fresh), len(r.tokens.Forged)
	r.logf("minted %d tokens (%d fresh, %d warm-up, %d forged) in %s",
		len(r.tokens.Repeated)+len(r.tokens.Revoked)+len(r.tokens.Invalid)+len(r.tokens.Fresh)+len(r.tokens.Warm)+len(r.tokens.Forged),
		len(r.tokens.Fresh), len(r.tokens.Warm), len(r.tokens.Forged), time.Since(start).Round(time.Millisecond))

	if cfg.HTTPTarget != "" {
		r.tgt = newHTTPTarget(cfg.HTTPTarget, cfg.Streams)
	} else if r.tgt, err = dialGRPC(cfg.Target, cfg.Conns); err != nil {
		return nil, err
	}
	defer r.tgt.close()

	r.warmUp(ctx, res)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := r.measure(ctx, res); err != nil {
		return nil, err
	}
	return res, ctx.Err()
}

// warmUp primes the server with every repeated, revoked and invalid token
// of the mix once, so the measured phase sees a server that has met them
// all (as a long-lived one has) over connections that are up; then it
// sends the warm-up tokens. Its decisions are checked but not measured.
func (r *runner) warmUp(ctx context.Context, res *Result) {
	sets := map[Category][]Token{Repeated: r.tokens.Repeated, Revoked: r.tokens.Revoked, Invalid: r.tokens.Invalid, Verified: r.tokens.Verified, VerifiedOnly: r.tokens.VerifiedOnly}
	var prime []*Token
	for _, c := range Categories {
		if r.cfg.Mix[c] == 0 {
			continue
		}
		set := sets[c]
		for i := range set {
			prime = append(prime, &set[i])
		}
	}
	from := func(toks []*Token) func(int64) *Token {
		return func(i int64) *Token {
			if i < int64(len(toks)) {
				return toks[i]
			}
			return nil
		}
	}
	all := r.phase(ctx, "prime", from(prime), time.Minute)
	if len(r.tokens.Warm) > 0 {
		r.logf("warming with %d fresh tokens", len(r.tokens.Warm))
		warm := make([]*Token, len(r.tokens.Warm))
		for i := range warm {
			warm[i] = &r.tokens.Warm[i]
		}
		all = append(all, r.phase(ctx, "warm", from(warm), r.cfg.MaxDuration)...)
	}
	for _, st := range all {
		res.add(st, false)
	}
}

// measure runs the measured phase and fills res with its figures.
func (r *runner) measure(ctx context.Context, res *Result) error {
	sched := r.cfg.Mix.schedule()
	r.done.Store(0)
	var serverCPU time.Duration
	if r.cfg.ServerPID > 0 {
		var err error
		if serverCPU, err = processCPU(r.cfg.ServerPID); err != nil {
			return err
		}
	}
	clientCPU := selfCPU()
	began := time.Now()
	res.Started = began
	measured := r.phase(ctx, "run", func(i int64) *Token {
		if r.cfg.Requests > 0 && i >= r.cfg.Requests {
			return nil
		}
		return r.tokens.pick(sched[i%int64(len(sched))])
	}, r.cfg.phase())
	res.Seconds = time.Since(began).Seconds()
	res.ClientCPUSeconds = (selfCPU() - clientCPU).Seconds()
	if r.cfg.ServerPID > 0 {
		after, err := processCPU(r.cfg.ServerPID)
		if err != nil {
			return err
		}
		res.ServerCPUSeconds = (after - serverCPU).Seconds()
	}
	res.FreshExhausted = r.tokens.exhausted.Load()

	hist := newHist()
	cats := map[Category]*hdrhistogram.Histogram{}
	for _, st := range measured {
		hist.Merge(st.hist)
		for c, h := range st.cats {
			if cats[c] == nil {
				cats[c] = newHist()
			}
			cats[c].Merge(h)
		}
		res.add(st, true)
	}
	res.Categories = map[string]CategoryResult{}
	for c, h := range cats {
		res.Categories[string(c)] = categoryResult(h, res.Seconds)
	}
	res.Requests = hist.TotalCount() + res.Outcomes[OutcomeTransportError]
	if res.Seconds > 0 {
		res.Throughput = float64(hist.TotalCount()) / res.Seconds
	}
	if n := hist.TotalCount(); n > 0 && res.ServerCPUSeconds > 0 {
		res.ServerCPUPerRequest = math.Round(res.ServerCPUSeconds/float64(n)*1e8) / 100
	}
	return res.fillLatency(hist)
}

// add counts a worker's wrong decisions and transport errors into res,
// and its outcomes too when they were measured.
func (res *Result) add(st *stats, measured bool) {
	if measured {
		for k, v := range st.outcomes {
			res.Outcomes[k] += v
		}
	}
	res.Wrong += st.wrongCount
	res.WrongExamples = appendExamples(res.WrongExamples, st.wrong)
	res.TransportErrors += st.outcomes[OutcomeTransportError]
	if res.FirstTransportError == "" {
		res.FirstTransportError = st.firstErr
	}
}

func appendExamples(dst, src []string) []string {
	for _, s := range src {
		if len(dst) >= maxWrongExamples {
			break
		}
		dst = append(dst, s)
	}
	return dst
}

func (r *runner) logf(format string, a ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, format+"\n", a...)
	}
}

// phase sends next(0), next(1), ... from Streams workers until next
// returns nil, limit passes or ctx ends, and returns each worker's stats.
// A request in flight when the phase ends is completed and counted.
func (r *runner) phase(ctx context.Context, name string, next func(i int64) *Token, limit time.Duration) []*stats {
	deadline := time.Now().Add(limit)
	var seq atomic.Int64
	all := make([]*stats, r.cfg.Streams)
	stop := make(chan struct{})
	progressDone := make(chan struct{})
	go r.progress(name, stop, progressDone)
	var wg sync.WaitGroup
	for w := range r.cfg.Streams {
		st := newStats()
		all[w] = st
		wg.Go(func() { r.work(ctx, w, st, &seq, next, deadline) })
	}
	wg.Wait()
	close(stop)
	<-progressDone
	return all
}

func (r *runner) work(ctx context.Context, w int, st *stats, seq *atomic.Int64, next func(int64) *Token, deadline time.Time) {
	for ctx.Err() == nil {
		tok := next(seq.Add(1) - 1)
		if tok == nil {
			return
		}
		start := time.Now()
		if start.After(deadline) {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
		out, err := r.tgt.check(rctx, w, tok)
		took := time.Since(start)
		cancel()
		r.done.Add(1)
		if err != nil {
			if ctx.Err() != nil {
				return // interrupted, not a server failure
			}
			st.outcomes[OutcomeTransportError]++
			r.errs.Add(1)
			if st.firstErr == "" {
				st.firstErr = err.Error()
			}
			continue
		}
		st.record(tok.Category, took.Nanoseconds())
		st.outcomes[string(out.Reason)]++
		if r.cfg.Expect && !r.matches(tok, out) {
			r.wrong.Add(1)
			if st.wrongCount++; len(st.wrong) >= maxWrongExamples {
				continue
			}
			st.wrong = append(st.wrong, fmt.Sprintf("%s token (%s): want %s, got %s",
				tok.Category, short(tok.Value), describe(tok.Expect.Reason, tok.Expect.RevokedBy), describe(out.Reason, out.RevokedBy)))
		}
	}
}

// matches reports whether out is the decision tok must get.
func (r *runner) matches(tok *Token, out Outcome) bool {
	if tok.Category == Forged && out.Reason == authz.ReasonBlocked {
		return true // the flooding address blocked by the bad-signature detector
	}
	if out.Reason != tok.Expect.Reason {
		return false
	}
	return !r.tgt.reportsKind() || tok.Expect.RevokedBy == "" || out.RevokedBy == tok.Expect.RevokedBy
}

func describe(r authz.Reason, k authz.Kind) string {
	if k != "" {
		return string(r) + " by " + string(k)
	}
	return string(r)
}

// short identifies a token in a message without printing it whole.
func short(tok string) string {
	if i := strings.LastIndexByte(tok, '.'); i > 0 && len(tok)-i > 8 {
		return "…" + tok[len(tok)-8:]
	}
	return tok
}

// progress prints one line a second until stop is closed.
func (r *runner) progress(name string, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	if r.cfg.Progress == nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	began, last := time.Now(), int64(0)
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			n := r.done.Load()
			fmt.Fprintf(r.cfg.Progress, "%s %4.0fs: %d requests, %d req/s, wrong %d, errors %d\n",
				name, now.Sub(began).Seconds(), n, n-last, r.wrong.Load(), r.errs.Load())
			last = n
		}
	}
}
