package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/audit"
	"github.com/jwtguard/jwtguard/sync/embedded"
)

// importEnv is an admin API over a real embedded store whose audit trail
// is in the store, as a server on the embedded store has it.
type importEnv struct {
	dir    string
	store  *embedded.Store
	log    *audit.Log
	rev    *authz.Revocations
	srv    *httptest.Server
	client *Client
	logs   *lockedBuffer
	// served gets the path of each request the handler has finished.
	served chan string
}

func newImportEnv(t *testing.T, cfg Config) *importEnv {
	t.Helper()
	return newImportEnvWith(t, cfg, embedded.Options{})
}

// newImportEnvWith is newImportEnv over a store opened with opts.
func newImportEnvWith(t *testing.T, cfg Config, opts embedded.Options) *importEnv {
	t.Helper()
	dir := t.TempDir()
	store, err := embedded.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f, err := bloom.New(bloom.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rev, err := authz.NewRevocations(f, store, authz.DefaultRevocationConfig())
	if err != nil {
		t.Fatal(err)
	}
	log := audit.NewLog(store.Audit(), audit.WithNode("node-1"))
	cfg.Audit = log
	logs := &lockedBuffer{}
	h := NewHandler(store, rev, cfg, WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))
	served := make(chan string, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		select {
		case served <- r.URL.Path:
		default:
		}
	}))
	t.Cleanup(srv.Close)
	return &importEnv{dir: dir, store: store, log: log, rev: rev, srv: srv, logs: logs, served: served,
		client: &Client{BaseURL: srv.URL, Token: cfg.Token, HTTP: srv.Client()}}
}

func (e *importEnv) records(t *testing.T) int {
	t.Helper()
	st, err := e.store.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Records
}

// tokenLine is the import line of token record i.
func tokenLine(i int) string {
	return fmt.Sprintf(`{"kind":"token","issuer":"https://idp","value":"jti-%d"}`, i)
}

func TestImport(t *testing.T) {
	e := newImportEnv(t, Config{Token: testToken, ImportChunk: 3})
	lines := []string{
		"# mass revocation", // 1
		tokenLine(1),        // 2
		tokenLine(2),        // 3
		`{"kind":"token","issuer":"https://idp",`, // 4: malformed mid-stream
		tokenLine(3), // 5
		"",           // 6
		`{"kind":"token","issuer":"https://idp","value":"jti-4","extra":1}`, // 7: unknown field
		tokenLine(4), // 8
		`{"kind":"token","issuer":"https://idp","value":"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"}`, // 9
		tokenLine(5),                       // 10
		`{"kind":"session","value":"bob"}`, // 11: no issuer
		`{"kind":"session","issuer":"https://idp","value":"s-1","actor":"own"}`, // 12
	}
	res, err := e.client.Import(context.Background(), strings.NewReader(strings.Join(lines, "\n")), "oncall", "incident 7")
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if res.Stored != 6 || res.Error != "" {
		t.Fatalf("stored %d (error %q), want 6; rejected %+v", res.Stored, res.Error, res.Rejected)
	}
	var rejected []int
	for _, r := range res.Rejected {
		rejected = append(rejected, r.Line)
	}
	if fmt.Sprint(rejected) != "[4 7 9 11]" {
		t.Fatalf("rejected lines %v, want [4 7 9 11]: %+v", rejected, res.Rejected)
	}
	if !strings.Contains(res.Rejected[0].Error, "malformed JSON") || !strings.Contains(res.Rejected[1].Error, "unknown field") {
		t.Errorf("rejections %+v: want the reason of each", res.Rejected)
	}
	want := []ImportChunk{{FirstLine: 2, LastLine: 5, Stored: 3, FirstPosition: 1, LastPosition: 3},
		{FirstLine: 8, LastLine: 12, Stored: 3, FirstPosition: 4, LastPosition: 6}}
	if len(res.Chunks) != len(want) {
		t.Fatalf("chunks %+v, want %+v", res.Chunks, want)
	}
	for i, c := range res.Chunks {
		if c.Digest == "" || len(c.Digest) != 64 {
			t.Errorf("chunk %d: digest %q", i, c.Digest)
		}
		c.Digest = ""
		if c != want[i] {
			t.Errorf("chunk %d = %+v, want %+v", i, c, want[i])
		}
	}
	if n := e.records(t); n != 6 {
		t.Fatalf("store holds %d records, want 6", n)
	}
	// Enforced on this node before the answer.
	for _, v := range []string{"jti-1", "jti-5"} {
		if !e.rev.Filter().MayContain(authz.LookupKey{Kind: authz.KindToken, Issuer: "https://idp", Value: v}.FilterKey()) {
			t.Errorf("%s not in the filter after the answer", v)
		}
	}
	recs, err := e.store.Lookup(context.Background(), authz.LookupKey{Kind: authz.KindSession, Issuer: "https://idp", Value: "s-1"})
	if err != nil || len(recs) != 1 || recs[0].Actor != "own" || recs[0].Reason != "incident 7" {
		t.Fatalf("s-1: %+v, %v; want its own actor and the query's reason", recs, err)
	}
	// One audit entry a chunk, naming the actor, count, positions and
	// digest; the chain verifies.
	entries, _, err := e.log.List(context.Background(), audit.Query{Kind: audit.KindRevoke})
	if err != nil || len(entries) != 2 {
		t.Fatalf("%d revoke entries (%v), want one per chunk", len(entries), err)
	}
	for i, en := range entries {
		c := res.Chunks[i]
		if !strings.Contains(en.Target, "import of 3 records") ||
			!strings.Contains(en.Target, fmt.Sprintf("positions %d-%d", c.FirstPosition, c.LastPosition)) ||
			!strings.Contains(en.Target, c.Digest) || !strings.HasPrefix(en.Source, "127.0.0.1:") {
			t.Errorf("entry %+v does not name chunk %+v", en, c)
		}
	}
	if entries[0].Actor != "oncall" || entries[1].Actor != "oncall, own" {
		t.Errorf("actors %q, %q; want oncall, then oncall and own", entries[0].Actor, entries[1].Actor)
	}
	rep, err := e.log.Verify(context.Background())
	if err != nil || !rep.OK() {
		t.Fatalf("audit chain: %+v, %v", rep, err)
	}
	// One log line a chunk and one for the import, none per record.
	if n := strings.Count(e.logs.String(), `"msg":"revocations accepted"`); n != 2 {
		t.Errorf("%d accepted log lines, want 2 (one per chunk)", n)
	}
}

