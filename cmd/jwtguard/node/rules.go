package node

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

// fileIntrospection is an issuer's "introspection" object in the file.
type fileIntrospection struct {
	URL              string   `json:"url"`
	ClientID         string   `json:"client-id"`
	ClientSecretFile string   `json:"client-secret-file"`
	Scopes           []string `json:"scopes"`
	CacheTTL         string   `json:"cache-ttl"`
	CacheSize        int      `json:"cache-size"`
	Timeout          string   `json:"timeout"`
}

// config returns the introspection settings fi describes over the
// defaults.
func (fi *fileIntrospection) config() (*authz.IntrospectionConfig, error) {
	c := authz.DefaultIntrospectionConfig()
	c.URL, c.ClientID, c.ClientSecretFile, c.Scopes = fi.URL, fi.ClientID, fi.ClientSecretFile, fi.Scopes
	if fi.CacheSize != 0 {
		c.CacheSize = fi.CacheSize
	}
	for _, d := range []struct {
		raw string
		dst *time.Duration
		key string
	}{{fi.CacheTTL, &c.CacheTTL, "cache-ttl"}, {fi.Timeout, &c.Timeout, "timeout"}} {
		if d.raw == "" {
			continue
		}
		v, err := time.ParseDuration(d.raw)
		if err != nil {
			return nil, fmt.Errorf("introspection.%s: %w", d.key, err)
		}
		*d.dst = v
	}
	return &c, nil
}

// decodeRules reads the file's "rules" list; authz.Config.Validate checks
// it (and NewChecker compiles it) with the issuers.
func decodeRules(val json.RawMessage) ([]authz.Rule, error) {
	var rules []authz.Rule
	dec := json.NewDecoder(strings.NewReader(string(val)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rules); err != nil {
		return nil, err
	}
	return rules, nil
}
