package embedded

import (
	"cmp"
	"context"
	"maps"
	"slices"

	"github.com/jwtguard/jwtguard/sync/source"
)

var _ source.Reporter = (*Store)(nil)

// Report keeps st in memory: the embedded store serves one node, the one
// in its own process, so its mesh is that node alone.
func (s *Store) Report(ctx context.Context, st source.NodeStatus) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	st.KeySets = maps.Clone(st.KeySets)
	s.nodesMu.Lock()
	defer s.nodesMu.Unlock()
	if s.nodes == nil {
		s.nodes = map[string]source.NodeStatus{}
	}
	s.nodes[st.ID] = st
	return nil
}

// Nodes returns the reports not expired by the store's clock.
func (s *Store) Nodes(ctx context.Context) ([]source.NodeStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := s.now()
	s.nodesMu.Lock()
	defer s.nodesMu.Unlock()
	var out []source.NodeStatus
	for id, st := range s.nodes {
		if !st.Expires.After(now) {
			delete(s.nodes, id)
			continue
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b source.NodeStatus) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}
