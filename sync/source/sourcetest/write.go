package sourcetest

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/source"
)

// validID is what the sources' IDs look like: 128 random bits in hex.
var validID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func (s *suite) putCases() []testCase {
	return []testCase{
		{"AssignsIDPositionCreatedAt", s.putAssigns},
		{"RefusesInvalidBatchWhole", s.putRefusesInvalid},
		{"EmptyBatch", s.putEmpty},
	}
}

// putAssigns: Put returns the records with a fresh ID, the next positions
// in order and CreatedAt set when zero (kept when given); the caller's ID
// and Position are ignored, and its slice is left alone.
func (s *suite) putAssigns(t *testing.T) {
	src := s.open(t)
	now := time.Now()
	created := now.Add(-time.Hour).Truncate(time.Second)
	in := []authz.Record{
		token("https://idp", "a", time.Hour),
		{Kind: authz.KindSubject, Value: "alice", Before: now, CreatedAt: created, ExpiresAt: now.Add(time.Hour)},
		{Kind: authz.KindKey, Value: "kid-1", ID: "caller-id", Position: 99, ExpiresAt: now.Add(time.Hour)},
	}
	before := time.Now()
	out := put(t, src, in...)
	after := time.Now()
	seen := map[string]bool{}
	for i, r := range out {
		if !validID.MatchString(r.ID) || seen[r.ID] {
			t.Errorf("record %d: ID %q is not a fresh 32-digit hex ID", i, r.ID)
		}
		seen[r.ID] = true
		if want := uint64(i + 1); r.Position != want {
			t.Errorf("record %d: Position = %d, want %d", i, r.Position, want)
		}
		if r.Kind != in[i].Kind || r.Value != in[i].Value || !r.ExpiresAt.Equal(in[i].ExpiresAt) {
			t.Errorf("record %d = %+v, want the fields of %+v", i, r, in[i])
		}
		got, err := src.Get(ctxT(t), r.ID)
		if err != nil || !sameRecord(got, r) {
			t.Errorf("Get(%s) = %+v, %v; want the record Put returned, %+v", r.ID, got, err, r)
		}
	}
	if c := out[0].CreatedAt; c.Before(before.Truncate(time.Millisecond)) || c.After(after) {
		t.Errorf("zero CreatedAt became %v, want the time of Put (%v to %v)", c, before, after)
	}
	if !out[1].CreatedAt.Equal(created) {
		t.Errorf("given CreatedAt became %v, want it kept (%v)", out[1].CreatedAt, created)
	}
	if in[0].ID != "" || !in[0].CreatedAt.IsZero() || in[2].Position != 99 {
		t.Errorf("Put modified its input: %+v", in)
	}
	if more := put(t, src, token("https://idp", "b", time.Hour)); more[0].Position != 4 {
		t.Errorf("the next Put got position %d, want 4", more[0].Position)
	}
}

