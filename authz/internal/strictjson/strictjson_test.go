package strictjson

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// member is one top-level member as ScanObject passes it to visit.
type member struct {
	Name string
	Kind Kind
	Raw  string
	Str  string
}

// scanMembers scans text and returns its top-level members.
func scanMembers(t *testing.T, text string) ([]member, error) {
	t.Helper()
	var got []member
	err := ScanObject(text, func(name string, v Value) error {
		got = append(got, member{name, v.Kind, v.Raw, v.Str})
		return nil
	})
	return got, err
}

// manyMembers returns an object of n members named m0, m1, ..., then dup
// as one more name when it is not empty.
func manyMembers(n int, dup string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `"m%d":%d,`, i, i)
	}
	if dup != "" {
		fmt.Fprintf(&b, `%q:0,`, dup)
	}
	return strings.TrimSuffix(b.String(), ",") + "}"
}

func TestScanObject(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    []member
		wantErr string // a substring of the error; "" when text is accepted
	}{
		{name: "empty object", text: `{}`},
		{name: "whitespace around", text: " \t\r\n{ } \n"},
		{name: "every kind", text: `{"s":"v","n":-1.5e+3,"t":true,"f":false,"z":null,"a":[1,"x"],"o":{"k":[]}}`, want: []member{
			{"s", String, `"v"`, "v"}, {"n", Number, "-1.5e+3", ""}, {"t", True, "true", ""}, {"f", False, "false", ""},
			{"z", Null, "null", ""}, {"a", Array, `[1,"x"]`, ""}, {"o", Object, `{"k":[]}`, ""},
		}},
		{name: "escapes", text: `{"e\u0301":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}`, want: []member{
			{"e\u0301", String, `"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"`, "\"\\/\b\f\n\r\t\u00e9\U0001F600"},
		}},
		{name: "no text", text: "", wantErr: "no JSON object"},
		{name: "only whitespace", text: "  ", wantErr: "no JSON object"},
		{name: "array at the top", text: `[]`, wantErr: "want a JSON object"},
		{name: "data after the object", text: `{} {}`, wantErr: "data after the JSON object"},
		{name: "unterminated object", text: `{"a":1`, wantErr: "unexpected end"},
		{name: "trailing comma", text: `{"a":1,}`, wantErr: "want a member name"},
		{name: "missing colon", text: `{"a" 1}`, wantErr: "want ':'"},
		{name: "single quotes", text: `{'a':1}`, wantErr: "want a member name"},
		{name: "leading zero", text: `{"a":01}`, wantErr: "want ',' or '}'"},
		{name: "plus sign", text: `{"a":+1}`, wantErr: "want a value"},
		{name: "bare dot", text: `{"a":1.}`, wantErr: "digit after '.'"},
		{name: "empty exponent", text: `{"a":1e}`, wantErr: "digit in the exponent"},
		{name: "hex number", text: `{"a":0x1}`, wantErr: "want ',' or '}'"},
		{name: "capital literal", text: `{"a":True}`, wantErr: "want a value"},
		{name: "short literal", text: `{"a":nul}`, wantErr: "want null"},
		{name: "control character", text: "{\"a\":\"x\ty\"}", wantErr: "control character"},
		{name: "control character after an escape", text: "{\"a\":\"\\n\ty\"}", wantErr: "control character"},
		{name: "invalid escape", text: `{"a":"\x"}`, wantErr: "invalid escape"},
		{name: "short unicode escape", text: `{"a":"\u12"}`, wantErr: "4 hex digits"},
		{name: "lone high surrogate", text: `{"a":"\ud83d"}`, wantErr: "lone UTF-16 surrogate"},
		{name: "lone low surrogate", text: `{"a":"\ude00"}`, wantErr: "lone UTF-16 surrogate"},
		{name: "high surrogate then a letter", text: `{"a":"\ud83dx"}`, wantErr: "lone UTF-16 surrogate"},
		{name: "two high surrogates", text: `{"a":"\ud83d\ud83d"}`, wantErr: "lone UTF-16 surrogate"},
		{name: "unterminated string", text: `{"a":"x`, wantErr: "unterminated string"},
		{name: "unterminated escaped string", text: `{"a":"\n`, wantErr: "unterminated string"},
		{name: "unterminated array", text: `{"a":[1,2}`, wantErr: "want ',' or ']'"},
		{name: "duplicate name", text: `{"a":1,"a":2}`, wantErr: `duplicate member name "a"`},
		{name: "duplicate after unescaping", text: `{"a":1,"\u0061":2}`, wantErr: `duplicate member name "a"`},
		{name: "duplicate in a nested object", text: `{"o":{"b":1,"b":2}}`, wantErr: `duplicate member name "b"`},
		{name: "duplicate in an object in an array", text: `{"a":[{"b":1,"b":2}]}`, wantErr: `duplicate member name "b"`},
		{name: "same name at two depths", text: `{"a":{"a":1}}`, want: []member{{"a", Object, `{"a":1}`, ""}}},
		{name: "many members", text: manyMembers(40, "")},
		{name: "duplicate among the first names", text: manyMembers(10, "m3"), wantErr: `duplicate member name "m3"`},
		{name: "duplicate once names are indexed", text: manyMembers(40, "m3"), wantErr: `duplicate member name "m3"`},
		{name: "duplicate of a late name", text: manyMembers(40, "m39"), wantErr: `duplicate member name "m39"`},
		{name: "long duplicate name is shortened", text: `{"` + strings.Repeat("n", 100) + `":1,"` + strings.Repeat("n", 100) + `":2}`, wantErr: strings.Repeat("n", MaxSnippet) + `..."`},
		{name: "deepest allowed", text: `{"a":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `}`},
		{name: "too deep arrays", text: `{"a":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`, wantErr: fmt.Sprintf("nesting deeper than %d", MaxDepth)},
		{name: "too deep objects", text: strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1), wantErr: fmt.Sprintf("nesting deeper than %d", MaxDepth)},
		{name: "error names the offset", text: `{"a":1 "b":2}`, wantErr: "JSON offset 7: unexpected '\"'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scanMembers(t, tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ScanObject() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ScanObject() error = %v", err)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ScanObject() members = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestScanObjectStopsAtVisitError(t *testing.T) {
	stop := errors.New("stop")
	var seen []string
	err := ScanObject(`{"a":1,"b":2,"c":3}`, func(name string, _ Value) error {
		seen = append(seen, name)
		if name == "b" {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || !reflect.DeepEqual(seen, []string{"a", "b"}) {
		t.Errorf("ScanObject() = %v after %v, want %v after [a b]", err, seen, stop)
	}
}

// A syntax error after a member wins over what visit would say of it.
func TestScanObjectChecksSeparatorBeforeVisit(t *testing.T) {
	err := ScanObject(`{"exp":0x1}`, func(string, Value) error { return errors.New("visited") })
	if err == nil || !strings.Contains(err.Error(), "JSON offset") {
		t.Errorf("ScanObject() = %v, want the syntax error", err)
	}
}

func TestRender(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"string", `"a\u0062"`, "ab"},
		{"number as written", `1.50E+2`, "1.50E+2"},
		{"boolean", `true`, "true"},
		{"null", `null`, "null"},
		{"array compacted", "[ 1 ,\n\t\"a b\" ]", `[1,"a b"]`},
		{"object compacted, escapes kept", `{ "k" : [ "\" ]", "\\" ] }`, `{"k":["\" ]","\\"]}`},
		{"compact already", `[1,2]`, `[1,2]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			if err := ScanObject(`{"v":`+tt.text+`}`, func(_ string, v Value) error {
				got = v.Render()
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Render() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStringArray(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    []string
		wantErr string
	}{
		{name: "empty", raw: `[]`},
		{name: "empty with space", raw: `[ ]`},
		{name: "strings", raw: `[ "a" , "b\u0063" ]`, want: []string{"a", "bc"}},
		{name: "more than the stack buffer", raw: `["1","2","3","4","5","6","7","8","9","10"]`, want: []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}},
		{name: "a number", raw: `["a",1]`, wantErr: "element 1 that is not a string"},
		{name: "a nested array", raw: `[["a"]]`, wantErr: "element 0 that is not a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := StringArray(tt.raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("StringArray() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("StringArray() = %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

func TestSnippet(t *testing.T) {
	long := strings.Repeat("x", MaxSnippet)
	tests := []struct{ name, in, want string }{
		{"short", "abc", "abc"},
		{"at the bound", long, long},
		{"over the bound", long + "y", long + "..."},
		{"cut inside a rune", long[:MaxSnippet-1] + "é", long[:MaxSnippet-1] + "..."},
	}
	for _, tt := range tests {
		if got := Snippet(tt.in); got != tt.want {
			t.Errorf("%s: Snippet() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{String: "a string", Number: "a number", True: "a boolean", False: "a boolean", Null: "null", Array: "an array", Object: "an object", 0: "invalid"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%q).String() = %q, want %q", byte(k), got, want)
		}
	}
}

// A typical header or payload, without escapes and with few members, is
// scanned without allocating.
func TestScanObjectAllocs(t *testing.T) {
	const text = `{"iss":"https://issuer.test","sub":"u1","aud":["api","web"],"exp":2000000000,"iat":1700000000,"cnf":{"jkt":"x"}}`
	n := 0
	visit := func(string, Value) error { n++; return nil }
	if allocs := testing.AllocsPerRun(100, func() {
		if err := ScanObject(text, visit); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("ScanObject: %v allocations, want 0", allocs)
	}
}
