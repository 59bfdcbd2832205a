package node

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy/detect"
	"github.com/jwtguard/jwtguard/sync/admin"
	"github.com/jwtguard/jwtguard/sync/audit"
	"github.com/jwtguard/jwtguard/sync/redis"
)

// sourceRevoker writes a detector's revocation to the node's source
// through the admin write path, which completes it (before, expiry) as it
// does every writer's records.
type sourceRevoker struct{ admin.SourceRevoker }

func (r sourceRevoker) Revoke(ctx context.Context, rec authz.Record) (authz.Record, error) {
	stored, err := r.SourceRevoker.Revoke(ctx, []authz.Record{rec})
	if err != nil {
		return authz.Record{}, fmt.Errorf("automatic revocation: %w", err)
	}
	return stored[0], nil
}

// redisShared shares the detectors' candidates through the Redis source.
type redisShared struct{ src *redis.Source }

func (r redisShared) AddSightings(ctx context.Context, batch []detect.Sighting) ([]int64, error) {
	sg := make([]redis.Sighting, len(batch))
	for i, s := range batch {
		sg[i] = redis.Sighting(s)
	}
	return r.src.AddSightings(ctx, sg)
}

func (r redisShared) Claim(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	return r.src.Claim(ctx, name, ttl)
}

// trailAuditor records the detectors' blocks in the audit trail (their
// revocations are recorded by the write path that stores them) and logs
// every action.
type trailAuditor struct {
	trail audit.Recorder
	log   *slog.Logger
}

func (a trailAuditor) Audit(ctx context.Context, e detect.AuditEntry) {
	attrs := []any{"node", e.Node, "actor", e.Actor, "action", e.Action, "target", e.Target, "reason", e.Reason}
	if e.Record != nil {
		attrs = append(attrs, "record_id", e.Record.ID)
	}
	a.log.Info("detector action", attrs...)
	if e.Action != detect.Block {
		return
	}
	entry := audit.Entry{Time: e.Time.UTC(), Actor: e.Actor, Kind: audit.KindBlock, Target: e.Target, Reason: e.Reason}
	if e.Address.IsValid() {
		entry.Source = e.Address.String()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if err := a.trail.Record(ctx, entry); err != nil {
		a.log.Error("audit trail: recording a block failed", "target", e.Target, "err", err)
	}
}