// putRefusesInvalid: a batch with one invalid record is refused whole, with
// an error wrapping authz.ErrInvalidRecord that names the record; nothing
// of it is stored. Every record needs an ExpiresAt after its CreatedAt and
// after now.
func (s *suite) putRefusesInvalid(t *testing.T) {
	now := time.Now()
	hour := now.Add(time.Hour)
	tests := []struct {
		name string
		bad  authz.Record
	}{
		{"no kind", authz.Record{Issuer: "i", Value: "v", ExpiresAt: hour}},
		{"unknown kind", authz.Record{Kind: "user", Value: "v", ExpiresAt: hour}},
		{"token without issuer", authz.Record{Kind: authz.KindToken, Value: "v", ExpiresAt: hour}},
		{"token with before", authz.Record{Kind: authz.KindToken, Issuer: "i", Value: "v", Before: now, ExpiresAt: hour}},
		{"issuer-before with value", authz.Record{Kind: authz.KindIssuerBefore, Issuer: "i", Value: "v", Before: now, ExpiresAt: hour}},
		{"value not UTF-8", authz.Record{Kind: authz.KindKey, Value: "\xff", ExpiresAt: hour}},
		{"value too long", authz.Record{Kind: authz.KindKey, Value: strings.Repeat("k", 1025), ExpiresAt: hour}},
		{"no expiry", authz.Record{Kind: authz.KindToken, Issuer: "i", Value: "v"}},
		{"expiry before creation", authz.Record{Kind: authz.KindKey, Value: "k", CreatedAt: now.Add(2 * time.Hour), ExpiresAt: hour}},
		{"expiry at creation", authz.Record{Kind: authz.KindKey, Value: "k", CreatedAt: hour, ExpiresAt: hour}},
		{"expired already", authz.Record{Kind: authz.KindKey, Value: "k", CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := s.open(t)
			good := token("https://idp", "good", time.Hour)
			out, err := src.Put(ctxT(t), []authz.Record{good, tt.bad})
			if !errors.Is(err, authz.ErrInvalidRecord) {
				t.Fatalf("Put([good, bad]) = %v, %v; want an error wrapping ErrInvalidRecord", ids(out), err)
			}
			if !strings.Contains(err.Error(), "record 1") {
				t.Errorf("error %q does not name record 1", err)
			}
			if out != nil {
				t.Errorf("a refused Put returned records %v", ids(out))
			}
			if st := stats(t, src); st.Records != 0 || st.Position != 0 {
				t.Errorf("Stats after a refused Put = %+v, want nothing stored", st)
			}
			if got := lookup(t, src, good.LookupKey()); len(got) != 0 {
				t.Errorf("the valid record of a refused batch is stored: %v", ids(got))
			}
			if got, _ := listAll(t, src, source.ListQuery{}); len(got) != 0 {
				t.Errorf("List after a refused Put = %v", ids(got))
			}
		})
	}
}

// putEmpty: an empty batch stores nothing and is no error.
func (s *suite) putEmpty(t *testing.T) {
	src := s.open(t)
	for _, in := range [][]authz.Record{nil, {}} {
		out, err := src.Put(ctxT(t), in)
		if err != nil || len(out) != 0 {
			t.Errorf("Put(%v) = %v, %v; want nothing, no error", in, out, err)
		}
	}
	if st := stats(t, src); st.Position != 0 {
		t.Errorf("an empty Put moved the position to %d", st.Position)
	}
}

func (s *suite) lookupCases() []testCase {
	return []testCase{
		{"EveryRecordUnderItsKey", s.lookupKeys},
	}
}

// lookupKeys: Lookup returns every unexpired record stored under a key, and
// nothing of another key; subject and key records are found by value
// alone, whatever the issuer they carry.
func (s *suite) lookupKeys(t *testing.T) {
	src := s.open(t)
	now := time.Now()
	hour := now.Add(time.Hour)
	recs := put(t, src,
		token("https://a", "jti-1", time.Hour),
		token("https://a", "jti-1", 2*time.Hour), // a second record under the same key
		token("https://b", "jti-1", time.Hour),
		authz.Record{Kind: authz.KindSubject, Issuer: "https://a", Value: "alice", Before: now, ExpiresAt: hour},
		authz.Record{Kind: authz.KindSession, Issuer: "https://a", Value: "sid:1", ExpiresAt: hour},
		authz.Record{Kind: authz.KindKey, Issuer: "https://a", Value: "kid-1", ExpiresAt: hour},
		authz.Record{Kind: authz.KindIssuerBefore, Issuer: "https://a", Before: now, ExpiresAt: hour},
		authz.Record{Kind: authz.KindToken, Issuer: "https://a", Value: "odd : value%20 {x}\x00é", ExpiresAt: hour},
	)
	third := put(t, src, token("https://a", "jti-1", 3*time.Hour)) // and a third, from another Put
	tests := []struct {
		name string
		key  authz.LookupKey
		want []authz.Record
	}{
		{"several records under one key", recs[0].LookupKey(), nil}, // filled below
		{"another issuer", authz.LookupKey{Kind: authz.KindToken, Issuer: "https://b", Value: "jti-1"}, recs[2:3]},
		{"subject by value alone", authz.LookupKey{Kind: authz.KindSubject, Value: "alice"}, recs[3:4]},
		{"session", authz.LookupKey{Kind: authz.KindSession, Issuer: "https://a", Value: "sid:1"}, recs[4:5]},
		{"key by value alone", authz.LookupKey{Kind: authz.KindKey, Value: "kid-1"}, recs[5:6]},
		{"issuer-before", authz.LookupKey{Kind: authz.KindIssuerBefore, Issuer: "https://a"}, recs[6:7]},
		{"value with separators, braces and NUL", recs[7].LookupKey(), recs[7:8]},
		{"unknown value", authz.LookupKey{Kind: authz.KindToken, Issuer: "https://a", Value: "jti-2"}, nil},
		{"same value, other kind", authz.LookupKey{Kind: authz.KindSession, Issuer: "https://a", Value: "jti-1"}, nil},
		{"same value, no issuer", authz.LookupKey{Kind: authz.KindToken, Value: "jti-1"}, nil},
		{"issuer and value run together", authz.LookupKey{Kind: authz.KindToken, Issuer: "https://a:jti-1"}, nil},
		{"issuer-before of another issuer", authz.LookupKey{Kind: authz.KindIssuerBefore, Issuer: "https://b"}, nil},
	}
	all, _ := listAll(t, src, source.ListQuery{Kind: authz.KindToken, Issuer: "https://a", Value: "jti-1"})
	if len(all) != 3 || all[2].ID != third[0].ID {
		t.Fatalf("List of the key jti-1 = %v, want 3 records ending with %s", ids(all), third[0].ID)
	}
	tests[0].want = all
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lookup(t, src, tt.key)
			byID := map[string]authz.Record{}
			for _, r := range got {
				byID[r.ID] = r
			}
			if len(byID) != len(got) {
				t.Errorf("Lookup returned a record twice: %v", ids(got))
			}
			for _, w := range tt.want {
				if g, ok := byID[w.ID]; !ok || !sameRecord(g, w) {
					t.Errorf("Lookup(%+v) = %v, missing or changed %+v", tt.key, ids(got), w)
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("Lookup(%+v) = %v, want %v", tt.key, sortedIDs(got), sortedIDs(tt.want))
			}
		})
	}
}

