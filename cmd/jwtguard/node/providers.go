package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jwtguard/jwtguard/sync/admin"
	"github.com/jwtguard/jwtguard/sync/idp"
)

// ProvidersPrefix is where the HTTP listener serves identity-provider
// events: ProvidersPrefix + <name> + "/backchannel-logout" and
// "/ssf/push".
const ProvidersPrefix = "/idp/"

// fileProvider is one entry of the file's "providers" list.
type fileProvider struct {
	Name            string   `json:"name"`
	Issuer          string   `json:"issuer"`
	TokenIssuer     string   `json:"token-issuer"`
	JWKSURL         string   `json:"jwks-url"`
	JWKSFile        string   `json:"jwks-file"`
	Algs            []string `json:"algs"`
	ClientID        string   `json:"client-id"`
	LogoutTypes     []string `json:"logout-types"`
	Audience        string   `json:"audience"`
	PushTokenFile   string   `json:"push-token-file"`
	PollURL         string   `json:"poll-url"`
	PollTokenFile   string   `json:"poll-token-file"`
	PollInterval    string   `json:"poll-interval"`
	PollMaxEvents   int      `json:"poll-max-events"`
	SubjectFormats  []string `json:"subject-formats"`
	ClaimsChange    string   `json:"claims-change"`
	MaxAge          string   `json:"max-age"`
	ReplayCacheSize int      `json:"replay-cache-size"`
}

// decodeProviders reads the file's "providers" list into provider configs,
// reading the token files it names.
func decodeProviders(val json.RawMessage) ([]idp.Config, error) {
	var fps []fileProvider
	dec := json.NewDecoder(strings.NewReader(string(val)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fps); err != nil {
		return nil, err
	}
	var out []idp.Config
	for i, fp := range fps {
		c := idp.DefaultConfig(fp.Name)
		c.Issuer, c.TokenIssuer, c.JWKSURL, c.JWKSFile = fp.Issuer, fp.TokenIssuer, fp.JWKSURL, fp.JWKSFile
		c.ClientID, c.Audience, c.PollURL = fp.ClientID, fp.Audience, fp.PollURL
		for _, s := range []struct {
			from []string
			dst  *[]string
		}{{fp.Algs, &c.Algs}, {fp.LogoutTypes, &c.LogoutTypes}, {fp.SubjectFormats, &c.SubjectFormats}} {
			if len(s.from) > 0 {
				*s.dst = s.from
			}
		}
		if fp.ClaimsChange != "" {
			c.ClaimsChange = fp.ClaimsChange
		}
		if fp.PollMaxEvents != 0 {
			c.PollMaxEvents = fp.PollMaxEvents
		}
		if fp.ReplayCacheSize != 0 {
			c.ReplayCacheSize = fp.ReplayCacheSize
		}
		for _, d := range []struct {
			raw, key string
			dst      *time.Duration
		}{{fp.PollInterval, "poll-interval", &c.PollInterval}, {fp.MaxAge, "max-age", &c.MaxAge}} {
			if d.raw == "" {
				continue
			}
			v, err := time.ParseDuration(d.raw)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %s: %w", i, d.key, err)
			}
			*d.dst = v
		}
		for _, f := range []struct {
			path, key string
			dst       *string
		}{{fp.PushTokenFile, "push-token-file", &c.PushToken}, {fp.PollTokenFile, "poll-token-file", &c.PollToken}} {
			if f.path == "" {
				continue
			}
			b, err := os.ReadFile(f.path)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %s: %w", i, f.key, err)
			}
			if *f.dst = strings.TrimSpace(string(b)); *f.dst == "" {
				return nil, fmt.Errorf("[%d]: %s %s: empty", i, f.key, f.path)
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// validateProviders checks every provider and that names are unique.
func validateProviders(ps []idp.Config) error {
	seen := map[string]bool{}
	for i := range ps {
		if err := ps[i].Validate(); err != nil {
			return fmt.Errorf("providers[%d]: %w", i, err)
		}
		if seen[ps[i].Name] {
			return fmt.Errorf("providers[%d]: name %q used twice", i, ps[i].Name)
		}
		seen[ps[i].Name] = true
	}
	return nil
}

// newProviders assembles the configured providers over the node's source
// and revocation state.
func (n *Node) newProviders() error {
	records := admin.Config{MaxTokenLifetime: n.cfg.Authz.MaxTokenLifetime, Leeway: n.cfg.Authz.Leeway, Audit: n.audit}
	for _, pc := range n.cfg.Providers {
		p, err := idp.New(pc, n.src, records, idp.WithRevocations(n.rev), idp.WithLogger(n.log))
		if err != nil {
			return err
		}
		n.providers = append(n.providers, p)
	}
	return nil
}

// handleProviders adds the providers' endpoints to mux.
func (n *Node) handleProviders(mux *http.ServeMux) {
	for _, p := range n.providers {
		prefix := ProvidersPrefix + p.Name() + "/"
		mux.Handle(prefix, p.Handler(prefix))
	}
}

// loadProviderKeys loads the providers' key sets once; a provider whose
// set fails refuses its events until Run loads it.
func (n *Node) loadProviderKeys(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, p := range n.providers {
		if err := p.LoadKeys(ctx); err != nil {
			n.log.Warn("identity provider key set not loaded yet; its events are refused until it is", "provider", p.Name(), "err", err)
		}
	}
}

// runProviders runs the providers (key set refresh, polls) until ctx ends.
func (n *Node) runProviders(ctx context.Context) {
	done := make(chan struct{})
	for _, p := range n.providers {
		go func() {
			p.Run(ctx)
			done <- struct{}{}
		}()
	}
	for range n.providers {
		<-done
	}
}
