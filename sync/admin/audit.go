package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/audit"
	"github.com/jwtguard/jwtguard/sync/source"
)

// AuditTrail is the audit trail the admin API serves: GET /v1/audit and
// GET /v1/audit/verify.
type AuditTrail interface {
	List(ctx context.Context, q audit.Query) ([]audit.Entry, string, error)
	Verify(ctx context.Context) (audit.Report, error)
}

// WithAuditTrail serves trail on GET /v1/audit and /v1/audit/verify;
// without it they answer 404.
func WithAuditTrail(trail AuditTrail) Option {
	return func(h *handler) { h.trail = trail }
}

const (
	pathAudit       = "/v1/audit"
	pathAuditVerify = "/v1/audit/verify"
)

// Bounds of admin authentication failures recorded one by one when
// Config.AuthFailures is nil: AuthFailureBurst per AuthFailureWindow, the
// rest aggregated (see audit.Throttle).
const (
	AuthFailureBurst  = 10
	AuthFailureWindow = time.Minute
)

// recordingSource is a source that stores revocations and their audit
// entries in one transaction (the embedded store).
type recordingSource interface {
	PutRecorded(ctx context.Context, recs []authz.Record, entries func([]authz.Record) []audit.Entry) ([]authz.Record, error)
	Audit() audit.Store
}

// preparingSource is a recordingSource that does the work of a
// PutRecorded that comes before its transaction apart (the embedded
// store): an import prepares its next chunk while one commits.
type preparingSource interface {
	recordingSource
	PreparePut(ctx context.Context, recs []authz.Record) (func(entries func([]authz.Record) []audit.Entry) ([]authz.Record, error), error)
}

// put stores recs in src and records them in the audit trail: in the same
// transaction when the trail is src's own (the embedded store), else right
// after, returning a warning when that failed (the revocations stand).
func (c Config) put(ctx context.Context, src source.Source, recs []authz.Record, addr string) ([]authz.Record, []string, error) {
	if log, ok := c.Audit.(*audit.Log); ok {
		if rs, ok := src.(recordingSource); ok && rs.Audit() == log.Store() {
			stored, err := rs.PutRecorded(ctx, recs, func(stored []authz.Record) []audit.Entry {
				out := make([]audit.Entry, len(stored))
				for i, rec := range stored {
					out[i] = log.Prepare(revokeEntry(rec, addr))
				}
				return out
			})
			return stored, nil, err
		}
	}
	stored, err := src.Put(ctx, recs)
	if err != nil {
		return nil, nil, err
	}
	return stored, c.recordStored(ctx, stored, addr), nil
}

// revokeEntry is the audit entry of a stored revocation.
func revokeEntry(rec authz.Record, addr string) audit.Entry {
	return audit.Entry{Kind: audit.KindRevoke, Actor: rec.Actor, Source: addr, Target: recordTarget(rec), Reason: rec.Reason}
}

// recordStored records stored revocations in the audit trail, with the
// address of the request (or tool) that made them, and returns a warning
// when they could not be recorded: the revocations stand either way.
func (c Config) recordStored(ctx context.Context, stored []authz.Record, addr string) []string {
	if c.Audit == nil {
		return nil
	}
	var failed error
	for _, rec := range stored {
		if err := c.Audit.Record(ctx, revokeEntry(rec, addr)); err != nil {
			failed = err
		}
	}
	if failed != nil {
		return []string{"audit trail: the revocations are stored but not every one was recorded in the audit trail: " + failed.Error()}
	}
	return nil
}

// recordTarget names a revocation record in the audit trail: its kind,
// issuer, value, before time and ID.
func recordTarget(rec authz.Record) string {
	return string(appendRecordTarget(nil, &rec))
}

// appendRecordTarget appends recordTarget(*rec) to dst.
func appendRecordTarget(dst []byte, rec *authz.Record) []byte {
	dst = append(dst, rec.Kind...)
	for _, s := range []string{rec.Issuer, rec.Value} {
		if s != "" {
			dst = append(append(dst, ' '), s...)
		}
	}
	if !rec.Before.IsZero() {
		dst = rec.Before.UTC().AppendFormat(append(dst, " before "...), time.RFC3339)
	}
	if rec.ID != "" {
		dst = append(append(dst, " id "...), rec.ID...)
	}
	return dst
}

