package authz

import (
	"context"
	"reflect"
	"sync"
	"testing"
)

// TestKeySetChangeCallback: a reload that adds or removes keys is
// reported with the kids per issuer; one that changes nothing is not.
func TestKeySetChangeCallback(t *testing.T) {
	k1, k2, k3 := mustNewKey(t, "ES256", "k1"), mustNewKey(t, "ES256", "k2"), mustNewKey(t, "ES256", "k3")
	srv := newJWKSServer(t, k1, k2)
	var mu sync.Mutex
	var got []KeySetChange
	ic := DefaultIssuerConfig(benchIssuer)
	ic.JWKSURL, ic.Audiences = srv.URL, []string{"api"}
	c := issuerChecker(t, ic, WithKeySetChange(func(ch KeySetChange) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ch)
	}))
	load := func() {
		t.Helper()
		if err := c.LoadKeys(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	load() // the same keys again: no change
	srv.set(t, k2, k3)
	load()
	want := []KeySetChange{
		{Issuer: benchIssuer, Added: []string{"k1", "k2"}, Initial: true},
		{Issuer: benchIssuer, Added: []string{"k3"}, Removed: []string{"k1"}},
	}
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("changes %+v, want %+v", got, want)
	}
}
