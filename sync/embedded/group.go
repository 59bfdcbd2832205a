package embedded

import (
	bolt "go.etcd.io/bbolt"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/audit"
)

// maxGroupRecords bounds the records one group commit writes, so that a
// transaction (and the memory of its dirty pages) stays bounded however
// many Puts wait. A variable so that tests can make it small.
var maxGroupRecords = 100_000

// putRequest is one Put waiting for its records (and their audit
// entries) to be committed, prepared by prepareAll.
type putRequest struct {
	recs    []authz.Record
	enc     [][]byte             // recs encoded without positions (see prepare)
	index   []indexEntry         // the records' index keys, sorted
	expiry  []expiryEntry        // the records' expiries, sorted
	counts  map[authz.Kind]int64 // the records by kind
	entries func(stored []authz.Record) []audit.Entry
	done    chan error
}

// write stores the request's records and then their audit entries in tx.
func (req *putRequest) write(tx *bolt.Tx) error {
	if err := putRecords(tx, req); err != nil {
		return err
	}
	if req.entries == nil {
		return nil
	}
	for _, e := range req.entries(req.recs) {
		if _, err := appendAudit(tx, e); err != nil {
			return err
		}
	}
	return nil
}

// commit stores req's records, and the audit entries that req.entries
// (when not nil) makes of them once stored, synced to disk, before it returns: Puts that arrive
// while a transaction commits wait and are then written together, in one
// transaction and one pair of syncs (a group commit). On a B+tree that is
// much cheaper per record than one transaction each: index and expiry
// entries land in pages all over their buckets, and every transaction
// rewrites each page it touches. A group that fails is written again call
// by call, so that each Put stays all or nothing on its own.
//
// No Put waits for a timer: the first one commits at once, and the next
// group forms while it does.
func (s *Store) commit(req *putRequest) error {
	s.mu.Lock()
	s.queue = append(s.queue, req)
	lead := !s.leading
	s.leading = true
	s.mu.Unlock()
	if lead {
		s.lead()
	}
	return <-req.done
}

// lead commits one group from the queue. When more Puts have queued
// meanwhile, another goroutine takes the lead, so that the caller of this
// one returns as soon as its own records are durable.
func (s *Store) lead() {
	s.mu.Lock()
	n, size := 0, 0
	for n < len(s.queue) && (n == 0 || size+len(s.queue[n].recs) <= maxGroupRecords) {
		size += len(s.queue[n].recs)
		n++
	}
	group := s.queue[:n:n]
	s.queue = s.queue[n:]
	s.mu.Unlock()

	err := s.update(func(tx *bolt.Tx) error {
		for _, req := range group {
			if err := req.write(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(group) > 1 {
		// One call's records may be at fault: each alone, all or nothing.
		for _, req := range group {
			req.done <- s.update(req.write)
		}
	} else {
		for _, req := range group {
			req.done <- err
		}
	}

	s.mu.Lock()
	close(s.wake)
	s.wake = make(chan struct{})
	more := len(s.queue) > 0
	s.leading = more
	s.mu.Unlock()
	if more {
		go s.lead()
	}
}
