package authz

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/jwtguard/jwtguard/authz/mint"
	"github.com/jwtguard/jwtguard/bloom"
)

// emptyLookup is the exact lookup of a source that holds no record: the
// benchmarks measure the filter path, where the source is never reached.
type emptyLookup struct{}

func (emptyLookup) Lookup(context.Context, LookupKey) ([]Record, error) { return nil, nil }

const benchIssuer = "https://bench.test"

// benchChecker returns a ready checker trusting one key per given alg.
func benchChecker(tb testing.TB, filter *bloom.Filter, algs ...string) (*Checker, map[string]*mint.Key) {
	tb.Helper()
	ks := map[string]*mint.Key{}
	var list []*mint.Key
	for _, alg := range algs {
		k, err := mint.NewKey(alg, "k-"+alg)
		if err != nil {
			tb.Fatal(err)
		}
		ks[alg] = k
		list = append(list, k)
	}
	jwks, err := mint.JWKS(list...)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwks, 0o600); err != nil {
		tb.Fatal(err)
	}
	if filter == nil {
		if filter, err = bloom.New(bloom.DefaultConfig()); err != nil {
			tb.Fatal(err)
		}
	}
	rev, err := NewRevocations(filter, emptyLookup{}, DefaultRevocationConfig())
	if err != nil {
		tb.Fatal(err)
	}
	rev.SetReady(true)
	cfg := DefaultConfig()
	ic := DefaultIssuerConfig(benchIssuer)
	ic.JWKSFile, ic.Audiences = path, []string{"api"}
	cfg.Issuers = []IssuerConfig{ic}
	c, err := NewChecker(cfg, rev)
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.LoadKeys(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return c, ks
}

func benchToken(tb testing.TB, k *mint.Key, jti string) string {
	tb.Helper()
	now := time.Now()
	tok, err := k.Sign(map[string]any{
		"iss": benchIssuer, "aud": "api", "sub": "user-" + jti, "jti": jti, "sid": "s-" + jti,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// fillCache puts n distinct verified tokens in c's cache, as a long-lived
// server holds them, so benchmarks run with the garbage collector marking
// a full cache.
func fillCache(tb testing.TB, c *Checker, k *mint.Key, n int) {
	tb.Helper()
	proto := benchToken(tb, k, "proto")
	var v verified
	if r, err := c.verify(context.Background(), proto, time.Now().Unix(), &v); r != ReasonOK {
		tb.Fatal(r, err)
	}
	for i := 0; i < n; i++ {
		// Distinct cache keys of a realistic size; their content is not
		// re-verified by a cache hit, which compares the exact string.
		c.cache.put(fmt.Sprintf("%s#%d", proto, i), &v)
	}
}

// BenchmarkCheckCached is the hot path: a repeated, valid, not revoked
// token, with the verified-token cache holding 100k other tokens.
func BenchmarkCheckCached(b *testing.B) {
	c, ks := benchChecker(b, nil, "ES256")
	fillCache(b, c, ks["ES256"], 100_000)
	tok := benchToken(b, ks["ES256"], "hot")
	h := MapHeaders{"authorization": "Bearer " + tok, ":path": "/", ":method": "GET"}
	ctx := context.Background()
	if d := c.Check(ctx, h); !d.Allowed() {
		b.Fatal(d.Reason, d.Err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if d := c.Check(ctx, h); !d.Allowed() {
			b.Fatal(d.Reason)
		}
	}
}

// BenchmarkCheckCachedParallel is the hot path on every core, with a full
// cache as BenchmarkCheckCached.
func BenchmarkCheckCachedParallel(b *testing.B) {
	c, ks := benchChecker(b, nil, "ES256")
	fillCache(b, c, ks["ES256"], 100_000)
	tok := benchToken(b, ks["ES256"], "hot")
	h := MapHeaders{"authorization": "Bearer " + tok}
	ctx := context.Background()
	c.Check(ctx, h)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d := c.Check(ctx, h); !d.Allowed() {
				b.Error(d.Reason)
				return
			}
		}
	})
}

// BenchmarkCheckNewToken checks a token never seen before on every
// iteration (parse, verify, claims, cache insert, revocation check). Compare
// with BenchmarkRawVerify of the same algorithm in the same run.
func BenchmarkCheckNewToken(b *testing.B) {
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			c, ks := benchChecker(b, nil, alg)
			pool := make([]string, 256)
			for i := range pool {
				pool[i] = benchToken(b, ks[alg], fmt.Sprintf("t-%d", i))
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%len(pool) == 0 && i > 0 {
					b.StopTimer()
					c.cache = newTokenCache(c.cfg.CacheSize) // every token is new again
					b.StartTimer()
				}
				if d := c.CheckToken(ctx, pool[i%len(pool)]); !d.Allowed() {
					b.Fatal(d.Reason, d.Err)
				}
			}
		})
	}
}

