package bloom

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/v1.snap")

// roundTrip writes f's snapshot and reads it back.
func roundTrip(t *testing.T, f *Filter) *Filter {
	t.Helper()
	var buf bytes.Buffer
	if err := f.WriteSnapshot(&buf); err != nil {
		t.Fatalf("WriteSnapshot: %v", err)
	}
	g, err := ReadSnapshot(&buf)
	if err != nil {
		t.Fatalf("ReadSnapshot: %v", err)
	}
	if buf.Len() != 0 {
		t.Fatalf("ReadSnapshot left %d bytes unread", buf.Len())
	}
	return g
}

// snapshotFixture returns a small filter with keys in its base and its delta.
func snapshotFixture(t *testing.T) (*Filter, []Key) {
	t.Helper()
	keys := make([]Key, 30)
	for i := range keys {
		keys[i] = KeyOfString(fmt.Sprintf("revoked-%d", i))
	}
	f := mustNew(t, smallConfig)
	rebuildFrom(t, f, smallConfig, 10, keys[:20])
	for i, k := range keys[20:] {
		f.Add(k, uint64(11+i))
	}
	return f, keys
}

// snapshotBytes returns the snapshot of f.
func snapshotBytes(t *testing.T, f *Filter) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f.WriteSnapshot(&buf); err != nil {
		t.Fatalf("WriteSnapshot: %v", err)
	}
	return buf.Bytes()
}

func TestSnapshotRoundTrip(t *testing.T) {
	f, keys := snapshotFixture(t)
	g := roundTrip(t, f)
	requireAll(t, g, keys)
	if g.Position() != f.Position() || g.Config() != f.Config() {
		t.Errorf("round trip: Position %d, Config %+v; want %d, %+v", g.Position(), g.Config(), f.Position(), f.Config())
	}
	if got, want := g.Stats(), f.Stats(); got != want {
		t.Errorf("round trip: Stats %+v, want %+v", got, want)
	}
	if !bytes.Equal(snapshotBytes(t, g), snapshotBytes(t, f)) {
		t.Errorf("a snapshot read back writes different bytes")
	}
	// The copy lives on: it compacts and grows like the original.
	if err := g.Compact(); err != nil {
		t.Fatal(err)
	}
	extra := KeyOfString("extra")
	g.Add(extra, 99)
	requireAll(t, g, append(keys, extra))
}

// TestSnapshotGolden pins the format: a version 1 snapshot written by an
// earlier build must keep loading, and this build must write the same bytes.
func TestSnapshotGolden(t *testing.T) {
	path := filepath.Join("testdata", "v1.snap")
	f, keys := snapshotFixture(t)
	if *update {
		if err := f.SaveFile(path); err != nil {
			t.Fatal(err)
		}
	}
	g, err := LoadFile(path)
	if err != nil {
		t.Fatalf("LoadFile: %v (run go test -run TestSnapshotGolden -update to create it)", err)
	}
	requireAll(t, g, keys)
	if g.Position() != 20 || g.Config() != smallConfig {
		t.Errorf("golden: Position %d, Config %+v; want 20, %+v", g.Position(), g.Config(), smallConfig)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, f), want) {
		t.Errorf("this build writes a different snapshot than testdata/v1.snap: the format changed without a new version")
	}
}

func TestReadSnapshotRejects(t *testing.T) {
	f, _ := snapshotFixture(t)
	good := snapshotBytes(t, f)
	edit := func(fn func(b []byte) []byte) []byte { return fn(bytes.Clone(good)) }
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrCorruptSnapshot},
		{"bad magic", edit(func(b []byte) []byte { b[0] = 'X'; return b }), ErrCorruptSnapshot},
		{"next version", edit(func(b []byte) []byte { b[offVersion]++; return b }), ErrUnsupportedVersion},
		{"version 0", edit(func(b []byte) []byte { b[offVersion] = 0; return b }), ErrUnsupportedVersion},
		{"last byte", edit(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrCorruptSnapshot},
		{"not a snapshot", []byte(strings.Repeat("hello, world\n", 20)), ErrCorruptSnapshot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadSnapshot(bytes.NewReader(tt.data))
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadSnapshot = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReadSnapshotRejectsEveryFlippedByte(t *testing.T) {
	f, _ := snapshotFixture(t)
	good := snapshotBytes(t, f)
	for off := range good {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(good)
			bad[off] ^= mask
			_, err := ReadSnapshot(bytes.NewReader(bad))
			want := ErrCorruptSnapshot
			if off >= offVersion && off < offVersion+4 {
				want = ErrUnsupportedVersion
			}
			if !errors.Is(err, want) {
				t.Fatalf("byte %d of %d xor %#x: ReadSnapshot = %v, want %v", off, len(good), mask, err, want)
			}
		}
	}
}

func TestReadSnapshotRejectsTruncation(t *testing.T) {
	f, _ := snapshotFixture(t)
	good := snapshotBytes(t, f)
	for n := range len(good) {
		if _, err := ReadSnapshot(bytes.NewReader(good[:n])); !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("first %d of %d bytes: ReadSnapshot = %v, want %v", n, len(good), err, ErrCorruptSnapshot)
		}
	}
}

