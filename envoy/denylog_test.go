package envoy_test

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwtguard/jwtguard/envoy"
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

// lines returns the messages logged and the sum of the "count" fields of
// the suppression reports.
func (s *logSink) lines(t *testing.T) (denied, reports int, suppressed int64) {
	t.Helper()
	s.mu.Lock()
	text := s.b.String()
	s.mu.Unlock()
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		var l struct {
			Msg   string `json:"msg"`
			Count int64  `json:"count"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		switch l.Msg {
		case "denied":
			denied++
		case "deny log lines suppressed":
			reports++
			suppressed += l.Count
		}
	}
	return denied, reports, suppressed
}

// TestDenyLogFloodIsBounded floods the adapter with garbage tokens from
// several goroutines: the deny lines stay within the per-second limit, the
// rest is reported as a count, and the metric counts every deny.
func TestDenyLogFloodIsBounded(t *testing.T) {
	e := newEnv(t)
	const limit, workers, perWorker = 5, 4, 500
	sink := &logSink{}
	reg := prometheus.NewRegistry()
	a := envoy.NewAuthorization(e.checker, envoy.WithMetrics(envoy.NewMetrics(reg)),
		envoy.WithLogger(slog.New(slog.NewJSONHandler(sink, nil))), envoy.WithDenyLogLimit(limit))
	garbage := map[string]string{"authorization": "Bearer not-a-jwt"}

	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWorker {
				checkWith(t, a, withHeaders(garbage))
			}
		}()
	}
	wg.Wait()
	windows := int(time.Since(start)/time.Second) + 2 // seconds the flood touched, at most
	sent := workers * perWorker
	denied, _, _ := sink.lines(t)
	if denied > limit*windows {
		t.Errorf("%d deny lines for %d denies over at most %d seconds; want at most %d", denied, sent, windows, limit*windows)
	}
	if denied == 0 {
		t.Error("no deny logged at all")
	}

	// A deny in a later second reports what was left out: keep sending
	// one now and then until every deny of the flood is logged or reported.
	deadline := time.Now().Add(10 * time.Second)
	var reports int
	var suppressed int64
	for int64(denied)+suppressed < int64(workers*perWorker) {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s, %d logged + %d reported suppressed in %d reports; want the %d denies of the flood", denied, suppressed, reports, workers*perWorker)
		}
		checkWith(t, a, withHeaders(garbage))
		sent++
		time.Sleep(50 * time.Millisecond)
		denied, reports, suppressed = sink.lines(t)
	}
	if got := int64(denied) + suppressed; got > int64(sent) || got < int64(workers*perWorker) {
		t.Errorf("%d logged + %d reported suppressed = %d; want between the flood (%d) and all sent (%d)", denied, suppressed, got, workers*perWorker, sent)
	}
	if n := decisions(t, reg, "malformed"); n != float64(sent) {
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
