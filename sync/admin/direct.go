package admin

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/audit"
	"github.com/jwtguard/jwtguard/sync/source"
)

// SourceRevoker writes revocations straight to a source (a central Redis,
// say) with the same validation and expiry rules as the admin API, for
// tools that run beside the source rather than through a server. Every
// node following the source enforces them from its feed.
type SourceRevoker struct {
	Source source.Source
	Config Config
}

// Revoke completes and stores recs, all or nothing, and records them in
// Config.Audit with the address audit.WithAddr put in ctx. Records the API
// would refuse are refused with an *APIError of status 400 naming the
// index. A failure to record them is logged: the revocations stand.
func (r *SourceRevoker) Revoke(ctx context.Context, recs []authz.Record) ([]authz.Record, error) {
	stored, warnings, err := r.RevokeWithWarnings(ctx, recs)
	for _, w := range warnings {
		slog.Error(w, "records", len(stored))
	}
	return stored, err
}

// RevokeWithWarnings is Revoke, returning the warning about a failure to
// record the revocations in the audit trail instead of logging it.
func (r *SourceRevoker) RevokeWithWarnings(ctx context.Context, recs []authz.Record) ([]authz.Record, []string, error) {
	cfg := r.Config.withDefaults()
	now := time.Now()
	recs = append([]authz.Record(nil), recs...)
	for i := range recs {
		if err := cfg.complete(&recs[i], now); err != nil {
			return nil, nil, &APIError{StatusCode: http.StatusBadRequest, Message: err.Error(), Index: i}
		}
	}
	stored, warnings, err := cfg.put(ctx, r.Source, recs, audit.AddrFrom(ctx))
	if errors.Is(err, authz.ErrInvalidRecord) {
		return nil, nil, &APIError{StatusCode: http.StatusBadRequest, Message: err.Error(), Index: -1}
	}
	return stored, warnings, err
}

// Lift lifts the record with that ID straight at the source; errors are
// those of the API (an *APIError of status 400, 404 or 409).
func (r *SourceRevoker) Lift(ctx context.Context, id, actor, reason string) (authz.Record, error) {
	if reason == "" {
		return authz.Record{}, &APIError{StatusCode: http.StatusBadRequest, Message: "a lift needs a reason", Index: -1}
	}
	lift, err := r.Source.Lift(ctx, id, actor, reason)
	switch {
	case errors.Is(err, source.ErrNotFound):
		return authz.Record{}, &APIError{StatusCode: http.StatusNotFound, Message: err.Error(), Index: -1}
	case errors.Is(err, source.ErrLifted):
		return lift, &APIError{StatusCode: http.StatusConflict, Message: err.Error(), Index: -1}
	case errors.Is(err, authz.ErrInvalidRecord):
		return authz.Record{}, &APIError{StatusCode: http.StatusBadRequest, Message: err.Error(), Index: -1}
	case err != nil:
		return authz.Record{}, err
	}
	for _, w := range r.Config.recordLift(ctx, lift, audit.AddrFrom(ctx)) {
		slog.Error(w, "id", id)
	}
	return lift, nil
}
