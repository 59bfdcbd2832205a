package admin

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/audit"
	"github.com/jwtguard/jwtguard/sync/embedded"
)

// newAuditEnv is an admin API whose store keeps an audit trail, recording
// at most burst authentication failures an hour one by one.
func newAuditEnv(t *testing.T, burst int) (*env, *audit.Log) {
	t.Helper()
	var log *audit.Log
	rec := audit.RecorderFunc(func(ctx context.Context, e audit.Entry) error { return log.Record(ctx, e) })
	cfg := Config{Token: testToken, Audit: rec, AuthFailures: audit.NewThrottle(rec, burst, time.Hour)}
	var trail lazyTrail
	e := newEnv(t, cfg, WithAuditTrail(&trail))
	log = audit.NewLog(e.store.Audit(), audit.WithNode("node-1"))
	trail.Log = log
	return e, log
}

// lazyTrail is a trail set after the handler is made (newEnv opens the
// store the trail lives in).
type lazyTrail struct{ *audit.Log }

func listAudit(t *testing.T, c *Client, q audit.Query) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	for range 100 {
		page, next, err := c.Audit(context.Background(), q)
		if err != nil {
			t.Fatalf("Audit: %v", err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		q.Cursor = next
	}
	t.Fatal("audit listing did not end")
	return nil
}

func TestAuditRecordsRevocation(t *testing.T) {
	e, _ := newAuditEnv(t, 10)
	rec := authz.Record{Kind: authz.KindToken, Issuer: "https://idp", Value: "jti-42", Reason: "stolen laptop", Actor: "alice"}
	stored, err := e.client.Revoke(context.Background(), []authz.Record{rec})
	if err != nil {
		t.Fatal(err)
	}
	got := listAudit(t, e.client, audit.Query{Kind: audit.KindRevoke})
	if len(got) != 1 {
		t.Fatalf("%d revoke entries, want 1", len(got))
	}
	g := got[0]
	if g.Actor != "alice" || g.Node != "node-1" || g.Reason != "stolen laptop" ||
		!strings.HasPrefix(g.Source, "127.0.0.1:") || !strings.Contains(g.Target, stored[0].ID) || !strings.Contains(g.Target, "jti-42") {
		t.Fatalf("entry %+v: want actor alice, node node-1, the client's address, the record's id and value", g)
	}
}

func TestAuditSourceRevokerRecordsAddress(t *testing.T) {
	store, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log := audit.NewLog(store.Audit(), audit.WithNode("cli"))
	r := SourceRevoker{Source: store, Config: Config{Audit: log}}
	ctx := audit.WithAddr(context.Background(), "203.0.113.9:443")
	if _, err := r.Revoke(ctx, []authz.Record{{Kind: authz.KindSubject, Issuer: "https://idp", Value: "bob", Actor: "idp:corp"}}); err != nil {
		t.Fatal(err)
	}
	got, _, err := log.List(context.Background(), audit.Query{})
	if err != nil || len(got) != 1 || got[0].Actor != "idp:corp" || got[0].Source != "203.0.113.9:443" || got[0].Node != "cli" {
		t.Fatalf("List = %+v, %v; want one entry by idp:corp from 203.0.113.9:443", got, err)
	}
}

func TestAuditAuthFailures(t *testing.T) {
	const burst = 3
	e, log := newAuditEnv(t, burst)
	if code, _, _ := e.do(t, "GET", "/v1/status", "wrong-token-wrong-token", ""); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d, want 401", code)
	}
	got, _, err := log.List(context.Background(), audit.Query{Kind: audit.KindAuthFailure})
	if err != nil || len(got) != 1 {
		t.Fatalf("List = %d entries, %v; want the one failure", len(got), err)
	}
	if f := got[0]; !strings.HasPrefix(f.Source, "127.0.0.1:") || f.Target != "GET /v1/status" || f.Reason != "wrong admin token" {
		t.Fatalf("failure entry %+v: want the address, the request and why", f)
	}
	// A flood grows the trail by the burst, not by the flood.
	for range 300 {
		e.do(t, "GET", "/v1/audit", "", "")
	}
	got, _, err = log.List(context.Background(), audit.Query{Kind: audit.KindAuthFailure, Limit: audit.MaxListLimit})
	if err != nil || len(got) != burst {
		t.Fatalf("after 301 failures: %d entries, %v; want %d (the rest aggregated)", len(got), err, burst)
	}
}

