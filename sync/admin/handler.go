package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/audit"
	"github.com/jwtguard/jwtguard/sync/source"
)

// Config configures the admin API. Zero fields take the defaults of
// DefaultConfig.
type Config struct {
	// Token is the admin bearer token; "" means none, and then the API must
	// listen on loopback only (see CheckBind).
	Token string
	// MaxTokenLifetime is the longest lifetime of a token the issuers mint.
	// A record other than a token record expires MaxTokenLifetime + Leeway
	// after the later of now and its Before time: by then no token it
	// covers can still be valid. Default authz.DefaultConfig's.
	MaxTokenLifetime time.Duration
	// Leeway is the clock skew the checker allows on exp. Default
	// authz.DefaultConfig's.
	Leeway time.Duration
	// MaxBodyBytes bounds a POST body. Default 16 MiB.
	MaxBodyBytes int64
	// MaxBatch bounds the records of one POST. Default 10 000.
	MaxBatch int
	// ImportChunk is the records an import (POST /v1/revocations/import)
	// stores in one transaction, all or nothing. Default 250 000. The
	// first chunk is smaller (see firstChunk).
	ImportChunk int
	// MaxImportLines bounds the lines of one import. Default 10 000 000.
	MaxImportLines int
	// MaxImportBytes bounds the body of one import. Default 4 GiB.
	MaxImportBytes int64
	// Issuers are the issuers the server accepts tokens of; a revocation
	// naming another one is stored, with a warning in the answer. Empty: no
	// warnings.
	Issuers []string
	// Addr is the address the API listens on. Without a Token, requests
	// must name a loopback host or this address's host in Host.
	Addr string
	// Audit records every revocation stored through this package (the
	// API, SourceRevoker); nil records none.
	Audit audit.Recorder
	// AuthFailures records the API's authentication failures. It must
	// bound what a flood of them stores (an audit.Throttle does); nil
	// means Audit behind an audit.Throttle of 10 entries a minute.
	AuthFailures audit.Recorder
}

// DefaultConfig returns the defaults (no token).
func DefaultConfig() Config {
	ac := authz.DefaultConfig()
	return Config{
		MaxTokenLifetime: ac.MaxTokenLifetime,
		Leeway:           ac.Leeway,
		MaxBodyBytes:     16 << 20,
		MaxBatch:         10_000,
		ImportChunk:      250_000,
		MaxImportLines:   10_000_000,
		MaxImportBytes:   4 << 30,
	}
}

// withDefaults fills zero (or negative) fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxTokenLifetime <= 0 {
		c.MaxTokenLifetime = d.MaxTokenLifetime
	}
	if c.Leeway <= 0 {
		c.Leeway = d.Leeway
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = d.MaxBatch
	}
	if c.ImportChunk <= 0 {
		c.ImportChunk = d.ImportChunk
	}
	if c.MaxImportLines <= 0 {
		c.MaxImportLines = d.MaxImportLines
	}
	if c.MaxImportBytes <= 0 {
		c.MaxImportBytes = d.MaxImportBytes
	}
	return c
}

// Option changes optional behaviour of the handler.
type Option func(*handler)

// WithStatus adds the fields fn returns to GET /v1/status (the server adds
// its follower position, last sync and readiness). Fields of the API's own
// schema keep their values when fn returns the same name.
func WithStatus(fn func(ctx context.Context) map[string]any) Option {
	return func(h *handler) { h.status = fn }
}

// WithLogger sets the logger of the audit trail and of server errors.
// Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(h *handler) {
		if l != nil {
			h.log = l
		}
	}
}

// WithClock sets the clock that fills CreatedAt and computes expiry; tests
// set it. Default time.Now.
func WithClock(now func() time.Time) Option {
	return func(h *handler) {
		if now != nil {
			h.now = now
		}
	}
}

// handler serves the admin API over one source and one node's revocations.
type handler struct {
	src    source.Source
	rev    *authz.Revocations
	cfg    Config
	token  []byte
	status func(context.Context) map[string]any
	tokens TokensFunc
	log    *slog.Logger
	now    func() time.Time
	// failures records authentication failures; trail serves /v1/audit.
	failures audit.Recorder
	trail    AuditTrail
	// views are the read-only views the node adds (WithView), by path.
	views map[string]ViewFunc
}

