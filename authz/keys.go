package authz

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Algorithms jwtguard verifies. HMAC is accepted only with a secret file
// configured for the issuer, never from a key set.
var (
	// AsymmetricAlgorithms is the default allowlist.
	AsymmetricAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}
	// HMACAlgorithms need IssuerConfig.HMACSecretFile.
	HMACAlgorithms = []string{"HS256", "HS384", "HS512"}
)

const (
	minRSABits       = 2048
	minHMACSecretLen = 32
	// maxKidlessCandidates bounds the signature verifications one token
	// without "kid" may cost: it is tried against each key of its issuer
	// that fits its algorithm, as Envoy's jwt_authn does, and denied
	// unknown_key when more keys than this fit.
	maxKidlessCandidates = 4
	// defaultFetchTimeout bounds an unknown-kid refetch when the HTTP
	// client sets no timeout of its own.
	defaultFetchTimeout = 10 * time.Second
)

// verifiers holds one jwx verifier per supported algorithm; they are
// stateless and safe for concurrent use.
var verifiers = func() map[string]jws.Verifier {
	m := make(map[string]jws.Verifier)
	for _, alg := range append(append([]string{"ES512"}, AsymmetricAlgorithms...), HMACAlgorithms...) {
		v, err := jws.NewVerifier(jwa.SignatureAlgorithm(alg))
		if err != nil {
			panic(fmt.Sprintf("jwx has no verifier for %s: %v", alg, err))
		}
		m[alg] = v
	}
	return m
}()

// keyGeneration counts the changes of every issuer's key set in the
// process. A cached token records the generation it was verified under; a
// hit under a later generation checks that its key is still in the set
// (keyMap.holds) before it is served.
var keyGeneration atomic.Uint64

// keySerial numbers the distinct keys the process has seen.
var keySerial atomic.Uint64

// verificationKey is one usable key of an issuer.
type verificationKey struct {
	kid string
	alg string // the key's own "alg", empty when it does not say
	raw any    // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte (HMAC)
	// id is the key's number in the process: the same kid, alg and key
	// material keep their id across refreshes, anything else gets a new one.
	id    uint64
	thumb [sha256.Size]byte // of kid, alg and key material; how a refresh recognises the key
	// firstSeen is when this process first loaded the key.
	firstSeen time.Time
}

// keyRef names the key that verified a token, for the verified-token
// cache: a hit must still be what a fresh check would decide.
type keyRef struct {
	gen   uint64 // keyGeneration when the token was verified
	id    uint64 // verificationKey.id
	named bool   // the token named its key by kid
}

// fits reports whether the key may verify a token signed with alg: its type
// must match the algorithm's family (no algorithm confusion), and its own
// alg, when it names one, must be alg exactly.
func (k *verificationKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch raw := k.raw.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return raw.Curve == elliptic.P256()
		case "ES384":
			return raw.Curve == elliptic.P384()
		case "ES512":
			return raw.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	case []byte:
		return strings.HasPrefix(alg, "HS")
	}
	return false
}

// keyMap is an immutable view of an issuer's keys, swapped whole.
type keyMap struct {
	byKID map[string]*verificationKey
	all   []*verificationKey
	hmac  *verificationKey // the issuer's configured secret, if any
}

// find returns the key a token names by kid (or, for HMAC, the configured
// secret when the token names no kid or its hmac-kid).
func (m *keyMap) find(kid, alg string) (*verificationKey, bool) {
	if m == nil {
		return nil, false
	}
	if strings.HasPrefix(alg, "HS") {
		// Only the configured secret verifies HMAC, and only under its own
		// kid: a token naming another kid names a key that does not exist.
		h := m.hmac
		return h, h != nil && (kid == "" || kid == h.kid)
	}
	k, ok := m.byKID[kid]
	return k, ok && kid != "" && k.fits(alg)
}

// fitting puts in buf the keys that fit alg, for a token without kid, and
// returns how many fit (which may exceed len(buf)).
func (m *keyMap) fitting(alg string, buf []*verificationKey) int {
	if m == nil {
		return 0
	}
	n := 0
	for _, k := range m.all {
		if k.fits(alg) {
			if n < len(buf) {
				buf[n] = k
			}
			n++
		}
	}
	return n
}

