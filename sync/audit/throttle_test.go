package audit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// memRecorder keeps what it is given.
type memRecorder struct {
	mu      sync.Mutex
	entries []Entry
}

func (m *memRecorder) Record(_ context.Context, e Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = append(m.entries, e)
	return nil
}

func TestThrottleAggregatesAFlood(t *testing.T) {
	mem := &memRecorder{}
	th := NewThrottle(mem, 5, time.Minute)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	th.now = func() time.Time { return now }
	ctx := context.Background()
	// 100 000 failures from 1000 addresses in one window.
	for i := range 100_000 {
		e := Entry{Kind: KindAuthFailure, Source: fmt.Sprintf("198.51.100.%d:1", i%1000), Target: "GET /v1/status", Reason: "wrong admin token"}
		if err := th.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if len(mem.entries) != 5 {
		t.Fatalf("%d entries recorded within the window, want the burst of 5", len(mem.entries))
	}
	if len(th.addrs) > maxSampleAddrs {
		t.Fatalf("%d sample addresses held, want at most %d", len(th.addrs), maxSampleAddrs)
	}
	if err := th.Flush(ctx); err != nil || len(mem.entries) != 5 {
		t.Fatalf("Flush within the window recorded something: %d entries, %v", len(mem.entries), err)
	}
	now = now.Add(time.Minute)
	if err := th.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(mem.entries) != 6 {
		t.Fatalf("%d entries after the window, want 6 (the burst and one summary)", len(mem.entries))
	}
	s := mem.entries[5]
	if s.Count != 100_000-5 || s.Kind != KindAuthFailure || !strings.HasSuffix(s.Source, ", ...") || !strings.Contains(s.Reason, "99995 more") {
		t.Fatalf("summary %+v: want the count, the kind and a sample of addresses", s)
	}
	// A new window records one by one again.
	if err := th.Record(ctx, Entry{Kind: KindAuthFailure}); err != nil || len(mem.entries) != 7 {
		t.Fatalf("first failure of a new window: %d entries, %v; want it recorded", len(mem.entries), err)
	}
}

func TestBound(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		limit    int
	}{
		{"short", "alice", MaxField},
		{"invalid utf-8", "a\xffb", MaxField},
		{"long multibyte", strings.Repeat("€", 1000), MaxField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := Bound(Entry{Actor: tc.in, Time: time.Now()})
			if len(e.Actor) > tc.limit || !utf8.ValidString(e.Actor) {
				t.Fatalf("Bound(%q...) = %q: want valid UTF-8 of at most %d bytes", tc.in[:min(len(tc.in), 10)], e.Actor, tc.limit)
			}
			if e.Time.Location() != time.UTC {
				t.Fatalf("time in %v, want UTC", e.Time.Location())
			}
		})
	}
}

// TestSumCoversEveryField: changing any field changes the hash.
func TestSumCoversEveryField(t *testing.T) {
	base := Entry{Seq: 3, Time: time.Unix(100, 5).UTC(), Node: "n", Actor: "a", Source: "s", Kind: "k", Target: "t", Reason: "r", Count: 2, Prev: "p"}
	for name, edit := range map[string]func(*Entry){
		"seq": func(e *Entry) { e.Seq++ }, "time": func(e *Entry) { e.Time = e.Time.Add(1) },
		"node": func(e *Entry) { e.Node += "x" }, "actor": func(e *Entry) { e.Actor += "x" },
		"source": func(e *Entry) { e.Source += "x" }, "kind": func(e *Entry) { e.Kind += "x" },
		"target": func(e *Entry) { e.Target += "x" }, "reason": func(e *Entry) { e.Reason += "x" },
		"count": func(e *Entry) { e.Count++ }, "prev": func(e *Entry) { e.Prev += "x" },
		// Moving bytes between fields must not keep the hash.
		"shift": func(e *Entry) { e.Node, e.Actor = "na", "" },
	} {
		e := base
		edit(&e)
		if e.Sum() == base.Sum() {
			t.Errorf("changing %s keeps the hash", name)
		}
	}
}