// BenchmarkRawVerify is the floor for BenchmarkCheckNewToken: the standard
// library's verification of the same kind of token (hash included).
func BenchmarkRawVerify(b *testing.B) {
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			k, err := mint.NewKey(alg, "k")
			if err != nil {
				b.Fatal(err)
			}
			tok := benchToken(b, k, "raw")
			dot := strings.LastIndexByte(tok, '.')
			input := []byte(tok[:dot])
			sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
			if err != nil {
				b.Fatal(err)
			}
			verify := rawVerifier(b, alg, k.Public())
			if !verify(input, sig) {
				b.Fatal("raw verification failed")
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if !verify(input, sig) {
					b.Fatal("raw verification failed")
				}
			}
		})
	}
}

func rawVerifier(tb testing.TB, alg string, pub crypto.PublicKey) func(input, sig []byte) bool {
	switch alg {
	case "ES256":
		p := pub.(*ecdsa.PublicKey)
		return func(input, sig []byte) bool {
			h := sha256.Sum256(input)
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			return ecdsa.Verify(p, h[:], r, s)
		}
	case "RS256":
		p := pub.(*rsa.PublicKey)
		return func(input, sig []byte) bool {
			h := sha256.Sum256(input)
			return rsa.VerifyPKCS1v15(p, crypto.SHA256, h[:], sig) == nil
		}
	case "EdDSA":
		p := pub.(ed25519.PublicKey)
		return func(input, sig []byte) bool { return ed25519.Verify(p, input, sig) }
	}
	tb.Fatalf("no raw verifier for %s", alg)
	return nil
}

// filled returns a default-sized filter holding n random revocation keys,
// built once per size for the whole run.
var (
	filledMu sync.Mutex
	filled   = map[int]*bloom.Filter{}
)

