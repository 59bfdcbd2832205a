package loadgen

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Errors a run fails with, after it has reported its figures.
var (
	// ErrWrongDecisions: some decision differed from what the mix expects.
	ErrWrongDecisions = errors.New("wrong decisions")
	// ErrTransport: some requests got no decision at all.
	ErrTransport = errors.New("transport errors")
)

// OutcomeTransportError counts requests that got no decision.
const OutcomeTransportError = "transport_error"

// Result is what one run measured. It is written as JSON, read back by
// `loadgen plot` and `loadgen compare`.
type Result struct {
	Label     string    `json:"label"`
	Transport string    `json:"transport"` // grpc or http
	Target    string    `json:"target"`
	Started   time.Time `json:"started"`
	Mix       string    `json:"mix"`
	Conns     int       `json:"conns"`
	Streams   int       `json:"streams"`
	Expect    bool      `json:"expect"`
	// FreshPreMinted and ForgedPreMinted count the fresh and forged
	// tokens minted before the run; FreshExhausted says the run ended early
	// because it used up one of these one-use pools.
	FreshPreMinted  int  `json:"fresh_pre_minted"`
	ForgedPreMinted int  `json:"forged_pre_minted,omitempty"`
	FreshExhausted  bool `json:"fresh_exhausted,omitempty"`
	// WarmFresh counts the fresh tokens sent before the measured phase.
	WarmFresh int `json:"warm_fresh,omitempty"`

	Seconds    float64 `json:"seconds"` // measured phase
	Requests   int64   `json:"requests"`
	Throughput float64 `json:"requests_per_second"`
	// Latency summarizes the measured phase in microseconds.
	Latency Latency `json:"latency_us"`
	// Curve is the latency (µs) at percentiles from 50 to 99.99, for plots.
	Curve    []Point          `json:"curve"`
	Outcomes map[string]int64 `json:"outcomes"`
	// Categories are the decisions of the measured phase by token
	// category: how many, how many a second, how fast.
	Categories map[string]CategoryResult `json:"categories,omitempty"`
	// ServerCPUSeconds is the CPU time the server used during the measured
	// phase (when its pid was given), and ServerCPUPerRequest the same per
	// decision in microseconds: steadier than throughput on a shared
	// machine. ClientCPUSeconds is the generator's own.
	ServerCPUSeconds    float64 `json:"server_cpu_seconds,omitempty"`
	ServerCPUPerRequest float64 `json:"server_cpu_us_per_request,omitempty"`
	ClientCPUSeconds    float64 `json:"client_cpu_seconds"`
	// Wrong counts decisions that differed from the expected one (when
	// Expect), including those of the priming pass; WrongExamples shows
	// the first few.
	Wrong           int64    `json:"wrong"`
	WrongExamples   []string `json:"wrong_examples,omitempty"`
	TransportErrors int64    `json:"transport_errors"`
	// FirstTransportError is the message of one transport error.
	FirstTransportError string `json:"first_transport_error,omitempty"`
	// Histogram is the latency histogram in nanoseconds, HdrHistogram V2
	// compressed and base64-encoded, for tools that want all of it.
	Histogram string  `json:"histogram"`
	Machine   Machine `json:"machine"`
}

// Latency is a latency summary in microseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// CategoryResult is what the measured phase got for one token category.
type CategoryResult struct {
	Requests   int64   `json:"requests"`
	Throughput float64 `json:"requests_per_second"`
	Latency    Latency `json:"latency_us"`
}

// categoryResult summarises h (nanoseconds), measured over seconds.
func categoryResult(h *hdrhistogram.Histogram, seconds float64) CategoryResult {
	c := CategoryResult{Requests: h.TotalCount(), Latency: latencyOf(h)}
	if seconds > 0 {
		c.Throughput = float64(c.Requests) / seconds
	}
	return c
}

// Point is the latency in microseconds at one percentile.
type Point struct {
	Percentile float64 `json:"p"`
	Micros     float64 `json:"us"`
}

// Machine describes where the generator ran.
type Machine struct {
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Go         string `json:"go"`
}

// Err returns ErrWrongDecisions or ErrTransport (wrapped with the counts)
// when the run cannot be trusted, nil otherwise.
func (r *Result) Err() error {
	var errs []error
	if r.Wrong > 0 {
		errs = append(errs, fmt.Errorf("%w: %d", ErrWrongDecisions, r.Wrong))
	}
	if r.TransportErrors > 0 {
		errs = append(errs, fmt.Errorf("%w: %d", ErrTransport, r.TransportErrors))
	}
	return errors.Join(errs...)
}

// fillLatency computes the summary and curve of h (nanoseconds).
func (r *Result) fillLatency(h *hdrhistogram.Histogram) error {
	r.Latency = latencyOf(h)
	r.Curve = r.Curve[:0]
	for _, p := range curvePercentiles() {
		r.Curve = append(r.Curve, Point{Percentile: p, Micros: us(h.ValueAtQuantile(p))})
	}
	enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return fmt.Errorf("encode histogram: %w", err)
	}
	r.Histogram = string(enc)
	return nil
}

// us is ns in microseconds, rounded to two decimals.
func us(ns int64) float64 { return math.Round(float64(ns)/10) / 100 }

// latencyOf summarises h (nanoseconds) in microseconds.
func latencyOf(h *hdrhistogram.Histogram) Latency {
	return Latency{
		P50: us(h.ValueAtQuantile(50)), P90: us(h.ValueAtQuantile(90)), P99: us(h.ValueAtQuantile(99)),
		P999: us(h.ValueAtQuantile(99.9)), Max: us(h.Max()), Mean: math.Round(h.Mean()/10) / 100,
	}
}