// holds reports whether a fresh check of a token that ref verified (kid
// being the KeyID of its claims) would find the same key in m. It never
// allocates; when it says no, the token is verified afresh.
func (m *keyMap) holds(ref keyRef, kid string) bool {
	if m == nil {
		return false
	}
	if h := m.hmac; h != nil && h.id == ref.id {
		return !ref.named || kid == h.kid
	}
	if ref.named {
		k, ok := m.byKID[kid]
		return ok && k.id == ref.id
	}
	if len(m.all) > maxKidlessCandidates {
		return false // re-verify: the key may no longer be among the candidates tried
	}
	for _, k := range m.all {
		if k.id == ref.id {
			return true
		}
	}
	return false
}

// keySet holds the keys of one issuer and keeps them fresh: it reloads them
// periodically, keeps the last good set when a reload fails, and refetches
// at most once per minRefetch when a token names an unknown kid.
type keySet struct {
	issuer       string
	load         func(ctx context.Context) (jwk.Set, error) // nil for HMAC-only issuers
	hmac         *verificationKey
	refresh      time.Duration
	minRefetch   time.Duration
	fetchTimeout time.Duration
	log          *slog.Logger
	onChange     func(KeySetChange) // nil: nobody listens
	now          func() time.Time   // the clock of key ages and refresh times

	keys        atomic.Pointer[keyMap]
	lastAttempt atomic.Int64 // unix nanoseconds of the last fetch attempt
	fetchMu     sync.Mutex   // one fetch at a time
	refetchMu   sync.Mutex   // starting or joining an unknown-kid refetch
	pending     atomic.Pointer[refetchCall]
	// gone are the keys that left the set recently, for the key-rotation
	// watch: a token still naming one is counted (see KeySetInfo).
	gone   atomic.Pointer[goneKeys]
	health refreshHealth
}

// refetchCall is an unknown-kid refetch in flight; done closes when it ends.
type refetchCall struct{ done chan struct{} }

func newKeySet(ic *IssuerConfig, client *http.Client, log *slog.Logger) (*keySet, error) {
	ks := &keySet{
		issuer:       ic.Issuer,
		refresh:      ic.JWKSRefresh,
		minRefetch:   ic.JWKSMinRefetch,
		fetchTimeout: client.Timeout,
		log:          log.With("issuer", ic.Issuer),
		now:          time.Now,
	}
	if ks.fetchTimeout <= 0 {
		ks.fetchTimeout = defaultFetchTimeout
	}
	switch {
	case ic.Discovery:
		d := &discovery{issuer: ic.Issuer, client: client}
		ks.load = func(ctx context.Context) (jwk.Set, error) {
			url, err := d.jwksURL(ctx)
			if err != nil {
				return nil, err
			}
			return jwk.Fetch(ctx, url, jwk.WithHTTPClient(client))
		}
	case ic.JWKSURL != "":
		url := ic.JWKSURL
		ks.load = func(ctx context.Context) (jwk.Set, error) {
			return jwk.Fetch(ctx, url, jwk.WithHTTPClient(client))
		}
	case ic.JWKSFile != "":
		path := ic.JWKSFile
		ks.load = func(context.Context) (jwk.Set, error) {
			return jwk.ReadFile(path)
		}
	}
	if ic.HMACSecretFile != "" {
		secret, err := os.ReadFile(ic.HMACSecretFile)
		if err != nil {
			return nil, fmt.Errorf("issuer %s: read HMAC secret: %w", ic.Issuer, err)
		}
		secret = []byte(strings.TrimRight(string(secret), "\r\n"))
		if len(secret) < minHMACSecretLen {
			return nil, fmt.Errorf("issuer %s: HMAC secret %s is %d bytes, want at least %d", ic.Issuer, ic.HMACSecretFile, len(secret), minHMACSecretLen)
		}
		ks.hmac = &verificationKey{kid: ic.HMACKeyID, raw: secret, id: keySerial.Add(1)}
	}
	if ks.load == nil {
		ks.install(nil)
	}
	return ks, nil
}

