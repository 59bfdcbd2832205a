package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// maxDiscoveryBytes bounds an OpenID Provider configuration document.
const maxDiscoveryBytes = 256 << 10

// discoveryPath is where an issuer serves its configuration (OpenID
// Connect Discovery 1.0, section 4).
const discoveryPath = "/.well-known/openid-configuration"

// discovery finds an issuer's key set URL in its configuration document,
// once: the URL it found is kept, a failure is retried at the next load.
type discovery struct {
	issuer string
	client *http.Client

	mu      sync.Mutex
	jwksURI string
}

// jwksURL returns the issuer's jwks_uri, fetching the document the first
// time. The document must name the issuer exactly, and its jwks_uri must
// pass the rules of a configured jwks-url (https, or http to loopback).
func (d *discovery) jwksURL(ctx context.Context) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.jwksURI != "" {
		return d.jwksURI, nil
	}
	u := strings.TrimSuffix(d.issuer, "/") + discoveryPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("discovery: %s answered %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryBytes+1))
	if err != nil {
		return "", fmt.Errorf("discovery: read %s: %w", u, err)
	}
	if len(body) > maxDiscoveryBytes {
		return "", fmt.Errorf("discovery: %s is larger than %d bytes", u, maxDiscoveryBytes)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery: %s: %w", u, err)
	}
	switch {
	case doc.Issuer != d.issuer:
		// OpenID Connect Discovery 1.0 section 4.3: a document naming
		// another issuer must not be used.
		return "", fmt.Errorf("discovery: %s names issuer %q, want %q", u, truncate(doc.Issuer), d.issuer)
	case doc.JWKSURI == "":
		return "", fmt.Errorf("discovery: %s has no jwks_uri", u)
	}
	if err := checkJWKSURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery: %s: jwks_uri: %w", u, err)
	}
	d.jwksURI = doc.JWKSURI
	return d.jwksURI, nil
}

// errDiscoveryExclusive is the error of an issuer with discovery and
// another key source.
var errDiscoveryExclusive = errors.New("discovery, jwks-url and jwks-file are exclusive")
