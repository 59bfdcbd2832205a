package envoy

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwtguard/jwtguard/authz"
)

// Metrics are the decision metrics. Every series is created up front, so
// recording a decision never allocates.
type Metrics struct {
	decisions [numTransports]map[authz.Reason]prometheus.Counter
	revoked   map[authz.Kind]prometheus.Counter
	duration  prometheus.Histogram
	dropped   prometheus.Counter
}

// NewMetrics registers the decision metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	dec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jwtguard_decisions_total",
		Help: "Decisions by reason (ok for allowed) and transport (grpc: ext_authz; http: forward-auth).",
	}, []string{"reason", "transport"})
	rev := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jwtguard_revoked_total",
		Help: "Requests denied as revoked (or unconfirmable), by revocation kind.",
	}, []string{"kind"})
	dur := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "jwtguard_check_duration_seconds",
		Help:    "Time to decide one request inside jwtguard.",
		Buckets: []float64{1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1},
	})
	dropped := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jwtguard_claim_headers_dropped_total",
		Help: "Claim headers of allowed requests removed instead of sent, their value holding a control character (CR, LF, NUL, ...).",
	})
	reg.MustRegister(dec, rev, dur, dropped)
	m := &Metrics{revoked: map[authz.Kind]prometheus.Counter{}, duration: dur, dropped: dropped}
	for t := range m.decisions {
		m.decisions[t] = map[authz.Reason]prometheus.Counter{}
		for _, r := range authz.Reasons {
			m.decisions[t][r] = dec.WithLabelValues(string(r), transportNames[t])
		}
	}
	for _, k := range authz.Kinds {
		m.revoked[k] = rev.WithLabelValues(string(k))
	}
	return m
}

// transport is the way a check reached jwtguard.
type transport uint8

const (
	transportGRPC transport = iota // ext_authz v3 gRPC
	transportHTTP                  // HTTP forward-auth
	numTransports
)

// transportNames are the transports' label values, as logs print them.
var transportNames = [numTransports]string{transportGRPC: "grpc", transportHTTP: "http"}

// transportValues are transportNames boxed once, for log attributes that
// must not allocate.
var transportValues = [numTransports]any{transportGRPC: "grpc", transportHTTP: "http"}

func (m *Metrics) observe(d *authz.Decision, t transport, took time.Duration) {
	if c, ok := m.decisions[t][d.Reason]; ok {
		c.Inc()
	}
	if c, ok := m.revoked[d.RevokedBy]; ok {
		c.Inc()
	}
	m.duration.Observe(took.Seconds())
}

// droppedHeader counts a claim header removed for an unsafe value; m may
// be nil.
func (m *Metrics) droppedHeader() {
	if m != nil {
		m.dropped.Inc()
	}
}