// curvePercentiles are evenly spaced on the plot's axis, log10(1/(1-p)),
// from 50 to 99.99.
func curvePercentiles() []float64 {
	var ps []float64
	for x := math.Log10(2); x < 4+1e-9; x += 0.05 {
		ps = append(ps, math.Round(100*(1-math.Pow(10, -x))*1e4)/1e4)
	}
	return append(ps, 99.99)
}

// WriteJSON writes r to path.
func (r *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

// ReadResult reads a result written by WriteJSON.
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("result %s: %w", path, err)
	}
	return &r, nil
}

// WriteText prints r for a terminal.
func (r *Result) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%s: %s to %s, mix %s, %d conns, %d streams, expectations %v\n",
		r.Label, r.Transport, r.Target, r.Mix, r.Conns, r.Streams, r.Expect)
	if r.FreshPreMinted > 0 || r.ForgedPreMinted > 0 {
		fmt.Fprintf(w, "  one-use tokens pre-minted: %d fresh, %d forged", r.FreshPreMinted, r.ForgedPreMinted)
		if r.FreshExhausted {
			fmt.Fprint(w, " (a pool was used up: the run ended early)")
		}
		fmt.Fprintln(w)
	}
	if r.WarmFresh > 0 {
		fmt.Fprintf(w, "  warmed with %d fresh tokens before measuring\n", r.WarmFresh)
	}
	fmt.Fprintf(w, "  %d requests in %.2fs: %.0f req/s\n", r.Requests, r.Seconds, r.Throughput)
	fmt.Fprintf(w, "  CPU: generator %.2fs", r.ClientCPUSeconds)
	if r.ServerCPUSeconds > 0 {
		fmt.Fprintf(w, ", server %.2fs (%.1f µs per request)", r.ServerCPUSeconds, r.ServerCPUPerRequest)
	}
	fmt.Fprintln(w)
	l := r.Latency
	fmt.Fprintf(w, "  latency µs: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (mean %.1f)\n",
		l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	keys := make([]string, 0, len(r.Outcomes))
	for k := range r.Outcomes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, r.Outcomes[k]))
	}
	fmt.Fprintf(w, "  outcomes: %s\n", strings.Join(parts, ", "))
	if len(r.Categories) > 1 {
		for _, c := range Categories {
			if cr, ok := r.Categories[string(c)]; ok {
				fmt.Fprintf(w, "  %s: %d requests, %.0f req/s, p50 %.1f µs, p99 %.1f µs\n",
					c, cr.Requests, cr.Throughput, cr.Latency.P50, cr.Latency.P99)
			}
		}
	}
	fmt.Fprintf(w, "  wrong decisions: %d, transport errors: %d\n", r.Wrong, r.TransportErrors)
	for _, ex := range r.WrongExamples {
		fmt.Fprintf(w, "    %s\n", ex)
	}
	if r.FirstTransportError != "" {
		fmt.Fprintf(w, "    first transport error: %s\n", r.FirstTransportError)
	}
}

// Comparison is a candidate run measured against a baseline run.
type Comparison struct {
	Baseline, Candidate string
	// ThroughputRatio is candidate/baseline requests per second.
	ThroughputRatio float64
	// P99Ratio is candidate/baseline p99 latency.
	P99Ratio float64
	// CPURatio is candidate/baseline server CPU per request (NaN unless
	// both runs measured it).
	CPURatio float64
	// Category, when set, is the token category whose requests alone the
	// throughput and p99 ratios compare (CPURatio stays the whole run's).
	Category Category
}

func div(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// CompareCategory measures the requests of category c in cand against
// those in base: with base a run of c alone and cand a run of c mixed
// with other traffic, the throughput ratio is the share c keeps. An error
// says which run has no requests of c.
func CompareCategory(base, cand *Result, c Category) (Comparison, error) {
	b, okB := base.Categories[string(c)]
	k, okC := cand.Categories[string(c)]
	switch {
	case !okB:
		return Comparison{}, fmt.Errorf("%s has no %s requests", base.Label, c)
	case !okC:
		return Comparison{}, fmt.Errorf("%s has no %s requests", cand.Label, c)
	}
	cmp := Compare(base, cand)
	cmp.Category = c
	cmp.ThroughputRatio = div(k.Throughput, b.Throughput)
	cmp.P99Ratio = div(k.Latency.P99, b.Latency.P99)
	return cmp, nil
}

// Compare measures cand against base.
func Compare(base, cand *Result) Comparison {
	return Comparison{
		Baseline: base.Label, Candidate: cand.Label,
		ThroughputRatio: div(cand.Throughput, base.Throughput),
		P99Ratio:        div(cand.Latency.P99, base.Latency.P99),
		CPURatio:        div(cand.ServerCPUPerRequest, base.ServerCPUPerRequest),
	}
}

// String prints the ratios.
func (c Comparison) String() string {
	what := ""
	if c.Category != "" {
		what = " " + string(c.Category) + " requests:"
	}
	s := fmt.Sprintf("%s vs %s:%s throughput %.3fx, p99 %.3fx", c.Candidate, c.Baseline, what, c.ThroughputRatio, c.P99Ratio)
	if !math.IsNaN(c.CPURatio) {
		s += fmt.Sprintf(", server CPU per request %.3fx", c.CPURatio)
	}
	return s
}
