package node

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/authz/mint"
)

// DevIssuer is the issuer of the tokens --dev mints.
const DevIssuer = "https://jwtguard.dev"

const (
	devAudience = "jwtguard-dev"
	devJWKSPath = "/dev/jwks.json"
)

// devSetup is the signing key and key set of --dev.
type devSetup struct {
	key  *mint.Key
	jwks []byte
	// adminTokenFile is --admin-token-file; adminTokenEnv says the admin
	// token came from JWTGUARD_ADMIN_TOKEN instead.
	adminTokenFile string
	adminTokenEnv  bool
}

// setupDev loads (or makes) the dev signing key under the data dir, writes
// its JWKS beside it and trusts it as the dev issuer.
func setupDev(cfg *Config) (*devSetup, error) {
	dir := filepath.Join(cfg.DataDir, "dev")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	keyPath := filepath.Join(dir, "signing-key.jwk")
	key, err := mint.Load(keyPath)
	if errors.Is(err, os.ErrNotExist) {
		if key, err = mint.NewKey("ES256", "dev-"+time.Now().UTC().Format("20060102")); err == nil {
			err = key.Save(keyPath)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dev signing key: %w", err)
	}
	jwks, err := mint.JWKS(key)
	if err != nil {
		return nil, err
	}
	jwksPath := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksPath, jwks, 0o600); err != nil {
		return nil, fmt.Errorf("dev: write JWKS: %w", err)
	}
	ic := authz.DefaultIssuerConfig(DevIssuer)
	ic.JWKSFile, ic.Audiences, ic.Algs = jwksPath, []string{devAudience}, []string{key.Alg}
	cfg.Authz.Issuers = append(cfg.Authz.Issuers, ic)
	if err := cfg.Authz.Validate(); err != nil {
		return nil, err
	}
	return &devSetup{key: key, jwks: jwks}, nil
}

// printHowTo prints a fresh token and the commands to try it.
func (d *devSetup) printHowTo(w io.Writer, grpcAddr, httpAddr, adminAddr net.Addr) {
	jti := make([]byte, 8)
	_, _ = rand.Read(jti)
	now := time.Now()
	tok, err := d.key.Sign(map[string]any{
		"iss": DevIssuer, "aud": devAudience, "sub": "dev-user", "jti": hex.EncodeToString(jti),
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	if err != nil {
		fmt.Fprintln(w, "dev: cannot mint a token:", err)
		return
	}
	g, h, a := loopback(grpcAddr), loopback(httpAddr), loopback(adminAddr)
	fmt.Fprintf(w, `
jwtguard --dev is ready. Issuer %s, audience %s, JWKS at http://%s%s

A token valid for one hour:

export TOKEN=%s

Check it over gRPC, as Envoy does:

grpcurl -plaintext -d '{"attributes":{"request":{"http":{"headers":{"authorization":"Bearer '"$TOKEN"'"}}}}}' %s envoy.service.auth.v3.Authorization/Check

Check it over HTTP forward-auth:

curl -i -H "Authorization: Bearer $TOKEN" http://%s/authz/

Revoke it, then check again (401, reason revoked):
%s
%s revoke --server http://%s%s --token "$TOKEN" --reason "trying jwtguard"

`, DevIssuer, devAudience, h, devJWKSPath, tok, g, h, d.adminTokenNote(), selfCommand(), a, d.adminTokenFlag())
}

// adminTokenFlag is the flag that gives revoke the admin token, when one
// is set from a file.
func (d *devSetup) adminTokenFlag() string {
	if d.adminTokenFile == "" {
		return ""
	}
	return " --admin-token-file " + shellQuote(d.adminTokenFile)
}

// adminTokenNote reminds that revoke reads the token from the same
// variable the server did.
func (d *devSetup) adminTokenNote() string {
	if !d.adminTokenEnv {
		return ""
	}
	return "(with JWTGUARD_ADMIN_TOKEN set in this shell too, as the server has it)\n"
}

// selfCommand is how to run this very binary from a shell: its path, or
// "go run ./cmd/jwtguard" when it is a temporary build of go run.
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil || strings.Contains(exe, "go-build") {
		return "go run ./cmd/jwtguard"
	}
	return shellQuote(exe)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// loopback turns a wildcard listen address into one a local client can dial.
func loopback(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		return fmt.Sprintf("127.0.0.1:%d", tcp.Port)
	}
	return tcp.String()
}
