package node

import (
	"context"
	"net"
	"os"
	"time"

	"github.com/jwtguard/jwtguard/cmd/jwtguard/internal/buildinfo"
	"github.com/jwtguard/jwtguard/sync/source"
)

// minReportGap bounds the rate of a node's status reports: at most one
// per minReportGap when its position moves, one per heartbeat otherwise.
const minReportGap = 250 * time.Millisecond

// nodeID is the node's name in the mesh status, the audit trail and the
// decision log: --node-id, else the host name and the gRPC port.
func (n *Node) nodeID() string {
	if n.cfg.NodeID != "" {
		return n.cfg.NodeID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "jwtguard"
	}
	if _, port, err := net.SplitHostPort(n.grpcLis.Addr().String()); err == nil {
		return host + ":" + port
	}
	return host
}

// selfStatus is the node's status report as of now.
func (n *Node) selfStatus(id string, now time.Time) source.NodeStatus {
	return source.NodeStatus{
		ID:           id,
		Version:      buildinfo.Get().Version,
		Position:     n.follower.Position(),
		Lag:          n.follower.Lag(),
		LastSnapshot: now.Add(-n.follower.SnapshotAge()).UTC(),
		KeySets:      n.checker.Load().KeySetFingerprints(),
		Ready:        n.Ready(),
		Heartbeat:    now.UTC(),
		Expires:      now.Add(3 * n.cfg.HeartbeatInterval).UTC(),
	}
}

// report sends the node's status through the source (see source.Reporter)
// once per heartbeat, and soon after its position moves or its readiness
// changes, at most once per minReportGap, until ctx ends. A failed report
// is retried at the next tick; it never affects decisions.
func (n *Node) report(ctx context.Context) {
	rep, ok := n.src.(source.Reporter)
	if !ok {
		return
	}
	id := n.id
	t := time.NewTicker(minReportGap)
	defer t.Stop()
	var last source.NodeStatus
	var lastAt time.Time
	failed := false
	for {
		now := time.Now()
		pos, ready := n.follower.Position(), n.Ready()
		if lastAt.IsZero() || failed || pos != last.Position || ready != last.Ready || now.Sub(lastAt) >= n.cfg.HeartbeatInterval {
			st := n.selfStatus(id, now)
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := rep.Report(rctx, st)
			cancel()
			if failed = err != nil; failed {
				if ctx.Err() == nil && now.Sub(lastAt) >= n.cfg.HeartbeatInterval {
					n.log.Warn("mesh status report failed", "err", err)
					lastAt = now // log once per heartbeat
				}
			} else {
				last, lastAt = st, now
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
