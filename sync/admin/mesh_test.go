package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/sync/source"
)

func TestMeshFlags(t *testing.T) {
	now := time.Now()
	node := func(id string, pos uint64, fp string, mod ...func(*source.NodeStatus)) source.NodeStatus {
		n := source.NodeStatus{ID: id, Position: pos, Ready: true, KeySets: map[string]string{"https://a": fp},
			Heartbeat: now.Add(-time.Second), Expires: now.Add(14 * time.Second)}
		for _, m := range mod {
			m(&n)
		}
		return n
	}
	st := MeshStatus{Head: 10, Nodes: []source.NodeStatus{
		node("ok-1", 10, "x"),
		node("ok-2", 10, "x"),
		node("behind", 8, "x"),
		node("odd", 10, "y"),
		node("stale", 10, "x", func(n *source.NodeStatus) { n.Heartbeat, n.Expires = now.Add(-11*time.Second), now.Add(4*time.Second) }),
		node("unready", 10, "x", func(n *source.NodeStatus) { n.Ready = false }),
		node("no-keys", 10, "", func(n *source.NodeStatus) { n.KeySets = nil }),
	}}
	got := st.Flags(now)
	want := map[string][]string{
		"behind":  {FlagBehind},
		"odd":     {FlagKeysDiffer},
		"stale":   {FlagStale},
		"unready": {FlagNotReady},
	}
	for id, f := range want {
		if !slices.Equal(got[id], f) {
			t.Errorf("%s: flags %v, want %v", id, got[id], f)
		}
	}
	for _, id := range []string{"ok-1", "ok-2"} {
		if len(got[id]) != 0 {
			t.Errorf("%s flagged %v", id, got[id])
		}
	}
	if p := st.Pending(10); len(p) != 1 || p[0].ID != "behind" {
		t.Errorf("Pending(10) = %v, want behind", p)
	}
}

// meshSteps is a MeshReader whose answer moves one step per read.
type meshSteps struct {
	steps []MeshStatus
	reads atomic.Int64
}

func (m *meshSteps) Mesh(context.Context) (MeshStatus, error) {
	i := int(m.reads.Add(1)) - 1
	return m.steps[min(i, len(m.steps)-1)], nil
}

func TestWaitApplied(t *testing.T) {
	at := func(pos ...uint64) MeshStatus {
		st := MeshStatus{Head: 5}
		for i, p := range pos {
			st.Nodes = append(st.Nodes, source.NodeStatus{ID: string(rune('a' + i)), Position: p})
		}
		return st
	}
	m := &meshSteps{steps: []MeshStatus{at(), at(4, 5), at(5, 5)}}
	if _, err := WaitApplied(context.Background(), m, 5, time.Minute, time.Millisecond); err != nil {
		t.Fatalf("WaitApplied: %v", err)
	}
	if n := m.reads.Load(); n != 3 {
		t.Errorf("%d reads, want 3 (no node yet, one behind, all applied)", n)
	}
	stuck := &meshSteps{steps: []MeshStatus{at(5, 3, 4)}}
	_, err := WaitApplied(context.Background(), stuck, 5, 50*time.Millisecond, time.Millisecond)
	if !errors.Is(err, ErrWaitTimeout) || !strings.Contains(err.Error(), "b (at 3)") || !strings.Contains(err.Error(), "c (at 4)") || strings.Contains(err.Error(), "a (at") {
		t.Errorf("WaitApplied with two nodes behind: %v, want them named", err)
	}
	if _, err := WaitApplied(context.Background(), &meshSteps{steps: []MeshStatus{at()}}, 5, 20*time.Millisecond, time.Millisecond); !errors.Is(err, ErrWaitTimeout) {
		t.Errorf("WaitApplied with no node: %v, want a timeout", err)
	}
}

// meshThenFail is a MeshReader that reads status once, then fails every
// read with err, or, when err is nil, blocks each until its context ends
// (a status request cut by the wait's own deadline).
type meshThenFail struct {
	status MeshStatus
	err    error
	reads  atomic.Int64
}

func (m *meshThenFail) Mesh(ctx context.Context) (MeshStatus, error) {
	if m.reads.Add(1) == 1 {
		return m.status, nil
	}
	if m.err != nil {
		return MeshStatus{}, m.err
	}
	<-ctx.Done()
	return MeshStatus{}, fmt.Errorf("mesh status: %w", ctx.Err())
}

// A wait that ends while its last status read fails still names the
// nodes behind, from the last status it read; the read's own error is
// added, but not one the wait's deadline caused.
func TestWaitAppliedNamesNodesWhenLastReadFails(t *testing.T) {
	st := MeshStatus{Head: 5, Nodes: []source.NodeStatus{{ID: "a", Position: 5}, {ID: "b", Position: 3}}}
	for _, tc := range []struct {
		name    string
		err     error
		wantErr string
	}{
		{"cut by the deadline", nil, ""},
		{"refused", errors.New("connection refused"), "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := WaitApplied(context.Background(), &meshThenFail{status: st, err: tc.err}, 5, 50*time.Millisecond, time.Millisecond)
			if !errors.Is(err, ErrWaitTimeout) || !strings.Contains(err.Error(), "b (at 3)") || strings.Contains(err.Error(), "a (at") {
				t.Fatalf("WaitApplied = %v, want node b named", err)
			}
			if tc.wantErr == "" && strings.Contains(err.Error(), "deadline") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("WaitApplied = %v, want the read's error %q and not the deadline's", err, tc.wantErr)
			}
		})
	}
	// No status read at all: the reads' error is the answer.
	down := &meshThenFail{err: errors.New("connection refused")}
	down.reads.Store(1)
	if _, err := WaitApplied(context.Background(), down, 5, 20*time.Millisecond, time.Millisecond); !errors.Is(err, ErrWaitTimeout) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("WaitApplied with no status read = %v, want the read's error", err)
	}
}

// GET /v1/mesh answers the source's position and the reports it keeps;
// it needs the admin token like every endpoint.
func TestGetMesh(t *testing.T) {
	e := newEnv(t, Config{Token: testToken})
	st := source.NodeStatus{ID: "n1", Position: 0, Ready: true, Heartbeat: time.Now(), Expires: time.Now().Add(time.Minute)}
	if err := e.store.Report(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	got, err := e.client.Mesh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Nodes) != 1 || got.Nodes[0].ID != "n1" || got.Head != 0 {
		t.Errorf("mesh %+v", got)
	}
	if status, _, _ := e.do(t, "GET", "/v1/mesh", "", ""); status != http.StatusUnauthorized {
		t.Errorf("GET /v1/mesh without the token: %d, want 401", status)
	}
}
