package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// pathTokens is the incident scope: which live tokens, used from where.
const pathTokens = "/v1/tokens"

// ErrBadQuery is wrapped by a TokensFunc error that is the caller's fault
// (an unknown filter, a bad CIDR): the API answers 400.
var ErrBadQuery = errors.New("bad query")

// TokensFunc answers GET /v1/tokens: it reads the query's parameters and
// returns a JSON-encodable answer. The node wires it to its scope table,
// which the admin API does not know.
type TokensFunc func(ctx context.Context, query url.Values) (any, error)

// WithTokens serves GET /v1/tokens with fn; without it the endpoint
// answers 404.
func WithTokens(fn TokensFunc) Option { return func(h *handler) { h.tokens = fn } }

func (h *handler) getTokens(w http.ResponseWriter, r *http.Request) {
	if h.tokens == nil {
		writeError(w, http.StatusNotFound, "this server keeps no token scope")
		return
	}
	out, err := h.tokens(r.Context(), r.URL.Query())
	switch {
	case errors.Is(err, ErrBadQuery):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		h.log.Error("token scope", "err", err)
		writeError(w, http.StatusInternalServerError, "token scope: "+err.Error())
	default:
		writeJSON(w, http.StatusOK, out)
	}
}

// Tokens returns the answer of GET /v1/tokens for query, for the caller
// to decode (the scope's Answer).
func (c *Client) Tokens(ctx context.Context, query url.Values) (json.RawMessage, error) {
	p := pathTokens
	if len(query) > 0 {
		p += "?" + query.Encode()
	}
	var out json.RawMessage
	if err := c.do(ctx, http.MethodGet, p, nil, &out); err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	return out, nil
}
