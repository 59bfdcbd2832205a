package embedded

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/jwtguard/jwtguard/sync/audit"
)

var (
	// bucketAudit holds the audit trail: position (big-endian uint64, from
	// the bucket's sequence) -> entry JSON.
	bucketAudit = []byte("audit")
	// keyAuditHead, in the meta bucket, holds the trail's head as JSON.
	keyAuditHead = []byte("audit-head")
)

func createAudit(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists(bucketAudit); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketAudit, err)
	}
	return nil
}

// Audit returns the store's audit trail, kept in the same data file. It
// is never trimmed.
func (s *Store) Audit() audit.Store { return auditStore{s} }

// auditStore is the audit bucket of a Store.
type auditStore struct{ s *Store }

var _ audit.Store = auditStore{}

// Append seals e after the head and stores both in one transaction, synced
// before it returns; bbolt's single writer orders concurrent appends.
func (a auditStore) Append(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	if err := ctx.Err(); err != nil {
		return audit.Entry{}, err
	}
	err := a.s.update(func(tx *bolt.Tx) error {
		var err error
		e, err = appendAudit(tx, e)
		return err
	})
	if err != nil {
		return audit.Entry{}, fmt.Errorf("append audit entry: %w", err)
	}
	return e, nil
}

// appendAudit seals e after the head kept in tx and stores it.
func appendAudit(tx *bolt.Tx, e audit.Entry) (audit.Entry, error) {
	head, err := readAuditHead(tx)
	if err != nil {
		return e, err
	}
	e = audit.Seal(e, head)
	b := tx.Bucket(bucketAudit)
	b.FillPercent = appendFill
	pos, err := b.NextSequence()
	if err != nil {
		return e, fmt.Errorf("next audit position: %w", err)
	}
	data, err := json.Marshal(e)
	if err != nil {
		return e, fmt.Errorf("encode audit entry: %w", err)
	}
	if err := b.Put(posKey(pos), data); err != nil {
		return e, fmt.Errorf("%s: %w", bucketAudit, err)
	}
	hd, err := json.Marshal(audit.Head{Seq: e.Seq, Hash: e.Hash})
	if err != nil {
		return e, err
	}
	return e, tx.Bucket(bucketMeta).Put(keyAuditHead, hd)
}

func readAuditHead(tx *bolt.Tx) (audit.Head, error) {
	var h audit.Head
	v := tx.Bucket(bucketMeta).Get(keyAuditHead)
	if v == nil {
		return h, nil
	}
	if err := json.Unmarshal(v, &h); err != nil {
		return h, fmt.Errorf("%w: audit head does not decode: %w", ErrCorrupt, err)
	}
	return h, nil
}

// Head returns the stored head.
func (a auditStore) Head(ctx context.Context) (audit.Head, error) {
	var h audit.Head
	err := a.s.view(func(tx *bolt.Tx) error {
		var err error
		h, err = readAuditHead(tx)
		return err
	})
	return h, err
}

// Trims is false: the embedded store keeps its whole trail.
func (auditStore) Trims() bool { return false }

// auditScanBatch bounds the entries one read transaction visits, so that a
// long scan does not hold one transaction (and the file's old pages) open.
const auditScanBatch = 1000

// Scan calls fn with the entries after position after (a decimal
// position), oldest first.
func (a auditStore) Scan(ctx context.Context, after string, fn func(audit.Stored) bool) error {
	var from uint64
	if after != "" {
		n, err := strconv.ParseUint(after, 10, 64)
		if err != nil || strconv.FormatUint(n, 10) != after {
			return fmt.Errorf("%w: %q", audit.ErrInvalidCursor, after)
		}
		from = n
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var batch []audit.Stored
		err := a.s.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketAudit).Cursor()
			k, v := c.Seek(posKey(from + 1))
			for ; k != nil && len(batch) < auditScanBatch; k, v = c.Next() {
				if len(k) != 8 {
					return fmt.Errorf("%w: audit key of %d bytes", ErrCorrupt, len(k))
				}
				st := audit.Stored{Pos: strconv.FormatUint(binary.BigEndian.Uint64(k), 10)}
				if err := json.Unmarshal(v, &st.Entry); err != nil {
					st.Err = err
				}
				batch = append(batch, st)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("scan audit trail: %w", err)
		}
		for _, st := range batch {
			if !fn(st) {
				return nil
			}
		}
		if len(batch) < auditScanBatch {
			return nil
		}
		from, _ = strconv.ParseUint(batch[len(batch)-1].Pos, 10, 64)
	}
}
