package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/source"
)

// Client calls the admin API of a jwtguard server.
type Client struct {
	// BaseURL is the server's admin address, e.g. http://127.0.0.1:8182.
	BaseURL string
	// Token is the admin bearer token; "" sends none.
	Token string
	// HTTP is the client used; nil means one with a 30 s timeout.
	HTTP *http.Client
}

// APIError is an error answer of the admin API.
type APIError struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Message is the server's message.
	Message string
	// Index is the index of the record at fault in a batch, or -1.
	Index int
	body  []byte // the answer, for the callers that read more of it
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.StatusCode, strings.ToLower(http.StatusText(e.StatusCode)), e.Message)
}

// maxAnswerBytes bounds an answer the client reads.
const maxAnswerBytes = 256 << 20

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

// Revoke stores recs (all or nothing) and returns them as stored, with ID,
// Position, CreatedAt and ExpiresAt set by the server.
func (c *Client) Revoke(ctx context.Context, recs []authz.Record) ([]authz.Record, error) {
	stored, _, err := c.RevokeWithWarnings(ctx, recs)
	return stored, err
}

// RevokeWithWarnings is Revoke, also returning the server's warnings
// about the records it stored (an issuer it does not accept, say).
func (c *Client) RevokeWithWarnings(ctx context.Context, recs []authz.Record) ([]authz.Record, []string, error) {
	body, err := json.Marshal(recs)
	if err != nil {
		return nil, nil, fmt.Errorf("encode revocations: %w", err)
	}
	var out revocationsBody
	if err := c.do(ctx, http.MethodPost, pathRevocations, body, &out); err != nil {
		return nil, nil, fmt.Errorf("revoke: %w", err)
	}
	return out.Revocations, out.Warnings, nil
}

// List returns one page of the records matching q and the cursor of the
// next page ("" when there is none).
func (c *Client) List(ctx context.Context, q source.ListQuery) ([]authz.Record, string, error) {
	p := pagePath(pathRevocations, map[string]string{"kind": string(q.Kind), "issuer": q.Issuer, "value": q.Value, "cursor": q.Cursor}, q.Limit)
	var out listBody
	if err := c.do(ctx, http.MethodGet, p, nil, &out); err != nil {
		return nil, "", fmt.Errorf("list revocations: %w", err)
	}
	return out.Revocations, out.NextCursor, nil
}

// Get returns the record with that ID; a missing one is an *APIError with
// StatusCode 404.
func (c *Client) Get(ctx context.Context, id string) (authz.Record, error) {
	var rec authz.Record
	if err := c.do(ctx, http.MethodGet, pathRevocations+"/"+url.PathEscape(id), nil, &rec); err != nil {
		return authz.Record{}, fmt.Errorf("get revocation %q: %w", id, err)
	}
	return rec, nil
}

// Lift lifts the record with that ID for reason, by actor, and returns the
// lift entry. An unknown or expired ID is an *APIError with StatusCode 404;
// a record lifted already is one with StatusCode 409, returned with the
// earlier lift entry.
func (c *Client) Lift(ctx context.Context, id, actor, reason string) (authz.Record, error) {
	body, err := json.Marshal(liftRequest{Reason: reason, Actor: actor})
	if err != nil {
		return authz.Record{}, fmt.Errorf("encode lift: %w", err)
	}
	var out liftBody
	err = c.do(ctx, http.MethodDelete, pathRevocations+"/"+url.PathEscape(id), body, &out)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusConflict && apiErr.body != nil {
		_ = json.Unmarshal(apiErr.body, &out)
		return out.Lift, fmt.Errorf("lift revocation %q: %w", id, err)
	}
	if err != nil {
		return authz.Record{}, fmt.Errorf("lift revocation %q: %w", id, err)
	}
	return out.Lift, nil
}

// Mesh returns the mesh status: the source's newest position and every
// live node's report.
func (c *Client) Mesh(ctx context.Context) (MeshStatus, error) {
	var out MeshStatus
	if err := c.do(ctx, http.MethodGet, pathMesh, nil, &out); err != nil {
		return MeshStatus{}, fmt.Errorf("mesh status: %w", err)
	}
	return out, nil
}

// Status returns the server's revocation state, as GET /v1/status
// reports it.
func (c *Client) Status(ctx context.Context) (map[string]any, error) {
	var out map[string]any
	if err := c.do(ctx, http.MethodGet, pathStatus, nil, &out); err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	return out, nil
}

// send sends one request to path with the client's token, body of
// contentType ("" for none), through c.HTTP or else fallback.
func (c *Client) send(ctx context.Context, method, path string, body io.Reader, contentType string, fallback *http.Client) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = fallback
	}
	return hc.Do(req)
}

// do sends one request and decodes a 2xx answer into out; other answers
// become an *APIError.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	contentType := ""
	if body != nil {
		contentType = "application/json"
	}
	resp, err := c.send(ctx, method, path, rd, contentType, defaultHTTP)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return apiError(resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// apiError builds the error of a non-2xx answer, from its JSON error body
// or, from something else than the admin API (a proxy), its text.
func apiError(status int, data []byte) error {
	e := &APIError{StatusCode: status, Index: -1, body: data}
	var b errorBody
	if err := json.Unmarshal(data, &b); err == nil && b.Error != "" {
		e.Message = b.Error
		if b.Index != nil {
			e.Index = *b.Index
		}
		return e
	}
	msg := strings.TrimSpace(string(data))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = "(no message)"
	}
	e.Message = msg
	return e
}

// IsStatus reports whether err is an *APIError with that status code.
func IsStatus(err error, code int) bool {
	var e *APIError
	return errors.As(err, &e) && e.StatusCode == code
}

// pagePath is path with the query of one page of a list: the params that
// are set, and limit when not zero.
func pagePath(path string, params map[string]string, limit int) string {
	v := url.Values{}
	for name, val := range params {
		if val != "" {
			v.Set(name, val)
		}
	}
	if limit != 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	return path
}

// importHTTP sends imports: no overall timeout, since an import of millions
// of records takes as long as its body; the caller's context bounds it.
var importHTTP = &http.Client{}

// Import streams body, one JSON record a line, to POST
// /v1/revocations/import; records without actor or reason take the given
// ones. It returns what the server stored (chunk by chunk) and rejected,
// also when the server stopped the import (then with an *APIError), so
// that the caller can say exactly which lines were stored.
func (c *Client) Import(ctx context.Context, body io.Reader, actor, reason string) (ImportResult, error) {
	path := pagePath(pathImport, map[string]string{"actor": actor, "reason": reason}, 0)
	resp, err := c.send(ctx, http.MethodPost, path, body, ImportContentType, importHTTP)
	if err != nil {
		return ImportResult{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return ImportResult{}, fmt.Errorf("read answer: %w", err)
	}
	var res ImportResult
	decodeErr := json.Unmarshal(data, &res)
	if resp.StatusCode/100 != 2 {
		if decodeErr != nil {
			res = ImportResult{}
		}
		return res, apiError(resp.StatusCode, data)
	}
	if decodeErr != nil {
		return ImportResult{}, fmt.Errorf("decode answer: %w", decodeErr)
	}
	return res, nil
}