func TestAuditListAPI(t *testing.T) {
	e, log := newAuditEnv(t, 10)
	for i := range 7 {
		if err := log.Record(context.Background(), audit.Entry{Kind: audit.KindBlock, Actor: "jwtguard/auto:rate", Target: "addr " + string(rune('a'+i))}); err != nil {
			t.Fatal(err)
		}
	}
	pages := 0
	q := audit.Query{Limit: 3, Actor: "jwtguard/auto:rate"}
	var all []audit.Entry
	for {
		page, next, err := e.client.Audit(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		all = append(all, page...)
		if next == "" {
			break
		}
		q.Cursor = next
	}
	if pages != 3 || len(all) != 7 || all[6].Seq != 7 {
		t.Fatalf("%d pages, %d entries; want 3 pages of 7 entries in order", pages, len(all))
	}
	for _, tc := range []struct{ name, query string }{
		{"garbage cursor", "cursor=not-a-cursor"},
		{"huge cursor", "cursor=" + strings.Repeat("1", 100)},
		{"limit zero", "limit=0"},
		{"limit too large", "limit=100000"},
		{"bad since", "since=yesterday"},
		{"unknown parameter", "actr=alice"},
		{"repeated parameter", "kind=a&kind=b"},
		{"oversized actor", "actor=" + strings.Repeat("x", audit.MaxField+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, body := e.do(t, "GET", "/v1/audit?"+tc.query, testToken, ""); code != http.StatusBadRequest {
				t.Fatalf("GET /v1/audit?%s: %d %s, want 400", tc.query, code, body)
			}
		})
	}
	since := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	code, _, body := e.do(t, "GET", "/v1/audit?since="+since, testToken, "")
	var b auditBody
	if err := json.Unmarshal(body, &b); code != http.StatusOK || err != nil || len(b.Entries) != 0 || b.Entries == nil {
		t.Fatalf("since an hour ahead: %d %s; want 200 and an empty list", code, body)
	}
	if code, _, _ := e.do(t, "GET", "/v1/audit", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("GET /v1/audit without the token: %d, want 401", code)
	}
	rep, err := e.client.VerifyAudit(context.Background())
	if err != nil || !rep.OK() || rep.Entries != 8 {
		t.Fatalf("VerifyAudit = %+v, %v; want an intact chain of 8 (7 blocks, 1 failure)", rep, err)
	}
}

func TestAuditWithoutTrail(t *testing.T) {
	e := newEnv(t, Config{Token: testToken})
	if code, _, _ := e.do(t, "GET", "/v1/audit", testToken, ""); code != http.StatusNotFound {
		t.Fatalf("GET /v1/audit without a trail: %d, want 404", code)
	}
}

// TestRecordTarget: the text an audit entry names a record by, and its
// digest in an import chunk, stay what they were (the digest of an import
// is checked against the records later).
func TestRecordTarget(t *testing.T) {
	before := time.Date(2026, 11, 30, 12, 0, 0, 0, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		rec  authz.Record
		want string
	}{
		{authz.Record{Kind: authz.KindToken, Issuer: "https://idp", Value: "j1", ID: "abc"}, "token https://idp j1 id abc"},
		{authz.Record{Kind: authz.KindSubject, Value: "alice", Before: before}, "subject alice before 2026-11-30T11:00:00Z"},
		{authz.Record{Kind: authz.KindIssuerBefore, Issuer: "https://idp", Before: before, ID: "i"}, "issuer-before https://idp before 2026-11-30T11:00:00Z id i"},
		{authz.Record{Kind: authz.KindKey, Value: "k é"}, "key k é"},
		{authz.Record{}, ""},
	} {
		if got := recordTarget(tc.rec); got != tc.want {
			t.Errorf("recordTarget(%+v) = %q, want %q", tc.rec, got, tc.want)
		}
	}
	recs := []authz.Record{
		{Kind: authz.KindToken, Issuer: "https://idp", Value: "j1", ID: "a", Position: 3},
		{Kind: authz.KindSubject, Value: "alice", Before: before, ID: "b", Position: 4},
	}
	const want = "token https://idp j1 id a\nsubject alice before 2026-11-30T11:00:00Z id b\n"
	if got := summarize(recs).Digest; got != fmt.Sprintf("%x", sha256.Sum256([]byte(want))) {
		t.Errorf("digest %s, want the SHA-256 of %q", got, want)
	}
}
