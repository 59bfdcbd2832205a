package authz

import (
	"context"
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
	started, gate := s.started, s.gate
	s.mu.Unlock()
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

// flag adds the filter key of v's token check to r's filter without a
// record (a false positive, until the source gets one), so that every
// check of v asks the confirm cache.
func flag(r *Revocations, v *verified) {
	r.Filter().Add(v.keys[checkToken], 0)
}

// unrelatedRecord returns the i-th token revocation of another token.
func unrelatedRecord(i int) Record {
	return Record{Kind: KindToken, Issuer: benchIssuer, Value: "other-" + strconv.Itoa(i), Position: uint64(i + 1)}
}
