package sourcetest

import (
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/sync/source"
)

func (s *suite) meshCases() []testCase {
	return []testCase{
		{"ReportsReplaceAndLapse", s.meshReports},
	}
}

// meshReports: a source that keeps mesh status (source.Reporter) returns
// every report not expired, in ID order, the newest of each node, and
// drops a report once it lapses.
func (s *suite) meshReports(t *testing.T) {
	src := s.open(t)
	rep, ok := src.(source.Reporter)
	if !ok {
		t.Skip("the source keeps no mesh status (not a source.Reporter)")
	}
	if nodes, err := rep.Nodes(ctxT(t)); err != nil || len(nodes) != 0 {
		t.Fatalf("Nodes of a new source = %v, %v; want none", nodes, err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	report := func(id string, pos uint64, ttl time.Duration) {
		t.Helper()
		st := source.NodeStatus{ID: id, Version: "v1", Position: pos, Lag: 1, Ready: true, LastSnapshot: now,
			KeySets: map[string]string{"https://a": "fp"}, Heartbeat: now, Expires: time.Now().Add(ttl)}
		if err := rep.Report(ctxT(t), st); err != nil {
			t.Fatalf("Report(%s): %v", id, err)
		}
	}
	report("b", 1, time.Hour)
	report("a", 1, time.Hour)
	report("b", 7, expireAfter)
	nodes, err := rep.Nodes(ctxT(t))
	switch {
	case err != nil:
		t.Fatalf("Nodes: %v", err)
	case len(nodes) != 2 || nodes[0].ID != "a" || nodes[1].ID != "b":
		t.Fatalf("Nodes = %+v, want a then b", nodes)
	case nodes[1].Position != 7 || nodes[1].KeySets["https://a"] != "fp" || !nodes[1].Ready || !nodes[1].LastSnapshot.Equal(now):
		t.Errorf("Nodes returned %+v, want b's newest report as sent", nodes[1])
	}
	eventually(t, "b's report lapses", func() bool {
		nodes, err := rep.Nodes(ctxT(t))
		return err == nil && len(nodes) == 1 && nodes[0].ID == "a"
	})
}
