package loadgen

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/authz/mint"
	"github.com/jwtguard/jwtguard/envoy"
)

// Expect is the decision a token must get.
type Expect struct {
	Reason authz.Reason
	// RevokedBy is the record kind of a revoked token ("" otherwise).
	RevokedBy authz.Kind
}

// Token is one token of the mix with the decision it must get.
type Token struct {
	Value    string
	Category Category
	Expect   Expect
	// req is the CheckRequest carrying Value, built once for tokens sent
	// many times; wire are encodings of it (see TokenSet.encode).
	req  *authv3.CheckRequest
	wire []encoded
}

// TokenOptions sizes a TokenSet.
type TokenOptions struct {
	// Repeated is how many distinct tokens the repeated category cycles
	// through.
	Repeated int
	// Fresh is how many fresh tokens are minted ahead of the run: each is
	// sent once, and the run ends when they run out.
	Fresh int
	// Warm is how many more fresh tokens are minted for the warm-up phase.
	Warm int
	// Forged is how many forged tokens are minted ahead of the run: each
	// is sent once, and the run ends when they run out.
	Forged int
	// Now is the minting time.
	Now time.Time
}

// TokenSet holds every token a run sends, minted before it starts so that
// signing never slows the generator down during the measured phase.
type TokenSet struct {
	Repeated []Token
	Revoked  []Token
	Invalid  []Token
	Fresh    []Token
	Warm     []Token
	Forged   []Token
	Verified []Token
	// VerifiedOnly are the Verified tokens' requests without the token.
	VerifiedOnly []Token

	next [7]atomic.Int64 // per category, indexes Categories
	// exhausted is set when a one-use pool (fresh, forged) runs out.
	exhausted atomic.Bool
}

