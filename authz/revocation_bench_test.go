package authz

import (
	"context"
	"sync"
	"testing"
	"time"
)

// benchLookupDelay stands for the round trip of a source lookup.
const benchLookupDelay = time.Millisecond

// BenchmarkConfirmUnderChurn counts the source lookups of 200 checks of one
// flagged key (a false positive of the filter) while 1,000 revocations of
// other keys arrive per second, with lookups of 1 and 2 ms. Ideal: 1 lookup
// per op (200 checks).
func BenchmarkConfirmUnderChurn(b *testing.B) {
	for _, delay := range []time.Duration{time.Millisecond, 2 * time.Millisecond} {
		b.Run("lookup="+delay.String(), func(b *testing.B) { benchConfirmUnderChurn(b, delay) })
	}
}

func benchConfirmUnderChurn(b *testing.B, delay time.Duration) {
	const checks = 200
	ctx := context.Background()
	lookups := 0
	for b.Loop() {
		b.StopTimer()
		src := newMemSource()
		src.delay = delay
		r := newTestRevocations(b, src)
		v := testVerified("flagged", "", time.Now().Unix())
		flag(r, v, checkToken)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // 1,000 revocations of other tokens per second
			defer wg.Done()
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-t.C:
					r.Apply(unrelatedRecord(i))
				}
			}
		}()
		b.StartTimer()
		for i := 0; i < checks; i++ {
			if reason, _ := r.check(ctx, v, 0); reason != ReasonOK {
				b.Fatal(reason)
			}
		}
		b.StopTimer()
		close(stop)
		wg.Wait()
		lookups += src.count()
		b.StartTimer()
	}
	b.ReportMetric(float64(lookups)/float64(b.N), "lookups/op")
}

// BenchmarkConfirmConcurrent counts the source lookups when 8 callers
// check one flagged key at once; a lookup takes benchLookupDelay. Ideal: 1
// lookup per op (8 checks).
func BenchmarkConfirmConcurrent(b *testing.B) {
	const callers = 8
	ctx := context.Background()
	lookups := 0
	for b.Loop() {
		b.StopTimer()
		src := newMemSource()
		src.delay = benchLookupDelay
		r := newTestRevocations(b, src)
		v := testVerified("flagged", "", time.Now().Unix())
		flag(r, v, checkToken)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if reason, _ := r.check(ctx, v, 0); reason != ReasonOK {
					b.Error(reason)
				}
			}()
		}
		b.StartTimer()
		close(start)
		wg.Wait()
		b.StopTimer()
		lookups += src.count()
		b.StartTimer()
	}
	b.ReportMetric(float64(lookups)/float64(b.N), "lookups/op")
}
