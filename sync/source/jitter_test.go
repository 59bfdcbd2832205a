package source_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/embedded"
)

// waitRecorder is a source whose Feed notes how long its caller is ready
// to wait, and answers at once that nothing came.
type waitRecorder struct {
	*embedded.Store
	mu    sync.Mutex
	waits []time.Duration
}

func (w *waitRecorder) Feed(ctx context.Context, after uint64, limit int) ([]authz.Record, error) {
	if dl, ok := ctx.Deadline(); ok {
		w.mu.Lock()
		w.waits = append(w.waits, time.Until(dl))
		w.mu.Unlock()
	}
	return nil, context.DeadlineExceeded
}

func (w *waitRecorder) recorded() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.waits)
}

// TestFollowerWaitsAreJittered: a mesh's followers must not wait for the
// feed in lockstep (all restarting the same wait after each revocation),
// or their idle wake-ups arrive at Redis together: each wait is drawn
// between 3/4 of FeedWait and FeedWait.
func TestFollowerWaitsAreJittered(t *testing.T) {
	src := &waitRecorder{Store: openStore(t, t.TempDir())}
	f, _ := newFollower(t, src, "")
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(src.recorded()) < 50 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	waits := src.recorded()
	if len(waits) < 50 {
		t.Fatalf("%d feed reads within 10s, want 50", len(waits))
	}
	lo, hi := slices.Min(waits), slices.Max(waits)
	// 50 draws over a quarter of the wait: nearly surely spread over more
	// than a tenth of it (the chance they are not is below 1e-20).
	if hi-lo < time.Second {
		t.Errorf("feed waits from %v to %v: not jittered", lo, hi)
	}
	if hi > 25*time.Second || lo < 18*time.Second {
		t.Errorf("feed waits from %v to %v, want within [18.75s, 25s] (FeedWait 25s)", lo, hi)
	}
}
