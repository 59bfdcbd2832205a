package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/cmd/jwtguard/internal/buildinfo"
)

// filterCollector reports the filter's statistics, computed once per
// scrape (counting its set bits reads the whole filter).
type filterCollector struct{ f *bloom.Filter }

var (
	filterEntriesDesc = prometheus.NewDesc("jwtguard_filter_entries", "Revocation keys in the Bloom filter.", nil, nil)
	filterFillDesc    = prometheus.NewDesc("jwtguard_filter_fill_ratio", "Share of the filter's bits set.", nil, nil)
	filterFPDesc      = prometheus.NewDesc("jwtguard_filter_estimated_fp_rate", "Estimated false-positive rate of the filter.", nil, nil)
)

func (c filterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- filterEntriesDesc
	ch <- filterFillDesc
	ch <- filterFPDesc
}

func (c filterCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.f.Stats()
	ch <- prometheus.MustNewConstMetric(filterEntriesDesc, prometheus.GaugeValue, float64(st.Entries))
	ch <- prometheus.MustNewConstMetric(filterFillDesc, prometheus.GaugeValue, st.FillRatio)
	ch <- prometheus.MustNewConstMetric(filterFPDesc, prometheus.GaugeValue, st.EstimatedFPRate)
}

// registerMetrics registers the node's metrics; each reads its value at
// scrape time.
func (n *Node) registerMetrics(reg *prometheus.Registry) {
	n.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jwtguard_config_reload_total",
		Help: "Configuration reloads (SIGHUP, --config file change) by result: ok, or error (refused, the running configuration kept).",
	}, []string{"result"})
	n.reloads.WithLabelValues("ok")
	n.reloads.WithLabelValues("error")
	reg.MustRegister(n.reloads)
	gauge := func(name, help string, fn func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
	}
	counter := func(name, help string, fn func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "jwtguard_build_info", Help: "Always 1; the labels say which build runs (jwtguard version).", ConstLabels: buildinfo.Get().Labels()}, func() float64 { return 1 }))
	gauge("jwtguard_ready", "1 when keys and revocation state are loaded.", func() float64 { return b2f(n.Ready()) })
	gauge("jwtguard_feed_position", "Feed position the node's revocation state reflects.", func() float64 { return float64(n.follower.Position()) })
	gauge("jwtguard_feed_lag", "Feed positions the node is behind the revocation source, as of its last read.", func() float64 { return float64(n.follower.Lag()) })
	gauge("jwtguard_snapshot_age_seconds", "Seconds since the node's filter was loaded from a snapshot or refreshed from the source.", func() float64 { return n.follower.SnapshotAge().Seconds() })
	gauge("jwtguard_source_staleness_seconds", "Seconds since the revocation source was last read successfully.", func() float64 {
		if l := n.follower.LastSync(); !l.IsZero() {
			return time.Since(l).Seconds()
		}
		return -1
	})
	reg.MustRegister(filterCollector{n.rev.Filter()})
	gauge("jwtguard_cached_tokens", "Tokens in the verified-token cache.", func() float64 { return float64(n.checker.Load().CachedTokens()) })
	counter("jwtguard_filter_maybes_total", "Filter matches that needed confirmation.", func() float64 { return float64(n.rev.Stats().Maybes) })
	counter("jwtguard_confirm_cache_hits_total", "Filter matches answered by the confirm cache.", func() float64 { return float64(n.rev.Stats().ConfirmHits) })
	counter("jwtguard_confirm_lookups_total", "Exact lookups at the revocation source.", func() float64 { return float64(n.rev.Stats().Lookups) })
	counter("jwtguard_confirm_shared_lookups_total", "Filter matches answered by a source lookup shared with other checks of the same key.", func() float64 { return float64(n.rev.Stats().SharedLookups) })
	gauge("jwtguard_confirm_lookups_waiting", "Checks waiting for a source lookup now.", func() float64 { return float64(n.rev.Stats().Waiting) })
	counter("jwtguard_confirm_lookup_errors_total", "Exact lookups that failed.", func() float64 { return float64(n.rev.Stats().LookupErrors) })
	counter("jwtguard_confirm_lookup_seconds_total", "Time spent in exact lookups.", func() float64 { return n.rev.Stats().LookupTime.Seconds() })
	gauge("jwtguard_snapshot_publisher", "1 while this node holds the Redis publisher lease.", func() float64 {
		return b2f(n.publisher != nil && n.publisher.Holding())
	})
	gauge("jwtguard_source_diverged", "1 when the revocation source is behind this node (it lost data): an operator must look.", func() float64 {
		return b2f(n.follower.Diverged())
	})
	counter("jwtguard_snapshot_reloads_total", "Snapshot reloads after falling behind the feed.", func() float64 { return float64(n.follower.Reloads()) })
	gauge("jwtguard_scope_tokens", "Tokens in the incident scope table (GET /v1/tokens).", func() float64 { return float64(n.scope.Stats().Entries) })
	gauge("jwtguard_scope_bytes", "Accounted memory of the incident scope table.", func() float64 { return float64(n.scope.Stats().Bytes) })
	counter("jwtguard_scope_dropped_total", "Decisions the incident scope did not note (its queue was full).", func() float64 { return float64(n.scope.Stats().Dropped) })
	counter("jwtguard_scope_evicted_total", "Tokens pushed out of the incident scope to make room.", func() float64 { return float64(n.scope.Stats().Evicted) })
	counter("jwtguard_feed_bad_entries_total", "Feed entries that did not decode and were skipped (a revocation may be lost): alert when it rises.", func() float64 { return float64(n.follower.BadEntries()) })
}
