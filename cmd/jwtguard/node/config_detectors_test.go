package node

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/envoy/detect"
)

const oneIssuer = "issuer: a\njwks-file: /j\n"

func TestConfigDetectors(t *testing.T) {
	c, err := loadFor(t, oneIssuer+`
detectors:
  dry-run: true
  max-revocations-per-minute: 3
  allow: {subjects: [svc], issuers: [https://internal], addresses: [10.0.0.0/8, 192.0.2.7]}
  token-addresses: {threshold: 20, window: 10m, policy: revoke-session, per: session}
  bad-signature: {policy: block, block-for: 1h}
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := c.Detectors
	ta, bs := d.Detectors[detect.TokenAddresses], d.Detectors[detect.BadSignature]
	switch {
	case !d.DryRun || d.MaxRevocationsPerMinute != 3 || d.QueueSize != detect.DefaultConfig().QueueSize:
		t.Errorf("globals %+v", d)
	case len(d.Allow.Addresses) != 2 || d.Allow.Addresses[1] != netip.MustParsePrefix("192.0.2.7/32") || d.Allow.Subjects[0] != "svc":
		t.Errorf("allowlist %+v", d.Allow)
	case ta.Threshold != 20 || ta.Window != 10*time.Minute || ta.Policy != detect.RevokeSession || ta.Per != detect.PerSession:
		t.Errorf("token-addresses %+v", ta)
	case bs.Threshold != detect.DefaultDetector(detect.BadSignature).Threshold || bs.Policy != detect.Block || bs.BlockFor != time.Hour:
		t.Errorf("bad-signature %+v: defaults not kept or file values not applied", bs)
	case len(d.Detectors) != 2:
		t.Errorf("%d detectors run, want the 2 listed", len(d.Detectors))
	}
	c, err = loadFor(t, oneIssuer, nil)
	if err != nil || len(c.Detectors.Detectors) != 0 {
		t.Fatalf("without a detectors section: %v, %d detectors", err, len(c.Detectors.Detectors))
	}
}

func TestConfigDetectorErrors(t *testing.T) {
	tests := []struct{ name, section, want string }{
		{"unknown detector", "token-adresses: {}", `unknown key "token-adresses"`},
		{"unknown field", "token-rate: {treshold: 3}", "treshold"},
		{"bad policy", "token-rate: {policy: ban}", `policy "ban"`},
		{"revoke on forgeries", "bad-signature: {policy: revoke-token}", "want observe or block"},
		{"zero window", "token-rate: {window: 0s}", "window 0s"},
		{"bad duration", "token-rate: {window: soon}", "window"},
		{"too many distinct", "token-addresses: {threshold: 5000}", "at most 1000"},
		{"bad per", "token-rate: {per: user}", `per "user"`},
		{"bad address", "allow: {addresses: [somewhere]}", `"somewhere"`},
		{"empty subject", `allow: {subjects: [""]}`, "empty subject"},
		{"queue", "queue-size: 0", "queue-size"},
		{"negative cap", "max-revocations-per-minute: -1", "max-revocations-per-minute"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadFor(t, oneIssuer+"detectors:\n  "+tc.section+"\n", nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "detectors") {
				t.Fatalf("err = %v, want it to name detectors and mention %q", err, tc.want)
			}
		})
	}
}
