package keywatch

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	keyAgeDesc = prometheus.NewDesc("jwtguard_key_age_seconds",
		"Age of each signing key of an issuer, since this node first loaded it.", []string{"issuer", "kid"}, nil)
	lastRefreshDesc = prometheus.NewDesc("jwtguard_key_set_last_refresh_timestamp_seconds",
		"Unix time of the last successful load of an issuer's key set.", []string{"issuer"}, nil)
	refreshesDesc = prometheus.NewDesc("jwtguard_key_set_refreshes_total",
		"Successful loads of an issuer's key set.", []string{"issuer"}, nil)
	failuresDesc = prometheus.NewDesc("jwtguard_key_set_refresh_failures_total",
		"Failed loads of an issuer's key set (the last good keys stay in use).", []string{"issuer"}, nil)
	goneUsesDesc = prometheus.NewDesc("jwtguard_key_gone_uses_total",
		"Tokens naming a key after it left its issuer's key set.", []string{"issuer", "kid"}, nil)
	verifiedDesc = prometheus.NewDesc("jwtguard_key_verified_total",
		"Decisions on tokens verified with each key (as observed by the key-rotation watch).", []string{"issuer", "kid"}, nil)
	alarmDesc = prometheus.NewDesc("jwtguard_key_rotation_alarm",
		"1 while a key-rotation alarm is raised for an issuer: missed_rotation, gone_key_in_use or refresh_failing.", []string{"issuer", "alarm"}, nil)
	droppedDesc = prometheus.NewDesc("jwtguard_key_watch_dropped_total",
		"Decisions the key-rotation watch did not count (its queue was full).", nil, nil)
)

// Describe implements prometheus.Collector.
func (w *Watch) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{keyAgeDesc, lastRefreshDesc, refreshesDesc, failuresDesc, goneUsesDesc, verifiedDesc, alarmDesc, droppedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the key sets are read at
// scrape time.
func (w *Watch) Collect(ch chan<- prometheus.Metric) {
	now := w.now()
	for _, ks := range w.sets.KeySets() {
		if !ks.Remote {
			continue
		}
		for _, k := range ks.Keys {
			ch <- prometheus.MustNewConstMetric(keyAgeDesc, prometheus.GaugeValue, now.Sub(k.FirstSeen).Seconds(), ks.Issuer, k.KID)
		}
		if !ks.LastRefresh.IsZero() {
			ch <- prometheus.MustNewConstMetric(lastRefreshDesc, prometheus.GaugeValue, float64(ks.LastRefresh.UnixNano())/1e9, ks.Issuer)
		}
		ch <- prometheus.MustNewConstMetric(refreshesDesc, prometheus.CounterValue, float64(ks.Refreshes), ks.Issuer)
		ch <- prometheus.MustNewConstMetric(failuresDesc, prometheus.CounterValue, float64(ks.Failures), ks.Issuer)
		for _, g := range ks.Gone {
			ch <- prometheus.MustNewConstMetric(goneUsesDesc, prometheus.CounterValue, float64(g.Uses), ks.Issuer, g.KID)
		}
	}
	w.mu.Lock()
	for iss, kids := range w.used {
		for kid, u := range kids {
			ch <- prometheus.MustNewConstMetric(verifiedDesc, prometheus.CounterValue, float64(u.count), iss, kid)
		}
	}
	for iss, st := range w.state {
		for _, k := range []Kind{MissedRotation, GoneKeyInUse, RefreshFailing} {
			v := 0.0
			if st.active[k] {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(alarmDesc, prometheus.GaugeValue, v, iss, string(k))
		}
	}
	w.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(w.dropped.Load()))
}
