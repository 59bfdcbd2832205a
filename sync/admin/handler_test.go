package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/embedded"
	"github.com/jwtguard/jwtguard/sync/source"
)

const testToken = "s3cret-admin-token-for-tests"

// env is one admin API over a real embedded store and real revocations.
type env struct {
	store  *embedded.Store
	rev    *authz.Revocations
	srv    *httptest.Server
	client *Client
	logs   *lockedBuffer
}

// lockedBuffer is a log sink safe to read while the server writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newEnv(t testing.TB, cfg Config, opts ...Option) *env {
	t.Helper()
	store, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	f, err := bloom.New(bloom.DefaultConfig())
	if err != nil {
		t.Fatalf("bloom: %v", err)
	}
	rev, err := authz.NewRevocations(f, store, authz.DefaultRevocationConfig())
	if err != nil {
		t.Fatalf("revocations: %v", err)
	}
	logs := &lockedBuffer{}
	opts = append([]Option{WithLogger(slog.New(slog.NewJSONHandler(logs, nil)))}, opts...)
	srv := httptest.NewServer(NewHandler(store, rev, cfg, opts...))
	t.Cleanup(srv.Close)
	return &env{store: store, rev: rev, srv: srv, logs: logs,
		client: &Client{BaseURL: srv.URL, Token: cfg.Token, HTTP: srv.Client()}}
}

// state is what a refused request must leave unchanged.
type state struct {
	src           source.Stats
	filterEntries uint64
}

func (e *env) state(t *testing.T) state {
	t.Helper()
	st, err := e.store.Stats(context.Background())
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	return state{src: st, filterEntries: e.rev.Filter().Stats().Entries}
}

// do sends a raw request and returns the status, the headers and the body.
func (e *env) do(t *testing.T, method, path, token, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if method == "POST" || method == "DELETE" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, data
}