// fetch loads the key set now and installs it; on failure the last good
// keys stay in place.
func (ks *keySet) fetch(ctx context.Context) error {
	if ks.load == nil {
		return nil
	}
	ks.fetchMu.Lock()
	defer ks.fetchMu.Unlock()
	ks.lastAttempt.Store(time.Now().UnixNano())
	set, err := ks.load(ctx)
	if err != nil {
		err = fmt.Errorf("issuer %s: load key set: %w", ks.issuer, err)
		ks.health.failed(ks.now(), err)
		return err
	}
	ks.install(set)
	ks.health.succeeded(ks.now())
	return nil
}

// install converts set into verification keys, dropping (with a log line)
// every key jwtguard must not use: symmetric keys, keys for encryption,
// short RSA keys, off-curve EC keys, weak Ed25519 keys, unsupported types.
// A key already known keeps its id; when the keys differ from the last set
// in any way, keyGeneration moves on so cached tokens are checked against
// the new set. Calls are serialised by fetchMu (or happen before any fetch).
func (ks *keySet) install(set jwk.Set) {
	prev := ks.keys.Load()
	known := map[[sha256.Size]byte]*verificationKey{}
	if prev != nil {
		for _, k := range prev.all {
			known[k.thumb] = k
		}
	}
	now := ks.now()
	m := &keyMap{byKID: make(map[string]*verificationKey), hmac: ks.hmac}
	if set != nil {
		for i := 0; i < set.Len(); i++ {
			key, _ := set.Key(i)
			vk, err := toVerificationKey(key)
			if err != nil {
				ks.log.Warn("key set entry ignored", "kid", truncate(key.KeyID()), "err", err)
				continue
			}
			if old, ok := known[vk.thumb]; ok {
				vk.id, vk.firstSeen = old.id, old.firstSeen
			} else {
				vk.id, vk.firstSeen = keySerial.Add(1), now
			}
			m.all = append(m.all, vk)
			if vk.kid != "" {
				m.byKID[vk.kid] = vk
			}
		}
	}
	changed := prev == nil || len(prev.all) != len(m.all)
	for i := 0; !changed && i < len(m.all); i++ {
		changed = prev.all[i].id != m.all[i].id
	}
	ks.keys.Store(m)
	if changed {
		keyGeneration.Add(1) // after the store: a check that saw the old generation re-checks
		if ks.onChange != nil {
			ks.notify(prev, m)
		}
		ks.noteGone(prev, m, now)
	}
}

// notify tells onChange which keys a reload added and removed.
func (ks *keySet) notify(prev, m *keyMap) {
	ch := KeySetChange{Issuer: ks.issuer, Initial: prev == nil}
	had := map[[sha256.Size]byte]bool{}
	if prev != nil {
		for _, k := range prev.all {
			had[k.thumb] = true
		}
	}
	has := map[[sha256.Size]byte]bool{}
	for _, k := range m.all {
		has[k.thumb] = true
		if !had[k.thumb] {
			ch.Added = append(ch.Added, k.name())
		}
	}
	if prev != nil {
		for _, k := range prev.all {
			if !has[k.thumb] {
				ch.Removed = append(ch.Removed, k.name())
			}
		}
	}
	if len(ch.Added)+len(ch.Removed) > 0 {
		ks.onChange(ch)
	}
}

// name names a key for people: its kid, else its alg.
func (k *verificationKey) name() string {
	if k.kid != "" {
		return truncate(k.kid)
	}
	return "alg:" + k.alg
}

func toVerificationKey(key jwk.Key) (*verificationKey, error) {
	if use := key.KeyUsage(); use != "" && use != "sig" {
		return nil, fmt.Errorf("key use is %q, not sig", use)
	}
	vk := &verificationKey{kid: key.KeyID()}
	if alg := key.Algorithm(); alg != nil {
		vk.alg = alg.String()
	}
	if key.KeyType() == jwa.OctetSeq {
		return nil, errors.New("symmetric keys are never taken from a key set")
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	var raw any
	if err := pub.Raw(&raw); err != nil {
		return nil, fmt.Errorf("raw key: %w", err)
	}
	switch r := raw.(type) {
	case *rsa.PublicKey:
		if r.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits, want at least %d", r.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if _, err := r.Bytes(); err != nil { // rejects a point off its curve
			return nil, fmt.Errorf("EC key: %w", err)
		}
	case ed25519.PublicKey:
		if err := checkEd25519(r); err != nil {
			return nil, fmt.Errorf("Ed25519 key: %w", err)
		}
	default:
		return nil, fmt.Errorf("unsupported key type %T", raw)
	}
	der, err := x509.MarshalPKIXPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	vk.raw = raw
	vk.thumb = thumbprint(vk.kid, vk.alg, der)
	return vk, nil
}

