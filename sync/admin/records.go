package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/source"
)

// errInvalidCursor is what a source returns for a List cursor it did not
// issue. The source package declares no such sentinel yet, so the embedded
// store's is used; other sources' bad cursors answer 500.
var errInvalidCursor = source.ErrInvalidCursor

// MaxListLimit caps the page size of GET /v1/revocations.
const MaxListLimit = source.MaxListLimit

// maxFuture bounds how far in the future a Before time may lie: a subject
// may be suspended for years, but not past what the store's clock holds.
const maxFuture = 100 * 365 * 24 * time.Hour

// recordError is an error in record index of a batch.
type recordError struct {
	index int
	err   error
}

func (e *recordError) Error() string { return fmt.Sprintf("record %d: %v", e.index, e.err) }
func (e *recordError) Unwrap() error { return e.err }

// decodeRecords reads one record object or a JSON array of them, refusing
// unknown fields, trailing data, an empty array and more than maxBatch
// records.
func decodeRecords(r io.Reader, maxBatch int) ([]authz.Record, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, errors.New("empty body: want a revocation record or an array of them")
	}
	if err := CheckJSONText(data); err != nil {
		return nil, err
	}
	if data[0] != '[' {
		var rec authz.Record
		if err := decodeStrict(data, &rec); err != nil {
			return nil, &recordError{index: 0, err: err}
		}
		return []authz.Record{rec}, nil
	}
	var raw []json.RawMessage
	if err := decodeStrict(data, &raw); err != nil {
		return nil, err
	}
	switch {
	case len(raw) == 0:
		return nil, errors.New("empty array: no records to store")
	case len(raw) > maxBatch:
		return nil, fmt.Errorf("%d records in one request; at most %d are accepted", len(raw), maxBatch)
	}
	recs := make([]authz.Record, len(raw))
	for i, m := range raw {
		if err := decodeStrict(m, &recs[i]); err != nil {
			return nil, &recordError{index: i, err: err}
		}
	}
	return recs, nil
}

// CheckJSONText refuses JSON text that encoding/json would silently alter:
// invalid UTF-8, and \u escapes of unpaired UTF-16 surrogates, both of which
// it decodes as U+FFFD, so a different value would be stored than was sent.
func CheckJSONText(data []byte) error {
	if !utf8.Valid(data) {
		i := 0
		for i < len(data) {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return fmt.Errorf("malformed JSON: invalid UTF-8 at byte %d", i)
	}
	// A backslash appears only inside strings in JSON text; a decoder
	// error reports anything else.
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' || i+1 >= len(data) {
			continue
		}
		if data[i+1] != 'u' {
			i++ // \", \\, \n, ...
			continue
		}
		r, ok := hex4(data[i+2:])
		if !ok {
			return nil // malformed: the decoder says so
		}
		switch {
		case r >= 0xd800 && r < 0xdc00: // high surrogate: a low one must follow
			if i+7 < len(data) && data[i+6] == '\\' && data[i+7] == 'u' {
				if lo, ok := hex4(data[i+8:]); ok && lo >= 0xdc00 && lo < 0xe000 {
					i += 11
					continue
				}
			}
			return fmt.Errorf("malformed JSON: unpaired UTF-16 surrogate \\u%04x at byte %d", r, i)
		case r >= 0xdc00 && r < 0xe000:
			return fmt.Errorf("malformed JSON: unpaired UTF-16 surrogate \\u%04x at byte %d", r, i)
		}
		i += 5
	}
	return nil
}

// hex4 decodes the 4 hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// decodeStrict decodes exactly one JSON value with no unknown fields.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("malformed JSON: data after the value")
	}
	return nil
}

// complete validates rec and sets what the server decides: CreatedAt,
// ExpiresAt, and no ID or Position (the source assigns them).
func (h *handler) complete(rec *authz.Record, now time.Time) error {
	return h.cfg.complete(rec, now)
}