func TestRefusedRequestsChangeNothing(t *testing.T) {
	e := newEnv(t, Config{Token: testToken, MaxBodyBytes: 4096, MaxBatch: 3})
	seed := []authz.Record{{Kind: authz.KindSession, Issuer: "https://idp", Value: "seed", Reason: "seed"}}
	if _, err := e.client.Revoke(context.Background(), seed); err != nil {
		t.Fatalf("seed: %v", err)
	}
	valid := `{"kind":"token","issuer":"https://idp","value":"jti-1"}`
	tests := []struct {
		name, method, path, token, body string
		status                          int
		wantErr                         string // part of the JSON error message
		wantIndex                       int    // -1: none
	}{
		{"no token", "POST", "/v1/revocations", "", valid, 401, "admin token", -1},
		{"wrong token", "POST", "/v1/revocations", "wrong", valid, 401, "admin token", -1},
		{"wrong token of same length", "POST", "/v1/revocations", strings.Repeat("x", len(testToken)), valid, 401, "admin token", -1},
		{"no token on list", "GET", "/v1/revocations", "", "", 401, "admin token", -1},
		{"no token on status", "GET", "/v1/status", "", "", 401, "admin token", -1},
		{"malformed JSON", "POST", "/v1/revocations", testToken, `{"kind":"token",`, 400, "malformed JSON", 0},
		{"empty body", "POST", "/v1/revocations", testToken, ``, 400, "empty body", -1},
		{"trailing data", "POST", "/v1/revocations", testToken, valid + ` {}`, 400, "after the value", 0},
		{"unknown field", "POST", "/v1/revocations", testToken, `{"kind":"token","issuer":"i","value":"v","color":"red"}`, 400, "unknown field", 0},
		{"invalid record", "POST", "/v1/revocations", testToken, `{"kind":"session","value":"sid"}`, 400, "needs issuer", 0},
		{"unknown kind", "POST", "/v1/revocations", testToken, `{"kind":"everything","value":"v"}`, 400, "unknown kind", 0},
		{"mixed valid and invalid", "POST", "/v1/revocations", testToken, `[` + valid + `,{"kind":"subject"}]`, 400, "record 1", 1},
		{"unknown field in list", "POST", "/v1/revocations", testToken, `[` + valid + `,` + valid + `,{"kind":"key","value":"k","x":1}]`, 400, "unknown field", 2},
		{"empty array", "POST", "/v1/revocations", testToken, `[]`, 400, "no records", -1},
		{"batch too big", "POST", "/v1/revocations", testToken, `[` + strings.Repeat(valid+",", 3) + valid + `]`, 400, "at most 3", -1},
		{"body too large", "POST", "/v1/revocations", testToken, `[` + strings.Repeat(valid+",", 100) + valid + `]`, 413, "larger than 4096", -1},
		{"whole JWT as value", "POST", "/v1/revocations", testToken, `{"kind":"token","issuer":"i","value":"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"}`, 400, "whole JWT", 0},
		{"invalid UTF-8 in a value", "POST", "/v1/revocations", testToken, "{\"kind\":\"key\",\"value\":\"k\xff\xfe1\"}", 400, "invalid UTF-8 at byte 24", -1},
		{"invalid UTF-8 in a reason", "POST", "/v1/revocations", testToken, "[" + valid + ",{\"kind\":\"key\",\"value\":\"k\",\"reason\":\"\xc3\"}]", 400, "invalid UTF-8", -1},
		{"lone high surrogate", "POST", "/v1/revocations", testToken, `{"kind":"key","value":"k\ud83d"}`, 400, "unpaired UTF-16 surrogate", -1},
		{"high surrogate then a letter", "POST", "/v1/revocations", testToken, `{"kind":"key","value":"\ud83d\u0041"}`, 400, "unpaired UTF-16 surrogate", -1},
		{"lone low surrogate", "POST", "/v1/revocations", testToken, `{"kind":"key","value":"\ude00k"}`, 400, "unpaired UTF-16 surrogate", -1},
		{"Bearer JWT as value", "POST", "/v1/revocations", testToken, `{"kind":"token","issuer":"i","value":"Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"}`, 400, "whole JWT", 0},
		{"lower-case bearer JWT as value", "POST", "/v1/revocations", testToken, `{"kind":"token","issuer":"i","value":" bearer  eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"}`, 400, "whole JWT", 0},
		{"token expired already", "POST", "/v1/revocations", testToken, `{"kind":"token","issuer":"i","value":"j","expires_at":"2001-01-01T00:00:00Z"}`, 400, "in the past", 0},
		{"method not allowed", "DELETE", "/v1/revocations", testToken, ``, 405, "not allowed", -1},
		{"method not allowed on record", "PUT", "/v1/revocations/abc", testToken, ``, 405, "not allowed", -1},
		{"lift without token", "DELETE", "/v1/revocations/abc", "", `{"reason":"r"}`, 401, "admin token", -1},
		{"lift without a body", "DELETE", "/v1/revocations/abc", testToken, ``, 400, "malformed JSON", -1},
		{"lift without a reason", "DELETE", "/v1/revocations/abc", testToken, `{"actor":"a"}`, 400, "needs a reason", -1},
		{"lift with an unknown field", "DELETE", "/v1/revocations/abc", testToken, `{"reason":"r","all":true}`, 400, "unknown field", -1},
		{"lift of an unknown record", "DELETE", "/v1/revocations/abc", testToken, `{"reason":"r"}`, 404, "not found", -1},
		{"method not allowed on status", "POST", "/v1/status", testToken, `{}`, 405, "not allowed", -1},
		{"unknown path", "GET", "/v2/anything", testToken, ``, 404, "no such endpoint", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.state(t)
			status, hdr, body := e.do(t, tc.method, tc.path, tc.token, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d (body %s)", status, tc.status, body)
			}
			var eb struct {
				Error string `json:"error"`
				Index *int   `json:"index"`
			}
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("error body is not JSON: %q", body)
			}
			if !strings.Contains(eb.Error, tc.wantErr) {
				t.Errorf("error %q does not contain %q", eb.Error, tc.wantErr)
			}
			switch {
			case tc.wantIndex < 0 && eb.Index != nil:
				t.Errorf("index %d, want none", *eb.Index)
			case tc.wantIndex >= 0 && (eb.Index == nil || *eb.Index != tc.wantIndex):
				t.Errorf("index %v, want %d", eb.Index, tc.wantIndex)
			}
			if status == 401 && hdr.Get("WWW-Authenticate") != `Bearer realm="jwtguard-admin"` {
				t.Errorf("WWW-Authenticate %q", hdr.Get("WWW-Authenticate"))
			}
			if after := e.state(t); !reflect.DeepEqual(before, after) {
				t.Errorf("state changed: %+v -> %+v", before, after)
			}
		})
	}
}

