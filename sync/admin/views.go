package admin

import (
	"context"
	"net/http"
	"strings"
)

// ViewFunc answers a read-only view of the node's state as a JSON value.
type ViewFunc func(ctx context.Context) (any, error)

// WithView serves GET /v1/<name> with what fn returns, for state the node
// holds outside the revocation source (the key-rotation watch at
// /v1/keys, the detectors at /v1/detectors). name is one path segment.
func WithView(name string, fn ViewFunc) Option {
	if name == "" || strings.Contains(name, "/") {
		panic("admin.WithView: name must be one path segment")
	}
	return func(h *handler) {
		if h.views == nil {
			h.views = map[string]ViewFunc{}
		}
		h.views["/v1/"+name] = fn
	}
}

// getView answers a view, or false when p names none.
func (h *handler) getView(w http.ResponseWriter, r *http.Request, p string) bool {
	fn, ok := h.views[p]
	if !ok {
		return false
	}
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return true
	}
	v, err := fn(r.Context())
	if err != nil {
		h.log.Error("admin view", "path", p, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
		return true
	}
	writeJSON(w, http.StatusOK, v)
	return true
}
