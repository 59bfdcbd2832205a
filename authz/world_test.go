package authz

import (
	"context"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz/mint"
)

// Issuers of the decision tests' world.
const (
	issA = "https://issuer-a.test" // every asymmetric algorithm, keys from a JWKS file
	issB = "https://issuer-b.test" // ES256 from a JWKS URL, two audiences
	issH = "https://issuer-h.test" // HS256 from a secret file
	audA = "api-a"
)

// worldKeys are the keys of the test issuers, made once per test binary
// (RSA keys are slow to generate).
type worldKeys struct {
	byAlg map[string]*mint.Key // issuer A, kid "a-<alg>"
	b     *mint.Key            // issuer B, kid "b-1"
	h     *mint.Key            // issuer H, a 64-character text secret, no kid
	other *mint.Key            // an attacker's ES256 key, under issuer A's kid "a-ES256"
}

var (
	worldKeysOnce sync.Once
	theWorldKeys  *worldKeys
)

func testKeys(t *testing.T) *worldKeys {
	t.Helper()
	worldKeysOnce.Do(func() {
		w := &worldKeys{byAlg: map[string]*mint.Key{}}
		for _, alg := range AsymmetricAlgorithms {
			w.byAlg[alg] = mustNewKey(t, alg, "a-"+alg)
		}
		w.b = mustNewKey(t, "ES256", "b-1")
		// A text secret, as hmacIssuer's: the secret file loses trailing
		// CR/LF, which a random binary one may end with.
		h, err := mint.FromPrivate("HS256", "", []byte(hex.EncodeToString(mustNewKey(t, "HS256", "").Secret())))
		if err != nil {
			t.Fatal(err)
		}
		w.h = h
		w.other = mustNewKey(t, "ES256", "a-ES256")
		theWorldKeys = w
	})
	if theWorldKeys == nil {
		t.Fatal("the test keys could not be made")
	}
	return theWorldKeys
}

// testWorld is a checker trusting issuers A, B and H, with a token header
// and a token cookie configured, the claim header x-jwt-email, revocations
// confirmed through an in-memory source, and a clock the test sets.
type testWorld struct {
	*worldKeys
	checker *Checker
	rev     *Revocations
	src     *memSource
	jwksB   *jwksServer  // issuer B's key set
	clock   atomic.Int64 // unix seconds
	now     int64        // the clock's start
	nextJTI atomic.Int64
}

// newTestWorld returns a world whose key sets are loaded, unless issuer
// B's key server is down (bDown).
func newTestWorld(t *testing.T, bDown bool) *testWorld {
	t.Helper()
	w := &testWorld{worldKeys: testKeys(t), src: newMemSource()}
	w.now = time.Now().Unix()
	w.clock.Store(w.now)
	dir := t.TempDir()
	var aKeys []*mint.Key
	for _, alg := range AsymmetricAlgorithms {
		aKeys = append(aKeys, w.byAlg[alg])
	}
	jwksA, err := mint.JWKS(aKeys...)
	if err != nil {
		t.Fatal(err)
	}
	w.jwksB = newJWKSServer(t, w.b)
	if bDown {
		w.jwksB.fail()
	}

	cfg := DefaultConfig()
	a := DefaultIssuerConfig(issA)
	a.JWKSFile, a.Audiences = writeTestFile(t, dir, "a.jwks.json", jwksA), []string{audA}
	b := DefaultIssuerConfig(issB)
	b.JWKSURL, b.Audiences, b.Algs = w.jwksB.URL, []string{"api-b1", "api-b2"}, []string{"ES256"}
	h := DefaultIssuerConfig(issH)
	h.HMACSecretFile, h.Algs = writeTestFile(t, dir, "h.secret", w.h.Secret()), []string{"HS256"}
	cfg.Issuers = []IssuerConfig{a, b, h}
	cfg.TokenHeader, cfg.TokenCookie = "X-Access-Token", "session"
	cfg.ClaimHeaders = append(cfg.ClaimHeaders, ClaimHeader{Claim: "email", Header: "x-jwt-email"})
	w.rev = newTestRevocations(t, w.src)
	w.checker, err = NewChecker(cfg, w.rev, WithClock(func() time.Time { return time.Unix(w.clock.Load(), 0) }))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.checker.LoadKeys(context.Background()); (err != nil) != bDown {
		t.Fatalf("load keys with issuer B's server down=%v: %v", bDown, err)
	}
	return w
}

func writeTestFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// claims are the claims of a fresh, valid token of issuer A with a jti of
// its own, changed by mod.
func (w *testWorld) claims(mod func(map[string]any)) map[string]any {
	c := map[string]any{
		"iss": issA, "aud": audA, "sub": "alice", "jti": "jti-" + strconv.FormatInt(w.nextJTI.Add(1), 10),
		"iat": w.now - 60, "exp": w.now + 3600, "email": "alice@example.test",
	}
	if mod != nil {
		mod(c)
	}
	return c
}

