package embedded

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

// encodeCases are records whose encoding must be json.Marshal's, plain or
// not: odd strings, times out of JSON's range, every field set or none.
var encodeCases = []authz.Record{
	{},
	{Kind: authz.KindToken, Issuer: "https://idp", Value: "jti-1"},
	{ID: "0123456789abcdef0123456789abcdef", Kind: authz.KindSubject, Issuer: "https://idp", Value: "alice",
		Before: time.Unix(1_800_000_000, 5).UTC(), MaxAgeSeconds: 3600, Reason: "r", Actor: "a",
		CreatedAt: time.Unix(1_700_000_000, 0).In(time.FixedZone("x", 3600)), ExpiresAt: time.Unix(1_900_000_000, 123456789).UTC(),
		Position: 42, Lifts: "x"},
	{Kind: authz.KindToken, Value: `a"b\c`},
	{Kind: authz.KindToken, Value: "<script>&"},
	{Kind: authz.KindToken, Value: "é\u2028\x00\x7f"},
	{Kind: authz.KindToken, Value: "\xff"},
	{Kind: authz.KindToken, ExpiresAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	{Kind: authz.KindToken, Before: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
	{Kind: authz.KindClamp, MaxAgeSeconds: -5, Position: 1 << 63},
}

func TestEncodeRecord(t *testing.T) {
	for _, r := range encodeCases {
		sameAsMarshal(t, r)
	}
}

// TestEncodeRecordHasEveryField: a record with every exported field set
// encodes as json.Marshal encodes it, so that a field added to
// authz.Record and not to encodeRecord fails here rather than go missing
// from the store.
func TestEncodeRecordHasEveryField(t *testing.T) {
	var r authz.Record
	v := reflect.ValueOf(&r).Elem()
	for i := range v.NumField() {
		f, field := v.Field(i), v.Type().Field(i)
		if !field.IsExported() {
			continue
		}
		switch f.Interface().(type) {
		case string, authz.Kind:
			f.SetString("v" + field.Name)
		case int64:
			f.SetInt(int64(i + 1))
		case uint64:
			f.SetUint(uint64(i + 1))
		case time.Time:
			f.Set(reflect.ValueOf(time.Unix(1_800_000_000+int64(i), 0).UTC()))
		default:
			t.Fatalf("authz.Record.%s is a %s: teach encodeRecord and this test its encoding", field.Name, field.Type)
		}
	}
	sameAsMarshal(t, r)
}

func FuzzEncodeRecord(f *testing.F) {
	for _, r := range encodeCases {
		f.Add(r.ID, string(r.Kind), r.Issuer, r.Value, r.Reason, r.Actor, r.Lifts, r.MaxAgeSeconds, r.Position, r.ExpiresAt.UnixNano(), int64(r.Before.Nanosecond()))
	}
	f.Fuzz(func(t *testing.T, id, kind, iss, value, reason, actor, lifts string, maxAge int64, pos uint64, exp, before int64) {
		sameAsMarshal(t, authz.Record{ID: id, Kind: authz.Kind(kind), Issuer: iss, Value: value, Reason: reason, Actor: actor,
			Lifts: lifts, MaxAgeSeconds: maxAge, Position: pos, ExpiresAt: time.Unix(0, exp), Before: time.Unix(before, 0).UTC()})
	})
}

func sameAsMarshal(t *testing.T, r authz.Record) {
	t.Helper()
	want, werr := json.Marshal(r)
	// Without a cache of times, then with one, cold and warm, and warm
	// with other times of the same instant (another location, a clock
	// reading) in it.
	var cache, other timeTexts
	for _, o := range []authz.Record{r, {CreatedAt: r.ExpiresAt.In(time.FixedZone("x", 3600)), ExpiresAt: r.CreatedAt.Round(0)}} {
		_, _ = encodeRecordWith(&o, &other, nil)
	}
	var mem arena
	for i, c := range []*timeTexts{nil, &cache, &cache, &other} {
		got, err := encodeRecordWith(&r, c, &mem)
		if (err == nil) != (werr == nil) || err != nil && err.Error() != werr.Error() {
			t.Fatalf("%+v (encoding %d): error %v, json.Marshal %v", r, i, err, werr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%+v (encoding %d):\n got %s\nwant %s", r, i, got, want)
		}
	}
}
