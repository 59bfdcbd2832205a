package authz

import (
	"context"
	"math"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/jwtguard/jwtguard/authz/mint"
)

// Issuers of the revocation-only tests.
const (
	issIstio = "https://istio.test" // payload under its own name (Istio's layout), kid from the forwarded token
	issEnvoy = "https://envoy.test" // payload under jwt_payload, header under jwt_header; verifies itself without one
)

// payloadWorld is a checker with two revocation-only issuers and issuer A
// (verified by jwtguard), revocations in memory, a clock the test sets.
type payloadWorld struct {
	checker *Checker
	rev     *Revocations
	src     *memSource
	key     *mint.Key // signs the tokens of both revocation-only issuers (kid "a-ES256")
	now     int64
}

func newPayloadWorld(t *testing.T) *payloadWorld {
	t.Helper()
	keys := testKeys(t)
	w := &payloadWorld{src: newMemSource(), key: keys.byAlg["ES256"], now: time.Now().Unix()}
	jwks, err := mint.JWKS(w.key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := DefaultConfig()
	istio := DefaultIssuerConfig(issIstio)
	istio.RevocationOnly = true
	envoy := DefaultIssuerConfig(issEnvoy)
	envoy.RevocationOnly, envoy.PayloadKey, envoy.HeaderKey = true, "jwt_payload", "jwt_header"
	envoy.PayloadMissing, envoy.JWKSFile = PayloadMissingVerify, writeTestFile(t, dir, "envoy.jwks.json", jwks)
	a := DefaultIssuerConfig(issA)
	a.JWKSFile = writeTestFile(t, dir, "a.jwks.json", jwks)
	cfg.Issuers = []IssuerConfig{istio, envoy, a}
	cfg.ClaimHeaders = append(cfg.ClaimHeaders, ClaimHeader{Claim: "roles", Header: "x-jwt-roles"}, ClaimHeader{Claim: "n", Header: "x-jwt-n"})
	w.rev = newTestRevocations(t, w.src)
	w.checker, err = NewChecker(cfg, w.rev, WithClock(func() time.Time { return time.Unix(w.now, 0) }))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.checker.LoadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w
}

// claims are valid claims of iss, changed by mod.
func (w *payloadWorld) claims(iss string, mod func(map[string]any)) map[string]any {
	c := map[string]any{"iss": iss, "sub": "alice", "jti": "j-1", "sid": "s-1", "iat": w.now - 60, "exp": w.now + 600}
	if mod != nil {
		mod(c)
	}
	return c
}

// metadata is jwt_authn's namespace holding payload under key, and the
// JOSE header {"alg":"ES256","kid":kid} under "jwt_header" unless kid is "-".
func metadata(t *testing.T, key string, payload map[string]any, kid string) *structpb.Struct {
	t.Helper()
	m := map[string]any{key: payload}
	if kid != "-" {
		m["jwt_header"] = map[string]any{"alg": "ES256", "kid": kid}
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (w *payloadWorld) revoke(t *testing.T, recs ...Record) {
	t.Helper()
	for i := range recs {
		recs[i].ExpiresAt = time.Unix(w.now, 0).Add(48 * time.Hour)
		recs[i].Actor, recs[i].Reason = "test", "test"
		if err := recs[i].ValidateStored(); err != nil {
			t.Fatal(err)
		}
		w.src.store(recs[i])
	}
	w.rev.Enforce(recs...)
}

func TestCheckVerifiedAllows(t *testing.T) {
	w := newPayloadWorld(t)
	ctx := context.Background()
	c := w.claims(issEnvoy, func(c map[string]any) { c["roles"] = []any{"a", "b"}; c["n"] = 1700000000 })
	// A jti and the header in metadata: no token needed at all.
	d := w.checker.CheckVerified(ctx, metadata(t, "jwt_payload", c, "a-ES256"), http.Header{})
	if !d.Allowed() {
		t.Fatalf("got %s (%v), want ok", d.Reason, d.Err)
	}
	want := Claims{Issuer: issEnvoy, Subject: "alice", JTI: "j-1", TokenID: "j-1", Session: "s-1", KeyID: "a-ES256",
		Expiry: w.now + 600, IssuedAt: w.now - 60}
	want.Extra[0], want.Extra[1], want.Extra[2], want.Extra[3] = "alice", issEnvoy, `["a","b"]`, "1700000000"
	if d.Claims != want {
		t.Fatalf("claims %+v, want %+v", d.Claims, want)
	}
	// Istio's layout: the payload under the issuer, the token forwarded.
	tok := signClaims(t, w.key, w.claims(issIstio, nil))
	d = w.checker.CheckVerified(ctx, metadata(t, issIstio, w.claims(issIstio, nil), "-"), authorization(tok))
	if !d.Allowed() || d.Claims.KeyID != "a-ES256" {
		t.Fatalf("istio layout: got %s (%v) kid %q, want ok with kid a-ES256", d.Reason, d.Err, d.Claims.KeyID)
	}
}

// The identity of a token is the same in both modes: a record made by
// TokenRecord from the raw token revokes it through the payload.
func TestCheckVerifiedRevocations(t *testing.T) {
	w := newPayloadWorld(t)
	ctx := context.Background()
	noJTI := w.claims(issIstio, func(c map[string]any) { delete(c, "jti"); c["sub"] = "bob" })
	noJTIToken := signClaims(t, w.key, noJTI)
	withJTI := w.claims(issEnvoy, func(c map[string]any) { c["jti"] = "j-revoked"; c["sub"] = "carol"; c["sid"] = "s-2" })
	withJTIToken := signClaims(t, w.key, withJTI)
	for _, tok := range []string{noJTIToken, withJTIToken} {
		rec, err := TokenRecord(tok)
		if err != nil {
			t.Fatal(err)
		}
		w.revoke(t, rec)
	}
	cases := []struct {
		name string
		md   *structpb.Struct
		h    http.Header
		kind Kind
	}{
		{"no jti, hash of the forwarded token", metadata(t, issIstio, noJTI, "-"), authorization(noJTIToken), KindToken},
		{"jti, nothing forwarded", metadata(t, "jwt_payload", withJTI, "a-ES256"), http.Header{}, KindToken},
		{"jti, forwarded too", metadata(t, "jwt_payload", withJTI, "a-ES256"), authorization(withJTIToken), KindToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := w.checker.CheckVerified(ctx, tc.md, tc.h)
			if d.Reason != ReasonRevoked || d.RevokedBy != tc.kind {
				t.Fatalf("got %s/%s (%v), want revoked/%s", d.Reason, d.RevokedBy, d.Err, tc.kind)
			}
		})
	}
	// The same tokens verified by jwtguard itself get the same identity.
	if d := w.checker.Check(ctx, authorization(withJTIToken)); d.Reason != ReasonRevoked {
		t.Fatalf("verified by jwtguard: %s (%v), want revoked", d.Reason, d.Err)
	}

	// Key, subject and session records apply too.
	fresh := func(sub, sid, kid string) Decision {
		c := w.claims(issEnvoy, func(c map[string]any) { c["sub"], c["sid"], c["jti"] = sub, sid, "j-"+sub+sid+kid })
		return w.checker.CheckVerified(ctx, metadata(t, "jwt_payload", c, kid), http.Header{})
	}
	w.revoke(t, Record{Kind: KindKey, Value: "leaked"},
		Record{Kind: KindSubject, Value: "mallory", Before: time.Unix(w.now, 0)},
		Record{Kind: KindSession, Issuer: issEnvoy, Value: "s-bad"})
	for _, tc := range []struct {
		sub, sid, kid string
		want          Kind
	}{{"dave", "s-9", "leaked", KindKey}, {"mallory", "s-9", "a-ES256", KindSubject}, {"dave", "s-bad", "a-ES256", KindSession}, {"dave", "s-9", "a-ES256", ""}} {
		d := fresh(tc.sub, tc.sid, tc.kid)
		if d.RevokedBy != tc.want || (tc.want == "") != d.Allowed() {
			t.Errorf("sub %s sid %s kid %s: %s/%s, want revoked by %q", tc.sub, tc.sid, tc.kid, d.Reason, d.RevokedBy, tc.want)
		}
	}
	// A key revocation reaches a token whose kid comes from the forwarded token.
	kidTok := signClaims(t, w.key, w.claims(issIstio, nil))
	w.revoke(t, Record{Kind: KindKey, Value: "a-ES256"})
	if d := w.checker.CheckVerified(ctx, metadata(t, issIstio, w.claims(issIstio, nil), "-"), authorization(kidTok)); d.RevokedBy != KindKey {
		t.Fatalf("kid of the forwarded token: %s/%s, want revoked by key", d.Reason, d.RevokedBy)
	}
}

func TestCheckVerifiedDenies(t *testing.T) {
	w := newPayloadWorld(t)
	ctx := context.Background()
	other := signClaims(t, w.key, w.claims(issIstio, func(c map[string]any) { c["sub"] = "someone-else" }))
	envoyMD := func(mod func(map[string]any)) *structpb.Struct {
		return metadata(t, "jwt_payload", w.claims(issEnvoy, mod), "a-ES256")
	}
	two, err := structpb.NewStruct(map[string]any{"jwt_payload": w.claims(issEnvoy, nil), issIstio: w.claims(issIstio, nil)})
	if err != nil {
		t.Fatal(err)
	}
	notObject, err := structpb.NewStruct(map[string]any{"jwt_payload": "eyJ..."})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		md   *structpb.Struct
		h    http.Header
		want Reason
	}{
		{"expired", envoyMD(func(c map[string]any) { c["exp"] = w.now - 3600 }), nil, ReasonExpired},
		{"not yet valid", envoyMD(func(c map[string]any) { c["nbf"] = w.now + 3600 }), nil, ReasonNotYetValid},
		{"issued in the future", envoyMD(func(c map[string]any) { c["iat"] = w.now + 3600 }), nil, ReasonIssuedInFuture},
		{"lifetime too long", envoyMD(func(c map[string]any) { c["exp"] = w.now + 48*3600 }), nil, ReasonLifetimeTooLong},
		{"no issue time", envoyMD(func(c map[string]any) { delete(c, "iat") }), nil, ReasonLifetimeTooLong},
		{"exp missing", envoyMD(func(c map[string]any) { delete(c, "exp") }), nil, ReasonMalformed},
		{"exp a fraction", envoyMD(func(c map[string]any) { c["exp"] = float64(w.now) + 600.5 }), nil, ReasonMalformed},
		{"exp a string", envoyMD(func(c map[string]any) { c["exp"] = "2030-01-01" }), nil, ReasonMalformed},
		{"exp past 2^53", envoyMD(func(c map[string]any) { c["exp"] = float64(1 << 53) }), nil, ReasonMalformed},
		{"exp huge", envoyMD(func(c map[string]any) { c["exp"] = 1e300 }), nil, ReasonMalformed},
		{"exp infinite", envoyMD(func(c map[string]any) { c["exp"] = math.Inf(1) }), nil, ReasonMalformed},
		{"exp NaN", envoyMD(func(c map[string]any) { c["exp"] = math.NaN() }), nil, ReasonMalformed},
		{"iat negative", envoyMD(func(c map[string]any) { c["iat"] = -1 }), nil, ReasonMalformed},
		{"iss a number", envoyMD(func(c map[string]any) { c["iss"] = 1 }), nil, ReasonMalformed},
		{"jti an object", envoyMD(func(c map[string]any) { c["jti"] = map[string]any{} }), nil, ReasonMalformed},
		{"sub too long", envoyMD(func(c map[string]any) { c["sub"] = string(make([]byte, 9000)) }), nil, ReasonMalformed},
		{"aud empty list", envoyMD(func(c map[string]any) { c["aud"] = []any{} }), nil, ReasonMalformed},
		{"aud with a number", envoyMD(func(c map[string]any) { c["aud"] = []any{"x", 1} }), nil, ReasonMalformed},
		{"unknown issuer", envoyMD(func(c map[string]any) { c["iss"] = "https://nobody.test" }), nil, ReasonWrongIssuer},
		{"issuer jwtguard verifies, no token", metadata(t, "jwt_payload", w.claims(issA, nil), "a-ES256"), nil, ReasonMissingToken},
		{"issuer jwtguard verifies, token forged", metadata(t, "jwt_payload", w.claims(issA, nil), "a-ES256"), authorization(signClaims(t, testKeys(t).other, w.claims(issA, nil))), ReasonBadSignature},
		{"issuer jwtguard verifies, token good", metadata(t, "jwt_payload", w.claims(issA, nil), "a-ES256"), authorization(signClaims(t, w.key, w.claims(issA, nil))), ReasonOK},
		{"payload under another issuer's key", metadata(t, issIstio, w.claims(issEnvoy, nil), "a-ES256"), nil, ReasonWrongIssuer},
		{"two payloads", two, nil, ReasonMultipleTokens},
		{"payload not an object", notObject, nil, ReasonMalformed},
		{"no kid in the header", metadata(t, "jwt_payload", w.claims(issEnvoy, nil), ""), nil, ReasonUnknownKey},
		{"any kid string in the header", metadata(t, "jwt_payload", w.claims(issEnvoy, nil), "x"), nil, ReasonOK},
		{"no jti, nothing forwarded", metadata(t, issIstio, w.claims(issIstio, func(c map[string]any) { delete(c, "jti") }), "-"), nil, ReasonMissingToken},
		{"kid unknown, nothing forwarded", metadata(t, issIstio, w.claims(issIstio, nil), "-"), nil, ReasonMissingToken},
		{"forwarded token is another", metadata(t, issIstio, w.claims(issIstio, nil), "-"), authorization(other), ReasonMalformed},
		{"forwarded token is garbage", metadata(t, issIstio, w.claims(issIstio, nil), "-"), authorization("a.b.c"), ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := w.checker.CheckVerified(ctx, tc.md, tc.h)
			if d.Reason != tc.want {
				t.Fatalf("got %s (%v), want %s", d.Reason, d.Err, tc.want)
			}
		})
	}
	bad := metadata(t, "jwt_payload", w.claims(issEnvoy, nil), "-")
	bad.Fields["jwt_header"] = structpb.NewStringValue("not an object")
	if d := w.checker.CheckVerified(ctx, bad, nil); d.Reason != ReasonMalformed {
		t.Fatalf("header not an object: %s, want malformed", d.Reason)
	}
	bad.Fields["jwt_header"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"kid": structpb.NewNumberValue(7)}})
	if d := w.checker.CheckVerified(ctx, bad, nil); d.Reason != ReasonMalformed {
		t.Fatalf("kid a number: %s, want malformed", d.Reason)
	}
}

