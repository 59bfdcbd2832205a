// Package mint creates signing keys, their JWKS documents and signed JWTs:
// for `jwtguard serve --dev`, for tests, and for the load generator that
// must mint the tokens it sends. It never verifies anything; verification
// lives in authz.
package mint

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Key is a signing key with its algorithm and key id.
type Key struct {
	Alg    string
	KID    string
	signer jws.Signer
	priv   any // crypto.Signer, or []byte for HMAC
}

// NewKey generates a key for alg: RS*/PS* (RSA 2048), ES256/384/512,
// EdDSA (Ed25519), or HS* (a random 32-byte secret).
func NewKey(alg, kid string) (*Key, error) {
	var priv any
	var err error
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "HS256", "HS384", "HS512":
		secret := make([]byte, 32)
		_, err = rand.Read(secret)
		priv = secret
	default:
		return nil, fmt.Errorf("mint: unsupported alg %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("mint: generate %s key: %w", alg, err)
	}
	return FromPrivate(alg, kid, priv)
}

// FromPrivate wraps an existing private key (or HMAC secret).
func FromPrivate(alg, kid string, priv any) (*Key, error) {
	s, err := jws.NewSigner(jwa.SignatureAlgorithm(alg))
	if err != nil {
		return nil, fmt.Errorf("mint: signer for %s: %w", alg, err)
	}
	return &Key{Alg: alg, KID: kid, signer: s, priv: priv}, nil
}

// Secret returns the HMAC secret of an HS* key (nil otherwise).
func (k *Key) Secret() []byte {
	b, _ := k.priv.([]byte)
	return b
}

// Public returns the public key (nil for HMAC).
func (k *Key) Public() crypto.PublicKey {
	if s, ok := k.priv.(crypto.Signer); ok {
		return s.Public()
	}
	return nil
}

// PublicJWK returns the key's public JWK (with kid, alg and use "sig").
func (k *Key) PublicJWK() (jwk.Key, error) {
	pub := k.Public()
	if pub == nil {
		return nil, fmt.Errorf("mint: %s key has no public part", k.Alg)
	}
	jk, err := jwk.FromRaw(pub)
	if err != nil {
		return nil, fmt.Errorf("mint: public JWK: %w", err)
	}
	if err := setMeta(jk, k); err != nil {
		return nil, err
	}
	return jk, nil
}

func setMeta(jk jwk.Key, k *Key) error {
	for name, v := range map[string]any{jwk.KeyIDKey: k.KID, jwk.AlgorithmKey: k.Alg, jwk.KeyUsageKey: "sig"} {
		if name == jwk.KeyIDKey && k.KID == "" {
			continue
		}
		if err := jk.Set(name, v); err != nil {
			return fmt.Errorf("mint: set %s: %w", name, err)
		}
	}
	return nil
}

// JWKS returns the JSON key set of the public keys.
func JWKS(keys ...*Key) ([]byte, error) {
	set := jwk.NewSet()
	for _, k := range keys {
		jk, err := k.PublicJWK()
		if err != nil {
			return nil, err
		}
		if err := set.AddKey(jk); err != nil {
			return nil, fmt.Errorf("mint: key set: %w", err)
		}
	}
	return json.MarshalIndent(set, "", "  ")
}

// Sign returns a compact JWS of claims with header {"alg", "typ":"JWT",
// "kid"} (kid omitted when empty).
func (k *Key) Sign(claims any) (string, error) {
	return k.SignHeader(nil, claims)
}

// SignHeader is Sign with the members of header set in the JOSE header
// (a nil value removes one): another "typ", a "jku" no verifier must
// follow.
func (k *Key) SignHeader(header map[string]any, claims any) (string, error) {
	h := map[string]any{"alg": k.Alg, "typ": "JWT"}
	if k.KID != "" {
		h["kid"] = k.KID
	}
	for name, v := range header {
		if v == nil {
			delete(h, name)
		} else {
			h[name] = v
		}
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("mint: claims: %w", err)
	}
	return k.SignRaw(hb, payload)
}

// SignRaw signs the exact header and payload bytes given, so tests can
// build tokens no well-behaved issuer would.
func (k *Key) SignRaw(header, payload []byte) (string, error) {
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig, err := k.signer.Sign([]byte(input), k.priv)
	if err != nil {
		return "", fmt.Errorf("mint: sign: %w", err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// Save writes the private key as a JWK file readable only by its owner.
func (k *Key) Save(path string) error {
	jk, err := jwk.FromRaw(k.priv)
	if err != nil {
		return fmt.Errorf("mint: private JWK: %w", err)
	}
	if err := setMeta(jk, k); err != nil {
		return err
	}
	b, err := json.Marshal(jk)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("mint: save key: %w", err)
	}
	return nil
}

// Load reads a key written by Save.
func Load(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mint: load key: %w", err)
	}
	jk, err := jwk.ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("mint: parse key %s: %w", path, err)
	}
	var raw any
	if err := jk.Raw(&raw); err != nil {
		return nil, fmt.Errorf("mint: key %s: %w", path, err)
	}
	alg := ""
	if a := jk.Algorithm(); a != nil {
		alg = a.String()
	}
	return FromPrivate(alg, jk.KeyID(), raw)
}
