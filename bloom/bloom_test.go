package bloom

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// randKeys returns n random keys, the same for the same seed.
func randKeys(seed uint64, n int) []Key {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = Key{H1: r.Uint64(), H2: r.Uint64()}
	}
	return keys
}

func mustNew(t testing.TB, cfg Config) *Filter {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return f
}

// requireAll fails unless f may contain every key.
func requireAll(t *testing.T, f *Filter, keys []Key) {
	t.Helper()
	for i, k := range keys {
		if !f.MayContain(k) {
			t.Fatalf("key %d of %d (%x) not found: a false negative", i, len(keys), k)
		}
	}
}

// countFound returns how many keys f may contain.
func countFound(f *Filter, keys []Key) int {
	n := 0
	for _, k := range keys {
		if f.MayContain(k) {
			n++
		}
	}
	return n
}

// rebuildFrom rebuilds f from keys at pos.
func rebuildFrom(t *testing.T, f *Filter, cfg Config, pos uint64, keys []Key) {
	t.Helper()
	err := f.Rebuild(cfg, pos, func(add func(Key)) error {
		for _, k := range keys {
			add(k)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
}

// smallConfig sizes a filter where a handful of keys give a negligible
// false-positive rate, so a key reported absent was really dropped.
// Its delta never fills in these tests, so no background Compact moves keys
// while a test counts them.
var smallConfig = Config{Entries: 1000, FPRate: 1e-6, DeltaEntries: 1000}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string // "" when valid
	}{
		{"default", DefaultConfig(), ""},
		{"small", Config{Entries: 1, FPRate: 0.5, DeltaEntries: 1}, ""},
		{"zero entries", Config{FPRate: 0.001, DeltaEntries: 10}, "Entries"},
		{"too many entries", Config{Entries: 1 << 33, FPRate: 0.001, DeltaEntries: 10}, "Entries"},
		{"zero rate", Config{Entries: 10, DeltaEntries: 10}, "FPRate"},
		{"negative rate", Config{Entries: 10, FPRate: -0.1, DeltaEntries: 10}, "FPRate"},
		{"rate of one", Config{Entries: 10, FPRate: 1, DeltaEntries: 10}, "FPRate"},
		{"NaN rate", Config{Entries: 10, FPRate: math.NaN(), DeltaEntries: 10}, "FPRate"},
		{"zero delta", Config{Entries: 10, FPRate: 0.001}, "DeltaEntries"},
		{"huge delta", Config{Entries: 10, FPRate: 0.001, DeltaEntries: 1 << 30}, "DeltaEntries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.field+" =") {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.field)
			}
			if _, err := New(tt.cfg); err == nil {
				t.Fatalf("New accepted an invalid config")
			}
		})
	}
}

func TestNewIsEmpty(t *testing.T) {
	f := mustNew(t, DefaultConfig())
	if got := countFound(f, randKeys(1, 10_000)); got != 0 {
		t.Errorf("empty filter may contain %d of 10000 keys", got)
	}
	if f.Position() != 0 {
		t.Errorf("Position() = %d, want 0", f.Position())
	}
	if f.Config() != DefaultConfig() {
		t.Errorf("Config() = %+v, want %+v", f.Config(), DefaultConfig())
	}
}

func TestNoFalseNegatives(t *testing.T) {
	cfg := Config{Entries: 100_000, FPRate: 0.001, DeltaEntries: 4096}
	keys := randKeys(2, 100_000)
	f := mustNew(t, cfg)
	for i, k := range keys {
		f.Add(k, uint64(i+1))
	}
	requireAll(t, f, keys)

	if err := f.Compact(); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if got := f.Stats().DeltaEntries; got != 0 {
		t.Errorf("after Compact, DeltaEntries = %d, want 0", got)
	}
	requireAll(t, f, keys)

	rebuildFrom(t, f, cfg, f.Position(), keys)
	requireAll(t, f, keys)

	g := roundTrip(t, f)
	requireAll(t, g, keys)

	h := mustNew(t, smallConfig)
	h.Replace(g)
	requireAll(t, h, keys)
}

