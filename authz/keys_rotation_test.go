package authz

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz/mint"
	"github.com/jwtguard/jwtguard/bloom"
)

// issuerChecker returns a ready checker trusting the one issuer ic.
func issuerChecker(t *testing.T, ic IssuerConfig, opts ...Option) *Checker {
	t.Helper()
	f, err := bloom.New(bloom.Config{Entries: 1000, FPRate: 0.001, DeltaEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := NewRevocations(f, emptyLookup{}, DefaultRevocationConfig())
	if err != nil {
		t.Fatal(err)
	}
	rev.SetReady(true)
	cfg := DefaultConfig()
	cfg.Issuers = []IssuerConfig{ic}
	c, err := NewChecker(cfg, rev, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// signHeader signs benchToken's claims for jti under the exact header
// given, so tests choose the kid (or leave it out).
func signHeader(t *testing.T, k *mint.Key, header, jti string) string {
	t.Helper()
	now := time.Now()
	payload, err := json.Marshal(map[string]any{
		"iss": benchIssuer, "aud": "api", "sub": "user-" + jti, "jti": jti,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := k.SignRaw([]byte(header), payload)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// kidless signs a token of k whose header names no kid.
func kidless(t *testing.T, k *mint.Key, jti string) string {
	t.Helper()
	return signHeader(t, k, `{"alg":"`+k.Alg+`","typ":"JWT"}`, jti)
}

func wantReason(t *testing.T, c *Checker, tok string, want Reason) Decision {
	t.Helper()
	d := c.CheckToken(context.Background(), tok)
	if d.Reason != want {
		t.Fatalf("reason %s (%v), want %s", d.Reason, d.Err, want)
	}
	return d
}

// A cached token must be decided as a fresh one would be: when its key
// leaves the issuer's key set (or its kid comes back with another key),
// the refresh that removes it ends the token's cached allow.
func TestCachedTokenOfRemovedKeyIsDenied(t *testing.T) {
	k1, k2 := mustNewKey(t, "ES256", "k1"), mustNewKey(t, "ES256", "k2")
	k1Reused := mustNewKey(t, "ES256", "k1") // another key published under k1's kid
	tests := []struct {
		name   string
		sign   func(t *testing.T, k *mint.Key, jti string) string
		after  []*mint.Key
		wantK1 Reason
	}{
		{"k1 leaves the set", benchToken2, []*mint.Key{k2}, ReasonRetiredKey},
		{"k1's kid names another key", benchToken2, []*mint.Key{k1Reused, k2}, ReasonBadSignature},
		{"k1 leaves the set, tokens without kid", kidless, []*mint.Key{k2}, ReasonBadSignature},
		{"k1 stays, another key arrives", benchToken2, []*mint.Key{k1, k2, mustNewKey(t, "ES256", "k3")}, ReasonOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newJWKSServer(t, k1, k2)
			c := urlChecker(t, srv.URL, time.Hour) // no unknown-kid refetch: only the refresh below changes keys
			t1, t2 := tc.sign(t, k1, "one"), tc.sign(t, k2, "two")
			wantReason(t, c, t1, ReasonOK)
			wantReason(t, c, t2, ReasonOK)
			if n := c.CachedTokens(); n != 2 {
				t.Fatalf("%d cached tokens, want 2", n)
			}

			srv.set(t, tc.after...)
			if err := c.LoadKeys(context.Background()); err != nil {
				t.Fatal(err)
			}
			for range 2 { // and again: a denied token is not served from the cache later
				wantReason(t, c, t1, tc.wantK1)
				wantReason(t, c, t2, ReasonOK)
			}
			wantCached := 2
			if tc.wantK1 != ReasonOK {
				wantCached = 1
			}
			if n := c.CachedTokens(); n != wantCached {
				t.Errorf("%d cached tokens, want %d", n, wantCached)
			}
			var v verified
			if !c.cache.get(t2, &v) || v.key.gen != keyGeneration.Load() {
				t.Errorf("the token whose key stayed was not renewed in the cache (cached gen %d, now %d)", v.key.gen, keyGeneration.Load())
			}
		})
	}
}

// benchToken2 is benchToken with the test signature of kidless.
func benchToken2(t *testing.T, k *mint.Key, jti string) string {
	t.Helper()
	return benchToken(t, k, jti)
}

// The check of a cached token after a key set change allocates nothing,
// and concurrent refreshes never let a removed key's token through.
func TestCachedCheckAfterKeySetChange(t *testing.T) {
	k1, k2 := mustNewKey(t, "ES256", "k1"), mustNewKey(t, "ES256", "k2")
	srv := newJWKSServer(t, k1, k2)
	c := urlChecker(t, srv.URL, time.Hour)
	ctx := context.Background()
	tok := benchToken(t, k2, "stays")
	wantReason(t, c, tok, ReasonOK)
	if got := testing.AllocsPerRun(200, func() {
		keyGeneration.Add(1) // as if another key set changed: every run checks the key again
		c.CheckToken(ctx, tok)
	}); got != 0 {
		t.Errorf("%v allocations per cached check after a key set change, want 0", got)
	}

	gone := benchToken(t, k1, "gone")
	wantReason(t, c, gone, ReasonOK)
	srv.set(t, k2)
	if err := c.LoadKeys(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				stays, left := c.CheckToken(ctx, tok), c.CheckToken(ctx, gone)
				if !stays.Allowed() || left.Allowed() {
					bad.Add(1)
				}
			}
		}()
	}
	for i := range 20 { // refreshes that keep k2 and never bring k1 back
		if i%2 == 0 {
			srv.set(t, k2, mustNewKey(t, "ES256", "extra"))
		} else {
			srv.set(t, k2)
		}
		if err := c.LoadKeys(ctx); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Errorf("%d wrong decisions during refreshes", n)
	}
}

// A token without kid is tried against each key that fits its alg, as
// Envoy does, but against at most maxKidlessCandidates of them.
func TestKidlessTokenTriesEachKey(t *testing.T) {
	es := func(n int) []*mint.Key {
		var ks []*mint.Key
		for i := range n {
			ks = append(ks, mustNewKey(t, "ES256", "es"+string(rune('a'+i))))
		}
		return ks
	}
	two, five, four := es(2), es(5), es(4)
	fourAndEd := append(append([]*mint.Key{}, four...), mustNewKey(t, "EdDSA", "ed1"), mustNewKey(t, "EdDSA", "ed2"))
	tests := []struct {
		name    string
		set     []*mint.Key
		tok     func(t *testing.T) string
		want    Reason
		wantErr string
	}{
		{"two keys, signed by the second", two, func(t *testing.T) string { return kidless(t, two[1], "a") }, ReasonOK, ""},
		{"two keys, signed by the first", two, func(t *testing.T) string { return kidless(t, two[0], "a") }, ReasonOK, ""},
		{"two keys, signed by neither", two, func(t *testing.T) string { return kidless(t, mustNewKey(t, "ES256", "x"), "a") }, ReasonBadSignature, "none of the 2 keys"},
		{"no key fits the alg", two, func(t *testing.T) string { return kidless(t, mustNewKey(t, "EdDSA", "x"), "a") }, ReasonUnknownKey, "no key of issuer"},
		{"more keys fit than the bound", five, func(t *testing.T) string { return kidless(t, five[4], "a") }, ReasonUnknownKey, "at most 4 are tried"},
		{"only keys that fit the alg count", fourAndEd, func(t *testing.T) string { return kidless(t, four[3], "a") }, ReasonOK, ""},
		{"a kid still selects one key", two, func(t *testing.T) string {
			return signHeader(t, two[1], `{"alg":"ES256","typ":"JWT","kid":"`+two[0].KID+`"}`, "a")
		}, ReasonBadSignature, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newJWKSServer(t, tc.set...)
			c := urlChecker(t, srv.URL, time.Hour)
			d := wantReason(t, c, tc.tok(t), tc.want)
			if tc.wantErr != "" && (d.Err == nil || !strings.Contains(d.Err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want it to say %q", d.Err, tc.wantErr)
			}
		})
	}
}

// hmacIssuer returns the config of an HS256 issuer and its key.
func hmacIssuer(t *testing.T) (IssuerConfig, *mint.Key) {
	t.Helper()
	// A text secret: the secret file loses trailing CR/LF, which a random
	// binary one may end with.
	k, err := mint.FromPrivate("HS256", "", []byte(hex.EncodeToString(mustNewKey(t, "HS256", "").Secret())))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, k.Secret(), 0o600); err != nil {
		t.Fatal(err)
	}
	ic := DefaultIssuerConfig(benchIssuer)
	ic.HMACSecretFile, ic.Algs, ic.Audiences = path, []string{"HS256"}, []string{"api"}
	return ic, k
}

// An HMAC secret verifies only tokens that name its kid, or no kid.
func TestHMACKeyID(t *testing.T) {
	header := func(kid string) string {
		if kid == "" {
			return `{"alg":"HS256","typ":"JWT"}`
		}
		return `{"alg":"HS256","typ":"JWT","kid":"` + kid + `"}`
	}
	tests := []struct {
		name    string
		hmacKID string
		kid     string
		want    Reason
	}{
		{"no hmac-kid, no kid", "", "", ReasonOK},
		{"no hmac-kid, any kid", "", "k-other", ReasonUnknownKey},
		{"hmac-kid, its kid", "h1", "h1", ReasonOK},
		{"hmac-kid, no kid", "h1", "", ReasonOK},
		{"hmac-kid, another kid", "h1", "h2", ReasonUnknownKey},
		{"hmac-kid, a kid differing in case", "h1", "H1", ReasonUnknownKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ic, k := hmacIssuer(t)
			ic.HMACKeyID = tc.hmacKID
			c := issuerChecker(t, ic)
			tok := signHeader(t, k, header(tc.kid), "a")
			d := wantReason(t, c, tok, tc.want)
			if d.Allowed() {
				if want := tc.hmacKID; d.Claims.KeyID != want {
					t.Errorf("KeyID %q, want %q (what revoke --kid matches)", d.Claims.KeyID, want)
				}
				keyGeneration.Add(1) // another issuer's keys changed: still allowed from the cache
				wantReason(t, c, tok, ReasonOK)
			}
		})
	}
}

func TestHMACKeyIDValidation(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(ic *IssuerConfig)
		wantErr string
	}{
		{"hmac-kid without secret", func(ic *IssuerConfig) { ic.HMACSecretFile, ic.Algs, ic.JWKSFile = "", []string{"ES256"}, "/j" }, "hmac-kid is set without hmac-secret-file"},
		{"control character", func(ic *IssuerConfig) { ic.HMACKeyID = "h\n1" }, "hmac-kid"},
		{"too long", func(ic *IssuerConfig) { ic.HMACKeyID = strings.Repeat("k", 257) }, "hmac-kid"},
		{"fine", func(*IssuerConfig) {}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ic := DefaultIssuerConfig(benchIssuer)
			ic.HMACSecretFile, ic.Algs, ic.HMACKeyID = "/secret", []string{"HS256"}, "h1"
			tc.edit(&ic)
			err := ic.Validate()
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// logBuffer collects log output written from any goroutine.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A key set entry holding a small-order Ed25519 point is refused (and
// logged): with it, R = that point and S = 0 is a valid signature of any
// message.
func TestWeakEd25519KeyRefused(t *testing.T) {
	good := mustNewKey(t, "EdDSA", "good")
	jwks, err := mint.JWKS(good)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &doc); err != nil {
		t.Fatal(err)
	}
	identity := make([]byte, 32)
	identity[0] = 1 // the neutral point, of order 1
	doc.Keys = append(doc.Keys, map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "weak", "alg": "EdDSA", "use": "sig", "x": b64url(identity)})
	path := filepath.Join(t.TempDir(), "jwks.json")
	body, _ := json.Marshal(doc)
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	ic := DefaultIssuerConfig(benchIssuer)
	ic.JWKSFile, ic.Audiences = path, []string{"api"}
	c := issuerChecker(t, ic, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if out := logs.String(); !strings.Contains(out, "key set entry ignored") || !strings.Contains(out, "kid=weak") || !strings.Contains(out, "small order") {
		t.Errorf("the weak key was not logged as refused:\n%s", out)
	}

	forge := func(header string) string {
		tok := signHeader(t, good, header, "forged")
		sig := append(append([]byte{}, identity...), make([]byte, 32)...) // R = identity, S = 0
		return tok[:strings.LastIndexByte(tok, '.')+1] + b64url(sig)
	}
	wantReason(t, c, forge(`{"alg":"EdDSA","typ":"JWT","kid":"weak"}`), ReasonUnknownKey)
	wantReason(t, c, forge(`{"alg":"EdDSA","typ":"JWT"}`), ReasonBadSignature)
	wantReason(t, c, benchToken(t, good, "real"), ReasonOK)
}

// gatedJWKS serves a key set; while gated, each request waits until the
// gate opens (or the client gives up).
type gatedJWKS struct {
	*httptest.Server
	body    atomic.Pointer[[]byte]
	gate    atomic.Pointer[chan struct{}]
	arrived chan struct{}
	fetches atomic.Int32
}

func newGatedJWKS(t *testing.T, keys ...*mint.Key) *gatedJWKS {
	t.Helper()
	s := &gatedJWKS{arrived: make(chan struct{}, 64)}
	s.set(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if g := s.gate.Load(); g != nil {
			s.arrived <- struct{}{}
			select {
			case <-*g:
			case <-r.Context().Done():
				return
			}
		}
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *gatedJWKS) set(t *testing.T, keys ...*mint.Key) {
	t.Helper()
	b, err := mint.JWKS(keys...)
	if err != nil {
		t.Fatal(err)
	}
	s.body.Store(&b)
}

// close gates requests from now on and returns the function that opens
// the gate; the test's cleanup opens it too.
func (s *gatedJWKS) close(t *testing.T) func() {
	t.Helper()
	g := make(chan struct{})
	s.gate.Store(&g)
	var once sync.Once
	open := func() { once.Do(func() { s.gate.Store(nil); close(g) }) }
	t.Cleanup(open)
	return open
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The unknown-kid refetch runs on its own context: a request whose
// deadline ends first is denied unknown_key, but the fetch completes and
// the next request is allowed; concurrent misses share one fetch.
func TestUnknownKidRefetchOutlivesRequest(t *testing.T) {
	k1, k2, k3 := mustNewKey(t, "ES256", "k1"), mustNewKey(t, "ES256", "k2"), mustNewKey(t, "ES256", "k3")
	srv := newGatedJWKS(t, k1)
	c := urlChecker(t, srv.URL, 0)
	keys := c.issuers[benchIssuer].keys
	has := func(kid string) func() bool {
		return func() bool { _, ok := keys.keys.Load().find(kid, "ES256"); return ok }
	}

	// A request with a short deadline: it ends while the slow fetch runs.
	srv.set(t, k1, k2)
	open := srv.close(t)
	before := srv.fetches.Load()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-srv.arrived // the refetch reached the key set server
		cancel()      // the request's deadline ends
	}()
	d := c.CheckToken(ctx, benchToken(t, k2, "short"))
	if d.Reason != ReasonUnknownKey {
		t.Fatalf("reason %s (%v) for a request whose deadline ended during the refetch, want unknown_key", d.Reason, d.Err)
	}
	open()
	waitFor(t, "the refetch to install k2", has("k2"))
	wantReason(t, c, benchToken(t, k2, "next"), ReasonOK)
	if n := srv.fetches.Load() - before; n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}

	// Concurrent misses for a new kid share one fetch.
	srv.set(t, k1, k2, k3)
	open = srv.close(t)
	before = srv.fetches.Load()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d := c.CheckToken(context.Background(), benchToken(t, k3, "c"+string(rune('a'+i)))); !d.Allowed() {
				errs <- errors.New(string(d.Reason))
			}
		}()
	}
	<-srv.arrived
	open()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a concurrent request was denied: %v", err)
	}
	if n := srv.fetches.Load() - before; n != 1 {
		t.Errorf("8 concurrent misses made %d fetches, want 1", n)
	}
}