// Without a verified payload, a revocation-only issuer's token is denied
// or verified as its payload-missing says; forward-auth never has one.
func TestCheckVerifiedPayloadMissing(t *testing.T) {
	w := newPayloadWorld(t)
	ctx := context.Background()
	istioTok := signClaims(t, w.key, w.claims(issIstio, nil))
	envoyTok := signClaims(t, w.key, w.claims(issEnvoy, nil))
	empty := &structpb.Struct{}
	for _, md := range []*structpb.Struct{nil, empty} {
		if d := w.checker.CheckVerified(ctx, md, authorization(istioTok)); d.Reason != ReasonNotVerifiedByProxy {
			t.Errorf("payload-missing deny: %s (%v), want %s", d.Reason, d.Err, ReasonNotVerifiedByProxy)
		}
		if d := w.checker.CheckVerified(ctx, md, authorization(envoyTok)); !d.Allowed() {
			t.Errorf("payload-missing verify: %s (%v), want ok", d.Reason, d.Err)
		}
	}
	if d := w.checker.Check(ctx, authorization(istioTok)); d.Reason != ReasonNotVerifiedByProxy {
		t.Errorf("Check (forward-auth): %s, want %s", d.Reason, ReasonNotVerifiedByProxy)
	}
	w.rev.SetReady(false)
	if d := w.checker.CheckVerified(ctx, metadata(t, "jwt_payload", w.claims(issEnvoy, nil), "a-ES256"), nil); d.Reason != ReasonNotReady {
		t.Errorf("not ready: %s, want not_ready", d.Reason)
	}
}