func TestFalsePositiveRate(t *testing.T) {
	tests := []struct {
		name    string
		entries int
		useAdd  bool // fill through Add (delta and compactions) instead of Rebuild
	}{
		{"rebuild 1M", 1_000_000, false},
		{"add 200k", 200_000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Entries: uint(tt.entries), FPRate: 0.001, DeltaEntries: 65_536}
			f := mustNew(t, cfg)
			keys := randKeys(3, tt.entries)
			if tt.useAdd {
				for i, k := range keys {
					f.Add(k, uint64(i))
				}
			} else {
				rebuildFrom(t, f, cfg, 1, keys)
			}
			probes := randKeys(4, tt.entries)
			rate := float64(countFound(f, probes)) / float64(len(probes))
			st := f.Stats()
			t.Logf("measured FP rate %.5f, estimated %.5f, target %g (delta entries %d)",
				rate, st.EstimatedFPRate, cfg.FPRate, st.DeltaEntries)
			if rate > 1.5*cfg.FPRate {
				t.Errorf("measured FP rate %.5f > 1.5 x target %g", rate, cfg.FPRate)
			}
			if st.EstimatedFPRate > 1.5*cfg.FPRate {
				t.Errorf("estimated FP rate %.5f > 1.5 x target %g", st.EstimatedFPRate, cfg.FPRate)
			}
		})
	}
}

func TestMemoryNearOptimum(t *testing.T) {
	cfg := Config{Entries: 10_000_000, FPRate: 0.001, DeltaEntries: 65_536}
	f := mustNew(t, cfg)
	optimum := -float64(cfg.Entries) * math.Log(cfg.FPRate) / (math.Ln2 * math.Ln2) / 8
	got := f.Stats().Bytes
	t.Logf("%d bytes, optimum %.0f (%.3fx)", got, optimum, float64(got)/optimum)
	if float64(got) > 1.2*optimum {
		t.Errorf("filter of %d bytes > 1.2 x optimum %.0f", got, optimum)
	}
}

func TestPositionIsMaximum(t *testing.T) {
	f := mustNew(t, smallConfig)
	for _, step := range []struct{ add, want uint64 }{{5, 5}, {3, 5}, {9, 9}, {0, 9}} {
		f.Add(Key{H1: step.add, H2: 1}, step.add)
		if got := f.Position(); got != step.want {
			t.Fatalf("after Add at %d, Position() = %d, want %d", step.add, got, step.want)
		}
	}
}