func TestImportStops(t *testing.T) {
	long := `{"kind":"token","issuer":"https://idp","value":"` + strings.Repeat("a", MaxImportLine) + `"}`
	garbage := strings.Repeat("not json\n", MaxImportRejected+1)
	for _, tc := range []struct {
		name       string
		cfg        Config
		body       string
		status     int
		stored     int
		line       int
		wantErr    string
		lastStored int
	}{
		{
			name:   "oversized line",
			cfg:    Config{ImportChunk: 2},
			body:   strings.Join([]string{tokenLine(1), tokenLine(2), tokenLine(3), long, tokenLine(5)}, "\n"),
			status: http.StatusRequestEntityTooLarge, stored: 2, line: 4, wantErr: "line 4 is longer than",
		},
		{
			name:   "too many lines",
			cfg:    Config{ImportChunk: 2, MaxImportLines: 5},
			body:   strings.Repeat(tokenLine(1)+"\n", 50),
			status: http.StatusRequestEntityTooLarge, stored: 4, line: 6, wantErr: "more than 5 lines",
		},
		{
			name: "huge stream",
			cfg:  Config{ImportChunk: 2, MaxImportBytes: 1000},
			body: strings.Repeat(tokenLine(1)+"\n", 1000),
			// 17 whole lines of 56 bytes, the 18th cut: chunks up to line
			// 16 stored, line 17 was being read.
			status: http.StatusRequestEntityTooLarge, stored: 16, line: 18, wantErr: "body larger than 1000 bytes at line 18",
		},
		{
			name:   "too many rejected",
			cfg:    Config{ImportChunk: 2},
			body:   tokenLine(1) + "\n" + tokenLine(2) + "\n" + garbage + tokenLine(3) + "\n",
			status: http.StatusBadRequest, stored: 2, line: MaxImportRejected + 3, wantErr: "lines rejected",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newImportEnv(t, tc.cfg)
			res, err := e.client.Import(context.Background(), strings.NewReader(tc.body), "a", "r")
			if !IsStatus(err, tc.status) {
				t.Fatalf("err %v, want status %d", err, tc.status)
			}
			if res.Stored != tc.stored || res.Line != tc.line || !strings.Contains(res.Error, tc.wantErr) {
				t.Fatalf("result stored %d line %d error %q; want %d, %d, %q", res.Stored, res.Line, res.Error, tc.stored, tc.line, tc.wantErr)
			}
			// Exactly what the answer says is stored, nothing of the
			// chunk being read when the import stopped.
			if n := e.records(t); n != tc.stored {
				t.Fatalf("store holds %d records, answer says %d", n, tc.stored)
			}
		})
	}
}

