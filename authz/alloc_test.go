package authz

import (
	"context"
	"testing"
	"time"
)

// The hot paths must not allocate: these pin their allocation counts so a
// change that adds one fails CI (the figures are in bench/README.md).
func TestHotPathAllocations(t *testing.T) {
	c, ks := benchChecker(t, nil, "ES256")
	tok := benchToken(t, ks["ES256"], "hot")
	h := MapHeaders{"authorization": "Bearer " + tok}
	ctx := context.Background()
	if d := c.Check(ctx, h); !d.Allowed() {
		t.Fatal(d.Reason, d.Err)
	}
	empty := MapHeaders{}
	var v verified
	if r, err := c.verify(ctx, tok, time.Now().Unix(), &v); r != ReasonOK {
		t.Fatal(r, err)
	}
	tests := []struct {
		name string
		want float64
		fn   func()
	}{
		{"Check of a cached token", 0, func() { c.Check(ctx, h) }},
		{"revocation check of a not revoked token", 0, func() { c.rev.check(ctx, &v, 0) }},
		{"missing token", 0, func() { c.Check(ctx, empty) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(1000, tc.fn); got != tc.want {
				t.Errorf("%v allocations per run, want %v", got, tc.want)
			}
		})
	}
}