func TestRebuild(t *testing.T) {
	live, expired, during := randKeys(5, 50), randKeys(6, 50), randKeys(7, 10)
	tests := []struct {
		name       string
		pos        uint64 // position passed to Rebuild
		duringPos  uint64 // position of the adds made during it
		wantPos    uint64
		newEntries uint
	}{
		{"adds during rebuild are ahead", 40, 77, 77, 1000},
		{"rebuild is ahead", 90, 77, 90, 1000},
		{"resize", 40, 77, 77, 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := smallConfig
			f := mustNew(t, cfg)
			for i, k := range append(append([]Key(nil), live...), expired...) {
				f.Add(k, uint64(i))
			}
			cfg.Entries = tt.newEntries
			err := f.Rebuild(cfg, tt.pos, func(add func(Key)) error {
				for _, k := range live {
					add(k)
				}
				for _, k := range during { // the feed keeps flowing
					f.Add(k, tt.duringPos)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("Rebuild: %v", err)
			}
			requireAll(t, f, live)
			requireAll(t, f, during)
			if n := countFound(f, expired); n != 0 {
				t.Errorf("%d of %d keys left out of the rebuild are still found", n, len(expired))
			}
			if got := f.Position(); got != tt.wantPos {
				t.Errorf("Position() = %d, want %d", got, tt.wantPos)
			}
			if got := f.Config(); got != cfg {
				t.Errorf("Config() = %+v, want %+v", got, cfg)
			}
			st := f.Stats()
			if st.BaseEntries != uint64(len(live)) || st.DeltaEntries != uint64(len(during)) {
				t.Errorf("Stats: base %d, delta %d entries, want %d, %d",
					st.BaseEntries, st.DeltaEntries, len(live), len(during))
			}
		})
	}
}

func TestRebuildFailureLeavesFilter(t *testing.T) {
	keys := randKeys(8, 100)
	f := mustNew(t, smallConfig)
	for i, k := range keys {
		f.Add(k, uint64(i+1))
	}
	errSource := errors.New("source down")
	err := f.Rebuild(smallConfig, 1000, func(add func(Key)) error {
		add(keys[0])
		return errSource
	})
	if !errors.Is(err, errSource) {
		t.Fatalf("Rebuild error = %v, want it to wrap %v", err, errSource)
	}
	requireAll(t, f, keys)
	if f.Position() != 100 {
		t.Errorf("Position() = %d after a failed rebuild, want 100", f.Position())
	}
	if err := f.Rebuild(Config{}, 1, func(func(Key)) error { return nil }); err == nil {
		t.Errorf("Rebuild accepted an invalid config")
	}
}

func TestAddCompactsInBackground(t *testing.T) {
	cfg := Config{Entries: 10_000, FPRate: 0.001, DeltaEntries: 64}
	f := mustNew(t, cfg)
	keys := randKeys(9, 1000)
	for i, k := range keys {
		f.Add(k, uint64(i))
	}
	requireAll(t, f, keys)
	deadline := time.Now().Add(10 * time.Second)
	for f.Stats().DeltaEntries >= uint64(cfg.DeltaEntries) {
		if time.Now().After(deadline) {
			t.Fatalf("delta still full 10 s after the last Add: %+v", f.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	st := f.Stats()
	if st.Entries != uint64(len(keys)) || st.BaseEntries == 0 {
		t.Errorf("Stats = %+v, want %d entries, most in the base", st, len(keys))
	}
	requireAll(t, f, keys)
}

func TestReplace(t *testing.T) {
	fKeys, gKeys := randKeys(10, 50), randKeys(11, 50)
	f := mustNew(t, smallConfig)
	for _, k := range fKeys {
		f.Add(k, 3)
	}
	gCfg := smallConfig
	gCfg.Entries = 2000
	g := mustNew(t, gCfg)
	rebuildFrom(t, g, gCfg, 40, gKeys[:25])
	for _, k := range gKeys[25:] {
		g.Add(k, 50)
	}

	f.Replace(g)
	requireAll(t, f, gKeys)
	if n := countFound(f, fKeys); n != 0 {
		t.Errorf("%d of f's own keys survived Replace", n)
	}
	if f.Position() != 50 || f.Config() != gCfg {
		t.Errorf("after Replace: Position %d, Config %+v; want 50, %+v", f.Position(), f.Config(), gCfg)
	}
	if got, want := f.Stats(), g.Stats(); got != want {
		t.Errorf("Stats after Replace = %+v, want %+v", got, want)
	}

	// The two stay independent.
	onlyF, onlyG := KeyOfString("only f"), KeyOfString("only g")
	f.Add(onlyF, 60)
	g.Add(onlyG, 70)
	if g.MayContain(onlyF) || f.MayContain(onlyG) || g.Position() != 70 || f.Position() != 60 {
		t.Errorf("f and g share state after Replace")
	}
}

// TestConcurrent runs readers, adders, Compact and Rebuild at once. The
// adders model the source: a key is recorded as revoked before it is added,
// and each rebuild yields every recorded key, so no key may ever be missing.
func TestConcurrent(t *testing.T) {
	const (
		adders    = 4
		perAdder  = 3000
		readers   = 4
		rebuilds  = 5
		compacts  = 20
		seedShift = 100
	)
	cfg := Config{Entries: 20_000, FPRate: 0.001, DeltaEntries: 256}
	f := mustNew(t, cfg)
	keys := make([][]Key, adders)
	var recorded, added [adders]atomic.Int64
	for i := range keys {
		keys[i] = randKeys(seedShift+uint64(i), perAdder)
	}

	var wg sync.WaitGroup
	var addersDone atomic.Int32
	for i := range adders {
		wg.Go(func() {
			defer addersDone.Add(1)
			for j, k := range keys[i] {
				recorded[i].Store(int64(j + 1))
				f.Add(k, uint64(j))
				added[i].Store(int64(j + 1))
			}
		})
	}
	var misses atomic.Int64
	for range readers {
		wg.Go(func() {
			for round := 0; addersDone.Load() < adders && round < 100_000; round++ {
				i := round % adders
				n := int(added[i].Load()) // added before this read started
				for _, k := range keys[i][max(0, n-50):n] {
					if !f.MayContain(k) {
						misses.Add(1)
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range compacts {
			if err := f.Compact(); err != nil {
				t.Errorf("Compact: %v", err)
			}
		}
	})
	wg.Go(func() {
		for range rebuilds {
			err := f.Rebuild(cfg, 0, func(add func(Key)) error {
				for i := range keys {
					for _, k := range keys[i][:recorded[i].Load()] {
						add(k)
					}
				}
				return nil
			})
			if err != nil {
				t.Errorf("Rebuild: %v", err)
			}
		}
	})
	wg.Wait()

	if n := misses.Load(); n != 0 {
		t.Errorf("%d reads missed a key added before they started", n)
	}
	for i := range keys {
		requireAll(t, f, keys[i])
	}
}

func TestMayContainAllocs(t *testing.T) {
	f := mustNew(t, DefaultConfig())
	keys := randKeys(12, 1000)
	rebuildFrom(t, f, DefaultConfig(), 1, keys[:500])
	f.Add(keys[500], 2)
	for _, tt := range []struct {
		name string
		key  Key
	}{
		{"hit base", keys[0]},
		{"hit delta", keys[500]},
		{"miss", keys[999]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(1000, func() { f.MayContain(tt.key) }); n != 0 {
				t.Errorf("MayContain allocates %v times per call, want 0", n)
			}
		})
	}
}

func TestStats(t *testing.T) {
	f := mustNew(t, smallConfig)
	keys := randKeys(13, 300)
	rebuildFrom(t, f, smallConfig, 7, keys[:200])
	for _, k := range keys[200:] {
		f.Add(k, 5)
	}
	st := f.Stats()
	m, k := smallConfig.baseParams()
	dm, _ := smallConfig.deltaParams()
	want := Stats{
		Entries: 300, BaseEntries: 200, DeltaEntries: 100,
		Bits: uint64(m + dm), K: k, Bytes: 8 * uint64((m+63)/64+(dm+63)/64), Position: 7,
	}
	got := st
	got.FillRatio, got.EstimatedFPRate = 0, 0
	if got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	if st.FillRatio <= 0 || st.FillRatio >= 0.5 {
		t.Errorf("FillRatio = %g, want in (0, 0.5) for a filter under capacity", st.FillRatio)
	}
	if st.EstimatedFPRate <= 0 || st.EstimatedFPRate > smallConfig.FPRate {
		t.Errorf("EstimatedFPRate = %g, want in (0, %g]", st.EstimatedFPRate, smallConfig.FPRate)
	}
}

func TestAdvance(t *testing.T) {
	f := mustNew(t, smallConfig)
	f.Add(Key{H1: 1, H2: 2}, 3)
	tests := []struct {
		name     string
		pos      uint64
		wantPos  uint64
		wantKeys uint64
	}{
		{"ahead", 5, 5, 1},
		{"behind: no change", 4, 5, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.Advance(tt.pos)
			if got := f.Position(); got != tt.wantPos {
				t.Errorf("Position = %d, want %d", got, tt.wantPos)
			}
			if got := f.Stats().Entries; got != tt.wantKeys {
				t.Errorf("Entries = %d, want %d: Advance adds no key", got, tt.wantKeys)
			}
		})
	}
	// A rebuild running meanwhile keeps the advanced position.
	if err := f.Rebuild(smallConfig, 1, func(add func(Key)) error { f.Advance(9); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := f.Position(); got != 9 {
		t.Errorf("Position after a Rebuild during which it advanced = %d, want 9", got)
	}
}
