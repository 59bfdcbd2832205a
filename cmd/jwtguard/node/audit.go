package node

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/admin"
	"github.com/jwtguard/jwtguard/sync/audit"
	"github.com/jwtguard/jwtguard/sync/embedded"
	"github.com/jwtguard/jwtguard/sync/redis"
)

// auditTimeout bounds recording one entry off a request path.
const auditTimeout = 10 * time.Second

// openAudit opens the audit trail kept with the node's source.
func (n *Node) openAudit() error {
	var store audit.Store
	switch src := n.src.(type) {
	case *embedded.Store:
		store = src.Audit()
	case *redis.Source:
		var err error
		if store, err = n.cfg.Redis.Audit(src); err != nil {
			return err
		}
	default:
		return fmt.Errorf("audit trail: source %T keeps none", n.src)
	}
	n.audit = audit.NewLog(store, audit.WithNode(n.id))
	n.failures = audit.NewThrottle(n.audit, admin.AuthFailureBurst, admin.AuthFailureWindow)
	n.keyChanges = make(chan audit.Entry, keyChangesQueued)
	return nil
}

// Audit returns the node's audit trail, for the parts that record in it
// (detectors record blocks and automatic revocations).
func (n *Node) Audit() audit.Recorder { return n.audit }

// keyChangesQueued bounds the key set changes waiting to be recorded.
const keyChangesQueued = 64

// flushAudit records key set changes as they come and, every window, the
// summary of admin authentication failures aggregated since, so that the
// end of a flood is recorded too.
func (n *Node) flushAudit(ctx context.Context) {
	t := time.NewTicker(admin.AuthFailureWindow)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-n.keyChanges:
			n.recordKeyChange(ctx, e)
		case <-t.C:
			if err := n.failures.Flush(ctx); err != nil {
				n.log.Error("audit trail: recording aggregated admin authentication failures failed", "err", err)
			}
		}
	}
}

// keySetChanged records a key set reload that added or removed keys. The
// first load of each set at start is only logged: every node start would
// record it otherwise. It returns at once (the loading goroutine calls it).
func (n *Node) keySetChanged(ch authz.KeySetChange) {
	var parts []string
	if len(ch.Added) > 0 {
		parts = append(parts, "added "+strings.Join(ch.Added, ", "))
	}
	if len(ch.Removed) > 0 {
		parts = append(parts, "removed "+strings.Join(ch.Removed, ", "))
	}
	reason := strings.Join(parts, "; ")
	if ch.Initial {
		n.log.Info("key set loaded", "issuer", ch.Issuer, "keys", reason)
		return
	}
	n.log.Info("key set changed", "issuer", ch.Issuer, "change", reason)
	e := audit.Entry{Time: time.Now(), Kind: audit.KindKeySet, Actor: "jwtguard/keys", Target: ch.Issuer, Reason: reason}
	select {
	case n.keyChanges <- e:
	default:
		n.log.Error("audit trail: key set change not recorded, too many waiting", "issuer", ch.Issuer, "change", reason)
	}
}

// recordKeyChange records one key set change.
func (n *Node) recordKeyChange(ctx context.Context, e audit.Entry) {
	ctx, cancel := context.WithTimeout(ctx, auditTimeout)
	defer cancel()
	if err := n.audit.Record(ctx, e); err != nil {
		n.log.Error("audit trail: recording a key set change failed", "issuer", e.Target, "err", err)
	}
}
