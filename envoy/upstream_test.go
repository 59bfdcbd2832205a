package envoy_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwtguard/jwtguard/envoy"
)

// counterValue reads one counter (without labels) from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// forwardAuth sends headers to a forward-auth server as a proxy would.
func forwardAuth(t *testing.T, url string, headers map[string][]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/authz/orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// removedList is the HeadersToRemove list of a forward-auth answer.
func removedList(resp *http.Response) []string {
	var out []string
	for _, v := range strings.Split(resp.Header.Get(envoy.HeadersToRemove), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// TestControlCharactersNeverReachUpstreamHeaders signs claims holding CR,
// LF, NUL and other control characters: both adapters allow the token but
// never emit such a header value; they remove the header (so a client's own
// copy cannot pass either) and count it.
func TestControlCharactersNeverReachUpstreamHeaders(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, sub string
		dropped   bool
	}{
		{"CRLF header injection", "alice\r\nX-Admin: true", true},
		{"bare LF", "alice\nx", true},
		{"NUL", "alice\x00", true},
		{"TAB", "al\tice", true},
		{"DEL", "alice\x7f", true},
		{"escape sequence", "\x1b[31malice", true},
		{"UTF-8 is fine", "alïce", false},
	}
	reg := prometheus.NewRegistry()
	a := envoy.NewAuthorization(e.checker, envoy.WithMetrics(envoy.NewMetrics(reg)))
	fa := httptest.NewServer(a)
	defer fa.Close()
	var wantDropped float64
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := e.token(t, func(c map[string]any) { c["sub"] = tc.sub })
			client := map[string]string{"authorization": "Bearer " + tok, "x-jwt-sub": "admin"}

			// gRPC, through the real server and in process with metrics.
			for _, o := range []outcome{outcomeOf(t, e.check(t, client)), outcomeOf(t, checkWith(t, a, withHeaders(client)))} {
				if !o.allowed {
					t.Fatalf("denied: %s", o.reason)
				}
				sub, set := o.upstream["x-jwt-sub"]
				switch {
				case tc.dropped && (set || !contains(o.removed, "x-jwt-sub")):
					t.Errorf("gRPC: x-jwt-sub set to %q / removed %v; want it removed", sub, o.removed)
				case !tc.dropped && sub != tc.sub:
					t.Errorf("gRPC: x-jwt-sub %q, want %q", sub, tc.sub)
				}
			}

			// Forward-auth.
			resp := forwardAuth(t, fa.URL, map[string][]string{"Authorization": {"Bearer " + tok}, "X-Jwt-Sub": {"admin"}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("forward-auth status %d", resp.StatusCode)
			}
			got, set := resp.Header["X-Jwt-Sub"]
			switch {
			case tc.dropped && (set || !contains(removedList(resp), "x-jwt-sub")):
				t.Errorf("forward-auth: X-Jwt-Sub %q, to remove %v; want it removed", got, removedList(resp))
			case !tc.dropped && resp.Header.Get("X-Jwt-Sub") != tc.sub:
				t.Errorf("forward-auth: X-Jwt-Sub %q, want %q", got, tc.sub)
			}
			if resp.Header.Get("X-Jwt-Iss") != issA {
				t.Errorf("forward-auth: the safe X-Jwt-Iss must still be sent, got %q", resp.Header.Get("X-Jwt-Iss"))
			}
			if tc.dropped {
				wantDropped += 2 // one gRPC check with metrics, one forward-auth
			}
			if n := counterValue(t, reg, "jwtguard_claim_headers_dropped_total"); n != wantDropped {
				t.Errorf("jwtguard_claim_headers_dropped_total %v, want %v", n, wantDropped)
			}
		})
	}
}

// TestRemoveAuthorization: with the option on, both adapters name
// Authorization among the headers the proxy must remove from an allowed
// request; with it off, neither does.
func TestRemoveAuthorization(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, nil)
	for _, remove := range []bool{true, false} {
		a := envoy.NewAuthorization(e.checker, envoy.WithRemoveAuthorization(remove))
		o := outcomeOf(t, checkWith(t, a, withHeaders(map[string]string{"authorization": "Bearer " + tok})))
		if !o.allowed || contains(o.removed, "authorization") != remove {
			t.Errorf("gRPC, remove-authorization %v: allowed %v, headers to remove %v", remove, o.allowed, o.removed)
		}
		fa := httptest.NewServer(a)
		resp := forwardAuth(t, fa.URL, map[string][]string{"Authorization": {"Bearer " + tok}})
		fa.Close()
		if resp.StatusCode != http.StatusOK || contains(removedList(resp), "authorization") != remove {
			t.Errorf("forward-auth, remove-authorization %v: status %d, %s %v", remove, resp.StatusCode, envoy.HeadersToRemove, removedList(resp))
		}
	}
}
