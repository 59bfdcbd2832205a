package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/bloom"
)

// memSource is a revocation source in memory. Its Lookup reads the records
// stored under a key, then, when gate is set, reports the key on started
// and waits for gate to close before answering: a lookup in flight while
// the test changes the source or the node.
type memSource struct {
	mu      sync.Mutex
	recs    map[LookupKey][]Record
	lookups int
	delay   time.Duration // a network round trip, for benchmarks
	started chan LookupKey
	gate    chan struct{}
	down    bool // every lookup fails, as with the source unreachable
}

func newMemSource() *memSource { return &memSource{recs: map[LookupKey][]Record{}} }

// store adds rec to the source, as a write that the feed has not brought
// to the node yet.
func (s *memSource) store(rec Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs[rec.LookupKey()] = append(s.recs[rec.LookupKey()], rec)
}

func (s *memSource) Lookup(ctx context.Context, k LookupKey) ([]Record, error) {
	s.mu.Lock()
	s.lookups++
	recs := append([]Record(nil), s.recs[k]...)
	started, gate, down := s.started, s.gate, s.down
	s.mu.Unlock()
	if down {
		return nil, errors.New("source unreachable")
	}
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	if gate != nil {
		started <- k
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return recs, nil
}

// setDown makes every lookup fail (or succeed again).
func (s *memSource) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// count returns the number of lookups so far.
func (s *memSource) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookups
}

// hold makes the next lookups wait for release; the returned channel
// receives the key of each lookup once it has read the source.
func (s *memSource) hold() (started <-chan LookupKey, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, gate := make(chan LookupKey, 64), make(chan struct{})
	s.started, s.gate = ch, gate
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.mu.Lock()
			s.started, s.gate = nil, nil
			s.mu.Unlock()
			close(gate)
		})
	}
}

// newTestRevocations returns ready revocations over an empty default
// filter, confirmed through src, with a confirm timeout long enough for a
// lookup the test holds.
func newTestRevocations(tb testing.TB, src Lookup) *Revocations {
	tb.Helper()
	f, err := bloom.New(bloom.DefaultConfig())
	if err != nil {
		tb.Fatal(err)
	}
	cfg := DefaultRevocationConfig()
	cfg.ConfirmTimeout = time.Minute
	r, err := NewRevocations(f, src, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	r.SetReady(true)
	return r
}

// testVerified returns a verified token of benchIssuer with id jti,
// subject sub and issue time iat: its token and subject checks apply.
func testVerified(jti, sub string, iat int64) *verified {
	v := &verified{claims: Claims{Issuer: benchIssuer, TokenID: jti, JTI: jti, Subject: sub, IssuedAt: iat}}
	for i := 0; i < numChecks; i++ {
		v.keys[i] = v.lookupKey(i).FilterKey()
	}
	return v
}

// flag adds the filter keys of v's checks to r's filter without a record
// (false positives, until the source gets one), so that these checks of v
// ask the confirm cache.
func flag(r *Revocations, v *verified, checks ...int) {
	for _, i := range checks {
		r.Filter().Add(v.keys[i], 0)
	}
}

// unrelatedRecord returns the i-th token revocation of another token.
func unrelatedRecord(i int) Record {
	return Record{Kind: KindToken, Issuer: benchIssuer, Value: "other-" + strconv.Itoa(i), Position: uint64(i + 1)}
}

// checkResult is what one revocation check returned.
type checkResult struct {
	reason Reason
	kind   Kind
}

// goCheck runs r.check of v on its own goroutine.
func goCheck(ctx context.Context, r *Revocations, v *verified) <-chan checkResult {
	ch := make(chan checkResult, 1)
	go func() {
		reason, kind := r.check(ctx, v, 0)
		ch <- checkResult{reason, kind}
	}()
	return ch
}

// testWait is the generous deadline of anything a test waits for.
const testWait = 30 * time.Second

// receive returns the next value of ch, failing the test after testWait.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testWait):
		t.Fatalf("no %s after %s", what, testWait)
		var zero T
		return zero
	}
}

