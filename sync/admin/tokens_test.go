package admin

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestTokensEndpoint: GET /v1/tokens needs the admin token like every
// call, passes the query to the node's scope, answers its bad queries 400,
// and is 404 on a server without a scope.
func TestTokensEndpoint(t *testing.T) {
	const token = "a-long-enough-admin-token-for-the-test"
	var got url.Values
	scope := func(_ context.Context, q url.Values) (any, error) {
		if q.Has("addr") && q.Get("addr") == "bad" {
			return nil, errors.Join(ErrBadQuery, errors.New("addr: want a CIDR"))
		}
		got = q
		return map[string]any{"tokens": []string{"t1"}}, nil
	}
	e := newEnv(t, Config{Token: token}, WithTokens(scope))
	if code, _, _ := e.do(t, "GET", "/v1/tokens?subject=alice", "", ""); code != http.StatusUnauthorized {
		t.Errorf("without the admin token: %d", code)
	}
	code, _, body := e.do(t, "GET", "/v1/tokens?subject=alice&addr=10.0.0.0/8", token, "")
	if code != http.StatusOK || !strings.Contains(string(body), "t1") || got.Get("subject") != "alice" || got.Get("addr") != "10.0.0.0/8" {
		t.Errorf("answer %d %s, query %v", code, body, got)
	}
	if code, _, body := e.do(t, "GET", "/v1/tokens?addr=bad", token, ""); code != http.StatusBadRequest || !strings.Contains(string(body), "CIDR") {
		t.Errorf("bad query: %d %s", code, body)
	}
	if code, _, _ := e.do(t, "POST", "/v1/tokens", token, "{}"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", code)
	}
	raw, err := e.client.Tokens(context.Background(), url.Values{"kid": {"k1"}})
	if err != nil || !strings.Contains(string(raw), "t1") || got.Get("kid") != "k1" {
		t.Errorf("client: %s, %v", raw, err)
	}
	none := newEnv(t, Config{})
	if code, _, _ := none.do(t, "GET", "/v1/tokens", "", ""); code != http.StatusNotFound {
		t.Errorf("without a scope: %d", code)
	}
}
