package authz

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"
)

// FuzzCheck feeds arbitrary tokens to a real checker trusting an ES256 and
// an EdDSA key. It must never panic, and whatever it allows must carry a
// signature that the standard library verifies with one of those keys.
func FuzzCheck(f *testing.F) {
	c, ks := benchChecker(f, nil, "ES256", "EdDSA")
	for _, k := range ks {
		tok := benchToken(f, k, "seed")
		f.Add(tok)
		f.Add(tok[:len(tok)-2])
		f.Add(strings.Replace(tok, ".", "..", 1))
	}
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJleHAiOjF9.")
	ctx := context.Background()
	es := ks["ES256"].Public().(*ecdsa.PublicKey)
	ed := ks["EdDSA"].Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, tok string) {
		d := c.CheckToken(ctx, tok)
		if !d.Allowed() {
			return
		}
		dot := strings.LastIndexByte(tok, '.')
		sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
		if err != nil {
			t.Fatalf("allowed a token whose signature does not decode: %q", tok)
		}
		input := []byte(tok[:dot])
		h := sha256.Sum256(input)
		okES := len(sig) == 64 && ecdsa.Verify(es, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
		okEd := ed25519.Verify(ed, input, sig)
		if !okES && !okEd {
			t.Fatalf("allowed a token not validly signed: %q", tok)
		}
	})
}