// thumbprint identifies a key by its kid, its alg and its material.
func thumbprint(kid, alg string, material []byte) [sha256.Size]byte {
	h := sha256.New()
	for _, part := range [][]byte{[]byte(kid), []byte(alg), material} {
		_ = binary.Write(h, binary.BigEndian, uint32(len(part)))
		h.Write(part)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// smallOrderEd25519 are the y coordinates (little-endian, sign bit clear)
// of the eight points of small order on Ed25519: with such a public key a
// signature R = small-order point, S = 0 verifies for any message.
var smallOrderEd25519 = [...][32]byte{
	{0x00}, // y = 0: order 4
	{0x01}, // y = 1: the identity
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // y = p-1: order 2
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
		0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05}, // order 8
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
		0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a}, // order 8
}

// checkEd25519 refuses public keys no honest signer has: the points of
// small order (either sign of x) and non-canonical encodings (y >= p,
// which include the small-order points y = p and y = p+1).
func checkEd25519(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	var y [32]byte
	copy(y[:], pub)
	y[31] &= 0x7f
	// p = 2^255 - 19 is ed ff .. ff 7f little-endian; y >= p only when
	// bytes 1..31 are those of p and byte 0 is at least 0xed.
	if y[0] >= 0xed && y[31] == 0x7f && bytes.Count(y[1:31], []byte{0xff}) == 30 {
		return errors.New("non-canonical point encoding")
	}
	for _, bad := range smallOrderEd25519 {
		if y == bad {
			return errors.New("point of small order")
		}
	}
	return nil
}

// verify checks sig over input with the key of the token's kid and alg and
// returns a reference to the key that verified it. A token without kid is
// tried against every key that fits alg, at most maxKidlessCandidates.
func (ks *keySet) verify(ctx context.Context, kid, alg string, input, sig []byte) (keyRef, *verificationKey, Reason, error) {
	ref := keyRef{gen: keyGeneration.Load(), named: kid != ""} // read before the keys (see install)
	verifier := verifiers[alg]
	if kid != "" || strings.HasPrefix(alg, "HS") {
		key, ok := ks.lookup(ctx, kid, alg)
		if !ok {
			return ks.verifyRetired(ref, kid, alg, input, sig)
		}
		if err := verifier.Verify(input, sig, key.raw); err != nil {
			return ref, nil, ReasonBadSignature, fmt.Errorf("signature (alg %s, kid %q): %w", alg, truncate(key.kid), err)
		}
		ref.id = key.id
		return ref, key, ReasonOK, nil
	}
	var buf [maxKidlessCandidates]*verificationKey
	n := ks.keys.Load().fitting(alg, buf[:])
	switch {
	case n == 0:
		return ref, nil, ReasonUnknownKey, fmt.Errorf("token has no kid and no key of issuer %s fits alg %s", ks.issuer, alg)
	case n > len(buf):
		return ref, nil, ReasonUnknownKey, fmt.Errorf("token has no kid and %d keys of issuer %s fit alg %s; at most %d are tried without a kid", n, ks.issuer, alg, len(buf))
	}
	for _, key := range buf[:n] {
		if verifier.Verify(input, sig, key.raw) == nil {
			ref.id = key.id
			return ref, key, ReasonOK, nil
		}
	}
	return ref, nil, ReasonBadSignature, fmt.Errorf("signature (alg %s, no kid): none of the %d keys of issuer %s that fit verifies it", alg, n, ks.issuer)
}

