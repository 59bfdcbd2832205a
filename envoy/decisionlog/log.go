package decisionlog

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
)

// Stdout is the target of Open that writes to its stdout writer.
const Stdout = "stdout"

// Log is a decision log: an envoy.Observer writing JSON lines.
type Log struct {
	cfg       Config
	log       *slog.Logger
	rand      func() uint64
	threshold uint64 // an allow is logged when rand() < threshold
	allowAll  bool
	denies    perSecond

	free, full chan *record // the queue: empty slots, and slots to write
	closed     atomic.Bool
	stop, done chan struct{}
	closeOnce  sync.Once

	w      io.Writer
	out    *bufio.Writer
	enc    *json.Encoder
	closer io.Closer // the file Open opened, or nil

	sampledOut, rateLimited, queueFull atomic.Uint64 // left out, on the hot path
	allows, denied, writeErrors        atomic.Uint64 // written, by the writer
	last                               Stats         // at the last summary (writer only)
	lastAt                             time.Time
}

// Option configures a Log.
type Option func(*Log)

// WithRandom sets the random source of allow sampling (default
// math/rand/v2's Uint64); tests make it deterministic. It is called from
// every goroutine that checks requests.
func WithRandom(f func() uint64) Option { return func(l *Log) { l.rand = f } }

// WithLogger sets where write errors are reported (default slog.Default()).
func WithLogger(lg *slog.Logger) Option { return func(l *Log) { l.log = lg } }

// Open returns a log writing to target: Stdout for stdout, otherwise a
// file path, opened for appending and created with mode 0600.
func Open(target string, stdout io.Writer, cfg Config, opts ...Option) (*Log, error) {
	if target == Stdout {
		return New(stdout, cfg, opts...)
	}
	if target == "" {
		return nil, fmt.Errorf("decision log: no target")
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("decision log: %w", err)
	}
	l, err := New(f, cfg, opts...)
	if err != nil {
		f.Close()
		return nil, err
	}
	l.closer = f
	return l, nil
}

// New returns a log writing to w and starts its writer; Close stops it.
func New(w io.Writer, cfg Config, opts ...Option) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("decision log: %w", err)
	}
	l := &Log{
		cfg: cfg, log: slog.Default(), rand: rand.Uint64,
		free: make(chan *record, cfg.QueueSize), full: make(chan *record, cfg.QueueSize),
		stop: make(chan struct{}), done: make(chan struct{}),
		w: w, out: bufio.NewWriterSize(w, 64<<10), lastAt: time.Now(),
	}
	l.denies.limit = uint64(cfg.DenyRate)
	switch {
	case cfg.AllowSample >= 1:
		l.allowAll = true
	case cfg.AllowSample > 0:
		l.threshold = uint64(math.Ldexp(cfg.AllowSample, 64))
	}
	for _, o := range opts {
		o(l)
	}
	slots := make([]record, cfg.QueueSize)
	for i := range slots {
		l.free <- &slots[i]
	}
	l.enc = json.NewEncoder(l.out)
	l.enc.SetEscapeHTML(false)
	go l.run()
	return l, nil
}

// Observe queues e to be written, unless it is an allow sampled out, a deny
// past the second's limit, or the queue is full (or the log closed): those
// are counted. It never blocks and never allocates.
func (l *Log) Observe(e *envoy.Event) {
	if e.Reason == authz.ReasonOK {
		if !l.allowAll && (l.threshold == 0 || l.rand() >= l.threshold) {
			l.sampledOut.Add(1)
			return
		}
	} else if !l.denies.allow(e.Time) {
		l.rateLimited.Add(1)
		return
	}
	if l.closed.Load() {
		l.queueFull.Add(1)
		return
	}
	var r *record
	select {
	case r = <-l.free:
	default:
		l.queueFull.Add(1)
		return
	}
	r.fill(e)
	l.full <- r // never blocks: there are only QueueSize records
}

// Close writes the queued lines and a last summary, flushes, and closes
// the file Open opened. Observe must not be running: call it once the
// servers have stopped. It gives up when ctx ends. Closing again does
// nothing.
func (l *Log) Close(ctx context.Context) error {
	var err error
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.stop)
		select {
		case <-l.done:
		case <-ctx.Done():
			err = fmt.Errorf("decision log: lines still queued: %w", ctx.Err())
		}
		if l.closer != nil {
			if cerr := l.closer.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("decision log: %w", cerr)
			}
		}
	})
	return err
}

// run is the writer: it writes queued records, a summary now and then,
// and everything queued when the log closes.
func (l *Log) run() {
	defer close(l.done)
	tick := time.NewTicker(l.cfg.SummaryInterval)
	defer tick.Stop()
	// Polled, not waited on (envoy.PollInterval): no wake-up and no write
	// call per request; each poll writes what queued since, then flushes.
	poll := time.NewTicker(envoy.PollInterval)
	defer poll.Stop()
	for {
		select {
		case <-poll.C:
			if l.writeQueued(cap(l.full)) > 0 {
				l.flush()
			}
		case <-tick.C:
			l.summarize(time.Now())
			l.flush()
		case <-l.stop:
			l.writeQueued(-1)
			l.summarize(time.Now())
			l.flush()
			return
		}
	}
}

// writeQueued writes at most max queued records (-1: until the queue is
// empty) and returns how many it wrote.
func (l *Log) writeQueued(max int) int {
	n := 0
	for ; n != max; n++ {
		select {
		case r := <-l.full:
			l.write(r)
		default:
			return n
		}
	}
	return n
}