// A web page can send a cross-origin POST without a preflight only as a
// form or text/plain: such requests are refused, so a browser on the
// machine cannot revoke through a loopback admin API without a token.
func TestPostNeedsJSONContentType(t *testing.T) {
	e := newEnv(t, Config{})
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		before := e.state(t)
		req, _ := http.NewRequest("POST", e.srv.URL+"/v1/revocations", strings.NewReader(`{"kind":"key","value":"k1"}`))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("Content-Type %q: status %d, want 415", ct, resp.StatusCode)
		}
		if after := e.state(t); !reflect.DeepEqual(before, after) {
			t.Errorf("Content-Type %q changed the state", ct)
		}
	}
}

func TestPostEnforcesBeforeAnswering(t *testing.T) {
	e := newEnv(t, Config{Token: testToken})
	rec := authz.Record{Kind: authz.KindToken, Issuer: "https://idp", Value: "jti-42", Reason: "stolen", Actor: "alice"}
	key := rec.LookupKey().FilterKey()
	if e.rev.Filter().MayContain(key) {
		t.Fatal("filter contains the key before the revocation")
	}
	body, _ := json.Marshal(rec)
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/revocations", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Checked as soon as the status line is in, before the body is read.
	if !e.rev.Filter().MayContain(key) {
		t.Fatal("the filter does not hold the revocation when the API answers")
	}
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var out struct{ Revocations []authz.Record }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if len(out.Revocations) != 1 {
		t.Fatalf("%d records in the answer", len(out.Revocations))
	}
	got := out.Revocations[0]
	stored, err := e.store.Get(context.Background(), got.ID)
	if err != nil {
		t.Fatalf("stored record: %v", err)
	}
	if !reflect.DeepEqual(stripMono(stored), stripMono(got)) {
		t.Errorf("answer %+v differs from stored %+v", got, stored)
	}
	if got.Position == 0 || got.CreatedAt.IsZero() || got.Actor != "alice" || got.Reason != "stolen" {
		t.Errorf("record not completed: %+v", got)
	}
	log := e.logs.String()
	for _, want := range []string{`"msg":"revocation accepted"`, `"id":"` + got.ID, `"value":"jti-42"`, `"actor":"alice"`, `"reason":"stolen"`} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %s:\n%s", want, log)
		}
	}
}

func stripMono(r authz.Record) authz.Record {
	r.CreatedAt, r.ExpiresAt, r.Before = r.CreatedAt.Round(0).UTC(), r.ExpiresAt.Round(0).UTC(), r.Before.Round(0).UTC()
	return r
}