func (s *suite) getCases() []testCase {
	return []testCase{
		{"ByID", s.getByID},
		{"UnknownIsNotFound", s.getUnknown},
	}
}

// getByID: Get returns each stored record as Put returned it.
func (s *suite) getByID(t *testing.T) {
	src := s.open(t)
	recs := put(t, src, tokens("https://idp", "g", 5, time.Hour)...)
	for _, want := range recs {
		got, err := src.Get(ctxT(t), want.ID)
		if err != nil || !sameRecord(got, want) {
			t.Errorf("Get(%s) = %+v, %v; want %+v", want.ID, got, err, want)
		}
	}
}

// getUnknown: an ID the source never issued is ErrNotFound.
func (s *suite) getUnknown(t *testing.T) {
	src := s.open(t)
	put(t, src, token("https://idp", "x", time.Hour))
	for _, id := range []string{"0123456789abcdef0123456789abcdef", "", "../x", "*", strings.Repeat("a", 4096)} {
		if _, err := src.Get(ctxT(t), id); !errors.Is(err, source.ErrNotFound) {
			t.Errorf("Get(%.40q) = %v, want ErrNotFound", id, err)
		}
	}
}

func (s *suite) statsCases() []testCase {
	return []testCase{
		{"CountsByKindAndPosition", s.statsCounts},
	}
}

// statsCounts: Stats reports the unexpired records, by kind, and the
// newest position; an empty source has none at position 0.
func (s *suite) statsCounts(t *testing.T) {
	src := s.open(t)
	if st := stats(t, src); st.Records != 0 || st.Position != 0 || len(st.ByKind) != 0 {
		t.Errorf("empty source: Stats = %+v, want nothing at position 0", st)
	}
	now := time.Now()
	put(t, src,
		token("https://a", "1", time.Hour),
		token("https://a", "1", time.Hour),
		authz.Record{Kind: authz.KindKey, Value: "kid", ExpiresAt: now.Add(time.Hour)},
	)
	put(t, src, authz.Record{Kind: authz.KindIssuerBefore, Issuer: "https://a", Before: now, ExpiresAt: now.Add(time.Hour)})
	st := stats(t, src)
	want := map[authz.Kind]int{authz.KindToken: 2, authz.KindKey: 1, authz.KindIssuerBefore: 1}
	if st.Records != 4 || st.Position != 4 || fmt.Sprint(st.ByKind) != fmt.Sprint(want) {
		t.Errorf("Stats = %+v, want 4 records at position 4, by kind %v", st, want)
	}
}
