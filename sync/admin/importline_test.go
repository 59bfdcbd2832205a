package admin

import (
	"reflect"
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
}

// TestDecodeImportLine: the fast path takes a line only as decodeStrict
// takes it.
func TestDecodeImportLine(t *testing.T) {
	for _, line := range importLineCases {
		t.Run(line, func(t *testing.T) { sameAsStrict(t, []byte(line)) })
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