// recordAuthFailure records a request refused for its admin token.
func (h *handler) recordAuthFailure(r *http.Request) {
	if h.failures == nil {
		return
	}
	why := "wrong admin token"
	if r.Header.Get("Authorization") == "" {
		why = "no admin token"
	}
	e := audit.Entry{Kind: audit.KindAuthFailure, Source: r.RemoteAddr, Target: r.Method + " " + r.URL.Path, Reason: why}
	if err := h.failures.Record(r.Context(), e); err != nil {
		h.log.Error("audit trail: recording an admin authentication failure failed", "err", err, "remote", r.RemoteAddr)
	}
}

// auditBody is the answer of GET /v1/audit; NextCursor is "" on the last
// page.
type auditBody struct {
	Entries    []audit.Entry `json:"entries"`
	NextCursor string        `json:"next_cursor"`
}

func (h *handler) serveAudit(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	if h.trail == nil {
		writeError(w, http.StatusNotFound, "this server keeps no audit trail")
		return
	}
	if r.URL.Path == pathAuditVerify {
		if len(r.URL.Query()) > 0 {
			writeError(w, http.StatusBadRequest, "GET /v1/audit/verify takes no query parameters")
			return
		}
		rep, err := h.trail.Verify(r.Context())
		if err != nil {
			h.log.Error("verify audit trail", "err", err)
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, rep)
		return
	}
	q, err := parseAuditQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	entries, next, err := h.trail.List(r.Context(), q)
	if err != nil {
		if errors.Is(err, audit.ErrInvalidCursor) {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		h.log.Error("list audit trail", "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if entries == nil {
		entries = []audit.Entry{}
	}
	writeJSON(w, http.StatusOK, auditBody{Entries: entries, NextCursor: next})
}

// parseAuditQuery reads the query of GET /v1/audit, refusing unknown
// parameters.
func parseAuditQuery(v url.Values) (audit.Query, error) {
	var q audit.Query
	for name, vals := range v {
		if len(vals) != 1 {
			return q, fmt.Errorf("query parameter %q given %d times", name, len(vals))
		}
		val := vals[0]
		if len(val) > audit.MaxField {
			return q, fmt.Errorf("query parameter %q longer than %d bytes", name, audit.MaxField)
		}
		switch name {
		case "since":
			if val == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, val)
			if err != nil {
				return q, fmt.Errorf("since %q: want an RFC 3339 time", val)
			}
			q.Since = t
		case "actor":
			q.Actor = val
		case "kind":
			q.Kind = audit.Kind(val)
		case "cursor":
			q.Cursor = val
		case "limit":
			if val == "" {
				continue
			}
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > audit.MaxListLimit {
				return q, fmt.Errorf("limit %q: want a number from 1 to %d", val, audit.MaxListLimit)
			}
			q.Limit = n
		default:
			return q, fmt.Errorf("unknown query parameter %q (want since, actor, kind, cursor, limit)", name)
		}
	}
	return q, nil
}

// Audit returns one page of the audit entries matching q and the cursor of
// the next page ("" when there is none).
func (c *Client) Audit(ctx context.Context, q audit.Query) ([]audit.Entry, string, error) {
	params := map[string]string{"actor": q.Actor, "kind": string(q.Kind), "cursor": q.Cursor}
	if !q.Since.IsZero() {
		params["since"] = q.Since.UTC().Format(time.RFC3339Nano)
	}
	p := pagePath(pathAudit, params, q.Limit)
	var out auditBody
	if err := c.do(ctx, http.MethodGet, p, nil, &out); err != nil {
		return nil, "", fmt.Errorf("audit: %w", err)
	}
	return out.Entries, out.NextCursor, nil
}

// VerifyAudit asks the server to verify its audit trail.
func (c *Client) VerifyAudit(ctx context.Context) (audit.Report, error) {
	var rep audit.Report
	if err := c.do(ctx, http.MethodGet, pathAuditVerify, nil, &rep); err != nil {
		return rep, fmt.Errorf("audit verify: %w", err)
	}
	return rep, nil
}

// recordLift records a lift in the audit trail (who, why, from where, and
// the lifted record), and returns a warning when it could not be: the lift
// stands either way.
func (c Config) recordLift(ctx context.Context, lift authz.Record, addr string) []string {
	if c.Audit == nil {
		return nil
	}
	target := recordTarget(authz.Record{Kind: lift.Kind, Issuer: lift.Issuer, Value: lift.Value, Before: lift.Before, ID: lift.Lifts})
	e := audit.Entry{Kind: audit.KindLift, Actor: lift.Actor, Source: addr, Target: target, Reason: lift.Reason}
	if err := c.Audit.Record(ctx, e); err != nil {
		return []string{"audit trail: the revocation is lifted but the lift was not recorded in the audit trail: " + err.Error()}
	}
	return nil
}
