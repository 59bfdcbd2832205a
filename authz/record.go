package authz

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jwtguard/jwtguard/bloom"
)

// Kind is what a revocation record matches.
type Kind string

// Revocation kinds (see DESIGN.md, "Revocation records").
const (
	// KindToken revokes one token: Issuer + Value, where Value is its jti, or
	// "sha256:" + the hex SHA-256 of its signing input when it has no jti.
	KindToken Kind = "token"
	// KindSubject revokes every token of subject Value issued at or before
	// Before; Issuer, when set, limits it to one issuer. The admin API sets
	// a Before the client leaves out (see sync/admin).
	KindSubject Kind = "subject"
	// KindSession revokes every token of Issuer whose sid claim is Value
	// issued at or before Before (every one when Before is zero).
	KindSession Kind = "session"
	// KindKey revokes every token signed with key id Value, issued at or
	// before Before when set; Issuer, when set, limits it to one issuer.
	KindKey Kind = "key"
	// KindIssuerBefore revokes every token of Issuer issued at or before Before.
	KindIssuerBefore Kind = "issuer-before"
	// KindClamp denies every token of Issuer whose issue time (iat, or nbf
	// without one: Claims.IssuedAt) lies more than MaxAgeSeconds before the
	// time of the request, re-evaluated on every request: during an
	// incident only freshly issued tokens pass. It is kept until lifted.
	KindClamp Kind = "clamp"
)

// Kinds lists every kind.
var Kinds = []Kind{KindToken, KindSubject, KindSession, KindKey, KindIssuerBefore, KindClamp}

// KindNames lists every kind for messages: "token, subject, ...".
var KindNames = func() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}()

// TokenHashPrefix marks a token record whose Value is the hex SHA-256 of the
// token's signing input (header.payload), used for tokens without a jti.
const TokenHashPrefix = "sha256:"

