package authz

import (
	"context"
	"slices"
	"testing"
)

// FuzzEventClaims signs any payload as a logout token of the fixture's
// provider: Verify never panics, and what it accepts has the claims a
// logout or SET handler relies on. Seeds are in testdata/fuzz.
func FuzzEventClaims(f *testing.F) {
	fx := newEventFixture(f, nil)
	header := []byte(`{"alg":"ES256","kid":"idp-1","typ":"logout+jwt"}`)
	f.Fuzz(func(t *testing.T, payload string) {
		tok, err := fx.key.SignRaw(header, []byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		et, reason, err := fx.v.Verify(context.Background(), tok)
		if reason != ReasonOK {
			if err == nil {
				t.Fatalf("reason %s without an error", reason)
			}
			return
		}
		switch {
		case et.Issuer != evIss || !slices.Contains(et.Audience, evAud):
			t.Fatalf("accepted iss %q aud %v", et.Issuer, et.Audience)
		case et.ID == "" || len(et.ID) > 256:
			t.Fatalf("accepted jti %q", et.ID)
		case et.Events == nil || len(et.Events) > maxEvents:
			t.Fatalf("accepted events %v", et.Events)
		case et.IssuedAt > fx.now+30 || et.AcceptedUntil <= fx.now:
			t.Fatalf("accepted iat %d, until %d, at %d", et.IssuedAt, et.AcceptedUntil, fx.now)
		}
	})
}
