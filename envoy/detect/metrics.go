package detect

import "github.com/prometheus/client_golang/prometheus"

// metrics are the detectors' metrics; unregistered until WithRegisterer.
type metrics struct {
	dropped prometheus.Counter
	events  prometheus.Counter
	blocks  prometheus.Gauge
	actions *prometheus.CounterVec

	shared, shareDropped, shareErrors prometheus.Counter
}

func (m *metrics) init() {
	m.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jwtguard_detector_events_dropped_total",
		Help: "Decisions the detectors never saw: their queue was full.",
	})
	m.events = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jwtguard_detector_events_total",
		Help: "Decisions the detectors processed.",
	})
	m.blocks = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "jwtguard_detector_blocks",
		Help: "Addresses, tokens and sessions blocked on this node now (expired blocks leave within a second).",
	})
	m.shared = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jwtguard_detector_shared_total",
		Help: "Candidates written to the mesh-wide store (token-addresses).",
	})
	m.shareDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jwtguard_detector_share_dropped_total",
		Help: "Candidates not shared with the mesh: the share queue was full.",
	})
	m.shareErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jwtguard_detector_share_errors_total",
		Help: "Failed writes or claims at the mesh-wide store.",
	})
	m.actions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jwtguard_detector_fired_total",
		Help: "Detectors fired, by detector, policy and outcome (observed, blocked, revoked, dry_run, capped, block_full, no_revoker, failed).",
	}, []string{"detector", "policy", "outcome"})
}

func (m *metrics) register(reg prometheus.Registerer) {
	reg.MustRegister(m.dropped, m.events, m.blocks, m.actions, m.shared, m.shareDropped, m.shareErrors)
}

func (m *metrics) fired(n Name, p Policy, outcome string) {
	m.actions.WithLabelValues(string(n), string(p), outcome).Inc()
}
