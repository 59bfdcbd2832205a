package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is what an entry records.
type Kind string

// Kinds of entries. Other packages may record other kinds (a name of
// lower-case letters and dashes); these are the ones jwtguard writes.
const (
	// KindRevoke: a revocation record was stored (manual, automatic or
	// from an identity provider; Actor says which).
	KindRevoke Kind = "revoke"
	// KindLift: a revocation was lifted before its expiry.
	KindLift Kind = "lift"
	// KindBlock: a node blocked a token, session or address for a while.
	KindBlock Kind = "block"
	// KindKeySet: an issuer's key set gained or lost keys.
	KindKeySet Kind = "keyset-change"
	// KindAuthFailure: a request to the admin API had no or a wrong
	// token (Count > 1 when failures were aggregated).
	KindAuthFailure Kind = "auth-failure"
)

// Bounds of the fields of an entry; Bound cuts longer values.
const (
	// MaxField bounds Node, Actor, Source, Kind and Target, in bytes.
	MaxField = 512
	// MaxReason bounds Reason, in bytes.
	MaxReason = 4096
)

// Entry is one event of the trail.
type Entry struct {
	// Seq numbers the entries of a trail from 1, without gaps.
	Seq uint64 `json:"seq"`
	// Time is when the event happened (UTC).
	Time time.Time `json:"time"`
	// Node is the jwtguard node (or tool) that recorded it.
	Node string `json:"node,omitempty"`
	// Actor is who did it, as far as the recorder knows: the actor a
	// client named, "jwtguard/auto:<detector>", "idp:<provider>".
	Actor string `json:"actor,omitempty"`
	// Source is the network address the request came from, when there was one.
	Source string `json:"source,omitempty"`
	// Kind is what happened.
	Kind Kind `json:"kind"`
	// Target is what it happened to: a record id and key, a token id, an
	// address, an issuer and kid.
	Target string `json:"target,omitempty"`
	// Reason is why, or the details.
	Reason string `json:"reason,omitempty"`
	// Count is how many events the entry stands for when they were
	// aggregated (0 or 1: one).
	Count uint64 `json:"count,omitempty"`
	// Prev is the Hash of the entry before ("" for the first).
	Prev string `json:"prev"`
	// Hash is Sum() of the entry as it was appended.
	Hash string `json:"hash"`
}

// Head is the end of a chain: the Seq and Hash of its newest entry (zero
// for an empty trail).
type Head struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// Recorder records events. Seq, Prev and Hash are set by the trail; Time
// and Node are filled when zero.
type Recorder interface {
	Record(ctx context.Context, e Entry) error
}

// RecorderFunc adapts a function to Recorder.
type RecorderFunc func(ctx context.Context, e Entry) error

// Record calls f.
func (f RecorderFunc) Record(ctx context.Context, e Entry) error { return f(ctx, e) }

// Errors callers branch on.
var (
	// ErrInvalidCursor: a List cursor that the store did not issue.
	ErrInvalidCursor = errors.New("invalid audit cursor")
	// ErrConflict: the head moved while an entry was appended; Stores
	// retry it themselves and return it only when they give up.
	ErrConflict = errors.New("audit head moved")
)

// hashDomain starts every hashed encoding, so that the hash of an entry
// can never be the hash of anything else jwtguard hashes.
const hashDomain = "jwtguard-audit/1"

// Sum returns the hex SHA-256 of the canonical encoding of e: every field
// but Hash, in a fixed order, each as a uvarint length and its bytes.
func (e Entry) Sum() string {
	h := sha256.New()
	var lb [binary.MaxVarintLen64]byte
	put := func(s string) {
		h.Write(lb[:binary.PutUvarint(lb[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	put(hashDomain)
	put(strconv.FormatUint(e.Seq, 10))
	put(e.Time.UTC().Format(time.RFC3339Nano))
	put(e.Node)
	put(e.Actor)
	put(e.Source)
	put(string(e.Kind))
	put(e.Target)
	put(e.Reason)
	put(strconv.FormatUint(e.Count, 10))
	put(e.Prev)
	return hex.EncodeToString(h.Sum(nil))
}

// Seal links e after head: it sets Seq, Prev and Hash.
func Seal(e Entry, head Head) Entry {
	e.Seq, e.Prev = head.Seq+1, head.Hash
	e.Hash = e.Sum()
	return e
}

// Bound returns e with Time in UTC, its text fields valid UTF-8 and cut to
// MaxField (Reason to MaxReason) bytes, saying how much was cut.
func Bound(e Entry) Entry {
	e.Time = e.Time.Round(0).UTC()
	for _, f := range []*string{&e.Node, &e.Actor, &e.Source, &e.Target} {
		*f = clip(*f, MaxField)
	}
	e.Kind = Kind(clip(string(e.Kind), MaxField))
	e.Reason = clip(e.Reason, MaxReason)
	return e
}

// clip makes s valid UTF-8 and at most limit bytes, ending a cut value
// with a note of the bytes cut.
func clip(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= limit {
		return s
	}
	note := fmt.Sprintf("...[%d bytes cut]", len(s)-limit)
	cut := limit - len(note)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + note
}

type addrKey struct{}

// WithAddr returns ctx carrying the network address a request came from,
// for the entries recorded while serving it.
func WithAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, addrKey{}, addr)
}

// AddrFrom returns the address WithAddr put in ctx, or "".
func AddrFrom(ctx context.Context) string {
	s, _ := ctx.Value(addrKey{}).(string)
	return s
}
