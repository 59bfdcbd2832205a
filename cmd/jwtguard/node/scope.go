package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy/keywatch"
	"github.com/jwtguard/jwtguard/envoy/scope"
	"github.com/jwtguard/jwtguard/sync/admin"
	"github.com/jwtguard/jwtguard/sync/audit"
	"github.com/jwtguard/jwtguard/sync/redis"
	"github.com/jwtguard/jwtguard/sync/source"
)

// newScope names the node and builds its scope table, shared through
// Redis when Redis is the source. The name is the node id and a random
// suffix: two processes given one id (a copied configuration) must not
// take each other's shared summaries for their own.
func (n *Node) newScope() error {
	var r [4]byte
	_, _ = rand.Read(r[:])
	n.name = n.id + "-" + hex.EncodeToString(r[:])
	opts := []scope.Option{scope.WithLogger(n.log)}
	if rs, ok := n.src.(*redis.Source); ok {
		opts = append(opts, scope.WithShared(scopeStore{rs.Scope()}))
	}
	t, err := scope.New(n.cfg.Scope, n.name, opts...)
	if err != nil {
		return fmt.Errorf("scope: %w", err)
	}
	n.scope = t
	return nil
}

// tokens answers the admin API's GET /v1/tokens from the scope table.
func (n *Node) tokens(ctx context.Context, v url.Values) (any, error) {
	q, err := scope.ParseQuery(v, time.Now())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", admin.ErrBadQuery, err)
	}
	return n.scope.Answer(ctx, q), nil
}

// scopeStore is the Redis scope store as the scope table sees it.
type scopeStore struct{ s *redis.ScopeStore }

func (a scopeStore) Put(ctx context.Context, node string, items []scope.SharedItem) error {
	out := make([]redis.ScopeSummary, len(items))
	for i, it := range items {
		out[i] = redis.ScopeSummary{Key: it.Key, Data: it.Data, Indexes: it.Indexes, Expiry: it.Expiry}
	}
	return a.s.Put(ctx, node, out)
}

func (a scopeStore) Find(ctx context.Context, index string, max int) ([][]byte, error) {
	return a.s.Find(ctx, index, max)
}

// purger stores the key-rotation watch's purges as the admin API stores a
// revocation: completed, written to the source, enforced here at once.
type purger struct{ n *Node }

func (p purger) Revoke(ctx context.Context, recs []authz.Record) ([]authz.Record, error) {
	r := admin.SourceRevoker{Source: p.n.src, Config: admin.Config{MaxTokenLifetime: p.n.cfg.Authz.MaxTokenLifetime, Leeway: p.n.cfg.Authz.Leeway, Audit: p.n.audit}}
	stored, warnings, err := r.RevokeWithWarnings(ctx, recs)
	for _, w := range warnings {
		p.n.log.Error(w, "records", len(stored))
	}
	if err != nil {
		return nil, err
	}
	p.n.rev.Enforce(stored...)
	for _, rec := range stored {
		p.n.log.Info("revocation accepted", "id", rec.ID, "kind", rec.Kind, "issuer", rec.Issuer, "value", rec.Value,
			"before", rec.Before, "actor", rec.Actor, "reason", rec.Reason, "expires_at", rec.ExpiresAt, "position", rec.Position)
	}
	return stored, nil
}

func (p purger) KeyRecords(ctx context.Context, issuer, kid string) ([]authz.Record, error) {
	recs, _, err := p.n.src.List(ctx, source.ListQuery{Kind: authz.KindKey, Issuer: issuer, Value: kid, Limit: source.MaxListLimit})
	return recs, err
}

// KindKeyAlarm is the audit entry of a key-rotation alarm.
const KindKeyAlarm audit.Kind = "key-rotation-alarm"

// keyAlarm records a key-rotation alarm in the audit trail (a purge's
// revocations are recorded as revocations by the purger).
func (n *Node) keyAlarm(a keywatch.Alarm) {
	if a.Kind == keywatch.Purged && len(a.Records) > 0 {
		return
	}
	target := a.Issuer
	if a.KID != "" {
		target += " kid " + a.KID
	}
	ctx, cancel := context.WithTimeout(context.Background(), auditTimeout)
	defer cancel()
	e := audit.Entry{Time: a.Time, Actor: "jwtguard/key-watch", Kind: KindKeyAlarm, Target: target, Reason: string(a.Kind) + ": " + a.Message}
	if err := n.audit.Record(ctx, e); err != nil {
		n.log.Error("audit trail: recording a key-rotation alarm failed", "issuer", a.Issuer, "alarm", string(a.Kind), "err", err)
	}
}
