package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy/detect"
	"github.com/jwtguard/jwtguard/sync/admin"
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

// logAuditor writes the detectors' blocks and revocations to the log as
// "audit" lines, until the audit trail takes them.
type logAuditor struct{ log *slog.Logger }

func (a logAuditor) Audit(_ context.Context, e detect.AuditEntry) {
	attrs := []any{"node", e.Node, "actor", e.Actor, "action", e.Action, "target", e.Target, "reason", e.Reason, "time", e.Time.UTC()}
	if e.Address.IsValid() {
		attrs = append(attrs, "address", e.Address.String())
	}
	if e.Record != nil {
		attrs = append(attrs, "record_id", e.Record.ID)
	}
	a.log.Info("audit", attrs...)
}

// nodeName names this node in automatic revocations and audit entries:
// its host name and gRPC port.
func nodeName(grpcAddr net.Addr) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "jwtguard"
	}
	if ta, ok := grpcAddr.(*net.TCPAddr); ok {
		return fmt.Sprintf("%s:%d", host, ta.Port)
	}
	return host
}