func filledFilter(tb testing.TB, n int) *bloom.Filter {
	tb.Helper()
	filledMu.Lock()
	defer filledMu.Unlock()
	if f, ok := filled[n]; ok {
		return f
	}
	cfg := bloom.DefaultConfig()
	if uint(n) > cfg.Entries {
		cfg.Entries = uint(n)
	}
	f, err := bloom.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := f.Rebuild(cfg, uint64(n), func(add func(bloom.Key)) error {
		for i := 0; i < n; i++ {
			add(bloom.Key{H1: mrand.Uint64(), H2: mrand.Uint64()}) // as random as KeyOf's output
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	filled[n] = f
	return f
}

// BenchmarkRevocationCheck is the revocation check alone of a verified,
// not revoked token, with the filter empty, and holding 1M and 10M records.
func BenchmarkRevocationCheck(b *testing.B) {
	for _, n := range []int{0, 1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			if n > 1_000_000 && testing.Short() {
				b.Skip("10M records in -short mode")
			}
			c, ks := benchChecker(b, filledFilter(b, n), "ES256")
			tok := benchToken(b, ks["ES256"], "hot")
			var v verified
			if r, err := c.verify(context.Background(), tok, time.Now().Unix(), &v); r != ReasonOK {
				b.Fatal(r, err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if r, _ := c.rev.check(ctx, &v, 0); r != ReasonOK {
					b.Fatal(r)
				}
			}
		})
	}
}

// BenchmarkCheckCachedWhileRevoking is the hot path while 1,000
// revocations a second arrive and the filter is rebuilt in a loop; compare
// with the "quiet" sub-benchmark of the same run.
func BenchmarkCheckCachedWhileRevoking(b *testing.B) {
	for _, busy := range []bool{false, true} {
		name := "quiet"
		if busy {
			name = "revoking+rebuilding"
		}
		b.Run(name, func(b *testing.B) {
			c, ks := benchChecker(b, nil, "ES256")
			h := MapHeaders{"authorization": "Bearer " + benchToken(b, ks["ES256"], "hot")}
			ctx := context.Background()
			c.Check(ctx, h)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			if busy {
				wg.Add(2)
				go func() { // 1,000 revocations per second
					defer wg.Done()
					t := time.NewTicker(time.Millisecond)
					defer t.Stop()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						case <-t.C:
							c.rev.Apply(Record{Kind: KindToken, Issuer: benchIssuer, Value: fmt.Sprintf("r-%d", i), Position: uint64(i + 1)})
						}
					}
				}()
				go func() { // rebuilds back to back, each of a full filter (1M live records)
					defer wg.Done()
					f := c.rev.Filter()
					for {
						select {
						case <-stop:
							return
						default:
						}
						_ = f.Rebuild(f.Config(), f.Position(), func(add func(bloom.Key)) error {
							for i := uint(0); i < f.Config().Entries; i++ {
								add(bloom.Key{H1: mrand.Uint64(), H2: mrand.Uint64()})
							}
							return nil
						})
					}
				}()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if d := c.Check(ctx, h); !d.Allowed() {
					b.Fatal(d.Reason)
				}
			}
			b.StopTimer()
			close(stop)
			wg.Wait()
		})
	}
}

