package embedded

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

// bulkRecords is the size of BenchmarkBulkLoad: JWTGUARD_BULK_RECORDS, or
// 10,000 so that the test command's single run stays quick.
func bulkRecords(b *testing.B) int {
	b.Helper()
	v := os.Getenv("JWTGUARD_BULK_RECORDS")
	if v == "" {
		return 10_000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("JWTGUARD_BULK_RECORDS=%q: want a positive count", v)
	}
	return n
}

// BenchmarkBulkLoad stores n token records (random-looking jti, as a mass
// revocation has) through Put in batches (JWTGUARD_BULK_BATCH, or each of
// bulkBatches) from one sender or several at once, and reports records per
// second. Each record has its own expiry. JWTGUARD_BULK_RECORDS=1000000 is the mass
// revocation of bench/SCALE.md.
func BenchmarkBulkLoad(b *testing.B) {
	n := bulkRecords(b)
	batches := bulkBatches
	if v := os.Getenv("JWTGUARD_BULK_BATCH"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("JWTGUARD_BULK_BATCH=%q: want a positive count", v)
		}
		batches = []int{n}
	}
	for _, batch := range batches {
		for _, senders := range []int{1, 4} {
			b.Run(fmt.Sprintf("batch=%d/senders=%d", batch, senders), func(b *testing.B) {
				recs := make([]authz.Record, n)
				for i := range recs {
					// Each token its own expiry, within a day, as real ones.
					ttl := time.Hour + time.Duration(uint64(i)*0x9E3779B97F4A7C15%uint64(23*time.Hour))
					recs[i] = token("https://idp", fmt.Sprintf("%016x-%d", uint64(i)*0x9E3779B97F4A7C15, i), ttl)
				}
				var elapsed time.Duration
				cpu0 := cpuTime()
				for b.Loop() {
					b.StopTimer()
					s, _ := newStore(b)
					b.StartTimer()
					start := time.Now()
					putConcurrently(b, s, recs, batch, senders)
					elapsed += time.Since(start)
				}
				b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "records/s")
				// Per second of this process's CPU: what the store costs, apart
				// from the waits of a shared machine.
				b.ReportMetric(float64(n*b.N)/(cpuTime()-cpu0).Seconds(), "records/cpu-s")
			})
		}
	}
}

// putConcurrently stores recs in Puts of batch records from senders
// goroutines at once (`jwtguard revoke --from-file` keeps several batches
// in flight; the store commits those that wait together).
func putConcurrently(b *testing.B, s *Store, recs []authz.Record, batch, senders int) {
	b.Helper()
	next := make(chan []authz.Record)
	go func() {
		defer close(next)
		for i := 0; i < len(recs); i += batch {
			next <- recs[i:min(i+batch, len(recs))]
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for range senders {
		wg.Go(func() {
			for part := range next {
				if _, err := s.Put(context.Background(), part); err != nil {
					errs <- err
					for range next { // let the producer end
					}
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// bulkBatches are the batch sizes of BenchmarkBulkLoad: 500 is what
// `jwtguard revoke --from-file` sent before, 10,000 the admin API's largest
// (and what it sends now, several at once).
var bulkBatches = []int{500, 10_000}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