func TestImportRefused(t *testing.T) {
	e := newImportEnv(t, Config{Token: testToken})
	for _, tc := range []struct {
		name, token, contentType string
		status                   int
	}{
		{"no token", "", ImportContentType, http.StatusUnauthorized},
		{"wrong token", "wrong-token-wrong-token-wrong", ImportContentType, http.StatusUnauthorized},
		{"JSON content type", testToken, "application/json", http.StatusUnsupportedMediaType},
		{"form content type", testToken, "text/plain", http.StatusUnsupportedMediaType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, e.srv.URL+pathImport, strings.NewReader(tokenLine(1)+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tc.contentType)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if n := e.records(t); n != 0 {
				t.Fatalf("%d records stored by a refused import", n)
			}
		})
	}
	// GET is not an import.
	code, _, _ := (&env{srv: e.srv}).do(t, http.MethodGet, pathImport, testToken, "")
	if code != http.StatusMethodNotAllowed {
		t.Fatalf("GET %s: %d, want 405", pathImport, code)
	}
}

// brokenBody yields lines then fails, as a client that dies mid-stream.
type brokenBody struct {
	r io.Reader
}

func (b *brokenBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, errors.New("client died")
	}
	return n, err
}

// TestImportBrokenStreamThenRestart: a client dies mid-import; the chunks
// the server stored survive a restart whole, the chunk being read is not
// stored at all, and the records stored are still revoked after the
// restart.
func TestImportBrokenStreamThenRestart(t *testing.T) {
	e := newImportEnv(t, Config{ImportChunk: 4})
	var b strings.Builder
	for i := range 10 { // two chunks of 4, then 2 lines and a break
		b.WriteString(tokenLine(i) + "\n")
	}
	b.WriteString(`{"kind":"token","iss`) // cut mid-line
	_, err := e.client.Import(context.Background(), &brokenBody{strings.NewReader(b.String())}, "a", "r")
	if err == nil {
		t.Fatal("import of a broken body succeeded")
	}
	// The server finishes with the request after the client is gone.
	select {
	case <-e.served:
	case <-time.After(time.Minute):
		t.Fatal("the import request never ended on the server")
	}
	if !strings.Contains(e.logs.String(), `"msg":"revocations imported"`) {
		t.Fatalf("no summary log line:\n%s", e.logs.String())
	}
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	store, err := embedded.Open(e.dir, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	st, err := store.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != 8 {
		t.Fatalf("after restart the store holds %d records, want the two whole chunks (8)", st.Records)
	}
	for i := range 10 {
		recs, err := store.Lookup(context.Background(), authz.LookupKey{Kind: authz.KindToken, Issuer: "https://idp", Value: fmt.Sprintf("jti-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(recs) == 1, i < 8; got != want {
			t.Errorf("jti-%d stored %v after restart, want %v", i, got, want)
		}
	}
	rep, err := audit.NewLog(store.Audit()).Verify(context.Background())
	if err != nil || !rep.OK() || rep.Entries != 2 {
		t.Fatalf("audit after restart: %+v, %v; want a valid chain of two entries", rep, err)
	}
}

// TestImportBrokenMidChunkThenFollow: an import cut mid-chunk leaves the
// whole chunks stored and enforced on the node; the node's own follower
// reads them back as copies of what it enforced (each counted once), and
// nothing of the chunk being read.
func TestImportBrokenMidChunkThenFollow(t *testing.T) {
	e := newImportEnv(t, Config{ImportChunk: 4})
	var b strings.Builder
	for i := range 10 { // two chunks of 4, then 2 lines of a third and a break
		b.WriteString(tokenLine(i) + "\n")
	}
	if _, err := e.client.Import(context.Background(), &brokenBody{strings.NewReader(b.String())}, "a", "r"); err == nil {
		t.Fatal("import of a broken body succeeded")
	}
	select {
	case <-e.served:
	case <-time.After(time.Minute):
		t.Fatal("the import request never ended on the server")
	}
	recs, err := embedded.AheadFeed{Store: e.store, Rev: e.rev}.Feed(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 8 {
		t.Fatalf("the feed holds %d records, want the two whole chunks (8)", len(recs))
	}
	for _, r := range recs {
		if r.Kind != "" {
			t.Fatalf("record %s at %d was decoded, not taken as one the node enforced", r.ID, r.Position)
		}
	}
	if n := e.rev.Apply(recs...); n != 8 {
		t.Fatalf("applied %d of 8", n)
	}
	if st := e.rev.Filter().Stats(); st.Entries != 8 || st.Position != 8 {
		t.Fatalf("entries %d position %d; want 8, 8", st.Entries, st.Position)
	}
	for i := range 8 {
		k := authz.LookupKey{Kind: authz.KindToken, Issuer: "https://idp", Value: fmt.Sprintf("jti-%d", i)}
		if !e.rev.Filter().MayContain(k.FilterKey()) {
			t.Errorf("jti-%d, stored, is not enforced", i)
		}
	}
}

// TestImportStoreRefusesLaterChunk: the store refuses chunk 2 while it
// prepares it (its clock has jumped past the records' expiry) as chunk 1
// commits: chunk 1 stands, stored, enforced and audited; the answer names
// chunk 2's lines; nothing of chunk 2 or 3 is stored, though chunk 3 was
// read whole.
func TestImportStoreRefusesLaterChunk(t *testing.T) {
	var calls atomic.Int32
	clock := func() time.Time {
		if calls.Add(1) == 1 { // chunk 1's preparation
			return time.Now()
		}
		return time.Now().AddDate(100, 0, 0)
	}
	e := newImportEnvWith(t, Config{ImportChunk: 3}, embedded.Options{Now: clock})
	var b strings.Builder
	for i := range 9 {
		b.WriteString(tokenLine(i) + "\n")
	}
	res, err := e.client.Import(context.Background(), strings.NewReader(b.String()), "a", "r")
	if !IsStatus(err, http.StatusBadRequest) {
		t.Fatalf("err %v, want status 400", err)
	}
	if res.Stored != 3 || len(res.Chunks) != 1 || res.Line != 4 || !strings.Contains(res.Error, "lines 4-6 not stored") ||
		!strings.Contains(res.Error, "not in the future") {
		t.Fatalf("result %+v; want chunk 1 stored, lines 4-6 refused", res)
	}
	// The store's clock says they have expired: its feed still holds them.
	if feed, err := e.store.Feed(context.Background(), 0, 100); err != nil || len(feed) != 3 {
		t.Fatalf("store's feed holds %d records (%v), want 3", len(feed), err)
	}
	for i := range 3 {
		k := authz.LookupKey{Kind: authz.KindToken, Issuer: "https://idp", Value: fmt.Sprintf("jti-%d", i)}
		if !e.rev.Filter().MayContain(k.FilterKey()) {
			t.Fatalf("record %d of the stored chunk is not enforced", i)
		}
	}
	var targets []string
	if err := e.store.Audit().Scan(context.Background(), "", func(st audit.Stored) bool {
		targets = append(targets, st.Entry.Target)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(targets) != 1 || !strings.Contains(targets[0], "import of 3 records") {
		t.Fatalf("audit trail %q; want the one entry of chunk 1", targets)
	}
}

// TestImportWarnsOfIssuers: records naming an issuer the server is not
// configured with are stored, counted over every chunk and warned about.
func TestImportWarnsOfIssuers(t *testing.T) {
	e := newImportEnv(t, Config{ImportChunk: 2, Issuers: []string{"https://configured"}})
	var b strings.Builder
	for i := range 5 {
		b.WriteString(tokenLine(i) + "\n")
	}
	b.WriteString(`{"kind":"token","issuer":"https://configured","value":"x"}` + "\n")
	res, err := e.client.Import(context.Background(), strings.NewReader(b.String()), "a", "r")
	if err != nil {
		t.Fatal(err)
	}
	if res.Stored != 6 || len(res.Warnings) != 1 || !strings.HasPrefix(res.Warnings[0], `5 records name issuer "https://idp"`) {
		t.Fatalf("stored %d, warnings %q; want 6 stored, one warning of 5 records", res.Stored, res.Warnings)
	}
}

// An import's first chunk is an eighth of the others (so that the store
// starts committing sooner), never under firstChunkMin nor over a chunk.
func TestImportFirstChunkSmaller(t *testing.T) {
	for _, tc := range []struct{ chunk, first int }{
		{1, 1}, {3, 3}, {firstChunkMin, firstChunkMin}, {4 * firstChunkMin, firstChunkMin},
		{8 * firstChunkMin, firstChunkMin}, {16 * firstChunkMin, 2 * firstChunkMin}, {250_000, 31_250},
	} {
		if got := firstChunk(tc.chunk); got != tc.first {
			t.Errorf("firstChunk(%d) = %d, want %d", tc.chunk, got, tc.first)
		}
	}
	const chunk = 16 * firstChunkMin
	e := newImportEnv(t, Config{ImportChunk: chunk})
	var body strings.Builder
	lines := chunk + 3*firstChunkMin
	for i := range lines {
		body.WriteString(tokenLine(i) + "\n")
	}
	res, err := e.client.Import(context.Background(), strings.NewReader(body.String()), "oncall", "bulk")
	if err != nil || res.Stored != lines {
		t.Fatalf("import: stored %d, %v; want %d", res.Stored, err, lines)
	}
	var sizes []int
	for _, c := range res.Chunks {
		sizes = append(sizes, c.Stored)
	}
	if want := []int{2 * firstChunkMin, chunk, firstChunkMin}; !slices.Equal(sizes, want) {
		t.Errorf("chunk sizes %v, want %v", sizes, want)
	}
}