func TestReadSnapshotReadsNoFurther(t *testing.T) {
	f, keys := snapshotFixture(t)
	g := mustNew(t, smallConfig)
	other := KeyOfString("other")
	g.Add(other, 3)
	stream := bytes.NewReader(append(snapshotBytes(t, f), snapshotBytes(t, g)...))
	f2, err := ReadSnapshot(stream)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := ReadSnapshot(stream)
	if err != nil {
		t.Fatal(err)
	}
	requireAll(t, f2, keys)
	requireAll(t, g2, []Key{other})
}

func TestReadSnapshotPassesReadErrors(t *testing.T) {
	errDisk := errors.New("disk on fire")
	f, _ := snapshotFixture(t)
	r := io.MultiReader(bytes.NewReader(snapshotBytes(t, f)[:100]), errReader{errDisk})
	_, err := ReadSnapshot(r)
	if !errors.Is(err, errDisk) || errors.Is(err, ErrCorruptSnapshot) {
		t.Fatalf("ReadSnapshot = %v, want %v and not corruption", err, errDisk)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestWriteSnapshotPassesWriteErrors(t *testing.T) {
	f, _ := snapshotFixture(t)
	errDisk := errors.New("disk full")
	if err := f.WriteSnapshot(errWriter{errDisk}); !errors.Is(err, errDisk) {
		t.Fatalf("WriteSnapshot = %v, want %v", err, errDisk)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

func TestSaveLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "filter.snap")
	old := mustNew(t, smallConfig)
	old.Add(Key{H1: 1, H2: 1}, 1)
	if err := old.SaveFile(path); err != nil {
		t.Fatalf("SaveFile: %v", err)
	}
	f, keys := snapshotFixture(t)
	if err := f.SaveFile(path); err != nil { // over the old one
		t.Fatalf("SaveFile: %v", err)
	}
	g, err := LoadFile(path)
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	requireAll(t, g, keys)
	if g.Position() != f.Position() || g.Config() != f.Config() {
		t.Errorf("LoadFile: Position %d, Config %+v; want %d, %+v", g.Position(), g.Config(), f.Position(), f.Config())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d files after SaveFile, want only the snapshot", len(entries))
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	f, _ := snapshotFixture(t)
	good := snapshotBytes(t, f)
	write := func(name string, data []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		path string
		want error
	}{
		{"missing", filepath.Join(dir, "missing.snap"), os.ErrNotExist},
		{"truncated", write("short.snap", good[:len(good)/2]), ErrCorruptSnapshot},
		{"trailing bytes", write("long.snap", append(bytes.Clone(good), 0)), ErrCorruptSnapshot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadFile(tt.path)
			if !errors.Is(err, tt.want) {
				t.Fatalf("LoadFile = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error %q does not name %s", err, tt.path)
			}
		})
	}
}

func TestSaveFileMissingDir(t *testing.T) {
	f, _ := snapshotFixture(t)
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "f.snap")
	if err := f.SaveFile(path); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("SaveFile = %v, want os.ErrNotExist naming %s", err, path)
	}
}

func FuzzReadSnapshot(f *testing.F) {
	good, err := os.ReadFile(filepath.Join("testdata", "v1.snap"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:headerSize])
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ReadSnapshot(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrCorruptSnapshot) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("ReadSnapshot = %v, want a corruption or version error", err)
			}
			return
		}
		// Whatever it accepted must work and write back the same bytes.
		g.MayContain(Key{H1: 1, H2: 2})
		var buf bytes.Buffer
		if err := g.WriteSnapshot(&buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), data[:buf.Len()]) {
			t.Fatalf("accepted snapshot writes back differently")
		}
	})
}

