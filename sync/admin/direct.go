package admin

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/jwtguard/jwtguard/authz"
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

// Revoke completes and stores recs, all or nothing. Records the API would
// refuse are refused with an *APIError of status 400 naming the index.
func (r *SourceRevoker) Revoke(ctx context.Context, recs []authz.Record) ([]authz.Record, error) {
	cfg := r.Config.withDefaults()
	now := time.Now()
	recs = append([]authz.Record(nil), recs...)
	for i := range recs {
		if err := cfg.complete(&recs[i], now); err != nil {
			return nil, &APIError{StatusCode: http.StatusBadRequest, Message: err.Error(), Index: i}
		}
	}
	stored, err := r.Source.Put(ctx, recs)
	if errors.Is(err, authz.ErrInvalidRecord) {
		return nil, &APIError{StatusCode: http.StatusBadRequest, Message: err.Error(), Index: -1}
	}
	return stored, err
}