// Record is one revocation. Records are immutable once stored; a source
// assigns ID and Position.
//
// A feed entry with Lifts set is not a revocation but the lift of the
// record with that ID: the source has removed that record (Lookup, Get,
// List, Range and Stats leave it out), and the entry carries its Kind,
// Issuer, Value, Before and ExpiresAt, so that a node finds the key whose
// cached answers it must drop, with its own ID, Position, CreatedAt (when
// lifted), Actor and Reason (who lifted it and why).
type Record struct {
	ID     string    `json:"id,omitempty"`
	Kind   Kind      `json:"kind"`
	Issuer string    `json:"issuer,omitempty"`
	Value  string    `json:"value,omitempty"`
	Before time.Time `json:"before,omitzero"`
	// MaxAgeSeconds is the oldest issue time a clamp record lets through,
	// in seconds before the request; only clamp records have one.
	MaxAgeSeconds int64     `json:"max_age_seconds,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	Actor         string    `json:"actor,omitempty"`
	CreatedAt     time.Time `json:"created_at,omitzero"`
	ExpiresAt     time.Time `json:"expires_at,omitzero"`
	// Position is the record's place in the source's ordered feed.
	Position uint64 `json:"position,omitempty"`
	// Lifts, on a feed entry, is the ID of the record it lifts (see above).
	// Only a source's Lift sets it.
	Lifts string `json:"lifts,omitempty"`
	// aheadCopy marks the feed's copy of a record the node enforced ahead
	// of its feed, holding only ID and Position (see AheadCopy).
	aheadCopy bool
}

// IsLift reports whether r is the feed entry of a lift.
func (r *Record) IsLift() bool { return r.Lifts != "" }

// ErrInvalidRecord is wrapped by every Record.Validate error.
var ErrInvalidRecord = errors.New("invalid revocation record")

const maxRecordField = 1024

// Validate reports the first field of r that is missing or wrong.
func (r Record) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidRecord, fmt.Sprintf(format, a...))
	}
	for _, f := range [...]struct{ name, v string }{{"issuer", r.Issuer}, {"value", r.Value}, {"reason", r.Reason}, {"actor", r.Actor}} {
		if len(f.v) > maxRecordField {
			return bad("%s is longer than %d bytes", f.name, maxRecordField)
		}
		if !utf8.ValidString(f.v) {
			return bad("%s is not valid UTF-8", f.name)
		}
	}
	if r.Lifts != "" {
		return bad("lifts is set only by a source lifting a record (DELETE /v1/revocations/{id})")
	}
	if r.MaxAgeSeconds != 0 && r.Kind != KindClamp {
		return bad("max_age_seconds applies to kind clamp only")
	}
	switch r.Kind {
	case KindToken:
		if r.Issuer == "" || r.Value == "" {
			return bad("kind token needs issuer and value")
		}
		if !r.Before.IsZero() {
			return bad("kind token takes no before time")
		}
	case KindSession:
		if r.Issuer == "" || r.Value == "" {
			return bad("kind session needs issuer and value")
		}
	case KindKey:
		if r.Value == "" {
			return bad("kind key needs value (the kid)")
		}
	case KindSubject:
		if r.Value == "" {
			return bad("kind subject needs value (the sub)")
		}
	case KindIssuerBefore:
		if r.Issuer == "" || r.Before.IsZero() {
			return bad("kind issuer-before needs issuer and before")
		}
		if r.Value != "" {
			return bad("kind issuer-before takes no value")
		}
	case KindClamp:
		if r.Issuer == "" || r.MaxAgeSeconds <= 0 {
			return bad("kind clamp needs issuer and a positive max_age_seconds")
		}
		if r.Value != "" || !r.Before.IsZero() {
			return bad("kind clamp takes no value and no before")
		}
	case "":
		return bad("kind is missing")
	default:
		return bad("unknown kind %q (want one of %s)", r.Kind, KindNames)
	}
	if r.Kind == KindToken && strings.HasPrefix(r.Value, TokenHashPrefix) {
		h := r.Value[len(TokenHashPrefix):]
		if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			return bad("token hash must be %s followed by 64 lower-case hex digits", TokenHashPrefix)
		}
	}
	return nil
}

// ValidateStored is Validate for a record as a source stores it: complete,
// with the Before a subject record needs (the admin API fills it when a
// client leaves it out) and an ExpiresAt.
func (r Record) ValidateStored() error {
	if err := r.Validate(); err != nil {
		return err
	}
	switch {
	case r.Kind == KindSubject && r.Before.IsZero():
		return fmt.Errorf("%w: kind subject needs before", ErrInvalidRecord)
	case r.ExpiresAt.IsZero():
		return fmt.Errorf("%w: expires_at is missing", ErrInvalidRecord)
	}
	return nil
}

// LookupKey is what a filter key stands for and what a source looks up
// exactly. Subject and key records are found by value alone (their Issuer,
// when set, is applied after the lookup), so their LookupKey has no issuer.
type LookupKey struct {
	Kind   Kind
	Issuer string
	Value  string
}

// LookupKey returns the key under which r is filtered and looked up. A
// clamp is stored under its issuer's issuer-before key: the check of that
// key, made on every request, finds both, so a clamp costs no filter probe
// of its own and nothing at all while an issuer has neither.
func (r Record) LookupKey() LookupKey {
	if r.Kind == KindClamp {
		return newLookupKey(KindIssuerBefore, r.Issuer, "")
	}
	return newLookupKey(r.Kind, r.Issuer, r.Value)
}

func newLookupKey(kind Kind, issuer, value string) LookupKey {
	if kind == KindSubject || kind == KindKey {
		issuer = ""
	}
	return LookupKey{Kind: kind, Issuer: issuer, Value: value}
}

// String renders k unambiguously (the issuer is length-prefixed, since
// claims may hold any character); it is the input of FilterKey.
func (k LookupKey) String() string {
	var buf [lookupKeyBuf]byte
	return string(k.AppendString(buf[:0]))
}

// AppendString appends k.String() to dst: a store's index key or a filter
// key without a string made for it.
func (k LookupKey) AppendString(dst []byte) []byte {
	dst = append(append(dst, k.Kind...), 0)
	dst = append(strconv.AppendInt(dst, int64(len(k.Issuer)), 10), 0)
	dst = append(append(dst, k.Issuer...), 0)
	return append(dst, k.Value...)
}

// lookupKeyBuf is the room on the stack for a rendered key; a longer one
// goes to the heap.
const lookupKeyBuf = 256

// FilterKey is the Bloom filter key of k.
func (k LookupKey) FilterKey() bloom.Key {
	var buf [lookupKeyBuf]byte
	return bloom.KeyOf(k.AppendString(buf[:0]))
}

// Lookup is the exact revocation lookup authz needs from a source: every
// unexpired record stored under key. It is called only when the filter says
// "maybe" and the confirm cache has no answer, with a deadline in ctx.
type Lookup interface {
	Lookup(ctx context.Context, key LookupKey) ([]Record, error)
}