// checkWant fails the test unless r.check of v gives want.
func checkWant(t *testing.T, r *Revocations, v *verified, want Reason) {
	t.Helper()
	if got, kind := r.check(context.Background(), v, 0); got != want {
		t.Fatalf("check(%s) = %s (%s), want %s", v.claims.TokenID, got, kind, want)
	}
}

// A revocation applied while a lookup of the same key is in flight, the
// lookup having read the source before the record arrived, is never lost:
// the stale answer is not cached, and the check that waited for it asks
// again.
func TestRevocationAppliedWhileLookupInFlight(t *testing.T) {
	iat := time.Now().Unix() - 60
	tests := []struct {
		name        string
		check       int
		rec         Record
		wantLookups int // the stale one, then one more unless Apply cached the answer
	}{
		{name: "token record (Apply caches it)", check: checkToken, wantLookups: 1,
			rec: Record{Kind: KindToken, Issuer: benchIssuer, Value: "t1", Position: 1}},
		{name: "subject record with a before time (looked up)", check: checkSubject, wantLookups: 2,
			rec: Record{Kind: KindSubject, Value: "alice", Before: time.Unix(iat+10, 0), Position: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newMemSource()
			r := newTestRevocations(t, src)
			v := testVerified("t1", "alice", iat)
			flag(r, v, tt.check)
			started, release := src.hold()
			defer release()
			inFlight := goCheck(context.Background(), r, v)
			receive(t, started, "lookup")
			src.store(tt.rec)
			r.Apply(tt.rec)
			release()
			if got := receive(t, inFlight, "check result"); got.reason != ReasonRevoked {
				t.Errorf("check in flight across the revocation = %s, want %s", got.reason, ReasonRevoked)
			}
			checkWant(t, r, v, ReasonRevoked)
			checkWant(t, r, v, ReasonRevoked)
			if got := src.count(); got != tt.wantLookups {
				t.Errorf("%d lookups, want %d", got, tt.wantLookups)
			}
		})
	}
}

// A check that starts after a revocation of its key never joins a lookup
// that started before it: that lookup read the source without the record.
func TestRevocationLaterCallerDoesNotJoinEarlierLookup(t *testing.T) {
	iat := time.Now().Unix() - 60
	src := newMemSource()
	r := newTestRevocations(t, src)
	v := testVerified("t1", "alice", iat)
	flag(r, v, checkSubject)
	rec := Record{Kind: KindSubject, Value: "alice", Before: time.Unix(iat+10, 0), Position: 1}

	started, release := src.hold()
	defer release()
	early := goCheck(context.Background(), r, v)
	receive(t, started, "first lookup")
	src.store(rec)
	r.Apply(rec)
	late := goCheck(context.Background(), r, v)
	// The later check starts a lookup of its own (which reads the record)
	// instead of waiting for the first one's stale answer.
	receive(t, started, "second lookup")
	release()
	for name, ch := range map[string]<-chan checkResult{"early": early, "late": late} {
		if got := receive(t, ch, name+" check"); got.reason != ReasonRevoked {
			t.Errorf("%s check = %s, want %s", name, got.reason, ReasonRevoked)
		}
	}
	checkWant(t, r, v, ReasonRevoked)
	if got := src.count(); got != 2 {
		t.Errorf("%d lookups, want 2", got)
	}
}

// Concurrent checks of one key share one lookup.
func TestRevocationConcurrentChecksShareOneLookup(t *testing.T) {
	const callers = 8
	src := newMemSource()
	r := newTestRevocations(t, src)
	v := testVerified("t1", "", time.Now().Unix())
	flag(r, v, checkToken)
	started, release := src.hold()
	defer release()
	results := make([]<-chan checkResult, callers)
	for i := range results {
		results[i] = goCheck(context.Background(), r, v)
	}
	receive(t, started, "lookup")
	// A check counts as waiting once it has joined the lookup, which cannot
	// end before release.
	waitFor(t, "every check joins the lookup", func() bool { return r.Stats().Waiting == callers })
	release()
	for i, ch := range results {
		if got := receive(t, ch, "check result"); got.reason != ReasonOK {
			t.Errorf("check %d = %s, want %s", i, got.reason, ReasonOK)
		}
	}
	if got := src.count(); got != 1 {
		t.Errorf("%d lookups for %d concurrent checks, want 1", got, callers)
	}
	if st := r.Stats(); st.SharedLookups != callers || st.Waiting != 0 {
		t.Errorf("shared %d, waiting %d; want %d, 0", st.SharedLookups, st.Waiting, callers)
	}
}

