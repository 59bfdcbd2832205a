package authz

import (
	"strconv"
	"strings"
	"testing"

	"github.com/jwtguard/jwtguard/bloom"
)

// TestLookupKeyRendering: the rendering of a lookup key (a store's index
// key, the input of the filter key, so part of the snapshot format) is
// kind NUL len(issuer) NUL issuer NUL value, whichever way it is made,
// for keys short and long, with any bytes in them.
func TestLookupKeyRendering(t *testing.T) {
	for _, k := range []LookupKey{
		{Kind: KindToken, Issuer: "https://idp", Value: "jti-1"},
		{Kind: KindSubject, Value: "alice"},
		{Kind: KindIssuerBefore, Issuer: "https://idp"},
		{},
		{Kind: KindSession, Issuer: "a\x00b", Value: "\x00\xff é"},
		{Kind: KindToken, Issuer: strings.Repeat("i", 300), Value: strings.Repeat("v", 1024)},
	} {
		want := string(k.Kind) + "\x00" + strconv.Itoa(len(k.Issuer)) + "\x00" + k.Issuer + "\x00" + k.Value
		if got := k.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
		if got := string(k.AppendString([]byte("prefix"))); got != "prefix"+want {
			t.Errorf("AppendString = %q, want prefix%q", got, want)
		}
		if got, w := k.FilterKey(), bloom.KeyOfString(want); got != w {
			t.Errorf("FilterKey() = %v, want %v", got, w)
		}
	}
	k := LookupKey{Kind: KindToken, Issuer: "https://idp", Value: "3990cba4903f307e679086dc690db35a"}
	if n := testing.AllocsPerRun(100, func() { k.FilterKey() }); n != 0 {
		t.Errorf("FilterKey allocates %.0f times, want 0", n)
	}
}
