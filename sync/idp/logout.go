package idp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/audit"
)

// serveLogout is the back-channel logout endpoint (OpenID Connect
// Back-Channel Logout 1.0 section 2.5): a form post of one logout_token,
// answered 200 once its revocation is durable, 400 with an error body
// otherwise (section 2.8).
func (p *Provider) serveLogout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		logoutError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		logoutError(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
		return
	}
	tok, err := logoutToken(w, r)
	if err != nil {
		logoutError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	et, why, err := p.verifyLogout(r, tok)
	if err != nil {
		code := "invalid_request"
		if why == authz.ReasonNotReady {
			code = "temporarily_unavailable"
		}
		p.log.Warn("logout token refused", "why", why, "err", err, "remote", r.RemoteAddr)
		logoutError(w, http.StatusBadRequest, code, err.Error())
		return
	}
	var rec authz.Record
	if et.Session != "" {
		rec = p.record(authz.KindSession, et.Session, 0, "backchannel-logout", et.ID)
	} else {
		rec = p.record(authz.KindSubject, et.Subject, et.IssuedAt, "backchannel-logout", et.ID)
	}
	if err := p.store(audit.WithAddr(r.Context(), r.RemoteAddr), &et, []authz.Record{rec}); err != nil {
		code := "invalid_request"
		if errors.Is(err, errTransient) {
			code = "temporarily_unavailable"
			p.log.Error("logout not applied", "jti", et.ID, "err", err)
		} else {
			p.log.Warn("logout token refused", "jti", et.ID, "err", err, "remote", r.RemoteAddr)
		}
		logoutError(w, http.StatusBadRequest, code, err.Error())
		return
	}
	w.WriteHeader(http.StatusOK)
}

// logoutToken reads the one logout_token of a bounded form body.
func logoutToken(w http.ResponseWriter, r *http.Request) (string, error) {
	buf, err := readBody(w, r)
	if err != nil {
		return "", err
	}
	form, err := url.ParseQuery(string(buf))
	if err != nil {
		return "", errors.New("body is not a valid form")
	}
	toks := form["logout_token"]
	switch {
	case len(toks) == 0 || toks[0] == "":
		return "", errors.New("logout_token is missing")
	case len(toks) > 1:
		return "", errors.New("logout_token is given more than once")
	}
	return toks[0], nil
}

// verifyLogout verifies tok as a logout token (section 2.6): the token
// itself by the verifier, then the back-channel logout event, sid and/or
// sub, and no nonce.
func (p *Provider) verifyLogout(r *http.Request, tok string) (authz.EventToken, authz.Reason, error) {
	et, reason, err := p.logout.Verify(r.Context(), tok)
	if reason != authz.ReasonOK {
		return et, reason, fmt.Errorf("logout token (%s): %w", reason, err)
	}
	hasEvent := false
	for _, ev := range et.Events {
		hasEvent = hasEvent || ev.Type == authz.BackChannelLogoutEvent
	}
	switch {
	case !hasEvent:
		return et, authz.ReasonMalformed, fmt.Errorf("logout token: events has no %s member", authz.BackChannelLogoutEvent)
	case et.Session == "" && et.Subject == "":
		return et, authz.ReasonMalformed, errors.New("logout token: has neither sid nor sub")
	case et.HasNonce:
		return et, authz.ReasonMalformed, errors.New("logout token: has a nonce (it is an ID token, not a logout token)")
	}
	return et, authz.ReasonOK, nil
}

// logoutError writes the error body of section 2.8 (that of OAuth 2.0).
func logoutError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, _ := json.Marshal(v) // of fixed structs of strings: never fails
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

// readBody reads a request body of at most maxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	buf, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, fmt.Errorf("body larger than %d bytes", maxBodyBytes)
	case err != nil:
		return nil, fmt.Errorf("read body: %w", err)
	}
	return buf, nil
}