// A revocation of another key applied while a lookup runs does not stop
// its answer from being cached, unless the other key shares its
// generation slot (a wasted fill, never a wrong one).
func TestRevocationOtherKeysKeepTheFill(t *testing.T) {
	v := testVerified("t1", "", time.Now().Unix())
	slot := slotOf(v.keys[checkToken])
	// otherRecord returns a token record whose key is in slot or not.
	otherRecord := func(sameSlot bool) Record {
		for i := 0; ; i++ {
			rec := unrelatedRecord(i)
			if (slotOf(rec.LookupKey().FilterKey()) == slot) == sameSlot {
				return rec
			}
		}
	}
	tests := []struct {
		name        string
		sameSlot    bool
		wantLookups int
	}{
		{"other slot", false, 1},
		{"same slot", true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newMemSource()
			r := newTestRevocations(t, src)
			flag(r, v, checkToken)
			started, release := src.hold()
			defer release()
			inFlight := goCheck(context.Background(), r, v)
			receive(t, started, "lookup")
			rec := otherRecord(tt.sameSlot)
			src.store(rec)
			r.Apply(rec)
			release()
			if got := receive(t, inFlight, "check result"); got.reason != ReasonOK {
				t.Fatalf("check = %s, want %s", got.reason, ReasonOK)
			}
			checkWant(t, r, v, ReasonOK)
			checkWant(t, r, v, ReasonOK)
			if got := src.count(); got != tt.wantLookups {
				t.Errorf("%d lookups, want %d", got, tt.wantLookups)
			}
		})
	}
}

// A check that gives up (its request ended) is denied without cancelling
// the lookup the others wait for, whose answer is cached.
func TestRevocationCheckGivesUpAloneOnItsContext(t *testing.T) {
	src := newMemSource()
	r := newTestRevocations(t, src)
	v := testVerified("t1", "", time.Now().Unix())
	flag(r, v, checkToken)
	started, release := src.hold()
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	gone := goCheck(ctx, r, v)
	receive(t, started, "lookup")
	cancel()
	if got := receive(t, gone, "check result"); got.reason != ReasonUnavailable || got.kind != KindToken {
		t.Errorf("check of a cancelled request = %s (%s), want %s (%s)", got.reason, got.kind, ReasonUnavailable, KindToken)
	}
	release()
	waitFor(t, "the lookup ends", func() bool { return r.Stats().ConfirmSize == 1 })
	checkWant(t, r, v, ReasonOK)
	if got := src.count(); got != 1 {
		t.Errorf("%d lookups, want 1", got)
	}
}