func TestExpiry(t *testing.T) {
	now := time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC)
	cfg := Config{Token: testToken, MaxTokenLifetime: time.Hour, Leeway: 10 * time.Second}
	e := newEnv(t, cfg, WithClock(func() time.Time { return now }))
	exp := now.Add(30 * time.Minute)
	tests := []struct {
		name string
		rec  authz.Record
		want time.Time
	}{
		// A token acceptable now was issued at or before now + leeway and
		// lives at most an hour: the latest exp a record must cover is
		// now + 1h + 10s, accepted until 10s later.
		{"token with exp", authz.Record{Kind: authz.KindToken, Issuer: "i", Value: "a", ExpiresAt: exp}, exp.Add(10 * time.Second)},
		{"token exp within leeway", authz.Record{Kind: authz.KindToken, Issuer: "i", Value: "b", ExpiresAt: now.Add(-5 * time.Second)}, now.Add(5 * time.Second)},
		{"token exp past the max lifetime is capped", authz.Record{Kind: authz.KindToken, Issuer: "i", Value: "far", ExpiresAt: now.AddDate(170, 0, 0)}, now.Add(time.Hour + 20*time.Second)},
		{"token without exp", authz.Record{Kind: authz.KindToken, Issuer: "i", Value: "c"}, now.Add(time.Hour + 20*time.Second)},
		{"session ignores client expiry", authz.Record{Kind: authz.KindSession, Issuer: "i", Value: "s", ExpiresAt: now.Add(time.Minute)}, now.Add(time.Hour + 20*time.Second)},
		{"session before in the future", authz.Record{Kind: authz.KindSession, Issuer: "i", Value: "s2", Before: now.Add(2 * time.Hour)}, now.Add(3*time.Hour + 10*time.Second)},
		{"key lasts until lifted", authz.Record{Kind: authz.KindKey, Value: "kid"}, now.Add(maxFuture)},
		{"key with before", authz.Record{Kind: authz.KindKey, Value: "kid", Before: now.Add(-time.Minute)}, now.Add(time.Hour + 20*time.Second)},
		{"subject without before", authz.Record{Kind: authz.KindSubject, Value: "bob"}, now.Add(time.Hour + 20*time.Second)},
		{"subject before in the past", authz.Record{Kind: authz.KindSubject, Value: "bob", Before: now.Add(-time.Hour)}, now.Add(time.Hour + 20*time.Second)},
		{"subject before in the future", authz.Record{Kind: authz.KindSubject, Value: "bob", Before: now.Add(48 * time.Hour)}, now.Add(49*time.Hour + 10*time.Second)},
		{"issuer-before", authz.Record{Kind: authz.KindIssuerBefore, Issuer: "i", Before: now}, now.Add(time.Hour + 20*time.Second)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.rec.ID, tc.rec.Position = "client-chosen", 999_999
			got, err := e.client.Revoke(context.Background(), []authz.Record{tc.rec})
			if err != nil {
				t.Fatal(err)
			}
			if !got[0].ExpiresAt.Equal(tc.want) {
				t.Errorf("expires_at %s, want %s", got[0].ExpiresAt, tc.want)
			}
			if !got[0].CreatedAt.Equal(now) {
				t.Errorf("created_at %s, want %s", got[0].CreatedAt, now)
			}
			if got[0].ID == "client-chosen" || got[0].Position == 999_999 {
				t.Errorf("client chose ID or position: %+v", got[0])
			}
		})
	}
}

