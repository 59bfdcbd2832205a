package authz

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
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

// verificationKey is one usable key of an issuer.
type verificationKey struct {
	kid string
	alg string // the key's own "alg", empty when it does not say
	raw any    // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte (HMAC)
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

// find returns the key for kid and alg. A token without kid is accepted
// only when exactly one key fits its algorithm.
func (m *keyMap) find(kid, alg string) (*verificationKey, bool) {
	if m == nil {
		return nil, false
	}
	if strings.HasPrefix(alg, "HS") {
		// Only the configured secret verifies HMAC, whatever the kid says.
		return m.hmac, m.hmac != nil
	}
	if kid != "" {
		k, ok := m.byKID[kid]
		return k, ok && k.fits(alg)
	}
	var found *verificationKey
	for _, k := range m.all {
		if k.fits(alg) {
			if found != nil {
				return nil, false
			}
			found = k
		}
	}
	return found, found != nil
}

// keySet holds the keys of one issuer and keeps them fresh: it reloads them
// periodically, keeps the last good set when a reload fails, and refetches
// at most once per minRefetch when a token names an unknown kid.
type keySet struct {
	issuer     string
	load       func(ctx context.Context) (jwk.Set, error) // nil for HMAC-only issuers
	hmacSecret []byte
	refresh    time.Duration
	minRefetch time.Duration
	log        *slog.Logger

	keys        atomic.Pointer[keyMap]
	lastAttempt atomic.Int64 // unix nanoseconds of the last fetch attempt
	fetchMu     sync.Mutex   // one fetch at a time
}

func newKeySet(ic *IssuerConfig, client *http.Client, log *slog.Logger) (*keySet, error) {
	ks := &keySet{
		issuer:     ic.Issuer,
		refresh:    ic.JWKSRefresh,
		minRefetch: ic.JWKSMinRefetch,
		log:        log.With("issuer", ic.Issuer),
	}
	switch {
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
		ks.hmacSecret = secret
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
	return ks.fetchLocked(ctx)
}

// fetchLocked is fetch with fetchMu held.
func (ks *keySet) fetchLocked(ctx context.Context) error {
	ks.lastAttempt.Store(time.Now().UnixNano())
	set, err := ks.load(ctx)
	if err != nil {
		return fmt.Errorf("issuer %s: load key set: %w", ks.issuer, err)
	}
	ks.install(set)
	return nil
}

// install converts set into verification keys, dropping (with a log line)
// every key jwtguard must not use: symmetric keys, keys for encryption,
// short RSA keys, unsupported types.
func (ks *keySet) install(set jwk.Set) {
	m := &keyMap{byKID: make(map[string]*verificationKey)}
	if set != nil {
		for i := 0; i < set.Len(); i++ {
			key, _ := set.Key(i)
			vk, err := toVerificationKey(key)
			if err != nil {
				ks.log.Warn("key set entry ignored", "kid", key.KeyID(), "err", err)
				continue
			}
			m.all = append(m.all, vk)
			if vk.kid != "" {
				m.byKID[vk.kid] = vk
			}
		}
	}
	if ks.hmacSecret != nil {
		m.hmac = &verificationKey{raw: ks.hmacSecret}
	}
	ks.keys.Store(m)
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
	default:
		return nil, fmt.Errorf("unsupported key type %T", raw)
	}
	vk.raw = raw
	return vk, nil
}

// lookup returns the key for a token's kid and alg. When the kid is unknown
// it refetches the key set, at most once per minRefetch across all callers.
func (ks *keySet) lookup(ctx context.Context, kid, alg string) (*verificationKey, bool) {
	if k, ok := ks.keys.Load().find(kid, alg); ok {
		return k, true
	}
	if ks.load == nil || kid == "" {
		return nil, false
	}
	recent := func() bool { return time.Since(time.Unix(0, ks.lastAttempt.Load())) < ks.minRefetch }
	if recent() { // checked before the lock, so a flood of unknown kids does not queue
		return nil, false
	}
	ks.fetchMu.Lock()
	defer ks.fetchMu.Unlock()
	// A fetch that held the lock meanwhile may have brought the key.
	if k, ok := ks.keys.Load().find(kid, alg); ok || recent() {
		return k, ok
	}
	if err := ks.fetchLocked(ctx); err != nil {
		ks.log.Warn("refetch for unknown kid failed; keeping last good keys", "kid", kid, "err", err)
	}
	return ks.keys.Load().find(kid, alg)
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
