package source_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/embedded"
	"github.com/jwtguard/jwtguard/sync/source"
)

var smallBloom = bloom.Config{Entries: 10_000, FPRate: 0.0001, DeltaEntries: 1000}

func openStore(t *testing.T, dir string) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(dir, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(t *testing.T, s source.Source, values ...string) []authz.Record {
	t.Helper()
	var recs []authz.Record
	for _, v := range values {
		recs = append(recs, authz.Record{Kind: authz.KindToken, Issuer: "iss", Value: v, ExpiresAt: time.Now().Add(time.Hour)})
	}
	out, err := s.Put(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func newFollower(t *testing.T, src source.Source, dataDir string) (*source.Follower, *authz.Revocations) {
	t.Helper()
	f, err := bloom.New(smallBloom)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := authz.NewRevocations(f, src, authz.DefaultRevocationConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := source.DefaultFollowerConfig()
	cfg.DataDir, cfg.Bloom = dataDir, smallBloom
	return source.NewFollower(src, rev, cfg, nil), rev
}

func enforced(rev *authz.Revocations, value string) bool {
	k := authz.LookupKey{Kind: authz.KindToken, Issuer: "iss", Value: value}
	return rev.Filter().MayContain(k.FilterKey())
}

func TestFollowerStartsFollowsAndRestarts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	storeDir, nodeDir := t.TempDir(), t.TempDir()
	src := openStore(t, storeDir)
	put(t, src, "a", "b")

	fol, rev := newFollower(t, src, nodeDir)
	if rev.Ready() {
		t.Fatal("ready before start")
	}
	if err := fol.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !rev.Ready() || !enforced(rev, "a") || !enforced(rev, "b") {
		t.Fatal("start did not load the source's records")
	}
	done := make(chan struct{})
	go func() { fol.Run(ctx); close(done) }()

	recs := put(t, src, "c")
	waitFor(t, func() bool { return enforced(rev, "c") && fol.Position() >= recs[0].Position })
	if fol.LastSync().IsZero() {
		t.Error("no last sync time after reading the feed")
	}
	if fol.Lag() != 0 || fol.SnapshotAge() > time.Minute {
		t.Errorf("lag %d, snapshot age %s after catching up", fol.Lag(), fol.SnapshotAge())
	}
	cancel()
	<-done
	if err := fol.SaveSnapshot(); err != nil {
		t.Fatal(err)
	}

	// A restarted node starts from its snapshot and catches up from there.
	put(t, src, "d")
	fol2, rev2 := newFollower(t, src, nodeDir)
	if err := fol2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"a", "b", "c", "d"} {
		if !enforced(rev2, v) {
			t.Errorf("%s not enforced after restart", v)
		}
	}
	if enforced(rev2, "never-revoked") {
		t.Error("a value never revoked is in the filter")
	}
}

// downSource is a source whose every call fails, as one that is unreachable.
type downSource struct{ source.Source }

func (downSource) Stats(context.Context) (source.Stats, error) {
	return source.Stats{}, fmt.Errorf("dial: connection refused")
}
func (downSource) Snapshot(context.Context, bloom.Config) (*bloom.Filter, error) {
	return nil, fmt.Errorf("dial: connection refused")
}
func (downSource) Feed(context.Context, uint64, int) ([]authz.Record, error) {
	return nil, fmt.Errorf("dial: connection refused")
}

func TestFollowerStartsWhileSourceIsDown(t *testing.T) {
	src := openStore(t, t.TempDir())
	put(t, src, "a")
	nodeDir := t.TempDir()
	fol, _ := newFollower(t, src, nodeDir)
	if err := fol.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := fol.SaveSnapshot(); err != nil {
		t.Fatal(err)
	}

	// With its own snapshot the node starts and enforces it.
	fol2, rev2 := newFollower(t, downSource{src}, nodeDir)
	if err := fol2.Start(context.Background()); err != nil {
		t.Fatalf("start from the node snapshot with the source down: %v", err)
	}
	if !rev2.Ready() || !enforced(rev2, "a") {
		t.Fatal("not ready, or the snapshot's revocation is not enforced")
	}
	// Without one, it refuses: no decision from an empty state.
	fol3, rev3 := newFollower(t, downSource{src}, t.TempDir())
	if err := fol3.Start(context.Background()); err == nil || rev3.Ready() {
		t.Fatalf("started with neither snapshot nor source: err=%v ready=%v", err, rev3.Ready())
	}
}

func TestFollowerRefusesCorruptSnapshot(t *testing.T) {
	src := openStore(t, t.TempDir())
	nodeDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(nodeDir, source.SnapshotFile), []byte("not a snapshot"), 0o600); err != nil {
		t.Fatal(err)
	}
	fol, rev := newFollower(t, src, nodeDir)
	if err := fol.Start(context.Background()); err == nil || rev.Ready() {
		t.Fatalf("corrupt snapshot accepted: err=%v ready=%v", err, rev.Ready())
	}
}

func TestFollowerRefreshDropsExpired(t *testing.T) {
	src := openStore(t, t.TempDir())
	ctx := context.Background()
	if _, err := src.Put(ctx, []authz.Record{{Kind: authz.KindToken, Issuer: "iss", Value: "short", ExpiresAt: time.Now().Add(300 * time.Millisecond)}}); err != nil {
		t.Fatal(err)
	}
	put(t, src, "long")
	fol, rev := newFollower(t, src, "")
	if err := fol.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !enforced(rev, "short") {
		t.Fatal("short-lived record not loaded")
	}
	time.Sleep(400 * time.Millisecond)
	if err := fol.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if enforced(rev, "short") || !enforced(rev, "long") {
		t.Fatalf("after rebuild: short=%v long=%v, want false true", enforced(rev, "short"), enforced(rev, "long"))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10s")
}

// While refreshes swap the filter, a revocation enforced is never missing,
// not even for a moment, and the position never goes backwards.
func TestRefreshLosesNothingEnforcedMeanwhile(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := openStore(t, t.TempDir())
	src := slowStats{store}
	// No Run: nothing but the refresh itself may repair a loss.
	fol, rev := newFollower(t, src, "")
	if err := fol.Start(ctx); err != nil {
		t.Fatal(err)
	}
	refreshed := make(chan int)
	go func() {
		n := 0
		for ctx.Err() == nil && n < 200 {
			if err := fol.Refresh(ctx); err == nil {
				n++
			}
		}
		refreshed <- n
	}()
	var last uint64
	for i := 0; i < 300; i++ {
		v := fmt.Sprintf("v-%d", i)
		rev.Enforce(put(t, src, v)...)
		for j := 0; j <= i; j++ {
			if w := fmt.Sprintf("v-%d", j); !enforced(rev, w) {
				t.Fatalf("%s not enforced after %d revocations", w, i+1)
			}
		}
		if p := rev.Filter().Position(); p < last {
			t.Fatalf("position went back from %d to %d", last, p)
		} else {
			last = p
		}
	}
	cancel()
	if n := <-refreshed; n == 0 {
		t.Fatal("no refresh completed during the test")
	}
}

// slowStats widens the window between a refresh reading the source's head
// and swapping the filter, where a revocation could be lost.
type slowStats struct{ source.Source }

func (s slowStats) Stats(ctx context.Context) (source.Stats, error) {
	st, err := s.Source.Stats(ctx)
	time.Sleep(time.Millisecond)
	return st, err
}

// TestFollowerGoesPastARecordThatDoesNotDecode: a record of the embedded
// store that does not decode (a damaged file) must not stall the feed
// behind it: the follower counts it and goes on.
func TestFollowerGoesPastARecordThatDoesNotDecode(t *testing.T) {
	storeDir, nodeDir := t.TempDir(), t.TempDir()
	open := func() *embedded.Store {
		t.Helper()
		s, err := embedded.Open(storeDir, embedded.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	src := open()
	put(t, src, "a")
	fol, _ := newFollower(t, src, nodeDir)
	if err := fol.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := fol.SaveSnapshot(); err != nil {
		t.Fatal(err)
	}
	bad := put(t, src, "b", "c")[0]
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(storeDir, embedded.FileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("records")).Put([]byte(bad.ID), []byte("{not json")) })
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}

	src = open()
	t.Cleanup(func() { src.Close() })
	fol, rev := newFollower(t, src, nodeDir)
	if err := fol.Start(context.Background()); err != nil {
		t.Fatalf("Start past a record that does not decode: %v", err)
	}
	if !enforced(rev, "c") || fol.BadEntries() != 1 {
		t.Fatalf("after Start: c enforced %v, bad entries %d; want true, 1", enforced(rev, "c"), fol.BadEntries())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { fol.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	put(t, src, "d")
	waitFor(t, func() bool { return enforced(rev, "d") })
}