func TestRevocationOnlyConfig(t *testing.T) {
	base := func(mod func(*IssuerConfig)) Config {
		cfg := DefaultConfig()
		ic := DefaultIssuerConfig("https://i.test")
		ic.RevocationOnly = true
		mod(&ic)
		cfg.Issuers = []IssuerConfig{ic}
		return cfg
	}
	cases := []struct {
		name string
		mod  func(*IssuerConfig)
		ok   bool
	}{
		{"no keys needed", func(*IssuerConfig) {}, true},
		{"verify needs keys", func(ic *IssuerConfig) { ic.PayloadMissing = PayloadMissingVerify }, false},
		{"bad payload-missing", func(ic *IssuerConfig) { ic.PayloadMissing = "allow" }, false},
		{"header key is the payload key", func(ic *IssuerConfig) { ic.HeaderKey = "https://i.test" }, false},
		{"settings without the mode", func(ic *IssuerConfig) { ic.RevocationOnly, ic.PayloadKey, ic.JWKSFile = false, "p", "x" }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base(tc.mod)
			if err := cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestCheckVerifiedAllocs pins the revocation-only path of a payload seen
// before (jti and header in metadata) at no allocation.
func TestCheckVerifiedAllocs(t *testing.T) {
	w := newPayloadWorld(t)
	ctx := context.Background()
	md := metadata(t, "jwt_payload", w.claims(issEnvoy, func(c map[string]any) { c["aud"] = "api" }), "a-ES256")
	h := MapHeaders{}
	if d := w.checker.CheckVerified(ctx, md, h); !d.Allowed() {
		t.Fatal(d.Reason, d.Err)
	}
	if n := testing.AllocsPerRun(100, func() { w.checker.CheckVerified(ctx, md, h) }); n != 0 {
		t.Errorf("%v allocs per check, want 0", n)
	}
}

// Issuers of the payload cache tests: both revocation-only, their payloads
// under one key, so a payload of either reaches the same cache.
const (
	issX = "https://x.test"
	issY = "https://y.test"
)

// newSharedKeyWorld is a checker with issX and issY, payloads under
// jwt_payload and headers under jwt_header, a claim header of "email".
func newSharedKeyWorld(t *testing.T) *payloadWorld {
	t.Helper()
	w := &payloadWorld{src: newMemSource(), now: time.Now().Unix()}
	cfg := DefaultConfig()
	for _, iss := range []string{issX, issY} {
		ic := DefaultIssuerConfig(iss)
		ic.RevocationOnly, ic.PayloadKey, ic.HeaderKey = true, "jwt_payload", "jwt_header"
		cfg.Issuers = append(cfg.Issuers, ic)
	}
	cfg.ClaimHeaders = append(cfg.ClaimHeaders, ClaimHeader{Claim: "email", Header: "x-jwt-email"})
	w.rev = newTestRevocations(t, w.src)
	var err error
	w.checker, err = NewChecker(cfg, w.rev, WithClock(func() time.Time { return time.Unix(w.now, 0) }))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestPayloadCacheIdentity: a payload that differs from a cached one in
// any claim its decision or its claim headers depend on, the jti the same,
// never takes the cached one's entry. Each case first checks the cached
// payload (allowed), then a record that matches only the other one's claim
// must deny it, with its own claims.
func TestPayloadCacheIdentity(t *testing.T) {
	base := func(w *payloadWorld) map[string]any {
		return map[string]any{"iss": issX, "sub": "alice", "jti": "j-1", "sid": "s-1", "email": "alice@x.test",
			"iat": w.now - 60, "exp": w.now + 600}
	}
	cases := []struct {
		name   string
		mod    func(w *payloadWorld, c map[string]any)
		kid    string
		record func(w *payloadWorld) Record
		kind   Kind
	}{
		{"other issuer", func(_ *payloadWorld, c map[string]any) { c["iss"] = issY }, "k-1",
			func(*payloadWorld) Record { return Record{Kind: KindToken, Issuer: issY, Value: "j-1"} }, KindToken},
		{"other subject", func(_ *payloadWorld, c map[string]any) { c["sub"] = "bob" }, "k-1",
			func(w *payloadWorld) Record {
				return Record{Kind: KindSubject, Value: "bob", Before: time.Unix(w.now, 0)}
			}, KindSubject},
		{"other session", func(_ *payloadWorld, c map[string]any) { c["sid"] = "s-bad" }, "k-1",
			func(*payloadWorld) Record { return Record{Kind: KindSession, Issuer: issX, Value: "s-bad"} }, KindSession},
		{"other key", func(*payloadWorld, map[string]any) {}, "k-bad",
			func(*payloadWorld) Record { return Record{Kind: KindKey, Value: "k-bad"} }, KindKey},
		{"issued earlier", func(w *payloadWorld, c map[string]any) { c["iat"] = w.now - 3600 }, "k-1",
			func(w *payloadWorld) Record {
				return Record{Kind: KindIssuerBefore, Issuer: issX, Before: time.Unix(w.now-1800, 0)}
			}, KindIssuerBefore},
		{"nbf instead of iat, earlier", func(w *payloadWorld, c map[string]any) { delete(c, "iat"); c["nbf"] = w.now - 3600 }, "k-1",
			func(w *payloadWorld) Record {
				return Record{Kind: KindIssuerBefore, Issuer: issX, Before: time.Unix(w.now-1800, 0)}
			}, KindIssuerBefore},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newSharedKeyWorld(t)
			ctx := context.Background()
			cached := base(w)
			if d := w.checker.CheckVerified(ctx, metadata(t, "jwt_payload", cached, "k-1"), nil); !d.Allowed() {
				t.Fatalf("cached payload: %s (%v), want ok", d.Reason, d.Err)
			}
			other := base(w)
			tc.mod(w, other)
			w.revoke(t, tc.record(w))
			d := w.checker.CheckVerified(ctx, metadata(t, "jwt_payload", other, tc.kid), nil)
			if d.Reason != ReasonRevoked || d.RevokedBy != tc.kind {
				t.Fatalf("other payload: %s/%s (%v), want revoked by %s", d.Reason, d.RevokedBy, d.Err, tc.kind)
			}
			if d.Claims.Issuer != other["iss"] || d.Claims.Subject != other["sub"] || d.Claims.Session != other["sid"] || d.Claims.KeyID != tc.kid {
				t.Fatalf("other payload: claims %+v, not its own", d.Claims)
			}
			if tc.kind != KindIssuerBefore && tc.kind != KindSubject && tc.kind != KindKey {
				// The cached payload is untouched by the record.
				if d := w.checker.CheckVerified(ctx, metadata(t, "jwt_payload", cached, "k-1"), nil); !d.Allowed() {
					t.Fatalf("cached payload after the record: %s, want ok", d.Reason)
				}
			}
		})
	}

	// Claims the decision does not read, but the upstream does: each
	// payload gets its own claim headers and expiry.
	w := newSharedKeyWorld(t)
	ctx := context.Background()
	for _, mod := range []func(map[string]any){
		nil,
		func(c map[string]any) { c["email"] = "mallory@x.test" },
		func(c map[string]any) { c["exp"] = w.now + 300 },
		func(c map[string]any) { delete(c, "email") },
	} {
		c := base(w)
		if mod != nil {
			mod(c)
		}
		d := w.checker.CheckVerified(ctx, metadata(t, "jwt_payload", c, "k-1"), nil)
		email, _ := c["email"].(string)
		if !d.Allowed() || d.Claims.Extra[2] != email || d.Claims.Expiry != c["exp"] {
			t.Fatalf("payload %v: %s, email %q exp %d", c, d.Reason, d.Claims.Extra[2], d.Claims.Expiry)
		}
	}
}

// TestPayloadCacheDecidesEveryTime: a cached payload is judged again on
// every request: a revocation after it was cached denies it, and so does
// its expiry, the lifetime bound and the clock.
func TestPayloadCacheDecidesEveryTime(t *testing.T) {
	w := newSharedKeyWorld(t)
	ctx := context.Background()
	c := map[string]any{"iss": issX, "sub": "alice", "jti": "j-1", "sid": "s-1", "iat": w.now - 60, "exp": w.now + 600}
	md := metadata(t, "jwt_payload", c, "k-1")
	for range 2 { // the second from the cache
		if d := w.checker.CheckVerified(ctx, md, nil); !d.Allowed() {
			t.Fatalf("before: %s (%v), want ok", d.Reason, d.Err)
		}
	}
	if n := w.checker.payloadCache.len(); n != 1 {
		t.Fatalf("%d cached payloads, want 1", n)
	}
	start := w.now
	w.now = start + 600 + 31 // past exp and the 30 s leeway
	if d := w.checker.CheckVerified(ctx, md, nil); d.Reason != ReasonExpired {
		t.Fatalf("after exp: %s, want expired", d.Reason)
	}
	w.now = start
	w.revoke(t, Record{Kind: KindToken, Issuer: issX, Value: "j-1"})
	if d := w.checker.CheckVerified(ctx, md, nil); d.Reason != ReasonRevoked || d.RevokedBy != KindToken {
		t.Fatalf("after revoke: %s/%s, want revoked by token", d.Reason, d.RevokedBy)
	}
	// Another payload of the same identity but too long a life: the bound
	// is judged before the cache.
	long := metadata(t, "jwt_payload", map[string]any{"iss": issX, "sub": "alice", "jti": "j-1", "sid": "s-1",
		"iat": w.now - 60, "exp": w.now + 48*3600}, "k-1")
	if d := w.checker.CheckVerified(ctx, long, nil); d.Reason != ReasonLifetimeTooLong {
		t.Fatalf("long-lived: %s, want lifetime_too_long", d.Reason)
	}
}

// TestPayloadCacheCollision: two payloads whose hashes collide share a
// slot, never an entry: every field is compared on a hit.
func TestPayloadCacheCollision(t *testing.T) {
	c := newTokenCache(64)
	a := Claims{Issuer: issX, Subject: "alice", JTI: "j-1", TokenID: "j-1", Session: "s-1", KeyID: "k-1", Expiry: 2000, IssuedAt: 1000}
	a.Extra[0] = "alice"
	var v verified
	fill(&v, a)
	const h = 42 // any two payloads under one hash
	c.putClaims(h, &v, nil)
	for _, mod := range []func(*Claims){
		func(b *Claims) { b.Issuer = issY },
		func(b *Claims) { b.Subject = "bob" },
		func(b *Claims) { b.JTI = "j-2" },
		func(b *Claims) { b.TokenID = "sha256:00" },
		func(b *Claims) { b.Session = "s-2" },
		func(b *Claims) { b.KeyID = "k-2" },
		func(b *Claims) { b.Expiry++ },
		func(b *Claims) { b.IssuedAt-- },
		func(b *Claims) { b.Extra[0] = "bob" },
		func(b *Claims) { b.Subject, b.JTI = "alicej", "-1" }, // the same bytes, split elsewhere
	} {
		b := a
		mod(&b)
		if _, ok := c.getClaims(h, &b, 1); ok {
			t.Errorf("claims %+v found the entry of %+v", b, a)
		}
	}
	if keys, ok := c.getClaims(h, &a, 1); !ok || keys != v.keys {
		t.Fatalf("the same claims: found %v, keys %v, want %v", ok, keys, v.keys)
	}
}

// TestForwardedTokenCache: in Istio's layout the kid (and, without jti,
// the identity) come from the forwarded token, parsed once and then taken
// from the cache by the token itself. A cached forwarded token still has
// to carry the payload's very claims, is still revoked by its own key and
// identity, lends nothing to another token, and never lets jwtguard's own
// verification skip a signature.
func TestForwardedTokenCache(t *testing.T) {
	w := newPayloadWorld(t)
	ctx := context.Background()
	noJTI := w.claims(issIstio, func(c map[string]any) { delete(c, "jti") })
	tok := signClaims(t, w.key, noJTI)
	md := metadata(t, issIstio, noJTI, "-")
	for range 2 { // the second from the cache
		if d := w.checker.CheckVerified(ctx, md, authorization(tok)); !d.Allowed() || d.Claims.KeyID != "a-ES256" {
			t.Fatalf("forwarded: %s (%v) kid %q, want ok with kid a-ES256", d.Reason, d.Err, d.Claims.KeyID)
		}
	}
	// The same cached token with another payload: not the one verified.
	for _, mod := range []func(map[string]any){
		func(c map[string]any) { c["sub"] = "mallory" },
		func(c map[string]any) { c["jti"] = "j-other" },
		func(c map[string]any) { c["exp"] = w.now + 300 },
		func(c map[string]any) { c["nbf"] = w.now - 60 },
		func(c map[string]any) { delete(c, "iat"); c["nbf"] = w.now - 60 },
	} {
		c := w.claims(issIstio, func(c map[string]any) { delete(c, "jti") })
		mod(c)
		if d := w.checker.CheckVerified(ctx, metadata(t, issIstio, c, "-"), authorization(tok)); d.Reason != ReasonMalformed {
			t.Errorf("payload %v with the cached token: %s, want malformed", c, d.Reason)
		}
	}
	// Another token of the same claims, another kid: its own kid.
	leaked, err := mint.NewKey("ES256", "leaked")
	if err != nil {
		t.Fatal(err)
	}
	other := signClaims(t, leaked, noJTI)
	w.revoke(t, Record{Kind: KindKey, Value: "leaked"})
	if d := w.checker.CheckVerified(ctx, md, authorization(other)); d.Reason != ReasonRevoked || d.RevokedBy != KindKey {
		t.Fatalf("token of the revoked key, same claims: %s/%s, want revoked by key", d.Reason, d.RevokedBy)
	}
	// Revoked after it was cached, by its signing-input hash.
	rec, err := TokenRecord(tok)
	if err != nil {
		t.Fatal(err)
	}
	w.revoke(t, rec)
	if d := w.checker.CheckVerified(ctx, md, authorization(tok)); d.Reason != ReasonRevoked || d.RevokedBy != KindToken {
		t.Fatalf("after its revocation: %s/%s, want revoked by token", d.Reason, d.RevokedBy)
	}

	// A forged token forwarded beside a verified payload (issEnvoy, no
	// jti: its identity comes from the token) is cached as parsed, never
	// as verified: jwtguard's own check of it still fails its signature.
	envoyNoJTI := w.claims(issEnvoy, func(c map[string]any) { delete(c, "jti") })
	forged := signClaims(t, testKeys(t).other, envoyNoJTI)
	for range 2 {
		if d := w.checker.CheckVerified(ctx, metadata(t, "jwt_payload", envoyNoJTI, "a-ES256"), authorization(forged)); !d.Allowed() {
			t.Fatalf("verified payload, forged token forwarded: %s (%v), want ok (the payload is what is trusted)", d.Reason, d.Err)
		}
	}
	if d := w.checker.Check(ctx, authorization(forged)); d.Reason != ReasonBadSignature {
		t.Fatalf("the forged token verified by jwtguard: %s, want bad_signature", d.Reason)
	}
}

// TestForwardedTokenAllocs pins Istio's layout, a forwarded token seen
// before, at no allocation.
func TestForwardedTokenAllocs(t *testing.T) {
	w := newPayloadWorld(t)
	ctx := context.Background()
	c := w.claims(issIstio, nil)
	tok := signClaims(t, w.key, c)
	md, h := metadata(t, issIstio, c, "-"), MapHeaders{"authorization": "Bearer " + tok}
	if d := w.checker.CheckVerified(ctx, md, h); !d.Allowed() {
		t.Fatal(d.Reason, d.Err)
	}
	if n := testing.AllocsPerRun(100, func() { w.checker.CheckVerified(ctx, md, h) }); n != 0 {
		t.Errorf("%v allocs per check, want 0", n)
	}
}