// line is one decision as written.
type line struct {
	Time      time.Time `json:"time"`
	Node      string    `json:"node,omitempty"`
	Decision  string    `json:"decision"`
	Reason    string    `json:"reason"`
	RevokedBy string    `json:"revoked_by,omitempty"`
	Rule      string    `json:"rule,omitempty"`
	Error     string    `json:"error,omitempty"`
	Transport string    `json:"transport,omitempty"`
	Method    string    `json:"method,omitempty"`
	Host      string    `json:"host,omitempty"`
	Path      string    `json:"path,omitempty"`
	Source    string    `json:"source,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	Iss       string    `json:"iss,omitempty"`
	Sub       string    `json:"sub,omitempty"`
	JTI       string    `json:"jti,omitempty"`
	SID       string    `json:"sid,omitempty"`
	KID       string    `json:"kid,omitempty"`
	TokenID   string    `json:"token_id,omitempty"`
	TookNS    int64     `json:"took_ns"`
	Truncated bool      `json:"truncated,omitempty"`
}

// maxErrorBytes is the most bytes of a verification error written.
const maxErrorBytes = 256

// write encodes r and returns its slot to the queue.
func (l *Log) write(r *record) {
	ln := line{
		Time: r.time.UTC(), Node: l.cfg.Node, Decision: "deny", Reason: string(r.reason),
		RevokedBy: string(r.revokedBy), Rule: string(r.field(fRule)), Transport: r.transport,
		Method: string(r.field(fMethod)), Host: string(r.field(fHost)), Path: string(r.field(fPath)),
		RequestID: string(r.field(fRequestID)),
		Iss:       string(r.field(fIss)), Sub: string(r.field(fSub)), JTI: string(r.field(fJTI)),
		SID: string(r.field(fSID)), KID: string(r.field(fKID)), TokenID: string(r.field(fTokenID)),
		TookNS: r.took.Nanoseconds(), Truncated: r.truncated,
	}
	if r.source.IsValid() {
		ln.Source = r.source.String()
	}
	if r.reason == authz.ReasonOK {
		ln.Decision = "allow"
	}
	if r.err != nil {
		ln.Error = r.err.Error()
		if len(ln.Error) > maxErrorBytes {
			ln.Error = ln.Error[:maxErrorBytes]
		}
	}
	allow := r.reason == authz.ReasonOK
	r.err = nil // keep no reference while the slot waits
	l.free <- r
	if err := l.enc.Encode(&ln); err != nil {
		l.writeFailed(err)
		return
	}
	if allow {
		l.allows.Add(1)
	} else {
		l.denied.Add(1)
	}
}

// Stats are a log's counts since it started.
type Stats struct {
	// AllowsLogged and DeniesLogged are the lines written.
	AllowsLogged uint64 `json:"allows_logged"`
	DeniesLogged uint64 `json:"denies_logged"`
	// SampledOut are allows not logged by sampling.
	SampledOut uint64 `json:"sampled_out"`
	// RateLimited are denies not logged, past the limit of their second.
	RateLimited uint64 `json:"rate_limited"`
	// QueueFull are decisions dropped because the writer was behind (or
	// the log closed).
	QueueFull uint64 `json:"queue_full"`
	// WriteErrors are lines the writer failed to write.
	WriteErrors uint64 `json:"write_errors"`
}

// Stats returns the counts so far.
func (l *Log) Stats() Stats {
	return Stats{
		AllowsLogged: l.allows.Load(), DeniesLogged: l.denied.Load(),
		SampledOut: l.sampledOut.Load(), RateLimited: l.rateLimited.Load(),
		QueueFull: l.queueFull.Load(), WriteErrors: l.writeErrors.Load(),
	}
}

func (s Stats) sub(o Stats) Stats {
	return Stats{
		AllowsLogged: s.AllowsLogged - o.AllowsLogged, DeniesLogged: s.DeniesLogged - o.DeniesLogged,
		SampledOut: s.SampledOut - o.SampledOut, RateLimited: s.RateLimited - o.RateLimited,
		QueueFull: s.QueueFull - o.QueueFull, WriteErrors: s.WriteErrors - o.WriteErrors,
	}
}

// summaryLine reports what a span of the log left out.
type summaryLine struct {
	Time    time.Time `json:"time"`
	Node    string    `json:"node,omitempty"`
	Summary struct {
		Seconds float64 `json:"seconds"`
		Stats
	} `json:"summary"`
}

// summarize writes the counts since the last summary, when something was
// left out since.
func (l *Log) summarize(now time.Time) {
	cur := l.Stats()
	d := cur.sub(l.last)
	if d.SampledOut == 0 && d.RateLimited == 0 && d.QueueFull == 0 && d.WriteErrors == 0 {
		return
	}
	var s summaryLine
	s.Time, s.Node, s.Summary.Stats = now.UTC(), l.cfg.Node, d
	s.Summary.Seconds = math.Round(now.Sub(l.lastAt).Seconds()*1000) / 1000
	l.last, l.lastAt = cur, now
	if err := l.enc.Encode(&s); err != nil {
		l.writeFailed(err)
	}
}

func (l *Log) flush() {
	if err := l.out.Flush(); err != nil {
		l.writeFailed(err)
	}
}

// writeFailed counts a failed write and reports the first of a run of
// them; the writer keeps going (a full disk may clear).
func (l *Log) writeFailed(err error) {
	if l.writeErrors.Add(1) == l.last.WriteErrors+1 {
		l.log.Error("decision log: write failed; counting further failures", "err", err)
	}
	l.out.Reset(l.w) // a bufio.Writer keeps its first error: start afresh
}
