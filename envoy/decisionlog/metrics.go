package decisionlog

import "github.com/prometheus/client_golang/prometheus"

var (
	linesDesc = prometheus.NewDesc("jwtguard_decision_log_lines_total",
		"Decision log lines written, by decision (allow, deny).", []string{"decision"}, nil)
	droppedDesc = prometheus.NewDesc("jwtguard_decision_log_dropped_total",
		"Decisions left out of the decision log, by why: sampled_out (allows not sampled), rate_limited (denies past the per-second limit), queue_full (the writer was behind).", []string{"why"}, nil)
	writeErrorsDesc = prometheus.NewDesc("jwtguard_decision_log_write_errors_total",
		"Decision log writes that failed.", nil, nil)
)

// collector reports a log's counts at scrape time.
type collector struct{ l *Log }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- linesDesc
	ch <- droppedDesc
	ch <- writeErrorsDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.l.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(linesDesc, s.AllowsLogged, "allow")
	counter(linesDesc, s.DeniesLogged, "deny")
	counter(droppedDesc, s.SampledOut, "sampled_out")
	counter(droppedDesc, s.RateLimited, "rate_limited")
	counter(droppedDesc, s.QueueFull, "queue_full")
	counter(writeErrorsDesc, s.WriteErrors)
}

// Register registers the log's counters with reg.
func (l *Log) Register(reg prometheus.Registerer) error {
	return reg.Register(collector{l})
}
