package admin

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/audit"
	"github.com/jwtguard/jwtguard/sync/embedded"
)

// importRecords is the size of BenchmarkImport: JWTGUARD_IMPORT_RECORDS, or
// 10,000 so that the test command's single run stays quick.
func importRecords(b *testing.B) int {
	b.Helper()
	v := os.Getenv("JWTGUARD_IMPORT_RECORDS")
	if v == "" {
		return 10_000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("JWTGUARD_IMPORT_RECORDS=%q: want a positive count", v)
	}
	return n
}

// importChunk is JWTGUARD_IMPORT_CHUNK, or 0 (the default chunk).
func importChunk(b *testing.B) int {
	b.Helper()
	v := os.Getenv("JWTGUARD_IMPORT_CHUNK")
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("JWTGUARD_IMPORT_CHUNK=%q: want a positive count", v)
	}
	return n
}

// ndjsonTokens is n token records (random-looking jti), one a line.
func ndjsonTokens(n int) []byte {
	var out []byte
	for i := range n {
		out = fmt.Appendf(out, `{"kind":"token","issuer":"https://idp.example","value":"%016x%016x"}`+"\n",
			uint64(i)*0x9E3779B97F4A7C15, uint64(i))
	}
	return out
}

// BenchmarkImport streams n token records through POST
// /v1/revocations/import of a real handler over a real embedded store
// (audit trail in the store, logs discarded), over loopback HTTP, and
// reports records per second and per second of this process's CPU
// (client and server together). JWTGUARD_IMPORT_RECORDS=1000000 is the
// mass revocation of bench/SCALE.md.
func BenchmarkImport(b *testing.B) {
	n := importRecords(b)
	body := ndjsonTokens(n)
	var elapsed, cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		store, err := embedded.Open(b.TempDir(), embedded.Options{})
		if err != nil {
			b.Fatal(err)
		}
		f, err := bloom.New(bloom.DefaultConfig())
		if err != nil {
			b.Fatal(err)
		}
		rev, err := authz.NewRevocations(f, store, authz.DefaultRevocationConfig())
		if err != nil {
			b.Fatal(err)
		}
		log := audit.NewLog(store.Audit(), audit.WithNode("bench"))
		h := NewHandler(store, rev, Config{Audit: log, ImportChunk: importChunk(b)}, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		srv := httptest.NewServer(h)
		c := &Client{BaseURL: srv.URL}
		b.StartTimer()
		start, cpu0 := time.Now(), cpuTime()
		res, err := c.Import(context.Background(), bytesReader(body), "bench", "scale")
		elapsed += time.Since(start)
		cpu += cpuTime() - cpu0
		b.StopTimer()
		srv.Close()
		_ = store.Close()
		if err != nil || res.Stored != n {
			b.Fatalf("import: stored %d of %d: %v", res.Stored, n, err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(n*b.N)/cpu.Seconds(), "records/cpu-s")
}

// bytesReader reads data; a fresh one for each import.
func bytesReader(data []byte) io.Reader { return bytes.NewReader(data) }

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
