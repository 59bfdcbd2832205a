package envoy

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

// Requests end out of the order they started: one that started in an
// earlier second must not reopen that second's window and its allowance.
func TestDenyLogWindowOnlyMovesForward(t *testing.T) {
	l := &denyLog{limit: 2}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t0 := time.Unix(1_000, 0)
	t1 := t0.Add(time.Second)
	allowed := 0
	for _, now := range []time.Time{t1, t1, t0, t1, t0, t0, t1} {
		if l.allow(log, now) {
			allowed++
		}
	}
	if allowed != 2 {
		t.Fatalf("%d lines allowed across one window's flip-flopping starts, want 2", allowed)
	}
	if got := l.suppressed.Load(); got != 5 {
		t.Fatalf("%d suppressed, want 5", got)
	}
}
