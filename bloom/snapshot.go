package bloom

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/bits-and-blooms/bloom/v3"
)

// Errors of ReadSnapshot and LoadFile that callers branch on (errors.Is):
// neither means the source is unreachable, both mean "fetch a new snapshot".
var (
	// ErrCorruptSnapshot reports a snapshot that is truncated, damaged or not
	// a snapshot at all.
	ErrCorruptSnapshot = errors.New("bloom: corrupt snapshot")
	// ErrUnsupportedVersion reports a snapshot written in a format version
	// this build cannot read.
	ErrUnsupportedVersion = errors.New("bloom: unsupported snapshot version")
)

// SnapshotVersion is the snapshot format version that WriteSnapshot writes
// and ReadSnapshot reads.
const SnapshotVersion = 1

// snapshotMagic opens every snapshot.
var snapshotMagic = [8]byte{'J', 'W', 'G', 'B', 'L', 'O', 'O', 'M'}

// Header layout (little-endian); see the package documentation.
const (
	offVersion      = 8
	offEntries      = 12
	offFPRate       = 20
	offDeltaEntries = 28
	offPosition     = 36
	offBaseEntries  = 44
	offBaseBits     = 52
	offBaseK        = 60
	offDeltaKeys    = 64
	offHeaderCRC    = 72
	headerSize      = 76
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// chunkWords is how many 64-bit words are encoded per write or read.
const chunkWords = 4096

// WriteSnapshot writes the filter in the snapshot format. It sees the
// filter as it was at one instant and lets Add run meanwhile.
func (f *Filter) WriteSnapshot(w io.Writer) error {
	f.mu.Lock()
	s := f.cur.Load()
	keys, pos := s.keys, s.pos.Load()
	f.mu.Unlock()

	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(w, 64<<10)
	out := io.MultiWriter(bw, crc)

	var h [headerSize]byte
	copy(h[:], snapshotMagic[:])
	le := binary.LittleEndian
	le.PutUint32(h[offVersion:], SnapshotVersion)
	le.PutUint64(h[offEntries:], uint64(s.cfg.Entries))
	le.PutUint64(h[offFPRate:], math.Float64bits(s.cfg.FPRate))
	le.PutUint64(h[offDeltaEntries:], uint64(s.cfg.DeltaEntries))
	le.PutUint64(h[offPosition:], pos)
	le.PutUint64(h[offBaseEntries:], s.base.entries)
	le.PutUint64(h[offBaseBits:], s.base.m)
	le.PutUint32(h[offBaseK:], uint32(s.base.k))
	le.PutUint64(h[offDeltaKeys:], uint64(len(keys)))
	le.PutUint32(h[offHeaderCRC:], crc32.Checksum(h[:offHeaderCRC], castagnoli))
	if _, err := out.Write(h[:]); err != nil {
		return fmt.Errorf("bloom: write snapshot: %w", err)
	}

	buf := make([]byte, 0, 8*chunkWords)
	flush := func() error {
		_, err := out.Write(buf)
		buf = buf[:0]
		return err
	}
	for _, word := range s.base.words {
		buf = le.AppendUint64(buf, word)
		if len(buf) == cap(buf) {
			if err := flush(); err != nil {
				return fmt.Errorf("bloom: write snapshot: %w", err)
			}
		}
	}
	for _, k := range keys {
		if len(buf)+16 > cap(buf) {
			if err := flush(); err != nil {
				return fmt.Errorf("bloom: write snapshot: %w", err)
			}
		}
		buf = le.AppendUint64(le.AppendUint64(buf, k.H1), k.H2)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("bloom: write snapshot: %w", err)
	}
	if _, err := bw.Write(le.AppendUint32(nil, crc.Sum32())); err != nil {
		return fmt.Errorf("bloom: write snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("bloom: write snapshot: %w", err)
	}
	return nil
}

// ReadSnapshot reads one filter written by WriteSnapshot, and no byte
// past it. A damaged or truncated snapshot yields an error wrapping
// ErrCorruptSnapshot; one from another format version, ErrUnsupportedVersion.
//
// It allocates in proportion to the bytes it actually reads, never to the
// sizes a header claims: a reader that knows how many bytes it holds
// (Len, as bytes.Reader and bytes.Buffer have) has a header claiming more
// refused before anything is allocated, and any other has its data read in
// chunks, so a short snapshot fails as soon as it runs out.
func ReadSnapshot(r io.Reader) (*Filter, error) {
	size := int64(-1)
	if l, ok := r.(interface{ Len() int }); ok {
		size = int64(l.Len())
	}
	return readSnapshot(r, size, false)
}

// crcReader feeds what it reads to a hash.
type crcReader struct {
	r io.Reader
	h hash.Hash32
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	return n, err
}

// readFull is io.ReadFull that reports a short read as corruption.
func readFull(r io.Reader, p []byte, what string) error {
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: truncated in %s", ErrCorruptSnapshot, what)
		}
		return fmt.Errorf("bloom: read snapshot %s: %w", what, err)
	}
	return nil
}

// snapshotLen returns the length in bytes of a snapshot whose base has
// words words and whose delta holds nKeys keys, and false when it exceeds
// any length a reader could hold.
func snapshotLen(words, nKeys uint64) (uint64, bool) {
	const limit = math.MaxInt64
	if words > (limit-headerSize-4)/8 || nKeys > (limit-headerSize-4-8*words)/16 {
		return 0, false
	}
	return headerSize + 8*words + 16*nKeys + 4, true
}

