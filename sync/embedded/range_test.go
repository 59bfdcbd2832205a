package embedded

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

func TestRangeStops(t *testing.T) {
	s, _ := newStore(t)
	recs := make([]authz.Record, 3*ctxCheckEvery)
	for i := range recs {
		recs[i] = token("i", fmt.Sprint(i), time.Hour)
	}
	put(t, s, recs...)

	ctx, cancel := context.WithCancel(context.Background())
	visited := 0
	_, err := s.Range(ctx, t0, func(authz.Record) error {
		if visited++; visited == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || visited > ctxCheckEvery {
		t.Errorf("Range with ctx canceled after 10 records = %v after %d records; want Canceled within %d",
			err, visited, ctxCheckEvery)
	}

	stop := errors.New("stop")
	visited = 0
	_, err = s.Range(context.Background(), t0, func(authz.Record) error {
		visited++
		return stop
	})
	if err != stop || visited != 1 {
		t.Errorf("Range whose fn fails = %v after %d records; want fn's error after 1", err, visited)
	}
}

func TestRangeCallbackPanicIsNotCorruption(t *testing.T) {
	s, _ := newStore(t)
	put(t, s, token("i", "a", time.Hour))
	defer func() {
		if v := recover(); v != "boom" {
			t.Errorf("recovered %v, want the callback's own panic", v)
		}
		// The store stays usable.
		if _, err := s.Stats(context.Background()); err != nil {
			t.Errorf("Stats after a callback panic: %v", err)
		}
	}()
	_, err := s.Range(context.Background(), t0, func(authz.Record) error { panic("boom") })
	t.Errorf("Range returned %v instead of passing the panic on", err)
}
