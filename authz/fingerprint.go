package authz

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"slices"
)

// KeySetFingerprints returns, per issuer, a short fingerprint of the keys
// its key set holds now (kid, alg and key material of each; the configured
// HMAC secret is left out), "" before its first load. Nodes whose
// fingerprints for an issuer differ verify its tokens with different keys.
func (c *Checker) KeySetFingerprints() map[string]string {
	out := make(map[string]string, len(c.issuers))
	for name, is := range c.issuers {
		m := is.keys.keys.Load()
		if m == nil {
			out[name] = ""
			continue
		}
		thumbs := make([][]byte, len(m.all))
		for i, k := range m.all {
			thumbs[i] = k.thumb[:]
		}
		slices.SortFunc(thumbs, bytes.Compare)
		h := sha256.New()
		for _, t := range thumbs {
			h.Write(t)
		}
		out[name] = hex.EncodeToString(h.Sum(nil)[:8])
	}
	return out
}