// check decides a request with headers h, as the gRPC adapter receives
// them (MapHeaders, repeats joined) and as forward-auth does (http.Header):
// both must give the same decision, which it returns.
func (w *testWorld) check(t *testing.T, h http.Header) Decision {
	t.Helper()
	d := w.checker.Check(context.Background(), h)
	if m := w.checker.Check(context.Background(), joinHeaders(h)); !sameDecision(d, m) {
		t.Fatalf("http.Header decides %s %+v, MapHeaders %s %+v", d.Reason, d.Claims, m.Reason, m.Claims)
	}
	return d
}

// sameDecision compares two decisions, their errors by message.
func sameDecision(a, b Decision) bool {
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	return a.Reason == b.Reason && a.RevokedBy == b.RevokedBy && a.Claims == b.Claims && errText(a.Err) == errText(b.Err)
}

// joinHeaders is h as Envoy sends it: lower-case names, repeated headers
// joined by commas (cookies by "; ").
func joinHeaders(h http.Header) MapHeaders {
	m := MapHeaders{}
	for k, vs := range h {
		sep := ","
		if http.CanonicalHeaderKey(k) == "Cookie" {
			sep = "; "
		}
		m[strings.ToLower(k)] = strings.Join(vs, sep)
	}
	return m
}

// authorization is a request carrying tok as a bearer token.
func authorization(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// revoke stores recs in the source and enforces them, as the admin API
// does after a write.
func (w *testWorld) revoke(t *testing.T, recs ...Record) {
	t.Helper()
	w.store(t, recs)
	w.rev.Enforce(recs...)
}

// snapshot stores recs in the source and adds their keys to the filter
// only, as a loaded snapshot brings them: the confirm cache knows nothing
// of them and a check asks the source.
func (w *testWorld) snapshot(t *testing.T, recs ...Record) {
	t.Helper()
	w.store(t, recs)
	for _, rec := range recs {
		w.rev.Filter().Add(rec.LookupKey().FilterKey(), 0)
	}
}

// store completes recs as the admin API does and stores them in the
// source.
func (w *testWorld) store(t *testing.T, recs []Record) {
	t.Helper()
	for i := range recs {
		recs[i].ExpiresAt = time.Unix(w.now, 0).Add(48 * time.Hour)
		recs[i].Actor, recs[i].Reason = "test", "test"
		if err := recs[i].ValidateStored(); err != nil {
			t.Fatal(err)
		}
		w.src.store(recs[i])
	}
}

func signClaims(t testing.TB, k *mint.Key, claims any) string {
	t.Helper()
	tok, err := k.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signExact signs exact header and payload JSON.
func signExact(t testing.TB, k *mint.Key, header, payload string) string {
	t.Helper()
	tok, err := k.SignRaw([]byte(header), []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func enc64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// flipTrailingBits changes the unused low bits of the last base64url
// character, giving a non-canonical encoding of the same bytes.
func flipTrailingBits(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[last^1])
}

// hmacWithPublicKey forges the classic algorithm-confusion token: HS256
// keyed with the issuer's public key, which an attacker knows.
func hmacWithPublicKey(t testing.TB, k *mint.Key, payload string) string {
	t.Helper()
	pub, err := k.PublicJWK()
	if err != nil {
		t.Fatal(err)
	}
	secret, err := json.Marshal(pub)
	if err != nil {
		t.Fatal(err)
	}
	forger, err := mint.FromPrivate("HS256", k.KID, secret)
	if err != nil {
		t.Fatal(err)
	}
	return signExact(t, forger, `{"alg":"HS256","typ":"JWT","kid":"`+k.KID+`"}`, payload)
}

// withEmbeddedKey signs with the attacker's key and names it in the header
// the way the given member would (jwk, jku or x5u), under a real kid.
func withEmbeddedKey(t testing.TB, w *worldKeys, member, payload string) string {
	t.Helper()
	header := map[string]any{"alg": "ES256", "typ": "JWT", "kid": "a-ES256"}
	switch member {
	case "jwk":
		pub, err := w.other.PublicJWK()
		if err != nil {
			t.Fatal(err)
		}
		header["jwk"] = pub
	case "jku":
		header["jku"] = "https://attacker.test/jwks.json"
	case "x5u":
		header["x5u"] = "https://attacker.test/cert.pem"
	}
	return signExact(t, w.other, mustJSON(t, header), payload)
}

// malleate returns the ES256 token tok with its signature (r, s) replaced
// by (r, n-s), which verifies too.
func malleate(t testing.TB, tok string) string {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	if len(sig) != 64 {
		t.Fatalf("ES256 signature of %d bytes", len(sig))
	}
	n := elliptic.P256().Params().N
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(n, s)
	out := make([]byte, 64)
	copy(out, sig[:32])
	s.FillBytes(out[32:])
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(out)
}