// NewHandler returns the admin API over src, enforcing accepted revocations
// in rev before it answers. It panics when src or rev is nil.
func NewHandler(src source.Source, rev *authz.Revocations, cfg Config, opts ...Option) http.Handler {
	if src == nil || rev == nil {
		panic("admin.NewHandler: nil source or revocations")
	}
	cfg = cfg.withDefaults()
	h := &handler{src: src, rev: rev, cfg: cfg, token: []byte(cfg.Token), log: slog.Default(), now: time.Now}
	for _, o := range opts {
		o(h)
	}
	h.failures = cfg.AuthFailures
	if h.failures == nil && cfg.Audit != nil {
		h.failures = audit.NewThrottle(cfg.Audit, AuthFailureBurst, AuthFailureWindow)
	}
	return h
}

const (
	pathRevocations = "/v1/revocations"
	pathStatus      = "/v1/status"
	pathMesh        = "/v1/mesh"
)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(h.token) == 0 {
		if msg := h.browserOrForeignHost(r); msg != "" {
			writeError(w, http.StatusForbidden, msg)
			return
		}
	}
	if !h.authorized(r) {
		h.recordAuthFailure(r)
		w.Header().Set("WWW-Authenticate", `Bearer realm="jwtguard-admin"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong admin token (Authorization: Bearer <token>)")
		return
	}
	switch p := r.URL.Path; {
	case p == pathImport:
		if r.Method != http.MethodPost {
			methodNotAllowed(w, "POST")
			return
		}
		h.importRevocations(w, r)
	case p == pathRevocations:
		switch r.Method {
		case http.MethodPost:
			h.postRevocations(w, r)
		case http.MethodGet:
			h.listRevocations(w, r)
		default:
			methodNotAllowed(w, "GET, POST")
		}
	case strings.HasPrefix(p, pathRevocations+"/") && !strings.Contains(p[len(pathRevocations)+1:], "/"):
		switch r.Method {
		case http.MethodGet:
			h.getRevocation(w, r, p[len(pathRevocations)+1:])
		case http.MethodDelete:
			h.liftRevocation(w, r, p[len(pathRevocations)+1:])
		default:
			methodNotAllowed(w, "GET, DELETE")
		}
	case p == pathAudit || p == pathAuditVerify:
		h.serveAudit(w, r)
	case p == pathStatus:
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		h.getStatus(w, r)
	case p == pathMesh:
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		h.getMesh(w, r)
	case p == pathTokens:
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		h.getTokens(w, r)
	case h.getView(w, r, p):
	default:
		writeError(w, http.StatusNotFound, "no such endpoint: "+p)
	}
}

// browserOrForeignHost says why a request must be refused by an API without
// a token, or "": only its own loopback host names may reach it (a web
// page that rebinds its DNS name to 127.0.0.1 still sends its own name in
// Host), and never from a browser page (Origin, or a cross-site fetch).
func (h *handler) browserOrForeignHost(r *http.Request) string {
	if r.Header.Get("Origin") != "" {
		return "requests from a browser page (Origin) are refused by an admin API without a token"
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return "cross-site requests are refused by an admin API without a token"
	}
	if !h.localHost(r.Host) {
		return fmt.Sprintf("Host %q is not a loopback name of this admin API; without a token only 127.0.0.1, ::1, localhost or its listen address are accepted", r.Host)
	}
	return ""
}

// localHost reports whether a Host header names a loopback address,
// localhost, or the configured listen address's host, with any port.
func (h *handler) localHost(hostport string) bool {
	host := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		host = hh
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return true
	}
	if ah, _, err := net.SplitHostPort(h.cfg.Addr); err == nil && ah != "" {
		return strings.EqualFold(host, ah)
	}
	return false
}

// authorized compares the bearer token in constant time; with no admin
// token configured every request is authorized.
func (h *handler) authorized(r *http.Request) bool {
	if len(h.token) == 0 {
		return true
	}
	auth := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(auth) < len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(auth[len(prefix):])), h.token) == 1
}

// postRevocations stores a batch of records, all or nothing, enforces them
// on this node and answers 201 with the stored records.
func (h *handler) postRevocations(w http.ResponseWriter, r *http.Request) {
	// Only JSON: a browser cannot send it cross-origin without a preflight
	// this API never answers, so a web page cannot revoke through a
	// loopback admin API that has no token.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	body := http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)
	recs, err := decodeRecords(body, h.cfg.MaxBatch)
	if err != nil {
		writeRequestError(w, err)
		return
	}
	now := h.now()
	for i := range recs {
		if err := h.complete(&recs[i], now); err != nil {
			writeRequestError(w, &recordError{index: i, err: err})
			return
		}
	}
	stored, auditWarnings, err := h.cfg.put(r.Context(), h.src, recs, r.RemoteAddr)
	if err != nil {
		if errors.Is(err, authz.ErrInvalidRecord) {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		h.log.Error("store revocations", "err", err, "records", len(recs))
		writeError(w, http.StatusInternalServerError, "store revocations: "+err.Error())
		return
	}
	h.rev.Enforce(stored...)
	for _, rec := range stored {
		h.log.Info("revocation accepted", "id", rec.ID, "kind", rec.Kind, "issuer", rec.Issuer,
			"value", rec.Value, "before", rec.Before, "actor", rec.Actor, "reason", rec.Reason,
			"expires_at", rec.ExpiresAt, "position", rec.Position, "remote", r.RemoteAddr)
	}
	warnings := append(h.warnings(recs), auditWarnings...)
	writeJSON(w, http.StatusCreated, revocationsBody{Revocations: stored, Warnings: warnings})
}

// revocationsBody is the answer of POST /v1/revocations.
type revocationsBody struct {
	Revocations []authz.Record `json:"revocations"`
	// Warnings are about records stored as sent that may not do what
	// their sender meant.
	Warnings []string `json:"warnings,omitempty"`
}

// warnings names the records of an issuer this server does not accept:
// a typo in --issuer would otherwise revoke nothing, silently.
func (h *handler) warnings(recs []authz.Record) []string {
	if len(h.cfg.Issuers) == 0 {
		return nil
	}
	var out []string
	for i, rec := range recs {
		if rec.Issuer != "" && !slices.Contains(h.cfg.Issuers, rec.Issuer) {
			out = append(out, fmt.Sprintf("record %d: issuer %q is not configured on this server (configured: %s); the revocation is stored but matches none of the tokens it accepts",
				i, rec.Issuer, strings.Join(h.cfg.Issuers, ", ")))
		}
	}
	return out
}

// listBody is the answer of GET /v1/revocations; NextCursor is "" on the
// last page.
type listBody struct {
	Revocations []authz.Record `json:"revocations"`
	NextCursor  string         `json:"next_cursor"`
}

// listRevocations answers one page of the records matching the query.
func (h *handler) listRevocations(w http.ResponseWriter, r *http.Request) {
	q, err := parseListQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	recs, next, err := h.src.List(r.Context(), q)
	if err != nil {
		if q.Cursor != "" && errors.Is(err, errInvalidCursor) {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		h.log.Error("list revocations", "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if recs == nil {
		recs = []authz.Record{}
	}
	writeJSON(w, http.StatusOK, listBody{Revocations: recs, NextCursor: next})
}

func (h *handler) getRevocation(w http.ResponseWriter, r *http.Request, id string) {
	rec, err := h.src.Get(r.Context(), id)
	switch {
	case errors.Is(err, source.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("revocation %q not found", id))
	case err != nil:
		h.log.Error("get revocation", "id", id, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		writeJSON(w, http.StatusOK, rec)
	}
}

// liftRequest is the body of DELETE /v1/revocations/{id}.
type liftRequest struct {
	Reason string `json:"reason"`
	Actor  string `json:"actor,omitempty"`
}

// liftBody is the answer of DELETE /v1/revocations/{id}, and of a second
// lift (409), which carries the first one.
type liftBody struct {
	Lift  authz.Record `json:"lift"`
	Error string       `json:"error,omitempty"`
	// Warnings are about the lift's audit entry.
	Warnings []string `json:"warnings,omitempty"`
}

// liftRevocation lifts a record: the source removes it and feeds the lift
// to every node; this node stops enforcing it before the answer.
func (h *handler) liftRevocation(w http.ResponseWriter, r *http.Request, id string) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, `Content-Type must be application/json (body {"reason": "...", "actor": "..."})`)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeRequestError(w, err)
		return
	}
	var req liftRequest
	if err := CheckJSONText(data); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := decodeStrict(data, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Reason == "" {
		writeError(w, http.StatusBadRequest, "a lift needs a reason")
		return
	}
	lift, err := h.src.Lift(r.Context(), id, req.Actor, req.Reason)
	switch {
	case errors.Is(err, source.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("revocation %q not found (unknown, expired, or not a revocation)", id))
		return
	case errors.Is(err, source.ErrLifted):
		writeJSON(w, http.StatusConflict, liftBody{Lift: lift, Error: err.Error()})
		return
	case errors.Is(err, authz.ErrInvalidRecord):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		h.log.Error("lift revocation", "id", id, "err", err)
		writeError(w, http.StatusInternalServerError, "lift revocation: "+err.Error())
		return
	}
	h.rev.Enforce(lift)
	warnings := h.cfg.recordLift(r.Context(), lift, r.RemoteAddr)
	for _, w := range warnings {
		h.log.Error(w, "id", id)
	}
	h.log.Info("revocation lifted", "id", id, "kind", lift.Kind, "issuer", lift.Issuer, "value", lift.Value,
		"actor", lift.Actor, "reason", lift.Reason, "lift_id", lift.ID, "position", lift.Position, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, liftBody{Lift: lift, Warnings: warnings})
}

// filterStatus is the "filter" object of /v1/status.
type filterStatus struct {
	Entries         uint64  `json:"entries"`
	BaseEntries     uint64  `json:"base_entries"`
	DeltaEntries    uint64  `json:"delta_entries"`
	Bits            uint64  `json:"bits"`
	K               uint    `json:"k"`
	Bytes           uint64  `json:"bytes"`
	FillRatio       float64 `json:"fill_ratio"`
	EstimatedFPRate float64 `json:"estimated_fp_rate"`
	Position        uint64  `json:"position"`
}

// confirmStatus is the "confirm" object of /v1/status.
type confirmStatus struct {
	Maybes        uint64  `json:"maybes"`
	ConfirmHits   uint64  `json:"confirm_hits"`
	Lookups       uint64  `json:"lookups"`
	LookupErrors  uint64  `json:"lookup_errors"`
	Lifts         uint64  `json:"lifts"`
	LookupSeconds float64 `json:"lookup_seconds"`
	ConfirmSize   int     `json:"confirm_size"`
}

func (h *handler) getStatus(w http.ResponseWriter, r *http.Request) {
	st, err := h.src.Stats(r.Context())
	if err != nil {
		h.log.Error("source stats", "err", err)
		writeError(w, http.StatusInternalServerError, "source stats: "+err.Error())
		return
	}
	fs := h.rev.Filter().Stats()
	rs := h.rev.Stats()
	out := map[string]any{}
	if h.status != nil {
		for k, v := range h.status(r.Context()) {
			out[k] = v
		}
	}
	byKind := st.ByKind
	if byKind == nil {
		byKind = map[authz.Kind]int{}
	}
	out["records"] = st.Records
	out["by_kind"] = byKind
	out["source_position"] = st.Position
	out["filter"] = filterStatus{
		Entries: fs.Entries, BaseEntries: fs.BaseEntries, DeltaEntries: fs.DeltaEntries,
		Bits: fs.Bits, K: fs.K, Bytes: fs.Bytes, FillRatio: fs.FillRatio,
		EstimatedFPRate: fs.EstimatedFPRate, Position: fs.Position,
	}
	out["confirm"] = confirmStatus{
		Maybes: rs.Maybes, ConfirmHits: rs.ConfirmHits, Lookups: rs.Lookups,
		LookupErrors: rs.LookupErrors, Lifts: rs.Lifts, LookupSeconds: rs.LookupTime.Seconds(), ConfirmSize: rs.ConfirmSize,
	}
	writeJSON(w, http.StatusOK, out)
}

// MeshStatus is the answer of GET /v1/mesh: the source's newest position
// and the status every live node reports through the source.
type MeshStatus struct {
	Head  uint64              `json:"head"`
	Nodes []source.NodeStatus `json:"nodes"`
}

func (h *handler) getMesh(w http.ResponseWriter, r *http.Request) {
	rep, ok := h.src.(source.Reporter)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this source keeps no mesh status")
		return
	}
	nodes, err := rep.Nodes(r.Context())
	if err != nil {
		h.log.Error("mesh status", "err", err)
		writeError(w, http.StatusInternalServerError, "mesh status: "+err.Error())
		return
	}
	st, err := h.src.Stats(r.Context())
	if err != nil {
		h.log.Error("source stats", "err", err)
		writeError(w, http.StatusInternalServerError, "source stats: "+err.Error())
		return
	}
	if nodes == nil {
		nodes = []source.NodeStatus{}
	}
	writeJSON(w, http.StatusOK, MeshStatus{Head: st.Position, Nodes: nodes})
}

// errorBody is every error answer: the message and, for a record of a
// batch, its index.
type errorBody struct {
	Error string `json:"error"`
	Index *int   `json:"index,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		data, _ = json.Marshal(errorBody{Error: "encode answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "method not allowed; use "+allow)
}

// writeRequestError answers an error in a request body: 413 when it was too
// large, else 400, with the index of the record at fault when known.
func writeRequestError(w http.ResponseWriter, err error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", tooLarge.Limit))
		return
	}
	body := errorBody{Error: err.Error()}
	var re *recordError
	if errors.As(err, &re) {
		body.Index = &re.index
	}
	writeJSON(w, http.StatusBadRequest, body)
}