// BenchmarkCheckCachedRevoked is a repeated token revoked by a record of
// one of three kinds (the revoked share of bench/'s revoked10 mix), with a
// full cache as BenchmarkCheckCached: once found revoked, the cached token
// is denied without filter probes or a confirm-cache visit.
func BenchmarkCheckCachedRevoked(b *testing.B) {
	// Records that revoke every token under their key: the confirm cache
	// holds their answer, and the source (empty here) is never asked.
	for _, rec := range []Record{
		{Kind: KindToken, Issuer: benchIssuer, Value: "hot"},
		{Kind: KindSession, Issuer: benchIssuer, Value: "s-hot"},
		{Kind: KindKey, Value: "k-ES256"},
	} {
		kind := rec.Kind
		b.Run(string(kind), func(b *testing.B) {
			c, ks := benchChecker(b, nil, "ES256")
			fillCache(b, c, ks["ES256"], 100_000)
			tok := benchToken(b, ks["ES256"], "hot")
			c.Revocations().Enforce(rec)
			h := MapHeaders{"authorization": "Bearer " + tok, ":path": "/", ":method": "GET"}
			ctx := context.Background()
			if d := c.Check(ctx, h); d.Reason != ReasonRevoked || d.RevokedBy != kind {
				b.Fatal(d.Reason, d.RevokedBy, d.Err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if d := c.Check(ctx, h); d.Reason != ReasonRevoked {
					b.Fatal(d.Reason)
				}
			}
		})
	}
}

// BenchmarkCheckVerified is revocation-only mode's path: a payload that
// Envoy's jwt_authn verified, with a jti and its header in metadata (never
// parsed), not revoked, seen before, with the payload cache holding 100k
// others. Compare with BenchmarkCheckCached in the same run.
func BenchmarkCheckVerified(b *testing.B) {
	filter, err := bloom.New(bloom.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	rev, err := NewRevocations(filter, emptyLookup{}, DefaultRevocationConfig())
	if err != nil {
		b.Fatal(err)
	}
	rev.SetReady(true)
	cfg := DefaultConfig()
	ic := DefaultIssuerConfig(benchIssuer)
	ic.RevocationOnly, ic.PayloadKey, ic.HeaderKey, ic.Audiences = true, "jwt_payload", "jwt_header", []string{"api"}
	cfg.Issuers = []IssuerConfig{ic}
	c, err := NewChecker(cfg, rev)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	md, err := structpb.NewStruct(map[string]any{
		"jwt_payload": map[string]any{
			"iss": benchIssuer, "aud": "api", "sub": "user-hot", "jti": "hot", "sid": "s-hot",
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		},
		"jwt_header": map[string]any{"alg": "ES256", "kid": "k-ES256", "typ": "JWT"},
	})
	if err != nil {
		b.Fatal(err)
	}
	// 100k other payloads cached, as BenchmarkCheckCached's tokens.
	for i := 0; i < 100_000; i++ {
		cl := Claims{Issuer: benchIssuer, Subject: fmt.Sprintf("user-%d", i), JTI: fmt.Sprintf("jti-%d", i), Session: "s", KeyID: "k-ES256",
			Expiry: now.Add(time.Hour).Unix(), IssuedAt: now.Unix()}
		cl.TokenID, cl.Extra[0], cl.Extra[1] = cl.JTI, cl.Subject, cl.Issuer
		var v verified
		fill(&v, cl)
		c.payloadCache.putClaims(c.payloadCache.claimsHash(&cl), &v, nil)
	}
	h := MapHeaders{":path": "/", ":method": "GET"}
	ctx := context.Background()
	if d := c.CheckVerified(ctx, md, h); !d.Allowed() {
		b.Fatal(d.Reason, d.Err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if d := c.CheckVerified(ctx, md, h); !d.Allowed() {
			b.Fatal(d.Reason)
		}
	}
}

// BenchmarkCheckVerifiedForwarded is revocation-only mode in Istio's
// layout: the payload under the issuer's name, no JOSE header in metadata,
// so the kid comes from the forwarded token. Compare with
// BenchmarkCheckCached and BenchmarkCheckVerified in the same run.
func BenchmarkCheckVerifiedForwarded(b *testing.B) {
	k, err := mint.NewKey("ES256", "k-ES256")
	if err != nil {
		b.Fatal(err)
	}
	filter, err := bloom.New(bloom.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	rev, err := NewRevocations(filter, emptyLookup{}, DefaultRevocationConfig())
	if err != nil {
		b.Fatal(err)
	}
	rev.SetReady(true)
	cfg := DefaultConfig()
	ic := DefaultIssuerConfig(benchIssuer)
	ic.RevocationOnly, ic.Audiences = true, []string{"api"}
	cfg.Issuers = []IssuerConfig{ic}
	c, err := NewChecker(cfg, rev)
	if err != nil {
		b.Fatal(err)
	}
	tok := benchToken(b, k, "hot")
	p, reason, err := parseToken(tok, &c.parseOpts)
	if reason != ReasonOK {
		b.Fatal(reason, err)
	}
	md, err := structpb.NewStruct(map[string]any{benchIssuer: map[string]any{
		"iss": p.Claims.Iss, "aud": "api", "sub": p.Claims.Sub, "jti": p.Claims.Jti, "sid": p.Claims.Sid,
		"iat": p.Claims.Iat, "exp": p.Claims.Exp,
	}})
	if err != nil {
		b.Fatal(err)
	}
	h := MapHeaders{"authorization": "Bearer " + tok, ":path": "/", ":method": "GET"}
	ctx := context.Background()
	if d := c.CheckVerified(ctx, md, h); !d.Allowed() || d.Claims.KeyID != "k-ES256" {
		b.Fatal(d.Reason, d.Err, d.Claims.KeyID)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if d := c.CheckVerified(ctx, md, h); !d.Allowed() {
			b.Fatal(d.Reason)
		}
	}
}
