package admin

import (
	"context"
	"errors"
	"net/http"
	"testing"
)

// TestViews: a view the node adds answers GET with its JSON, behind the
// same admin token as the rest; other methods and failures are errors.
func TestViews(t *testing.T) {
	e := newEnv(t, Config{Token: "view-token"},
		WithView("keys", func(context.Context) (any, error) { return map[string]int{"keys": 2}, nil }),
		WithView("broken", func(context.Context) (any, error) { return nil, errors.New("no state") }))
	tests := []struct {
		method, path, token string
		want                int
		body                string
	}{
		{"GET", "/v1/keys", "view-token", http.StatusOK, `{"keys":2}`},
		{"GET", "/v1/keys", "", http.StatusUnauthorized, ""},
		{"GET", "/v1/keys", "wrong", http.StatusUnauthorized, ""},
		{"POST", "/v1/keys", "view-token", http.StatusMethodNotAllowed, ""},
		{"GET", "/v1/broken", "view-token", http.StatusInternalServerError, ""},
		{"GET", "/v1/detectors", "view-token", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		code, _, body := e.do(t, tt.method, tt.path, tt.token, "")
		if code != tt.want || (tt.body != "" && string(body) != tt.body+"\n" && string(body) != tt.body) {
			t.Errorf("%s %s (token %q): %d %s, want %d %s", tt.method, tt.path, tt.token, code, body, tt.want, tt.body)
		}
	}
}
