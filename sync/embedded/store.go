package embedded

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/jwtguard/jwtguard/sync/source"
)

// FileName is the name of the data file inside the data directory.
const FileName = "revocations.db"

// Errors callers branch on.
var (
	// ErrInUse: another process (or another Store) holds the data file.
	ErrInUse = errors.New("data file in use")
	// ErrCorrupt: the data file is not a revocation store or is damaged.
	ErrCorrupt = errors.New("data file corrupt")
	// ErrClosed: the Store has been closed.
	ErrClosed = errors.New("store closed")
	// ErrInvalidCursor: a List cursor that this store did not issue.
	ErrInvalidCursor = source.ErrInvalidCursor
)

// Options tunes a Store. The zero value is ready to use.
type Options struct {
	// Now is the clock that decides expiry and fills CreatedAt; tests set
	// it. Default time.Now.
	Now func() time.Time
	// OpenTimeout bounds the wait for the data file's lock, so that a second
	// process on the same data directory fails with ErrInUse instead of
	// hanging. Default 1s.
	OpenTimeout time.Duration
}

// Store is the embedded revocation source, kept in one bbolt file. It is
// safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	now  func() time.Time

	mu      sync.Mutex
	wake    chan struct{} // closed and replaced by every commit of Puts
	queue   []*putRequest // Puts waiting for the next group commit
	leading bool          // a goroutine is committing a group
	waiting atomic.Int32  // Feed calls waiting for a Put
	closed  chan struct{} // closed by Close
	once    sync.Once

	nodesMu sync.Mutex
	nodes   map[string]source.NodeStatus // mesh status reports (see Report)
}

var (
	_ source.Source = (*Store)(nil)
	_ source.Pruner = (*Store)(nil)
)

// Open opens the store in dir, creating dir (mode 0700) and its data file
// when they do not exist.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = time.Second
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := openBolt(path, opts.OpenTimeout)
	if err != nil {
		return nil, err
	}
	s := &Store{
		db:     db,
		path:   path,
		now:    opts.Now,
		wake:   make(chan struct{}),
		closed: make(chan struct{}),
	}
	if err := s.init(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// initialMmapSize is the size of a new data file's first memory map: 1
// GiB of address space, not of memory (pages are read in as they are
// touched).
const initialMmapSize = 1 << 30

// pageSize is the page size of a new data file.
const pageSize = 16 << 10

// openBolt opens the bbolt file at path. bbolt panics (or faults on the
// memory map) on some damaged files; that becomes an ErrCorrupt error, and
// the file it opened is closed so that its lock is released.
func openBolt(path string, timeout time.Duration) (db *bolt.DB, err error) {
	var file *os.File
	mmapSize := 0
	if fi, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) || err == nil && fi.Size() == 0 {
		mmapSize = initialMmapSize
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				_ = file.Close()
			}
			db, err = nil, fmt.Errorf("open %s: %w (bbolt: %v)", path, ErrCorrupt, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      timeout,
		FreelistType: bolt.FreelistMapType,
		// Address space only, and for a new file only: a map this large
		// from the start spares a growing file the remaps that copy every
		// page a transaction has touched out of the old map (a quarter of
		// a bulk load's CPU). An existing file keeps bbolt's map of about
		// its own size, whose bounds checks catch a file cut short.
		InitialMmapSize: mmapSize,
		// For a new file only (an existing one keeps its own): pages of
		// 16 KiB take a bulk load's appended records in a quarter of
		// the pages, and so of the writes, of 4 KiB ones.
		PageSize: pageSize,
		OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, mode)
			file = f
			return f, err
		},
	})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open %s: %w by another process (lock not acquired within %v)", path, ErrInUse, timeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrInvalidMapping),
		file != nil && !isSystemError(err):
		// bbolt reports some damage with plain errors ("file size too
		// small"): once the file is open, an error that is not from the
		// system is about its content.
		return nil, fmt.Errorf("open %s: %w: %w", path, ErrCorrupt, err)
	default:
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
}

// isSystemError reports whether err comes from the operating system (I/O,
// permissions, memory) rather than from what the file holds.
func isSystemError(err error) bool {
	var errno syscall.Errno
	var pathErr *fs.PathError
	return errors.As(err, &errno) || errors.As(err, &pathErr)
}

// init creates the buckets of a new file, or checks those of an existing
// one, upgrading a file of an earlier schema (see upgradeV2).
func (s *Store) init() error {
	upgrade := false
	err := s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if bucketCount(tx) > 0 {
				return fmt.Errorf("%w: not a revocation store (no meta bucket)", ErrCorrupt)
			}
			for _, name := range [][]byte{bucketMeta, bucketRecords, bucketFeed, bucketIndex, bucketExpiry, bucketLifts} {
				if _, err := tx.CreateBucket(name); err != nil {
					return fmt.Errorf("create bucket %s: %w", name, err)
				}
			}
			if err := tx.Bucket(bucketMeta).Put(keyVersion, []byte(schemaVersion)); err != nil {
				return err
			}
			return createAudit(tx)
		}
		switch v := meta.Get(keyVersion); string(v) {
		case schemaVersion:
		case schemaV1: // before lifts: their bucket is all it lacks
			if _, err := tx.CreateBucketIfNotExists(bucketLifts); err != nil {
				return fmt.Errorf("upgrade to schema %s: create bucket %s: %w", schemaV2, bucketLifts, err)
			}
			if err := meta.Put(keyVersion, []byte(schemaV2)); err != nil {
				return fmt.Errorf("upgrade to schema %s: %w", schemaV2, err)
			}
			fallthrough
		case schemaV2, schemaUpgrading:
			if err := startUpgradeV2(tx); err != nil {
				return fmt.Errorf("upgrade to schema %s: %w", schemaVersion, err)
			}
			upgrade = true
		default:
			return fmt.Errorf("%w: schema version %q, want %q", ErrCorrupt, v, schemaVersion)
		}
		for _, name := range [][]byte{bucketRecords, bucketFeed, bucketIndex, bucketExpiry, bucketLifts} {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("%w: bucket %s is missing", ErrCorrupt, name)
			}
		}
		return createAudit(tx) // files from before the audit trail have none
	})
	if err != nil || !upgrade {
		return err
	}
	return s.upgradeV2()
}

func bucketCount(tx *bolt.Tx) int {
	n := 0
	_ = tx.ForEach(func([]byte, *bolt.Bucket) error { n++; return nil })
	return n
}

// view runs fn in a read transaction. A panic or memory fault inside bbolt
// (a damaged file) becomes an error naming the file; errors wrapping
// ErrCorrupt get the file name too.
func (s *Store) view(fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.recoverCorrupt(&err)
	return s.fileErr(s.db.View(fn))
}

// update is view for a read-write transaction, committed (and synced) when
// fn returns nil.
func (s *Store) update(fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.recoverCorrupt(&err)
	return s.fileErr(s.db.Update(fn))
}

func (s *Store) recoverCorrupt(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: %w (bbolt: %v)", s.path, ErrCorrupt, r)
	}
}

func (s *Store) fileErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return fmt.Errorf("%s: %w", s.path, ErrClosed)
	case errors.Is(err, ErrCorrupt):
		return fmt.Errorf("%s: %w", s.path, err)
	default:
		return err
	}
}

// Path returns the data file's path.
func (s *Store) Path() string { return s.path }

// Close releases the data file and its lock, and ends waiting Feed calls
// with ErrClosed.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closed)
		if cerr := s.db.Close(); cerr != nil {
			err = fmt.Errorf("close %s: %w", s.path, cerr)
		}
	})
	return err
}
