package source

import (
	"context"
	"time"
)

// NodeStatus is what a node reports of itself through its source, so that
// an operator (jwtguard status --mesh, revoke --wait) sees the whole mesh.
type NodeStatus struct {
	// ID names the node (its --node-id).
	ID string `json:"id"`
	// Version is the node's build version.
	Version string `json:"version"`
	// Position is the feed position the node enforces: every record and
	// lift at or before it.
	Position uint64 `json:"position"`
	// Lag is how many positions the node was behind the source's newest
	// when it last read it.
	Lag uint64 `json:"lag"`
	// LastSnapshot is when the node's filter was last loaded or rebuilt.
	LastSnapshot time.Time `json:"last_snapshot,omitzero"`
	// KeySets holds a fingerprint of each issuer's key set (see
	// authz.Checker.KeySetFingerprints).
	KeySets map[string]string `json:"key_sets,omitempty"`
	// Ready is the node's readiness.
	Ready bool `json:"ready"`
	// Heartbeat is when the node sent this report.
	Heartbeat time.Time `json:"heartbeat"`
	// Expires is when the report lapses unless the node sends another:
	// a node gone away leaves the mesh status then.
	Expires time.Time `json:"expires"`
}

// Reporter is implemented by a source through which nodes report their
// status to each other. Report stores st under st.ID until st.Expires,
// replacing the node's previous report; Nodes returns every report not
// expired, in ID order.
type Reporter interface {
	Report(ctx context.Context, st NodeStatus) error
	Nodes(ctx context.Context) ([]NodeStatus, error)
}
