package strictjson

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzScanObject checks ScanObject against encoding/json: it never panics;
// what it accepts encoding/json accepts as an object with the same members
// and values; what it rejects as syntax encoding/json rejects too, unless
// the rejection is one of its own stricter rules (duplicate names, lone
// surrogates, nesting). The seed corpus is in testdata/fuzz/FuzzScanObject.
func FuzzScanObject(f *testing.F) {
	f.Fuzz(func(t *testing.T, text string) {
		if !utf8.ValidString(text) {
			return // the caller's check, not ScanObject's
		}
		var names []string
		values := map[string]Value{}
		err := ScanObject(text, func(name string, v Value) error {
			names = append(names, name)
			values[name] = v
			return nil
		})
		isObject := json.Valid([]byte(text)) && strings.TrimLeft(text, " \t\r\n")[0] == '{'
		if err != nil {
			for _, strict := range []string{"duplicate", "surrogate", "nesting"} {
				if strings.Contains(err.Error(), strict) {
					return
				}
			}
			if isObject {
				t.Fatalf("ScanObject() rejects an object encoding/json accepts: %v", err)
			}
			return
		}
		if !isObject {
			t.Fatalf("ScanObject() accepts %q, which encoding/json does not read as an object", text)
		}
		dec := json.NewDecoder(strings.NewReader(text))
		dec.UseNumber()
		var want map[string]any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		if len(names) != len(want) {
			t.Fatalf("ScanObject() saw %d members, encoding/json %d", len(names), len(want))
		}
		for name, v := range values {
			fuzzCheckValue(t, name, v, want[name])
		}
	})
}

// fuzzCheckValue checks one scanned value against encoding/json's reading.
func fuzzCheckValue(t *testing.T, name string, v Value, want any) {
	t.Helper()
	got := v.Render()
	switch w := want.(type) {
	case string:
		if v.Kind != String || v.Str != w || got != w {
			t.Fatalf("%q: %v %q, encoding/json reads the string %q", name, v.Kind, v.Str, w)
		}
	case json.Number:
		if v.Kind != Number || v.Raw != w.String() {
			t.Fatalf("%q: %v %q, encoding/json reads the number %s", name, v.Kind, v.Raw, w)
		}
	case bool:
		if (v.Kind == True) != w || v.Kind != True && v.Kind != False {
			t.Fatalf("%q: %v, encoding/json reads %v", name, v.Kind, w)
		}
	case nil:
		if v.Kind != Null {
			t.Fatalf("%q: %v, encoding/json reads null", name, v.Kind)
		}
	case []any:
		if v.Kind != Array {
			t.Fatalf("%q: %v, encoding/json reads an array", name, v.Kind)
		}
		fuzzCheckCompact(t, name, v.Raw, got)
		strs, err := StringArray(v.Raw)
		allStrings := true
		for _, e := range w {
			_, ok := e.(string)
			allStrings = allStrings && ok
		}
		switch {
		case allStrings && err != nil:
			t.Fatalf("%q: StringArray() = %v for an array of strings", name, err)
		case !allStrings && err == nil:
			t.Fatalf("%q: StringArray() accepts %q, not all strings", name, v.Raw)
		case allStrings && len(w) > 0:
			want := make([]string, len(w))
			for i, e := range w {
				want[i] = e.(string)
			}
			if !reflect.DeepEqual(strs, want) {
				t.Fatalf("%q: StringArray() = %q, encoding/json reads %q", name, strs, want)
			}
		}
	case map[string]any:
		if v.Kind != Object {
			t.Fatalf("%q: %v, encoding/json reads an object", name, v.Kind)
		}
		fuzzCheckCompact(t, name, v.Raw, got)
	default:
		t.Fatalf("%q: encoding/json reads %T", name, want)
	}
}

// fuzzCheckCompact checks that got, the rendering of raw, is raw compacted
// as encoding/json compacts it.
func fuzzCheckCompact(t *testing.T, name, raw, got string) {
	t.Helper()
	var want bytes.Buffer
	if err := json.Compact(&want, []byte(raw)); err != nil {
		t.Fatalf("%q: encoding/json cannot compact %q: %v", name, raw, err)
	}
	if got != want.String() {
		t.Fatalf("%q: Render() = %q, encoding/json compacts it to %q", name, got, want.String())
	}
}