// verifyRetired decides a token naming kid, which the set does not hold:
// when kid is a key that left the set and the signature verifies against
// it, ReasonRetiredKey with that key (the token is denied, but its claims
// are its issuer's, so the detectors may act on them); when it does not
// verify, ReasonBadSignature; otherwise ReasonUnknownKey.
func (ks *keySet) verifyRetired(ref keyRef, kid, alg string, input, sig []byte) (keyRef, *verificationKey, Reason, error) {
	var old *verificationKey
	if g := ks.gone.Load(); g != nil && kid != "" {
		old = g.use(kid)
	}
	if old == nil || !old.fits(alg) {
		return ref, nil, ReasonUnknownKey, fmt.Errorf("no key of issuer %s for kid %q and alg %s", ks.issuer, truncate(kid), alg)
	}
	if err := verifiers[alg].Verify(input, sig, old.raw); err != nil {
		return ref, nil, ReasonBadSignature, fmt.Errorf("signature (alg %s, kid %q, a key that left the set): %w", alg, truncate(kid), err)
	}
	ref.id = old.id
	return ref, old, ReasonRetiredKey, fmt.Errorf("signed by key %q, which left the key set of issuer %s", truncate(kid), ks.issuer)
}

// lookup returns the key a token names by kid. When the kid is unknown it
// refetches the key set, at most once per minRefetch across all callers,
// and waits for that fetch no longer than ctx allows.
func (ks *keySet) lookup(ctx context.Context, kid, alg string) (*verificationKey, bool) {
	if k, ok := ks.keys.Load().find(kid, alg); ok {
		return k, true
	}
	if ks.load == nil || kid == "" {
		return nil, false
	}
	done := ks.refetch()
	if done == nil {
		return nil, false
	}
	select {
	case <-done:
	case <-ctx.Done():
		return nil, false // the fetch goes on and serves the next request
	}
	return ks.keys.Load().find(kid, alg)
}

// refetch starts a fetch of the key set for an unknown kid, or joins the
// one in flight, and returns a channel closed when that fetch ends; nil
// when the last attempt is more recent than minRefetch. The fetch runs on
// a context of its own (fetchTimeout), not the request's: a short request
// deadline must not cancel it, so the key arrives for the next request.
func (ks *keySet) refetch() <-chan struct{} {
	recent := func() bool { return time.Since(time.Unix(0, ks.lastAttempt.Load())) < ks.minRefetch }
	if ks.pending.Load() == nil && recent() { // before the lock, so a flood of unknown kids does not queue
		return nil
	}
	ks.refetchMu.Lock()
	defer ks.refetchMu.Unlock()
	if call := ks.pending.Load(); call != nil {
		return call.done
	}
	if recent() {
		return nil
	}
	call := &refetchCall{done: make(chan struct{})}
	ks.pending.Store(call)
	ks.lastAttempt.Store(time.Now().UnixNano())
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), ks.fetchTimeout)
		defer cancel()
		if err := ks.fetch(ctx); err != nil {
			ks.log.Warn("refetch for unknown kid failed; keeping last good keys", "err", err)
		}
		ks.pending.Store(nil)
		close(call.done)
	}()
	return call.done
}

// ready reports whether a key set has been loaded at least once.
func (ks *keySet) ready() bool { return ks.keys.Load() != nil }

// run refreshes the key set every ks.refresh until ctx ends; before the
// first success it retries every second.
func (ks *keySet) run(ctx context.Context) {
	if ks.load == nil {
		return
	}
	for {
		wait := ks.refresh
		if err := ks.fetch(ctx); err != nil {
			ks.log.Warn("key set refresh failed; keeping last good keys", "err", err)
			if !ks.ready() {
				wait = time.Second
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// keyCurrent serves a cached token verified under an older key generation:
// when the key that verified tok is still in its issuer's set, as a fresh
// check would find it, the entry is renewed to the current generation;
// otherwise the entry is dropped and the token must be verified afresh
// (which denies it unknown_key when its key has left the set).
func (c *Checker) keyCurrent(tok string, v *verified) bool {
	gen := keyGeneration.Load() // before the keys, as in keySet.verify
	if is, ok := c.issuers[v.claims.Issuer]; ok && is.keys.keys.Load().holds(v.key, v.claims.KeyID) {
		c.cache.renew(tok, v.key.gen, gen)
		return true
	}
	c.cache.drop(tok, v.key.gen)
	return false
}
