package audit

import (
	"context"
	"fmt"
)

// Problem names how a chain is broken.
type Problem string

// Problems Verify finds.
const (
	// Edited: the entry does not hash to its Hash (or does not decode).
	Edited Problem = "edited"
	// Removed: entries are missing before this one (or at the end).
	Removed Problem = "removed"
	// Reordered: the entry is out of its place in the order.
	Reordered Problem = "reordered"
	// Inserted: the entry, or one before it, is not part of the chain.
	Inserted Problem = "inserted"
)

// Break is the first place a chain is broken.
type Break struct {
	// Seq is the sequence number the broken entry carries (for a removal
	// at the end, the first missing one).
	Seq uint64 `json:"seq"`
	// Pos is the store position of the broken entry ("" at the end).
	Pos     string  `json:"pos,omitempty"`
	Problem Problem `json:"problem"`
	Detail  string  `json:"detail"`
}

func (b *Break) Error() string {
	return fmt.Sprintf("audit chain broken at seq %d (%s, position %s): %s", b.Seq, b.Problem, b.Pos, b.Detail)
}

// Report is what Verify found.
type Report struct {
	// Entries is how many entries were checked.
	Entries int `json:"entries"`
	// First and Last are the sequence numbers of the first and last
	// entries checked.
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
	// Head is the stored head the chain must end at.
	Head Head `json:"head"`
	// Trimmed: entries before First were dropped by retention, so the
	// chain was verified from First on, taking its Prev on trust.
	Trimmed bool `json:"trimmed,omitempty"`
	// Broken is the first break, or nil for an intact chain.
	Broken *Break `json:"broken,omitempty"`
}

// OK reports whether the chain is intact.
func (r Report) OK() bool { return r.Broken == nil }

// Verify walks the chain from the oldest entry kept to the head and
// reports the first break. Entries appended while it runs (after the head
// it read first) are not checked.
func (l *Log) Verify(ctx context.Context) (Report, error) {
	head, err := l.store.Head(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: read head: %w", err)
	}
	v := verifier{rep: Report{Head: head}, trims: l.store.Trims()}
	err = l.store.Scan(ctx, "", func(s Stored) bool { return v.next(s) })
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	v.end()
	return v.rep, nil
}

// verifier checks entries one at a time, holding at most one back: an
// entry after a gap is a removal, unless the next entry carries a lower
// seq (then it was moved ahead: reordered).
type verifier struct {
	rep     Report
	trims   bool
	prev    *Entry
	pending *Stored // the entry after a gap, waiting for the next one
}

// next checks s and says whether to go on.
func (v *verifier) next(s Stored) bool {
	if v.prev != nil && v.prev.Seq >= v.rep.Head.Seq && v.pending == nil {
		return false // appended after the head was read
	}
	if s.Err != nil {
		v.fail(0, s.Pos, Edited, fmt.Sprintf("the stored entry does not decode: %v", s.Err))
		return false
	}
	e := s.Entry
	if v.pending != nil {
		p := v.pending
		if e.Seq < p.Entry.Seq {
			v.fail(p.Entry.Seq, p.Pos, Reordered, fmt.Sprintf("seq %d comes before seq %d", p.Entry.Seq, e.Seq))
		} else {
			v.failGap(*p)
		}
		return false
	}
	if sum := e.Sum(); sum != e.Hash {
		v.fail(e.Seq, s.Pos, Edited, "its content does not match its hash")
		return false
	}
	if v.prev == nil {
		v.rep.First = e.Seq
		if e.Seq != 1 {
			if !v.trims {
				v.fail(e.Seq, s.Pos, Removed, fmt.Sprintf("the trail starts at seq %d: entries 1 to %d are missing", e.Seq, e.Seq-1))
				return false
			}
			v.rep.Trimmed = true
		} else if e.Prev != "" {
			v.fail(e.Seq, s.Pos, Inserted, "the first entry links to an earlier one")
			return false
		}
		v.accept(e)
		return true
	}
	want := v.prev.Seq + 1
	switch {
	case e.Seq == want && e.Prev == v.prev.Hash:
		v.accept(e)
		return true
	case e.Seq == want:
		v.fail(e.Seq, s.Pos, Inserted, fmt.Sprintf("it does not link to the entry before it (seq %d): that one replaced the original", v.prev.Seq))
	case e.Seq == v.prev.Seq:
		v.fail(e.Seq, s.Pos, Inserted, fmt.Sprintf("seq %d appears twice", e.Seq))
	case e.Seq < v.prev.Seq:
		v.fail(e.Seq, s.Pos, Reordered, fmt.Sprintf("seq %d comes after seq %d", e.Seq, v.prev.Seq))
	default: // a gap: removed, or the next entry was moved ahead
		v.pending = &s
		return true
	}
	return false
}

func (v *verifier) accept(e Entry) {
	v.rep.Entries++
	v.rep.Last = e.Seq
	v.prev = &e
}

func (v *verifier) failGap(s Stored) {
	v.fail(s.Entry.Seq, s.Pos, Removed, fmt.Sprintf("entries %d to %d before it are missing", v.prev.Seq+1, s.Entry.Seq-1))
}

func (v *verifier) fail(seq uint64, pos string, p Problem, detail string) {
	if v.rep.Broken == nil {
		v.rep.Broken = &Break{Seq: seq, Pos: pos, Problem: p, Detail: detail}
	}
}

// end checks the last entry against the head.
func (v *verifier) end() {
	if v.rep.Broken != nil {
		return
	}
	if v.pending != nil {
		v.failGap(*v.pending)
		return
	}
	h := v.rep.Head
	switch {
	case v.prev == nil && h.Seq == 0:
	case v.prev == nil:
		v.fail(1, "", Removed, fmt.Sprintf("the head is at seq %d but no entry is stored", h.Seq))
	case v.prev.Seq < h.Seq:
		v.fail(v.prev.Seq+1, "", Removed, fmt.Sprintf("the newest entries, %d to %d, are missing", v.prev.Seq+1, h.Seq))
	case v.prev.Seq > h.Seq:
		v.fail(v.prev.Seq, "", Inserted, fmt.Sprintf("entries after the head (seq %d) were added", h.Seq))
	case v.prev.Hash != h.Hash:
		v.fail(v.prev.Seq, "", Edited, "the newest entry does not match the head")
	}
}