// complete validates rec as a client sent it and fills what the server
// decides: CreatedAt, the default Before of subject and session records,
// and ExpiresAt (ID and Position come from the source).
//
// A record must outlive every token it covers, and the checker accepts no
// token whose exp lies more than MaxTokenLifetime after its issue time
// (authz.ReasonLifetimeTooLong): a record covering tokens issued at or
// before B is kept until B + MaxTokenLifetime + Leeway. A token acceptable
// now was issued at or before now + Leeway, which is therefore the default
// Before, and the B of a record without one.
func (c Config) complete(rec *authz.Record, now time.Time) error {
	latest := now.Add(c.Leeway).Truncate(time.Second)
	if (rec.Kind == authz.KindSubject || rec.Kind == authz.KindSession) && rec.Before.IsZero() {
		rec.Before = latest
	}
	if err := rec.Validate(); err != nil {
		return err
	}
	if rec.Kind == authz.KindToken && looksLikeJWT(rec.Value) {
		return fmt.Errorf("%w: value looks like a whole JWT; send its jti, or %s and the hex SHA-256 of its header.payload (jwtguard revoke --token does this)",
			authz.ErrInvalidRecord, authz.TokenHashPrefix)
	}
	if !rec.Before.IsZero() && rec.Before.After(now.Add(maxFuture)) {
		return fmt.Errorf("%w: before %s is more than 100 years ahead", authz.ErrInvalidRecord, rec.Before.Format(time.RFC3339))
	}
	rec.ID, rec.Position = "", 0
	rec.CreatedAt = now
	// The latest exp of a token the record covers.
	lastExp := latest
	if rec.Before.After(lastExp) {
		lastExp = rec.Before
	}
	lastExp = lastExp.Add(c.MaxTokenLifetime)
	switch {
	case rec.Kind == authz.KindKey && rec.Before.IsZero(), rec.Kind == authz.KindClamp:
		// Every token signed with the key, whenever it was issued, or of
		// the issuer for as long as the clamp is on: no token's exp bounds
		// it, so it is kept until lifted.
		rec.ExpiresAt = now.Add(maxFuture)
		return nil
	case rec.Kind == authz.KindToken && !rec.ExpiresAt.IsZero():
		// The client sent the token's exp: the checker accepts the token
		// until exp + Leeway. A later exp than lastExp belongs to a token
		// the checker refuses (lifetime_too_long) after lastExp anyway.
		if !rec.ExpiresAt.Add(c.Leeway).After(now) {
			return fmt.Errorf("%w: expires_at %s is in the past: the token has expired already",
				authz.ErrInvalidRecord, rec.ExpiresAt.Format(time.RFC3339))
		}
		if rec.ExpiresAt.Before(lastExp) {
			lastExp = rec.ExpiresAt
		}
	}
	rec.ExpiresAt = lastExp.Add(c.Leeway)
	return nil
}

// looksLikeJWT reports whether v is a compact JWS (a header starting with
// `{"` encodes to "eyJ"), bare or as a "Bearer <token>" credential, which
// must never be stored or logged whole.
func looksLikeJWT(v string) bool {
	v = strings.TrimSpace(v)
	if len(v) > len("bearer") && strings.EqualFold(v[:len("bearer")], "bearer") {
		v = strings.TrimSpace(v[len("bearer"):])
	}
	return strings.HasPrefix(v, "eyJ") && strings.Count(v, ".") == 2
}

// parseListQuery reads the query of GET /v1/revocations, refusing unknown
// parameters so that a typo does not silently list everything.
func parseListQuery(v url.Values) (source.ListQuery, error) {
	var q source.ListQuery
	for name, vals := range v {
		if len(vals) != 1 {
			return q, fmt.Errorf("query parameter %q given %d times", name, len(vals))
		}
		val := vals[0]
		switch name {
		case "kind":
			q.Kind = authz.Kind(val)
			if val != "" && !slices.Contains(authz.Kinds, q.Kind) {
				return q, fmt.Errorf("unknown kind %q (want one of %s)", val, authz.KindNames)
			}
		case "issuer":
			q.Issuer = val
		case "value":
			q.Value = val
		case "cursor":
			q.Cursor = val
		case "limit":
			if val == "" {
				continue
			}
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > MaxListLimit {
				return q, fmt.Errorf("limit %q: want a number from 1 to %d", val, MaxListLimit)
			}
			q.Limit = n
		default:
			return q, fmt.Errorf("unknown query parameter %q (want kind, issuer, value, cursor, limit)", name)
		}
	}
	return q, nil
}
