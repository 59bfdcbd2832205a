package loadgen

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/jwtguard/jwtguard/authz/mint"
)

// The token world of the load generator.
const (
	// Issuer signs every token of the mix except the issuer-before ones.
	Issuer = "https://loadgen.test"
	// OldIssuer signs the tokens revoked by the issuer-before record of
	// RevokedSet; a valid token of it cannot exist, which is why it is a
	// second issuer.
	OldIssuer = "https://loadgen-old.test"
	// MeshIssuer is revocation-only: its tokens (the verified category)
	// come with the payload and header jwt_authn verified, under
	// PayloadKey and HeaderKey.
	MeshIssuer = "https://loadgen-mesh.test"
	PayloadKey = "jwt_payload"
	HeaderKey  = "jwt_header"
	// Audience is the audience of every token.
	Audience = "loadgen"
	// Alg is the signing algorithm of every key.
	Alg = "ES256"
	// SigningKID is the key id of the signing key.
	SigningKID = "loadgen-1"
	// RevokedKID is the key id of the second signing key, revoked by
	// RevokedSet (a "leaked" key).
	RevokedKID = "loadgen-revoked"
)

// Files in the keys directory.
const (
	signingFile = "signing.jwk"
	revokedFile = "revoked.jwk"
	jwksFile    = "jwks.json"
)

// ErrNoKeys means the keys directory holds no key material yet.
var ErrNoKeys = errors.New("no load generator keys")

// Keys is the key material client and server share: both ES256 private
// keys (the client signs with them) and the JWKS of their public halves (the
// server verifies with it).
type Keys struct {
	Signing *mint.Key
	Revoked *mint.Key
	// JWKSFile is the path of the public key set.
	JWKSFile string
}

// CreateKeys makes new keys in dir (created when missing), replacing any
// there.
func CreateKeys(dir string) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keys dir: %w", err)
	}
	k := &Keys{JWKSFile: filepath.Join(dir, jwksFile)}
	var err error
	if k.Signing, err = mint.NewKey(Alg, SigningKID); err != nil {
		return nil, err
	}
	if k.Revoked, err = mint.NewKey(Alg, RevokedKID); err != nil {
		return nil, err
	}
	jwks, err := mint.JWKS(k.Signing, k.Revoked)
	if err != nil {
		return nil, err
	}
	if err := k.Signing.Save(filepath.Join(dir, signingFile)); err != nil {
		return nil, err
	}
	if err := k.Revoked.Save(filepath.Join(dir, revokedFile)); err != nil {
		return nil, err
	}
	if err := os.WriteFile(k.JWKSFile, jwks, 0o600); err != nil {
		return nil, fmt.Errorf("write JWKS: %w", err)
	}
	return k, nil
}

// LoadKeys reads the keys CreateKeys wrote in dir; ErrNoKeys when there
// are none.
func LoadKeys(dir string) (*Keys, error) {
	k := &Keys{JWKSFile: filepath.Join(dir, jwksFile)}
	var err error
	if k.Signing, err = mint.Load(filepath.Join(dir, signingFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w in %s (loadgen serve --keys %s creates them)", ErrNoKeys, dir, dir)
		}
		return nil, err
	}
	if k.Revoked, err = mint.Load(filepath.Join(dir, revokedFile)); err != nil {
		return nil, err
	}
	if _, err := os.Stat(k.JWKSFile); err != nil {
		return nil, fmt.Errorf("keys dir %s: %w", dir, err)
	}
	return k, nil
}

// OpenKeys loads the keys in dir, creating them when there are none.
func OpenKeys(dir string) (*Keys, error) {
	k, err := LoadKeys(dir)
	if errors.Is(err, ErrNoKeys) {
		return CreateKeys(dir)
	}
	return k, err
}
