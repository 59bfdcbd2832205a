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
)

// Kinds lists every kind.
var Kinds = []Kind{KindToken, KindSubject, KindSession, KindKey, KindIssuerBefore}

// TokenHashPrefix marks a token record whose Value is the hex SHA-256 of the
// token's signing input (header.payload), used for tokens without a jti.
const TokenHashPrefix = "sha256:"

// Record is one revocation. Records are immutable once stored; a source
// assigns ID and Position.
type Record struct {
	ID        string    `json:"id,omitempty"`
	Kind      Kind      `json:"kind"`
	Issuer    string    `json:"issuer,omitempty"`
	Value     string    `json:"value,omitempty"`
	Before    time.Time `json:"before,omitzero"`
	Reason    string    `json:"reason,omitempty"`
	Actor     string    `json:"actor,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Position is the record's place in the source's ordered feed.
	Position uint64 `json:"position,omitempty"`
}

// ErrInvalidRecord is wrapped by every Record.Validate error.
var ErrInvalidRecord = errors.New("invalid revocation record")

const maxRecordField = 1024

// Validate reports the first field of r that is missing or wrong.
func (r Record) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidRecord, fmt.Sprintf(format, a...))
	}
	for name, v := range map[string]string{"issuer": r.Issuer, "value": r.Value, "reason": r.Reason, "actor": r.Actor} {
		if len(v) > maxRecordField {
			return bad("%s is longer than %d bytes", name, maxRecordField)
		}
		if !utf8.ValidString(v) {
			return bad("%s is not valid UTF-8", name)
		}
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
	case "":
		return bad("kind is missing")
	default:
		return bad("unknown kind %q (want one of token, subject, session, key, issuer-before)", r.Kind)
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

// LookupKey returns the key under which r is filtered and looked up.
func (r Record) LookupKey() LookupKey {
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
	return string(k.Kind) + "\x00" + strconv.Itoa(len(k.Issuer)) + "\x00" + k.Issuer + "\x00" + k.Value
}

// FilterKey is the Bloom filter key of k.
func (k LookupKey) FilterKey() bloom.Key {
	return bloom.KeyOfString(k.String())
}

// Lookup is the exact revocation lookup authz needs from a source: every
// unexpired record stored under key. It is called only when the filter says
// "maybe" and the confirm cache has no answer, with a deadline in ctx.
type Lookup interface {
	Lookup(ctx context.Context, key LookupKey) ([]Record, error)
}