// A token of a key that left its issuer's set is denied retired_key with
// the claims its issuer signed, only when its signature verifies against
// that key: a token naming the retired kid with any other signature is a
// forgery (bad_signature, no claims), and a retired key never allows.
func TestRetiredKey(t *testing.T) {
	k1, k2 := mustNewKey(t, "ES256", "k1"), mustNewKey(t, "ES256", "k2")
	forger := mustNewKey(t, "ES256", "k1") // another private key, same kid
	srv := newJWKSServer(t, k1, k2)
	c := urlChecker(t, srv.URL, time.Hour)
	old := benchToken(t, k1, "old")
	wantReason(t, c, old, ReasonOK)

	srv.set(t, k2)
	if err := c.LoadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tok    string
		want   Reason
		claims bool
	}{
		{"a cached token of the retired key", old, ReasonRetiredKey, true},
		{"a new token of the retired key", benchToken(t, k1, "new"), ReasonRetiredKey, true},
		{"a forgery naming the retired kid", benchToken(t, forger, "forged"), ReasonBadSignature, false},
		{"the retired kid with another alg", signHeader(t, k1, `{"alg":"ES384","typ":"JWT","kid":"k1"}`, "alg"), ReasonUnknownKey, false},
		{"a kid never seen", benchToken(t, mustNewKey(t, "ES256", "k9"), "k9"), ReasonUnknownKey, false},
		{"the current key", benchToken(t, k2, "cur"), ReasonOK, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 { // the second time: nothing cached changes it
				before := goneUses(c)
				d := wantReason(t, c, tc.tok, tc.want)
				if uses, want := goneUses(c)-before, strings.Contains(tc.name, "retired kid"); uses != map[bool]uint64{true: 1}[want || tc.want == ReasonRetiredKey] {
					t.Fatalf("the retired key counted %d uses", uses)
				}
				if got := d.Claims.Subject != ""; got != tc.claims {
					t.Fatalf("claims %+v, want claims %v", d.Claims, tc.claims)
				}
				if tc.want == ReasonRetiredKey && (d.Claims.KeyID != "k1" || d.Claims.TokenID == "" || d.Claims.IssuedAt == 0) {
					t.Fatalf("claims %+v: want kid k1, a token id and an issue time", d.Claims)
				}
			}
		})
	}
	if n := c.CachedTokens(); n != 1 {
		t.Errorf("%d cached tokens, want 1 (the current key's): a retired key's token is never cached", n)
	}

	// The key comes back: its tokens are allowed again.
	srv.set(t, k1, k2)
	if err := c.LoadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantReason(t, c, old, ReasonOK)
}

// Only the last maxGoneKeys keys to leave are kept: older ones are unknown.
func TestRetiredKeysAreBounded(t *testing.T) {
	first := mustNewKey(t, "ES256", "first")
	srv := newJWKSServer(t, first)
	c := urlChecker(t, srv.URL, time.Hour)
	tok := benchToken(t, first, "t")
	for i := range maxGoneKeys + 1 {
		srv.set(t, mustNewKey(t, "ES256", fmt.Sprintf("k%d", i)))
		if err := c.LoadKeys(context.Background()); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			wantReason(t, c, tok, ReasonRetiredKey)
		}
	}
	wantReason(t, c, tok, ReasonUnknownKey)
}

func goneUses(c *Checker) (n uint64) {
	for _, ks := range c.KeySets() {
		for _, g := range ks.Gone {
			n += g.Uses
		}
	}
	return n
}
