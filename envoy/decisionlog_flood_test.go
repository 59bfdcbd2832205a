package envoy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwtguard/jwtguard/envoy"
	"github.com/jwtguard/jwtguard/envoy/decisionlog"
)

// logSink is a concurrency-safe log buffer.
type logSink struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// count returns the deny lines and the rate-limited denies the summary
// lines report.
func (s *logSink) count(t *testing.T) (denied int, rateLimited uint64) {
	t.Helper()
	s.mu.Lock()
	text := s.b.String()
	s.mu.Unlock()
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		var l struct {
			Decision string
			Summary  *decisionlog.Stats
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		switch {
		case l.Summary != nil:
			rateLimited += l.Summary.RateLimited
		case l.Decision == "deny":
			denied++
		}
	}
	return denied, rateLimited
}

// TestDenyLogFloodIsBounded floods the adapter with distinct garbage
// tokens from several goroutines: the decision log's deny lines stay within
// its per-second limit, the rest is reported as a count, and the metric
// counts every deny.
func TestDenyLogFloodIsBounded(t *testing.T) {
	e := newEnv(t)
	const limit, workers, perWorker = 5, 4, 500
	sink := &logSink{}
	cfg := decisionlog.DefaultConfig()
	cfg.DenyRate = limit
	dl, err := decisionlog.New(sink, cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	a := envoy.NewAuthorization(e.checker, envoy.WithMetrics(envoy.NewMetrics(reg)), envoy.WithObserver(dl))

	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				checkWith(t, a, withHeaders(map[string]string{"authorization": fmt.Sprintf("Bearer garbage-%d-%d", w, i)}))
			}
		}()
	}
	wg.Wait()
	windows := int(time.Since(start)/time.Second) + 2 // seconds the flood touched, at most
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := dl.Close(ctx); err != nil {
		t.Fatal(err)
	}
	const sent = workers * perWorker
	denied, rateLimited := sink.count(t)
	if denied > limit*windows {
		t.Errorf("%d deny lines for %d denies over at most %d seconds; want at most %d", denied, sent, windows, limit*windows)
	}
	if denied == 0 {
		t.Error("no deny logged at all")
	}
	st := dl.Stats()
	if uint64(denied) != st.DeniesLogged || rateLimited != st.RateLimited || uint64(denied)+st.RateLimited+st.QueueFull != sent {
		t.Errorf("%d lines, %d reported rate limited, stats %+v: want every one of the %d denies logged or counted", denied, rateLimited, st, sent)
	}
	if n := decisions(t, reg, "malformed"); n != sent {
		t.Errorf("jwtguard_decisions_total{reason=malformed} %v, want every deny: %d", n, sent)
	}
}

// decisions reads jwtguard_decisions_total for reason, summed over
// transports.
func decisions(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum, found := 0.0, false
	for _, mf := range mfs {
		if mf.GetName() != "jwtguard_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					sum += m.GetCounter().GetValue()
					found = true
				}
			}
		}
	}
	if !found {
		t.Fatalf("no jwtguard_decisions_total{reason=%q}", reason)
	}
	return sum
}
