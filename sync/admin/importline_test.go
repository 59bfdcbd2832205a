package admin

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/jwtguard/jwtguard/authz"
)

// importLineCases are lines whose decoding must not depend on the path
// taken: odd names, escapes, nesting, trailing data.
var importLineCases = []string{
	`{"kind":"token","issuer":"https://idp","value":"a"}`,
	`{"KIND":"token","Issuer":"https://idp","vAlUe":"a"}`,
	`{"kind":"token","issuer":"https://idp","value":"a","extra":1}`,
	`{"kind":"token","\u0069ssuer":"https://idp","value":"a"}`,
	`{"kind":"token","issuer":"https://idp","value":"a","\u0065xtra":1}`,
	`{"kind":"token","issuer":"https://idp","value":"a","ſ":1}`,
	`{"kind":"token","issuer":"https://idp","value":"a","aheadCopy":true}`,
	`{"kind":"token","issuer":"https://idp","value":"a\",\"extra\":\"1"}`,
	`{"kind":"token","issuer":"https://idp","value":{"extra":1}}`,
	`{"kind":"token","issuer":"https://idp","value":["a",{"extra":1}]}`,
	`{"kind":"token","value":"a","kind":"session"}`,
	`{"kind":"token","value":"a"} {"kind":"token"}`,
	`{"kind":"token","value":"a"}x`,
	`{"kind":"token","value":"a"`,
	`{"kind":"token","value":"a\\"}`,
	`{"position":7,"id":"x","lifts":"y","created_at":"2026-01-01T00:00:00Z"}`,
	`{"before":"yesterday"}`,
	`null`,
	`[]`,
	`"kind"`,
	`{}`,
	`{"":1}`,
	`{"kind" : "token" , "value" : "a"}`,
	// The plain form and its near misses.
	` {"kind":"token","issuer":"https://idp","value":"a"} `,
	"\t{\r\n\"kind\"\t:\n\"token\"\r}\n",
	"{\"kind\":\"token\",\"value\":\"a\u00a0\"}",
	"{\"kind\":\"token\",\"value\":\"a\x01\"}",
	"{\"kind\":\"token\",\"value\":\"a\x7f\"}",
	"{\"ki\x00nd\":\"token\"}",
	`{"kind":"token","issuer":"https://idp","value":"é✓😀�"}`,
	`{"kind":"token","value":"","issuer":"","reason":"","actor":"","id":"","lifts":""}`,
	`{"kind":"token","reason":"r","actor":"a","id":"x","lifts":"y","value":"v","issuer":"i"}`,
	`{"kind":"token","value":"a","value":"b","value":"c","value":"d","value":"e","value":"f","value":"g","value":"h"}`,
	`{"kind":"token","value":"a","value":"b","value":"c","value":"d","value":"e","value":"f","value":"g","value":"h","value":"i"}`,
	`{"kind":"token","kin":"a"}`,
	`{"kind":"token","kindx":"a"}`,
	`{"kind":"token","Kind":"session"}`,
	`{"kind":"token","value":"a",}`,
	`{,"kind":"token"}`,
	`{"kind""token"}`,
	`{"kind":"token" "value":"a"}`,
	`{"kind":"token"}}`,
	`{"kind":"token"},`,
	`{"kind":"token"`,
	`{"kind":`,
	`{"kind`,
	`{`,
	`{ }`,
	` `,
	``,
	`{"kind":token}`,
	`{"kind":null}`,
	`{"kind":1}`,
	`{"kind":"token","max_age_seconds":"1"}`,
	`{"kind":"token","before":"2026-01-01T00:00:00Z"}`,
	"{\"kind\":\"token\"}\f",
	"\v{\"kind\":\"token\"}",
	"{\"kind\":\"token\"}\x00",
	`{"kind":"clamp","issuer":"https://idp","value":"a"}`,
	`{"kind":"tokEn","issuer":"https://idp","value":"a"}`,
}

// TestDecodeImportLine: the fast path takes a line only as decodeStrict
// takes it.
func TestDecodeImportLine(t *testing.T) {
	for _, line := range importLineCases {
		t.Run(line, func(t *testing.T) { sameAsStrict(t, []byte(line)) })
	}
}

// TestDecodePlainLine: the plain form of a bulk file takes the fast path
// (and only with every name exact, every value a string without escapes).
func TestDecodePlainLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{`{"kind":"token","issuer":"https://idp","value":"a"}`, true},
		{` { "kind" : "token" , "reason" : "r" , "actor" : "a" } `, true},
		{`{}`, true},
		{`{"kind":"token","value":"a\"b"}`, false},
		{`{"Kind":"token"}`, false},
		{`{"kind":"token","before":"2026-01-01T00:00:00Z"}`, false},
		{`{"kind":"token","max_age_seconds":1}`, false},
		{`{"kind":"token"} x`, false},
	} {
		t.Run(tc.line, func(t *testing.T) {
			if _, ok := decodePlainLine([]byte(tc.line)); ok != tc.ok {
				t.Fatalf("plain path %v, want %v", ok, tc.ok)
			}
			sameAsStrict(t, []byte(tc.line))
		})
	}
}

// TestPlainFieldsAreRecordFields: every name the fast path fills is a
// field of authz.Record that it sets as encoding/json does.
func TestPlainFieldsAreRecordFields(t *testing.T) {
	for _, f := range plainFields {
		if !slices.Contains(recordFields, f) {
			t.Errorf("%s is not a field of authz.Record", f)
		}
		line := []byte(`{"` + f + `":"v"}`)
		var want authz.Record
		if err := json.Unmarshal(line, &want); err != nil {
			t.Fatal(err)
		}
		got, ok := decodePlainLine(line)
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v (plain path %v), want %+v", line, got, ok, want)
		}
	}
}

func BenchmarkDecodeRecordLine(b *testing.B) {
	line := []byte(`{"kind":"token","issuer":"https://jwtguard.dev","value":"3990cba4903f307e679086dc690db35a"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRecordLine(line); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzDecodeImportLine(f *testing.F) {
	for _, line := range importLineCases {
		f.Add([]byte(line))
	}
	f.Fuzz(sameAsStrict)
}

func sameAsStrict(t *testing.T, line []byte) {
	got, err := DecodeRecordLine(line)
	var want authz.Record
	werr := CheckJSONText(line)
	if werr == nil {
		werr = decodeStrict(line, &want)
	}
	if (err == nil) != (werr == nil) || err != nil && err.Error() != werr.Error() {
		t.Fatalf("%s: error %v, strict %v", line, err, werr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: %+v, strict %+v", line, got, want)
	}
}