// forgeHeader returns the header of good with edit applied and its checksum
// made right again, as a forger would.
func forgeHeader(good []byte, edit func(h []byte)) []byte {
	h := bytes.Clone(good[:headerSize])
	edit(h)
	binary.LittleEndian.PutUint32(h[offHeaderCRC:], crc32.Checksum(h[:offHeaderCRC], castagnoli))
	return h
}

// onlyReader hides every method of r but Read, so the reader cannot tell
// how many bytes there are.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// TestReadSnapshotForgedHeaders feeds snapshots whose (checksummed) header
// claims far more than the bytes behind it. Each read must fail with
// ErrCorruptSnapshot having allocated little, whether the reader knows its
// size (bytes.Reader, a file) or not: a 76-byte file claiming a base of
// tens of GiB used to make the node allocate it and die.
func TestReadSnapshotForgedHeaders(t *testing.T) {
	f, _ := snapshotFixture(t)
	good := snapshotBytes(t, f)
	le := binary.LittleEndian
	huge := Config{Entries: maxEntries, FPRate: minFPRate, DeltaEntries: maxDeltaEntries}
	hugeM, hugeK := huge.baseParams()
	hugeBase := func(h []byte) {
		le.PutUint64(h[offEntries:], uint64(huge.Entries))
		le.PutUint64(h[offFPRate:], math.Float64bits(huge.FPRate))
		le.PutUint64(h[offDeltaEntries:], uint64(huge.DeltaEntries))
		le.PutUint64(h[offBaseBits:], uint64(hugeM))
		le.PutUint32(h[offBaseK:], uint32(hugeK))
	}
	body := good[headerSize:]
	tests := []struct {
		name string
		data []byte
	}{
		{"huge base, header alone", forgeHeader(good, hugeBase)},
		{"huge base, the real body behind", append(forgeHeader(good, hugeBase), body...)},
		{"huge delta key count", append(forgeHeader(good, func(h []byte) { le.PutUint64(h[offDeltaKeys:], 1<<40) }), body...)},
		{"delta key count past any length", append(forgeHeader(good, func(h []byte) { le.PutUint64(h[offDeltaKeys:], math.MaxUint64) }), body...)},
		{"huge delta config and key count", append(forgeHeader(good, func(h []byte) {
			le.PutUint64(h[offDeltaEntries:], maxDeltaEntries)
			le.PutUint64(h[offDeltaKeys:], maxDeltaEntries)
		}), body...)},
		{"one key more than there is", append(forgeHeader(good, func(h []byte) { le.PutUint64(h[offDeltaKeys:], le.Uint64(h[offDeltaKeys:])+1) }), body...)},
		{"truncated body", append(forgeHeader(good, func([]byte) {}), body[:len(body)/2]...)},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		path := filepath.Join(dir, fmt.Sprint(i, ".snap"))
		if err := os.WriteFile(path, tt.data, 0o600); err != nil {
			t.Fatal(err)
		}
		reads := []struct {
			name string
			read func() error
		}{
			{"ReadSnapshot of bytes", func() error { _, err := ReadSnapshot(bytes.NewReader(tt.data)); return err }},
			{"ReadSnapshot of a stream", func() error { _, err := ReadSnapshot(onlyReader{bytes.NewReader(tt.data)}); return err }},
			{"LoadFile", func() error { _, err := LoadFile(path); return err }},
		}
		for _, rd := range reads {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				var err error
				allocated := bytesAllocated(func() { err = rd.read() })
				if !errors.Is(err, ErrCorruptSnapshot) {
					t.Fatalf("read = %v, want %v", err, ErrCorruptSnapshot)
				}
				// The real snapshot is a few KiB; a forged one may cost a
				// small multiple of what it holds, never what it claims.
				const limit = 1 << 20
				if allocated > limit {
					t.Errorf("read allocated %d bytes before failing, want at most %d", allocated, limit)
				}
			})
		}
	}
}

// bytesAllocated returns the bytes allocated on the heap while fn ran.
func bytesAllocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