func TestListAndGet(t *testing.T) {
	e := newEnv(t, Config{Token: testToken})
	ctx := context.Background()
	var recs []authz.Record
	for i := range 250 {
		iss := "https://a"
		if i%5 == 0 {
			iss = "https://b"
		}
		recs = append(recs, authz.Record{Kind: authz.KindToken, Issuer: iss, Value: fmt.Sprintf("jti-%03d", i)})
	}
	recs = append(recs, authz.Record{Kind: authz.KindKey, Value: "kid-1"})
	stored, err := e.client.Revoke(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 251 {
		t.Fatalf("stored %d", len(stored))
	}

	t.Run("pages", func(t *testing.T) {
		var all []authz.Record
		var pages []int
		q := source.ListQuery{Kind: authz.KindToken, Limit: 100}
		for range 10 {
			page, next, err := e.client.List(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			pages = append(pages, len(page))
			all = append(all, page...)
			if next == "" {
				break
			}
			q.Cursor = next
		}
		if !reflect.DeepEqual(pages, []int{100, 100, 50}) {
			t.Fatalf("page sizes %v, want [100 100 50]", pages)
		}
		for i, r := range all {
			if r.ID != stored[i].ID {
				t.Fatalf("record %d: %s, want %s (position order)", i, r.ID, stored[i].ID)
			}
		}
	})
	filters := []struct {
		name string
		q    source.ListQuery
		want int
	}{
		{"by issuer", source.ListQuery{Issuer: "https://b", Limit: 1000}, 50},
		{"by value", source.ListQuery{Value: "jti-007"}, 1},
		{"by kind", source.ListQuery{Kind: authz.KindKey}, 1},
		{"nothing matches", source.ListQuery{Kind: authz.KindSession}, 0},
	}
	for _, tc := range filters {
		t.Run(tc.name, func(t *testing.T) {
			got, next, err := e.client.List(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want || next != "" {
				t.Fatalf("%d records, next %q; want %d, none", len(got), next, tc.want)
			}
			for _, r := range got {
				if tc.q.Issuer != "" && r.Issuer != tc.q.Issuer || tc.q.Value != "" && r.Value != tc.q.Value {
					t.Errorf("record %+v does not match %+v", r, tc.q)
				}
			}
		})
	}
	bad := []struct{ name, query, wantErr string }{
		{"bad kind", "kind=all", "unknown kind"},
		{"bad limit", "limit=abc", "limit"},
		{"zero limit", "limit=0", "limit"},
		{"limit too big", "limit=5000", "limit"},
		{"unknown parameter", "knd=token", "unknown query parameter"},
		{"bad cursor", "cursor=nope", "cursor"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := e.do(t, "GET", "/v1/revocations?"+tc.query, testToken, "")
			if status != 400 || !strings.Contains(string(body), tc.wantErr) {
				t.Fatalf("status %d body %s; want 400 with %q", status, body, tc.wantErr)
			}
		})
	}
	t.Run("get", func(t *testing.T) {
		got, err := e.client.Get(ctx, stored[7].ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Value != "jti-007" || got.Position != stored[7].Position {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("get missing", func(t *testing.T) {
		_, err := e.client.Get(ctx, "0123456789abcdef0123456789abcdef")
		if !IsStatus(err, http.StatusNotFound) {
			t.Fatalf("err %v, want 404", err)
		}
	})
}

func TestStatus(t *testing.T) {
	e := newEnv(t, Config{Token: testToken}, WithStatus(func(context.Context) map[string]any {
		return map[string]any{"ready": true, "records": "must not override"}
	}))
	ctx := context.Background()
	_, err := e.client.Revoke(ctx, []authz.Record{
		{Kind: authz.KindToken, Issuer: "i", Value: "a"},
		{Kind: authz.KindToken, Issuer: "i", Value: "b"},
		{Kind: authz.KindSubject, Value: "bob", Before: time.Now()},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st["records"] != 3.0 || st["source_position"] != 3.0 || st["ready"] != true {
		t.Errorf("status %v", st)
	}
	if bk, _ := st["by_kind"].(map[string]any); bk["token"] != 2.0 || bk["subject"] != 1.0 {
		t.Errorf("by_kind %v", st["by_kind"])
	}
	filter, _ := st["filter"].(map[string]any)
	if filter["entries"] != 3.0 || filter["bits"].(float64) == 0 || filter["k"].(float64) == 0 {
		t.Errorf("filter %v", filter)
	}
	for _, f := range []string{"bytes", "fill_ratio", "estimated_fp_rate", "position"} {
		if _, ok := filter[f]; !ok {
			t.Errorf("filter lacks %s: %v", f, filter)
		}
	}
	confirm, _ := st["confirm"].(map[string]any)
	for _, f := range []string{"maybes", "confirm_hits", "lookups", "lookup_errors", "confirm_size"} {
		if _, ok := confirm[f]; !ok {
			t.Errorf("confirm lacks %s: %v", f, confirm)
		}
	}
	// Token records cover every token under their key: Enforce caches them.
	if confirm["confirm_size"] != 2.0 {
		t.Errorf("confirm_size %v, want 2", confirm["confirm_size"])
	}
}

func TestNoTokenConfigured(t *testing.T) {
	e := newEnv(t, Config{})
	if _, err := e.client.Status(context.Background()); err != nil {
		t.Fatalf("status without a configured token: %v", err)
	}
}

func TestClientErrors(t *testing.T) {
	e := newEnv(t, Config{Token: testToken})
	c := *e.client
	c.Token = "wrong"
	_, err := c.Revoke(context.Background(), []authz.Record{{Kind: authz.KindKey, Value: "k"}})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Fatalf("err %v, want *APIError 401", err)
	}
	if !strings.Contains(err.Error(), "401 unauthorized: missing or wrong admin token") {
		t.Errorf("message %q", err)
	}
	_, err = e.client.Revoke(context.Background(), []authz.Record{{Kind: authz.KindKey, Value: "k"}, {Kind: authz.KindKey}})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Index != 1 {
		t.Fatalf("err %v, want *APIError 400 at index 1", err)
	}

	// An answer from something else than the admin API, such as a proxy.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream connect error", http.StatusBadGateway)
	}))
	defer proxy.Close()
	_, err = (&Client{BaseURL: proxy.URL}).Status(context.Background())
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 502 || apiErr.Message != "upstream connect error" {
		t.Fatalf("err %v, want *APIError 502 with the proxy's text", err)
	}
}