// Replace and ReplaceWith drop every cached answer: a new filter may bring
// records never applied one by one, and lifts of records an answer holds.
// The answers come back with one lookup each, and right.
func TestReplaceForgetsEveryAnswer(t *testing.T) {
	now := time.Now()
	iat := now.Unix() - 60
	tokenRecord := func(jti string, expires time.Time, pos uint64) Record {
		return Record{Kind: KindToken, Issuer: benchIssuer, Value: jti, ExpiresAt: expires, Position: pos}
	}
	subjectRecord := func(before int64, pos uint64) Record {
		return Record{Kind: KindSubject, Value: "sam", Before: time.Unix(before, 0), ExpiresAt: now.Add(time.Hour), Position: pos}
	}
	var (
		revoked  = testVerified("a", "", iat)    // revoked by a token record: looked up again, still revoked
		flagged  = testVerified("b", "", iat)    // a false positive, then revoked only in the new filter
		subject  = testVerified("s", "sam", iat) // revoked before iat-30, then before iat+30 only in the new filter
		expired  = testVerified("c", "", iat)    // revoked by a token record that has expired: its answer goes
		recA     = tokenRecord("a", now.Add(time.Hour), 1)
		recS1    = subjectRecord(iat-30, 2)
		recC     = tokenRecord("c", now.Add(-time.Hour), 3)
		recB     = tokenRecord("b", now.Add(time.Hour), 4)
		recS2    = subjectRecord(iat+30, 5)
		applied  = []Record{recA, recS1, recC}
		newOnes  = []Record{recB, recS2}
		wantMore = 4 // lookups after the swap: one per key
	)
	tests := []struct {
		name    string
		replace func(r *Revocations, snap *bloom.Filter) error
	}{
		{"Replace", func(r *Revocations, snap *bloom.Filter) error {
			for _, rec := range newOnes {
				snap.Add(rec.LookupKey().FilterKey(), rec.Position)
			}
			r.Replace(snap)
			return nil
		}},
		{"ReplaceWith", func(r *Revocations, snap *bloom.Filter) error {
			return r.ReplaceWith(snap, func(g *bloom.Filter) error {
				for _, rec := range newOnes { // the catch-up, not Apply
					g.Add(rec.LookupKey().FilterKey(), rec.Position)
				}
				return nil
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newMemSource()
			r := newTestRevocations(t, src)
			snap, err := bloom.New(bloom.DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range applied {
				src.store(rec)
				r.Apply(rec)
				snap.Add(rec.LookupKey().FilterKey(), rec.Position)
			}
			flag(r, flagged, checkToken)
			checkWant(t, r, revoked, ReasonRevoked)
			checkWant(t, r, flagged, ReasonOK)
			checkWant(t, r, subject, ReasonOK)
			checkWant(t, r, expired, ReasonRevoked)
			before := src.count()

			for _, rec := range newOnes {
				src.store(rec)
			}
			if err := tt.replace(r, snap); err != nil {
				t.Fatal(err)
			}
			checkWant(t, r, revoked, ReasonRevoked)
			checkWant(t, r, flagged, ReasonRevoked)
			checkWant(t, r, subject, ReasonRevoked)
			checkWant(t, r, expired, ReasonRevoked)
			if got := src.count() - before; got != wantMore {
				t.Errorf("%d lookups after the swap, want %d (one per key)", got, wantMore)
			}
		})
	}
}

// The revocation check allocates nothing when the filter says no, nor when
// the confirm cache answers.
func TestRevocationCheckAllocs(t *testing.T) {
	r := newTestRevocations(t, newMemSource())
	ctx := context.Background()
	clean := testVerified("clean", "carl", time.Now().Unix())
	flagged := testVerified("flagged", "fred", time.Now().Unix())
	flag(r, flagged, checkToken, checkSubject)
	checkWant(t, r, flagged, ReasonOK) // fills the confirm cache
	for _, tt := range []struct {
		name string
		v    *verified
	}{{"filter says no", clean}, {"confirm cache answers", flagged}} {
		t.Run(tt.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(1000, func() { r.check(ctx, tt.v, 0) }); got != 0 {
				t.Errorf("%v allocations per check, want 0", got)
			}
		})
	}
	if st := r.Stats(); st.Lookups != 2 || st.ConfirmHits < 2000 {
		t.Errorf("stats %+v: want 2 lookups and the cache answering every later check", st)
	}
}

// A record the server enforced before the feed brought it counts once in
// the filter, and is still enforced after a filter swap that forgets it.
func TestEnforceThenFeedCountsOnce(t *testing.T) {
	r := newTestRevocations(t, newMemSource())
	rec := Record{ID: "r1", Kind: KindToken, Issuer: "https://idp", Value: "j1", Position: 7}
	k := rec.LookupKey().FilterKey()
	r.Enforce(rec)
	if st := r.Filter().Stats(); st.Position != 0 || !r.Filter().MayContain(k) {
		t.Fatalf("after Enforce: position %d, contains %v; want 0, true", st.Position, r.Filter().MayContain(k))
	}
	r.Apply(rec)
	st := r.Filter().Stats()
	if st.Entries != 1 || st.Position != 7 || !r.Filter().MayContain(k) {
		t.Fatalf("entries %d position %d contains %v; want 1, 7, true", st.Entries, st.Position, r.Filter().MayContain(k))
	}

	// Enforced again, then a snapshot without it is swapped in before the
	// feed brings it: the feed's copy must be added.
	rec2 := Record{ID: "r2", Kind: KindToken, Issuer: "https://idp", Value: "j2", Position: 8}
	r.Enforce(rec2)
	empty, err := bloom.New(bloom.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	r.Replace(empty)
	r.Apply(rec2)
	if !r.Filter().MayContain(rec2.LookupKey().FilterKey()) {
		t.Fatal("a record enforced before a filter swap is missing after the feed brought it")
	}
}

// When the feed brings a record before the server that wrote it enforces
// it, Enforce adds nothing: it still counts once.
func TestFeedThenEnforceCountsOnce(t *testing.T) {
	r := newTestRevocations(t, newMemSource())
	rec := Record{ID: "r1", Kind: KindToken, Issuer: "https://idp", Value: "j1", Position: 3}
	r.Apply(rec)
	r.Enforce(rec)
	if st := r.Filter().Stats(); st.Entries != 1 || st.Position != 3 {
		t.Fatalf("entries %d position %d; want 1, 3", st.Entries, st.Position)
	}
}

// Records enforced ahead of the feed in bulk (an import's chunks, more
// than any bound on single IDs) still count once when the feed brings
// them, whatever order the chunks were enforced in; a record the source
// holds at a remembered position under another ID (as after a loss of
// data) is added, never taken for the one enforced.
func TestEnforceAheadInBulkCountsOnce(t *testing.T) {
	rec := func(pos uint64, id string) Record {
		return Record{ID: id, Kind: KindToken, Issuer: "https://idp", Value: fmt.Sprintf("%s-%d", id, pos), Position: pos}
	}
	const n = 150_000
	chunk := func(from, to uint64, id string) []Record {
		recs := make([]Record, 0, to-from+1)
		for p := from; p <= to; p++ {
			recs = append(recs, rec(p, fmt.Sprintf("%s%d", id, p)))
		}
		return recs
	}
	r := newTestRevocations(t, newMemSource())
	second, first := chunk(n/2+1, n, "r"), chunk(1, n/2, "r")
	r.Enforce(second...) // enforced out of position order, as two concurrent imports may be
	r.Enforce(first...)
	r.Apply(first...)
	r.Apply(second...)
	if st := r.Filter().Stats(); st.Entries != n || st.Position != n {
		t.Fatalf("entries %d position %d; want %d, %d", st.Entries, st.Position, n, n)
	}
	if len(r.ahead) != 0 || r.aheadCount != 0 {
		t.Fatalf("%d runs (%d records) still remembered after the feed passed them", len(r.ahead), r.aheadCount)
	}

	// The source lost data: the feed brings other records at the
	// positions remembered.
	lost := chunk(n+1, n+3, "old")
	r.Enforce(lost...)
	fresh := chunk(n+1, n+3, "new")
	r.Apply(fresh...)
	for _, f := range fresh {
		if !r.Filter().MayContain(f.LookupKey().FilterKey()) {
			t.Fatalf("record %s at a remembered position was not added", f.ID)
		}
	}
	if st := r.Filter().Stats(); st.Entries != n+6 {
		t.Fatalf("entries %d; want %d (the three enforced and the three the feed brought)", st.Entries, n+6)
	}
}

func TestAheadCopy(t *testing.T) {
	rec := func(pos uint64, id string) Record {
		return Record{ID: id, Kind: KindToken, Issuer: "https://idp", Value: fmt.Sprintf("%s-%d", id, pos), Position: pos}
	}
	entries := func(r *Revocations) (int, uint64) {
		st := r.Filter().Stats()
		return int(st.Entries), st.Position
	}
	tests := []struct {
		name string
		// enforced ahead, then the feed's copies
		enforce, feed []Record
		// before applying the feed: replace the filter (forgetting what was
		// enforced ahead)
		replace     bool
		wantApplied int
		wantEntries int
		wantPos     uint64
	}{
		{name: "copies of records enforced ahead move the position",
			enforce:     []Record{rec(1, "a"), rec(2, "b"), rec(3, "c")},
			feed:        []Record{AheadCopy("a", 1), AheadCopy("b", 2), AheadCopy("c", 3)},
			wantApplied: 3, wantEntries: 3, wantPos: 3},
		{name: "a copy whose ID differs from the one enforced there stops",
			enforce:     []Record{rec(1, "a"), rec(2, "b")},
			feed:        []Record{AheadCopy("a", 1), AheadCopy("other", 2)},
			wantApplied: 1, wantEntries: 2, wantPos: 1},
		{name: "a copy of a position never enforced stops",
			enforce:     []Record{rec(1, "a")},
			feed:        []Record{AheadCopy("a", 1), AheadCopy("b", 2)},
			wantApplied: 1, wantEntries: 1, wantPos: 1},
		{name: "a copy without a position stops",
			enforce:     []Record{rec(1, "a")},
			feed:        []Record{AheadCopy("a", 0)},
			wantApplied: 0, wantEntries: 1, wantPos: 0},
		{name: "copies after a replacement stop (the new filter may lack them)",
			enforce: []Record{rec(1, "a")},
			feed:    []Record{AheadCopy("a", 1)},
			replace: true, wantApplied: 0, wantEntries: 0, wantPos: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRevocations(t, newMemSource())
			r.Enforce(tt.enforce...)
			for _, c := range tt.feed {
				want := slices.ContainsFunc(tt.enforce, func(e Record) bool { return e.ID == c.ID && e.Position == c.Position && c.Position != 0 })
				if got := r.EnforcedAhead(c.Position, []byte(c.ID)); got != want {
					t.Errorf("EnforcedAhead(%d, %s) = %v, want %v", c.Position, c.ID, got, want)
				}
			}
			if tt.replace {
				f, err := bloom.New(bloom.DefaultConfig())
				if err != nil {
					t.Fatal(err)
				}
				r.Replace(f)
			}
			if got := r.Apply(tt.feed...); got != tt.wantApplied {
				t.Errorf("Apply applied %d, want %d", got, tt.wantApplied)
			}
			if n, pos := entries(r); n != tt.wantEntries || pos != tt.wantPos {
				t.Errorf("entries %d position %d; want %d, %d", n, pos, tt.wantEntries, tt.wantPos)
			}
		})
	}
}

// TestAheadCopyLostData: the source lost data and holds another record at
// a position the node remembers; its feed reader decodes it (its ID is not
// the one enforced there), and Apply adds it.
func TestAheadCopyLostData(t *testing.T) {
	r := newTestRevocations(t, newMemSource())
	old := Record{ID: "old", Kind: KindToken, Issuer: "https://idp", Value: "old", Position: 1}
	fresh := Record{ID: "new", Kind: KindToken, Issuer: "https://idp", Value: "new", Position: 1}
	r.Enforce(old)
	if r.EnforcedAhead(1, []byte(fresh.ID)) {
		t.Fatal("a record the node never enforced is taken for one it did")
	}
	if got := r.Apply(AheadCopy(fresh.ID, 1)); got != 0 {
		t.Fatalf("a copy under another ID was applied (%d)", got)
	}
	if got := r.Apply(fresh); got != 1 {
		t.Fatalf("Apply applied %d records, want 1", got)
	}
	if !r.Filter().MayContain(fresh.LookupKey().FilterKey()) || r.Filter().Position() != 1 {
		t.Fatal("the record at the remembered position was not added")
	}
}

// TestAheadCopyDuringReplacement: while a replacement catches its filter
// up, no record counts as enforced ahead and no copy is applied: the new
// filter needs every key.
func TestAheadCopyDuringReplacement(t *testing.T) {
	r := newTestRevocations(t, newMemSource())
	r.Enforce(Record{ID: "a", Kind: KindToken, Issuer: "https://idp", Value: "a", Position: 1})
	f, err := bloom.New(bloom.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	err = r.ReplaceWith(f, func(g *bloom.Filter) error {
		if r.EnforcedAhead(1, []byte("a")) {
			t.Error("a record counts as enforced ahead during a replacement")
		}
		if got := r.Apply(AheadCopy("a", 1)); got != 0 {
			t.Errorf("a copy was applied during a replacement (%d)", got)
		}
		g.Add(Record{Kind: KindToken, Issuer: "https://idp", Value: "a"}.LookupKey().FilterKey(), 1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
