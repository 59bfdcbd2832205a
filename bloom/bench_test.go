package bloom

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// keyAt returns key i of stream seed without storing the stream
// (splitmix64), so 10M-key benchmarks need no 160 MB key slice.
func keyAt(seed, i uint64) Key {
	mix := func(z uint64) uint64 {
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		return z ^ (z >> 31)
	}
	x := seed<<40 + 2*i
	return Key{H1: mix(x * 0x9e3779b97f4a7c15), H2: mix((x + 1) * 0x9e3779b97f4a7c15)}
}

// Key streams of the benchmarks.
const (
	seedMember = 1
	seedOther  = 2
)

// fill yields keys 0..n-1 of the member stream.
func fill(n int) func(add func(Key)) error {
	return func(add func(Key)) error {
		for i := range uint64(n) {
			add(keyAt(seedMember, i))
		}
		return nil
	}
}

var (
	benchMu      sync.Mutex
	benchFilters = map[int]*Filter{}
)

// benchFilter returns a filter holding n member keys, built once per test
// binary: a 10M-entry filter takes a second to build.
func benchFilter(b *testing.B, n int) *Filter {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if f, ok := benchFilters[n]; ok {
		return f
	}
	cfg := DefaultConfig()
	cfg.Entries = uint(n)
	f, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Rebuild(cfg, 1, fill(n)); err != nil {
		b.Fatal(err)
	}
	benchFilters[n] = f
	return f
}

var sink bool

func BenchmarkMayContain(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		for _, hit := range []bool{false, true} {
			name := fmt.Sprintf("entries=%dM/miss", n/1_000_000)
			seed := uint64(seedOther)
			if hit {
				name = fmt.Sprintf("entries=%dM/hit", n/1_000_000)
				seed = seedMember
			}
			b.Run(name, func(b *testing.B) {
				f := benchFilter(b, n)
				// Precomputed keys: measure the probe, not the key stream.
				keys := make([]Key, benchKeyCount)
				for i := range keys {
					keys[i] = keyAt(seed, uint64(i)*97%uint64(n))
				}
				b.ReportAllocs()
				b.ResetTimer()
				found := false
				for i := 0; i < b.N; i++ {
					found = f.MayContain(keys[i&(len(keys)-1)])
				}
				sink = found
				b.StopTimer()
				b.ReportMetric(float64(f.Stats().Bytes), "filter-bytes") // after ResetTimer, which drops metrics
			})
		}
	}
}

// benchKeyCount is the length of precomputed key slices, a power of two so
// that a timed loop picks its key with a mask.
const benchKeyCount = 1 << 16

// benchKeys returns the first benchKeyCount keys of stream seed, made
// before a benchmark's timer starts: it measures the filter, not keyAt.
func benchKeys(seed uint64) []Key {
	keys := make([]Key, benchKeyCount)
	for i := range keys {
		keys[i] = keyAt(seed, uint64(i))
	}
	return keys
}

func BenchmarkAdd(b *testing.B) {
	f, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	keys := benchKeys(seedMember)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.Add(keys[i&(len(keys)-1)], uint64(i))
	}
}

// BenchmarkRebuild10M measures one rebuild of a 10M-entry filter from its
// keys: ns/op is the rebuild time.
func BenchmarkRebuild10M(b *testing.B) {
	const n = 10_000_000
	cfg := DefaultConfig()
	cfg.Entries = n
	f, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := f.Rebuild(cfg, uint64(i), fill(n)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(f.Stats().Bytes), "filter-bytes")
}

// BenchmarkMayContainParallelAdding reads from every P while another
// goroutine adds 1,000 keys per second, as a live feed does.
func BenchmarkMayContainParallelAdding(b *testing.B) {
	const n = 1_000_000
	cfg := DefaultConfig()
	f, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Rebuild(cfg, 1, fill(n)); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				f.Add(keyAt(seedOther+1, i), 2+i)
			}
		}
	})
	keys := benchKeys(seedOther)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		found := false
		for i := 0; pb.Next(); i++ {
			found = f.MayContain(keys[i&(len(keys)-1)])
		}
		sink = found
	})
	b.StopTimer()
	close(stop)
	wg.Wait()
}
