package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/jwtguard/jwtguard/sync/admin"
)

// importBytesPerTimeout is how much of a file one --timeout covers in an
// import: the old batch's bound on a body, so that a large file gets time
// in proportion and a stalled server is still given up on.
const importBytesPerTimeout = 16 << 20

// importFile revokes the records of f.fromFile through the server's
// streamed import (POST /v1/revocations/import): the file is sent as it
// is read, never held whole; the server validates every line, stores
// the records in chunks (each all or nothing, synced) and answers which
// lines it stored and which it rejected. The summary says so; when the
// import stopped, it names the line and says that the lines from there on
// were not stored.
func importFile(ctx context.Context, base *admin.Client, f *revokeFlags, stdout, stderr io.Writer) error {
	file, err := os.Open(f.fromFile)
	if err != nil {
		return fmt.Errorf("revoke: --from-file: %w", err)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return fmt.Errorf("revoke: --from-file: %w", err)
	}
	size := fi.Size()
	timeout := f.timeout * time.Duration(1+size/importBytesPerTimeout)
	ictx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := *base
	client.HTTP = &http.Client{} // the context bounds the import
	prog := newProgress(stderr, int(size))
	prog.unit = "bytes"
	body := &countingReader{r: file, prog: prog}
	res, err := client.Import(ictx, body, f.actor, f.reason)
	body.finish()
	printWarnings(stderr, res.Warnings)
	if perr := printImportSummary(stdout, res); perr != nil {
		return perr
	}
	if err != nil {
		if res.Error != "" {
			return fmt.Errorf("revoke: stopped at line %d after %d stored (lines after the last stored chunk were not stored): %w", res.Line, res.Stored, err)
		}
		return fmt.Errorf("revoke: import: %w (records stored before it failed: see the server's log and audit trail)", err)
	}
	if res.Stored > 0 {
		if err := f.waitFlags.wait(ctx, base, stderr, res.LastPosition()); err != nil {
			return err
		}
	}
	if len(res.Rejected) > 0 {
		return fmt.Errorf("revoke: %d of %d records rejected", len(res.Rejected), res.Stored+len(res.Rejected))
	}
	return nil
}

// printImportSummary prints "accepted N, rejected M", the rejected lines
// and the chunks stored (lines, positions and digest).
func printImportSummary(w io.Writer, res admin.ImportResult) error {
	fmt.Fprintf(w, "accepted %d, rejected %d\n", res.Stored, len(res.Rejected))
	for _, r := range res.Rejected {
		fmt.Fprintf(w, "  line %d: %s\n", r.Line, tableCell(r.Error))
	}
	for _, c := range res.Chunks {
		fmt.Fprintf(w, "  stored lines %d-%d: %d records at positions %d-%d (sha256 %s)\n",
			c.FirstLine, c.LastLine, c.Stored, c.FirstPosition, c.LastPosition, c.Digest)
	}
	if res.Error != "" {
		fmt.Fprintf(w, "  stopped at line %d: %s\n", res.Line, tableCell(res.Error))
	}
	return nil
}

// countingReader reports the bytes read through it to a progress.
type countingReader struct {
	r    io.Reader
	mu   sync.Mutex
	prog *progress
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.mu.Lock()
	c.prog.add(n)
	c.mu.Unlock()
	return n, err
}

func (c *countingReader) finish() {
	c.mu.Lock()
	c.prog.finish()
	c.mu.Unlock()
}