// claims are the claims of every token the generator mints.
type claims struct {
	Iss string `json:"iss"`
	Aud string `json:"aud"`
	Sub string `json:"sub"`
	Sid string `json:"sid,omitempty"`
	Jti string `json:"jti"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
}

// signer signs claims with one key and a header encoded once.
type signer struct {
	key    *mint.Key
	header []byte
}

func newSigner(k *mint.Key) (signer, error) {
	h, err := json.Marshal(map[string]string{"alg": k.Alg, "typ": "JWT", "kid": k.KID})
	return signer{key: k, header: h}, err
}

func (s signer) sign(c claims) (string, error) {
	p, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return s.key.SignRaw(s.header, p)
}

// NewTokenSet mints the tokens of a run with keys. Fresh and warm-up
// tokens are minted on every CPU.
func NewTokenSet(keys *Keys, o TokenOptions) (*TokenSet, error) {
	if o.Repeated < 1 {
		o.Repeated = 64
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	good, err := newSigner(keys.Signing)
	if err != nil {
		return nil, err
	}
	leaked, err := newSigner(keys.Revoked)
	if err != nil {
		return nil, err
	}
	// An attacker's key claiming the signing key's kid.
	attackerKey, err := mint.NewKey(Alg, SigningKID)
	if err != nil {
		return nil, err
	}
	attacker, err := newSigner(attackerKey)
	if err != nil {
		return nil, err
	}
	run, err := runID()
	if err != nil {
		return nil, err
	}
	now := o.Now.Unix()
	valid := func(sub, sid, jti string) claims {
		return claims{Iss: Issuer, Aud: Audience, Sub: sub, Sid: sid, Jti: jti, Iat: now - 60, Exp: now + 3600}
	}
	back := int64(backdate / time.Second)

	ts := &TokenSet{}
	var errs []error
	add := func(dst *[]Token, cat Category, s signer, c claims, want Expect) {
		v, err := s.sign(c)
		if err != nil {
			errs = append(errs, err)
			return
		}
		*dst = append(*dst, newToken(v, cat, want))
	}
	allow := Expect{Reason: authz.ReasonOK}
	for i := range o.Repeated {
		add(&ts.Repeated, Repeated, good, valid(fmt.Sprintf("user-%d", i), fmt.Sprintf("session-%d", i), fmt.Sprintf("rep-%s-%d", run, i)), allow)
	}

	for i := range o.Repeated {
		c := valid(fmt.Sprintf("user-%d", i), fmt.Sprintf("session-%d", i), fmt.Sprintf("mesh-%s-%d", run, i))
		c.Iss = MeshIssuer
		v, err := good.sign(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t := newToken(v, Verified, allow)
		if t.req, err = verifiedRequest(v, c, keys.Signing.KID); err != nil {
			errs = append(errs, err)
			continue
		}
		ts.Verified = append(ts.Verified, t)
		only := newToken(v, VerifiedOnly, allow)
		if only.req, err = verifiedRequest(v, c, keys.Signing.KID); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(only.req.Attributes.Request.Http.Headers, "authorization")
		ts.VerifiedOnly = append(ts.VerifiedOnly, only)
	}

	// Revoked: every kind of RevokedSet in turn, so each is equally common.
	for i := range RevokedJTIs {
		sub, sid := fmt.Sprintf("user-%d", i), fmt.Sprintf("session-%d", i)
		add(&ts.Revoked, Revoked, good, valid(sub, sid, revokedJTI(i)), Expect{authz.ReasonRevoked, authz.KindToken})
		c := valid(RevokedSubject, sid, fmt.Sprintf("rsub-%s-%d", run, i))
		c.Iat = now - back
		add(&ts.Revoked, Revoked, good, c, Expect{authz.ReasonRevoked, authz.KindSubject})
		add(&ts.Revoked, Revoked, good, valid(sub, RevokedSession, fmt.Sprintf("rsid-%s-%d", run, i)), Expect{authz.ReasonRevoked, authz.KindSession})
		add(&ts.Revoked, Revoked, leaked, valid(sub, sid, fmt.Sprintf("rkid-%s-%d", run, i)), Expect{authz.ReasonRevoked, authz.KindKey})
		c = valid(sub, sid, fmt.Sprintf("riss-%s-%d", run, i))
		c.Iss, c.Iat = OldIssuer, now-back
		add(&ts.Revoked, Revoked, good, c, Expect{authz.ReasonRevoked, authz.KindIssuerBefore})
	}

	// Invalid: a bad signature, expired, garbage.
	for i := range 4 {
		add(&ts.Invalid, Invalid, attacker, valid("mallory", "", fmt.Sprintf("forged-%s-%d", run, i)), Expect{Reason: authz.ReasonBadSignature})
		c := valid("user-0", "session-0", fmt.Sprintf("old-%s-%d", run, i))
		c.Iat, c.Exp = now-7200, now-3600
		add(&ts.Invalid, Invalid, good, c, Expect{Reason: authz.ReasonExpired})
		ts.Invalid = append(ts.Invalid, newToken(fmt.Sprintf("garbage-%d", i), Invalid, Expect{Reason: authz.ReasonMalformed}))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("mint tokens: %w", errs[0])
	}

	fresh := func(prefix string, n int) ([]Token, error) {
		return mintParallel(n, func(i int) (Token, error) {
			c := valid(fmt.Sprintf("user-%d", i%1000), fmt.Sprintf("session-%d", i%1000), fmt.Sprintf("%s-%s-%d", prefix, run, i))
			v, err := good.sign(c)
			return Token{Value: v, Category: Fresh, Expect: allow}, err
		})
	}
	if ts.Fresh, err = fresh("fresh", o.Fresh); err != nil {
		return nil, err
	}
	if ts.Warm, err = fresh("warm", o.Warm); err != nil {
		return nil, err
	}
	if ts.Forged, err = mintForged(good, valid("mallory", "", ""), run, o.Forged); err != nil {
		return nil, err
	}
	if err := ts.encode(); err != nil {
		return nil, err
	}
	return ts, nil
}

// encodings is how many encodings of its request a token sent many times
// has: each encodes the request's maps in an order of its own.
const encodings = 4

// encode encodes the request of every token sent many times, ahead of the
// run, so that the load generator spends no CPU on it (clientCodec).
func (ts *TokenSet) encode() error {
	for _, set := range [][]Token{ts.Repeated, ts.Revoked, ts.Invalid, ts.Verified, ts.VerifiedOnly} {
		for i := range set {
			t := &set[i]
			if t.req == nil {
				continue
			}
			t.wire = make([]encoded, encodings)
			for j := range t.wire {
				b, err := proto.Marshal(t.req)
				if err != nil {
					return fmt.Errorf("encode request: %w", err)
				}
				t.wire[j] = b
			}
		}
	}
	return nil
}

// mintForged makes n distinct forged tokens: the signing key's header, a
// payload of valid claims (base, with a jti of its own) and a random
// signature of the right length, so that each one reaches the signature
// check and fails it. No signing: minting a million takes about a second.
func mintForged(s signer, base claims, run string, n int) ([]Token, error) {
	if n == 0 {
		return nil, nil
	}
	sigLen, err := signatureLen(s)
	if err != nil {
		return nil, err
	}
	head := base64.RawURLEncoding.EncodeToString(s.header) + "."
	want := Expect{Reason: authz.ReasonBadSignature}
	return mintParallel(n, func(i int) (Token, error) {
		c := base
		c.Jti = fmt.Sprintf("forged-%s-%d", run, i)
		p, err := json.Marshal(c)
		if err != nil {
			return Token{}, err
		}
		sig := make([]byte, sigLen)
		_, _ = rand.Read(sig) // never fails (crypto/rand)
		v := head + base64.RawURLEncoding.EncodeToString(p) + "." + base64.RawURLEncoding.EncodeToString(sig)
		return Token{Value: v, Category: Forged, Expect: want}, nil
	})
}

// signatureLen is the length of the signatures s makes, learnt from one.
func signatureLen(s signer) (int, error) {
	tok, err := s.sign(claims{Jti: "probe"})
	if err != nil {
		return 0, fmt.Errorf("probe signature: %w", err)
	}
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		return 0, fmt.Errorf("probe signature: %w", err)
	}
	return len(sig), nil
}

// mintParallel makes n tokens with mk on every CPU.
func mintParallel(n int, mk func(i int) (Token, error)) ([]Token, error) {
	out := make([]Token, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t, err := mk(i)
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("mint token %d: %w", i, err) })
					return
				}
				out[i] = t
			}
		})
	}
	wg.Wait()
	return out, firstErr
}

func runID() (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("run id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func newToken(v string, c Category, want Expect) Token {
	return Token{Value: v, Category: c, Expect: want, req: checkRequest(v)}
}

// pick returns the token of category c to send next; nil when c is a
// one-use category (fresh, forged) and its pool is used up.
func (ts *TokenSet) pick(c Category) *Token {
	var pool []Token
	var idx int
	switch c {
	case Repeated:
		pool, idx = ts.Repeated, 0
	case Fresh:
		pool, idx = ts.Fresh, 1
	case Revoked:
		pool, idx = ts.Revoked, 2
	case Forged:
		pool, idx = ts.Forged, 4
	case Verified:
		pool, idx = ts.Verified, 5
	case VerifiedOnly:
		pool, idx = ts.VerifiedOnly, 6
	default:
		pool, idx = ts.Invalid, 3
	}
	n := ts.next[idx].Add(1) - 1
	if c.oneUse() {
		if n >= int64(len(pool)) {
			ts.exhausted.Store(true)
			return nil
		}
		return &pool[n]
	}
	return &pool[n%int64(len(pool))]
}

// checkRequest is a CheckRequest shaped as Envoy's ext_authz filter sends
// it: lower-case header names with the HTTP/2 pseudo-headers.
func checkRequest(tok string) *authv3.CheckRequest { return checkRequestFrom(tok, ClientAddress) }

// ClientAddress is the source address of every request but the forged
// ones; FloodAddress is the one address all forged requests come from, as
// one attacker floods forgeries (a detector can block it).
const (
	ClientAddress = "10.0.0.7"
	FloodAddress  = "203.0.113.66"
)

// checkRequestFrom is checkRequest from source address src.
func checkRequestFrom(tok, src string) *authv3.CheckRequest {
	const host, path = "api.loadgen.test", "/v1/items?limit=10"
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: socketAddress(src, 51234)},
		Destination: &authv3.AttributeContext_Peer{Address: socketAddress("10.0.0.1", 443)},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "loadgen", Method: "GET", Path: path, Host: host, Scheme: "https", Protocol: "HTTP/2",
			Headers: map[string]string{
				":authority":        host,
				":path":             path,
				":method":           "GET",
				":scheme":           "https",
				"authorization":     "Bearer " + tok,
				"accept":            "application/json",
				"user-agent":        "loadgen",
				"x-forwarded-proto": "https",
				"x-request-id":      "00000000-0000-4000-8000-000000000000",
			},
		}},
	}}
}

// verifiedRequest is the CheckRequest of tok after Envoy's jwt_authn
// filter verified it: its payload c and JOSE header in the metadata of
// ext_authz's metadata_context_namespaces.
func verifiedRequest(tok string, c claims, kid string) (*authv3.CheckRequest, error) {
	ns, err := structpb.NewStruct(map[string]any{
		PayloadKey: map[string]any{"iss": c.Iss, "aud": c.Aud, "sub": c.Sub, "sid": c.Sid, "jti": c.Jti, "iat": c.Iat, "exp": c.Exp},
		HeaderKey:  map[string]any{"alg": Alg, "typ": "JWT", "kid": kid},
	})
	if err != nil {
		return nil, err
	}
	req := checkRequest(tok)
	req.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{envoy.JWTAuthnNamespace: ns}}
	return req, nil
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}