// readSnapshot reads a snapshot from r, which holds size bytes (-1: not
// known). With exact, those bytes must be the snapshot and nothing more.
func readSnapshot(r io.Reader, size int64, exact bool) (*Filter, error) {
	cr := &crcReader{r: r, h: crc32.New(castagnoli)}
	le := binary.LittleEndian

	var h [headerSize]byte
	if err := readFull(cr, h[:], "header"); err != nil {
		return nil, err
	}
	if [8]byte(h[:8]) != snapshotMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrCorruptSnapshot, h[:8])
	}
	if v := le.Uint32(h[offVersion:]); v != SnapshotVersion {
		return nil, fmt.Errorf("%w: version %d, this build reads %d", ErrUnsupportedVersion, v, SnapshotVersion)
	}
	if got, want := crc32.Checksum(h[:offHeaderCRC], castagnoli), le.Uint32(h[offHeaderCRC:]); got != want {
		return nil, fmt.Errorf("%w: header checksum %08x, want %08x", ErrCorruptSnapshot, got, want)
	}
	entries, deltaEntries := le.Uint64(h[offEntries:]), le.Uint64(h[offDeltaEntries:])
	if entries > maxEntries || deltaEntries > maxDeltaEntries {
		return nil, fmt.Errorf("%w: config out of range", ErrCorruptSnapshot)
	}
	cfg := Config{
		Entries:      uint(entries),
		FPRate:       math.Float64frombits(le.Uint64(h[offFPRate:])),
		DeltaEntries: uint(deltaEntries),
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
	}
	m, k := cfg.baseParams()
	if le.Uint64(h[offBaseBits:]) != uint64(m) || le.Uint32(h[offBaseK:]) != uint32(k) {
		return nil, fmt.Errorf("%w: base of %d bits and %d probes does not match its config (%d, %d)",
			ErrCorruptSnapshot, le.Uint64(h[offBaseBits:]), le.Uint32(h[offBaseK:]), m, k)
	}
	pos, baseEntries, nKeys := le.Uint64(h[offPosition:]), le.Uint64(h[offBaseEntries:]), le.Uint64(h[offDeltaKeys:])
	nWords := (uint64(m) + 63) / 64
	want, ok := snapshotLen(nWords, nKeys)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: header claims %d base words and %d delta keys, more than any snapshot holds", ErrCorruptSnapshot, nWords, nKeys)
	case size >= 0 && uint64(size) < want:
		return nil, fmt.Errorf("%w: header claims %d bytes (%d base bits, %d delta keys), only %d are there",
			ErrCorruptSnapshot, want, m, nKeys, size)
	case exact && uint64(size) > want:
		return nil, fmt.Errorf("%w: header claims %d bytes, %d are there", ErrCorruptSnapshot, want, size)
	}

	// Unless the size is known, grow words as they arrive: a header alone
	// does not justify an allocation.
	var words []uint64
	if size >= 0 {
		words = make([]uint64, 0, nWords)
	}
	buf := make([]byte, 8*chunkWords)
	for left := nWords; left > 0; {
		n := min(left, chunkWords)
		p := buf[:8*n]
		if err := readFull(cr, p, "base"); err != nil {
			return nil, err
		}
		if free := uint64(cap(words) - len(words)); free < n {
			// Double, up to the claimed size, so that the last growth
			// lands on it exactly.
			words = slices.Grow(words, int(min(left, max(n, uint64(len(words))))))
		}
		for j := range n {
			words = append(words, le.Uint64(p[8*j:]))
		}
		left -= n
	}
	if tail := m % 64; tail != 0 && words[len(words)-1]>>tail != 0 {
		return nil, fmt.Errorf("%w: bits set past the end of the base", ErrCorruptSnapshot)
	}

	// Likewise keys: a count alone does not justify an allocation.
	var keys []Key
	if size >= 0 {
		keys = make([]Key, 0, nKeys)
	}
	for left := nKeys; left > 0; {
		n := min(left, uint64(len(buf)/16))
		p := buf[:16*n]
		if err := readFull(cr, p, "delta"); err != nil {
			return nil, err
		}
		for j := 0; j < len(p); j += 16 {
			keys = append(keys, Key{H1: le.Uint64(p[j:]), H2: le.Uint64(p[j+8:])})
		}
		left -= n
	}

	sum := cr.h.Sum32()
	var t [4]byte
	if err := readFull(r, t[:], "trailer"); err != nil {
		return nil, err
	}
	if want := le.Uint32(t[:]); sum != want {
		return nil, fmt.Errorf("%w: checksum %08x, want %08x", ErrCorruptSnapshot, sum, want)
	}

	b := baseFrom(bloom.FromWithM(words, m, k), baseEntries)
	f := &Filter{}
	f.cur.Store(newState(cfg, b, newDelta(cfg), keys, pos))
	return f, nil
}

// SaveFile writes the filter's snapshot to path atomically: to a temporary
// file in the same directory, synced, renamed over path, then the directory
// synced. A crash leaves either the old file or the new one. The file is
// readable by its owner only.
func (f *Filter) SaveFile(path string) (err error) {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("bloom: save snapshot %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("bloom: save snapshot %s: %w", path, err)
		}
	}()
	if err := f.WriteSnapshot(tmp); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// LoadFile reads a snapshot written by SaveFile. Its errors name path and
// keep os.ErrNotExist, ErrCorruptSnapshot and ErrUnsupportedVersion
// detectable with errors.Is. Bytes after the snapshot are corruption.
func LoadFile(path string) (*Filter, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bloom: load snapshot: %w", err) // *PathError names path
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("bloom: load snapshot: %w", err)
	}
	br := bufio.NewReaderSize(file, 64<<10)
	f, err := readSnapshot(br, info.Size(), true)
	if err != nil {
		return nil, fmt.Errorf("bloom: load snapshot %s: %w", path, err)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("%w: data after the snapshot", ErrCorruptSnapshot)
		}
		return nil, fmt.Errorf("bloom: load snapshot %s: %w", path, err)
	}
	return f, nil
}
