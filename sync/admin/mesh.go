package admin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jwtguard/jwtguard/sync/source"
)

// Node flags of MeshStatus.Flags.
const (
	// FlagBehind: the node enforces a position before the source's newest.
	FlagBehind = "behind"
	// FlagStale: the node's last report is older than two of its
	// heartbeats: it may be gone (its report lapses after three).
	FlagStale = "stale"
	// FlagNotReady: the node reports itself not ready.
	FlagNotReady = "not-ready"
	// FlagKeysDiffer: for some issuer, the node's key-set fingerprint
	// differs from the one most nodes have.
	FlagKeysDiffer = "keys-differ"
)

// Flags returns what is wrong with each node, by ID, as of now: a node
// behind the head (a straggler, or one that has not reported since the
// newest record: reports follow a move of the position within a fraction
// of a second), a stale report, a node not ready, and key sets that differ
// from the majority's (issuer by issuer).
func (m MeshStatus) Flags(now time.Time) map[string][]string {
	out := map[string][]string{}
	usual := map[string]string{} // issuer -> most common fingerprint
	counts := map[string]map[string]int{}
	for _, n := range m.Nodes {
		for iss, fp := range n.KeySets {
			if counts[iss] == nil {
				counts[iss] = map[string]int{}
			}
			counts[iss][fp]++
		}
	}
	for iss, c := range counts {
		fps := slices.Sorted(maps.Keys(c))
		usual[iss] = slices.MaxFunc(fps, func(a, b string) int { return cmp.Compare(c[a], c[b]) })
	}
	for _, n := range m.Nodes {
		var f []string
		if n.Position < m.Head {
			f = append(f, FlagBehind)
		}
		if beat := n.Expires.Sub(n.Heartbeat) / 3; beat > 0 && now.Sub(n.Heartbeat) > 2*beat {
			f = append(f, FlagStale)
		}
		if !n.Ready {
			f = append(f, FlagNotReady)
		}
		for iss, fp := range n.KeySets {
			if fp != usual[iss] || len(n.KeySets) != len(usual) {
				f = append(f, FlagKeysDiffer)
				break
			}
		}
		if len(f) > 0 {
			out[n.ID] = f
		}
	}
	return out
}

// Pending returns the live nodes that have not applied position pos.
func (m MeshStatus) Pending(pos uint64) []source.NodeStatus {
	var out []source.NodeStatus
	for _, n := range m.Nodes {
		if n.Position < pos {
			out = append(out, n)
		}
	}
	return out
}

// MeshReader reads the mesh status: a Client, or a SourceRevoker.
type MeshReader interface {
	Mesh(ctx context.Context) (MeshStatus, error)
}

// ErrWaitTimeout is wrapped by WaitApplied when nodes have not applied the
// position in time.
var ErrWaitTimeout = errors.New("not every node applied it in time")

// WaitApplied polls the mesh status every interval until every live node
// has applied position pos (and at least one node reports), or timeout
// passes: then the error names the nodes that have not, with their
// positions, from the last status read (and the last read's error, when
// it failed on its own). A node whose report lapses (gone away) is no
// longer waited for.
func WaitApplied(ctx context.Context, m MeshReader, pos uint64, timeout, interval time.Duration) (MeshStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		last    MeshStatus
		read    bool // a status was read
		lastErr error
	)
	for {
		st, err := m.Mesh(ctx)
		switch {
		case err == nil:
			last, read, lastErr = st, true, nil
			if len(st.Nodes) > 0 && len(st.Pending(pos)) == 0 {
				return st, nil
			}
		case ctx.Err() == nil:
			lastErr = err
			// A read cut short by the wait's own end says nothing new.
		}
		select {
		case <-ctx.Done():
			failed := ""
			if lastErr != nil {
				failed = fmt.Sprintf(" (last error: %v)", lastErr)
			}
			switch {
			case !read && lastErr != nil:
				return last, fmt.Errorf("wait for position %d: %w (last error: %w)", pos, ErrWaitTimeout, lastErr)
			case !read:
				return last, fmt.Errorf("wait for position %d: %w: no mesh status read in %s", pos, ErrWaitTimeout, timeout)
			case len(last.Nodes) == 0:
				return last, fmt.Errorf("wait for position %d: %w: no node reports its status%s", pos, ErrWaitTimeout, failed)
			}
			var names []string
			for _, n := range last.Pending(pos) {
				names = append(names, fmt.Sprintf("%s (at %d)", n.ID, n.Position))
			}
			return last, fmt.Errorf("wait for position %d: %w after %s: %d of %d nodes have not: %v%s",
				pos, ErrWaitTimeout, timeout, len(names), len(last.Nodes), names, failed)
		case <-time.After(interval):
		}
	}
}

// Mesh reads the mesh status straight from the source.
func (r *SourceRevoker) Mesh(ctx context.Context) (MeshStatus, error) {
	rep, ok := r.Source.(source.Reporter)
	if !ok {
		return MeshStatus{}, errors.New("mesh status: this source keeps none")
	}
	nodes, err := rep.Nodes(ctx)
	if err != nil {
		return MeshStatus{}, err
	}
	st, err := r.Source.Stats(ctx)
	if err != nil {
		return MeshStatus{}, err
	}
	return MeshStatus{Head: st.Position, Nodes: nodes}, nil
}
