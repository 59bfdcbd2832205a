package idp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/audit"
)

// Error codes of a refused SET (RFC 8935 section 2.4, shared by RFC 8936).
const (
	codeInvalidRequest  = "invalid_request"
	codeInvalidKey      = "invalid_key"
	codeInvalidIssuer   = "invalid_issuer"
	codeInvalidAudience = "invalid_audience"
	codeAuthentication  = "authentication_failed"
)

// setError is a SET refused for good: the transmitter must not send it
// again.
type setError struct {
	code string
	err  error
}

func (e *setError) Error() string { return e.code + ": " + e.err.Error() }

// applySET verifies raw and applies its events once. It returns nil when
// the SET is applied, was applied before, or carries nothing to act on; a
// *setError when it is refused; an error wrapping errTransient when it
// should be delivered again.
func (p *Provider) applySET(ctx context.Context, raw string) error {
	et, reason, err := p.set.Verify(ctx, raw)
	if reason != authz.ReasonOK {
		if reason == authz.ReasonNotReady {
			return fmt.Errorf("%w: %v", errTransient, err)
		}
		return &setError{code: setErrorCode(reason), err: fmt.Errorf("SET (%s): %w", reason, err)}
	}
	recs := p.setRecords(&et)
	switch err := p.store(ctx, &et, recs); {
	case errors.Is(err, errReplay):
		p.log.Info("security event token delivered again; not applied twice", "jti", et.ID)
	case err != nil && !errors.Is(err, errTransient):
		return &setError{code: codeInvalidRequest, err: err}
	case err != nil:
		return err
	}
	return nil
}

// setErrorCode maps a verification failure to its RFC 8935 code.
func setErrorCode(r authz.Reason) string {
	switch r {
	case authz.ReasonWrongIssuer:
		return codeInvalidIssuer
	case authz.ReasonWrongAudience:
		return codeInvalidAudience
	case authz.ReasonBadSignature, authz.ReasonUnknownKey, authz.ReasonRetiredKey, authz.ReasonBadAlgorithm:
		return codeInvalidKey
	}
	return codeInvalidRequest
}

// servePush is the push delivery endpoint (RFC 8935 section 2): one SET as
// an application/secevent+jwt body, from a transmitter presenting the push
// token; 202 once applied.
func (p *Provider) servePush(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		pushError(w, http.StatusMethodNotAllowed, codeInvalidRequest, "use POST")
		return
	}
	if !p.pushAuthorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="jwtguard-ssf"`)
		pushError(w, http.StatusUnauthorized, codeAuthentication, "missing or wrong push authorization token")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/secevent+jwt" {
		pushError(w, http.StatusBadRequest, codeInvalidRequest, "Content-Type must be application/secevent+jwt")
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		pushError(w, http.StatusBadRequest, codeInvalidRequest, err.Error())
		return
	}
	err = p.applySET(audit.WithAddr(r.Context(), r.RemoteAddr), strings.TrimSpace(string(body)))
	var se *setError
	switch {
	case errors.As(err, &se):
		p.log.Warn("security event token refused", "err", err, "remote", r.RemoteAddr)
		pushError(w, http.StatusBadRequest, se.code, se.err.Error())
	case err != nil:
		p.log.Error("security event token not applied; the transmitter should retry", "err", err)
		w.Header().Set("Retry-After", "5")
		pushError(w, http.StatusServiceUnavailable, "temporarily_unavailable", err.Error())
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

// pushAuthorized compares the bearer token in constant time (of hashes, so
// not even the length leaks).
func (p *Provider) pushAuthorized(r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	const scheme = "bearer "
	if len(auth) <= len(scheme) || !strings.EqualFold(auth[:len(scheme)], scheme) {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(auth[len(scheme):])))
	want := sha256.Sum256([]byte(p.cfg.PushToken))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// pushError writes the error body of RFC 8935 section 2.3.
func pushError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, struct {
		Err         string `json:"err"`
		Description string `json:"description"`
	}{code, desc})
}
