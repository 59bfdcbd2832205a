package redis

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

// batchSeeds are payloads as encodeBatch writes them.
func batchSeeds(t testing.TB) []string {
	t.Helper()
	created := time.Date(2029, 1, 1, 0, 0, 0, 123, time.FixedZone("X", 3600))
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	recs := [][]authz.Record{
		{{ID: "a", Kind: authz.KindToken, Issuer: "https://idp", Value: "1", Reason: "leak", Actor: "ops", CreatedAt: created, ExpiresAt: exp}},
		{{ID: "a", Kind: authz.KindToken, Issuer: "https://idp", Value: "1", ExpiresAt: exp.Add(time.Nanosecond)},
			{ID: "b", Kind: authz.KindToken, Issuer: "https://idp", Value: "2", ExpiresAt: exp.Add(-time.Hour)}},
		{{ID: "c", Kind: authz.KindIssuerBefore, Issuer: "https://idp", Before: created, ExpiresAt: exp}},
		{{ID: "d", Kind: authz.KindClamp, Issuer: "https://idp", MaxAgeSeconds: 60, ExpiresAt: exp}},
		{{ID: "e", Kind: authz.KindSubject, Value: "é \"q\"", ExpiresAt: exp}},
		{{ID: "f", Kind: authz.KindToken, Value: "1", ExpiresAt: exp}, {ID: "g", Kind: authz.KindSubject, Value: "2", ExpiresAt: exp}},
	}
	var out []string
	for _, r := range recs {
		data, err := encodeBatch(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(data))
	}
	return out
}

// sameAsJSON fails when parseBatch takes data and encoding/json does not,
// or reads it otherwise.
func sameAsJSON(t *testing.T, data string) bool {
	t.Helper()
	got, ok := parseBatch(data)
	if !ok {
		return false
	}
	var want batchEntry
	if err := json.Unmarshal([]byte(data), &want); err != nil {
		t.Fatalf("parseBatch took %s, encoding/json refuses it: %v", data, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseBatch(%s) = %+v, encoding/json reads %+v", data, got, want)
	}
	return true
}

// TestParseBatchTakesWhatEncodeBatchWrites: the payloads of single-kind
// Puts decode without encoding/json, to the same entry; those with
// outliers (stored whole) are left to it.
func TestParseBatchTakesWhatEncodeBatchWrites(t *testing.T) {
	for i, data := range batchSeeds(t) {
		outliers := strings.Contains(data, `"o":`)
		escaped := strings.ContainsAny(data, "\\é")
		if took := sameAsJSON(t, data); took == (outliers || escaped) {
			t.Errorf("seed %d: parseBatch took %v: %s", i, took, data)
		}
	}
}

// TestParseBatchLeavesTheRestToJSON: whatever differs from encodeBatch's
// form (spaces, escapes, other key spellings or orders, repeated keys,
// nulls, numbers in other notations, trailing bytes) is not taken by the
// fast path, so encoding/json decides it.
func TestParseBatchLeavesTheRestToJSON(t *testing.T) {
	good := `{"v":1,"c":{"kind":"token","issuer":"i","created_at":"2029-01-01T00:00:00Z"},"i":["a","b"],"k":["1","2"],"u":1000000000,"x":[1900000000,1900000001]}`
	if !sameAsJSON(t, good) {
		t.Fatalf("the good payload is not taken: %s", good)
	}
	edits := map[string][2]string{
		"space after a colon":      {`"v":1`, `"v": 1`},
		"trailing space":           {`]}`, `]} `},
		"trailing bytes":           {`]}`, `]}x`},
		"escaped value":            {`"1"`, `"\u0031"`},
		"non-ASCII value":          {`"1"`, `"é"`},
		"invalid UTF-8":            {`"1"`, "\"\xff\""},
		"control character":        {`"1"`, "\"\t\""},
		"key in capitals":          {`"kind"`, `"KIND"`},
		"unknown key":              {`"issuer"`, `"issuerx"`},
		"keys out of order":        {`"kind":"token","issuer":"i"`, `"issuer":"i","kind":"token"`},
		"key twice":                {`"kind":"token"`, `"kind":"token","kind":"subject"`},
		"null value":               {`"issuer":"i"`, `"issuer":null`},
		"null list":                {`"k":["1","2"]`, `"k":null`},
		"leading zero":             {`"v":1`, `"v":01`},
		"exponent":                 {`"u":1000000000`, `"u":1e9`},
		"fraction":                 {`"u":1000000000`, `"u":1000000000.0`},
		"number too large":         {`1900000001]`, `99999999999999999999]`},
		"quoted number":            {`"v":1`, `"v":"1"`},
		"bad time":                 {`2029-01-01T00:00:00Z`, `2029-13-01T00:00:00Z`},
		"top-level key unknown":    {`"u":`, `"w":`},
		"outliers":                 {`]}`, `],"o":[]}`},
		"unterminated string":      {`"1","2"]`, `"1","2]`},
		"trailing comma in a list": {`"1","2"]`, `"1","2",]`},
	}
	for name, e := range edits {
		t.Run(name, func(t *testing.T) {
			data := strings.Replace(good, e[0], e[1], 1)
			if data == good {
				t.Fatalf("edit %q does not apply", e[0])
			}
			if sameAsJSON(t, data) {
				t.Errorf("parseBatch took %s", data)
			}
		})
	}
}

// FuzzParseBatch: parseBatch never takes a payload that encoding/json
// refuses or reads otherwise.
func FuzzParseBatch(f *testing.F) {
	for _, s := range batchSeeds(f) {
		f.Add(s)
	}
	f.Add(`{"v":1,"c":{},"i":[],"k":[],"x":[]}`)
	f.Fuzz(func(t *testing.T, data string) { sameAsJSON(t, data) })
}
