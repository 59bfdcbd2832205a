package admin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/audit"
	"github.com/jwtguard/jwtguard/sync/source"
)

// pathImport is the streamed import of newline-delimited JSON records.
const pathImport = pathRevocations + "/import"

// ImportContentType is the Content-Type of an import body: one JSON record
// a line. A browser cannot send it cross-origin without a preflight.
const ImportContentType = "application/x-ndjson"

// Bounds of an import.
const (
	// MaxImportLine bounds one line of an import body, in bytes.
	MaxImportLine = 64 << 10
	// MaxImportRejected bounds the lines an import rejects before it
	// stops: a stream of garbage ends early.
	MaxImportRejected = 1000
	// importChunkTimeout is how long the server waits for the next chunk
	// of an import's body: each chunk gets this much anew, so a slow
	// sender is cut off, a long import is not.
	importChunkTimeout = time.Minute
	// maxIssuerWarnings bounds the distinct unconfigured issuers an import
	// warns about.
	maxIssuerWarnings = 10
)

// ImportChunk is what one chunk of an import stored: the records of its
// lines, all or nothing, in one transaction synced to disk.
type ImportChunk struct {
	// FirstLine and LastLine are the body's lines the chunk spans (1-based;
	// lines rejected in between are listed in Rejected, not stored).
	FirstLine int `json:"first_line"`
	LastLine  int `json:"last_line"`
	// Stored is the count of records stored.
	Stored int `json:"stored"`
	// FirstPosition and LastPosition are the feed positions of its first
	// and last record (a source gives a batch increasing positions).
	FirstPosition uint64 `json:"first_position"`
	LastPosition  uint64 `json:"last_position"`
	// Digest is the hex SHA-256 of the stored records' audit targets
	// (kind, issuer, value, before, id), one a line: the audit entry of the
	// chunk names it.
	Digest string `json:"digest"`
}

// Rejection is a line of an import that was not stored, and why.
type Rejection struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// ImportResult is the answer of an import: what was stored, chunk by
// chunk, the lines rejected, and, when the import stopped before the end of
// the body, why (Error) and at which line (Line). Lines after the last
// chunk were not stored.
type ImportResult struct {
	Stored   int           `json:"stored"`
	Chunks   []ImportChunk `json:"chunks"`
	Rejected []Rejection   `json:"rejected"`
	Warnings []string      `json:"warnings,omitempty"`
	Error    string        `json:"error,omitempty"`
	Line     int           `json:"line,omitempty"`
}

// LastPosition is the highest feed position stored, or 0.
func (r ImportResult) LastPosition() uint64 {
	var last uint64
	for _, c := range r.Chunks {
		last = max(last, c.LastPosition)
	}
	return last
}

// importRevocations stores the records of a newline-delimited JSON body
// (blank lines and lines starting with # skipped) in chunks of
// Config.ImportChunk: each chunk all or nothing, synced, enforced on this
// node before the answer, recorded by one audit entry and one log line. A line that does not
// decode or validate is rejected with its number and the import goes on; a
// line longer than MaxImportLine, more than MaxImportLines lines or
// MaxImportBytes bytes, MaxImportRejected rejections, a broken body or a failing store stop it,
// and the chunk being read is not stored. Records without actor or reason
// take the query's actor and reason.
func (h *handler) importRevocations(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != ImportContentType {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be "+ImportContentType)
		return
	}
	q := r.URL.Query()
	actor, reason := q.Get("actor"), q.Get("reason")
	rc := http.NewResponseController(w)
	extend := func() {
		_ = rc.SetReadDeadline(time.Now().Add(importChunkTimeout))
		_ = rc.SetWriteDeadline(time.Now().Add(importChunkTimeout))
	}
	extend()
	begin := time.Now()

	// One goroutine reads and validates lines, a second prepares the chunk
	// before, a third stores the one before that: decoding, preparing and
	// the store's commit overlap. Chunks are stored in order, one at a
	// time.
	type pending struct {
		recs        []authz.Record
		first, last int
		put         chunkPut // prepared (see prepareChunk), or nil
		err         error    // of preparing
	}
	var (
		res      = ImportResult{Chunks: []ImportChunk{}, Rejected: []Rejection{}}
		issues   = map[string]int{}
		status   = http.StatusOK
		failed   atomic.Bool
		storeErr struct {
			code, line int
			msg        string
		}
		chunks   = make(chan pending)
		prepared = make(chan pending)
		done     = make(chan struct{})
	)
	stop := func(code, line int, msg string) {
		status, res.Line, res.Error = code, line, msg
	}
	// Stored chunks are enforced on this node by a third goroutine, while
	// the next is stored; the answer waits for all of them.
	enforce := make(chan []authz.Record, 1)
	enforced := make(chan struct{})
	go func() {
		defer close(enforced)
		for stored := range enforce {
			h.rev.Enforce(stored...)
		}
	}()
	// Chunks are prepared (validated, named, encoded) by a goroutine of
	// their own, so that chunk k+1 is while chunk k commits; then stored,
	// in order, one at a time. A chunk read whole is stored even when its
	// sender is gone by now, so that what a broken import leaves does not
	// hang on timing: every whole chunk, nothing of the one being read.
	ctx := context.WithoutCancel(r.Context())
	go func() {
		defer close(prepared)
		for p := range chunks {
			if !failed.Load() {
				p.put, p.err = h.cfg.prepareChunk(ctx, h.src, p.recs)
				if p.put != nil {
					p.recs = nil // the store holds its own copy: less for the collector to mark
				}
			}
			prepared <- p
		}
	}()
	go func() {
		defer close(done)
		defer close(enforce)
		for p := range prepared {
			if failed.Load() {
				continue
			}
			var (
				chunk  ImportChunk
				stored []authz.Record
			)
			err := p.err
			if err == nil {
				chunk, stored, err = h.storeChunk(ctx, r, p.put, p.recs, p.first, p.last, enforce)
			}
			if err != nil {
				code := http.StatusInternalServerError
				if errors.Is(err, authz.ErrInvalidRecord) {
					code = http.StatusBadRequest
				}
				h.log.Error("import revocations", "err", err, "first_line", p.first, "last_line", p.last, "remote", r.RemoteAddr)
				storeErr.code, storeErr.line = code, p.first
				storeErr.msg = fmt.Sprintf("lines %d-%d not stored: %v; import stopped", p.first, p.last, err)
				failed.Store(true)
				continue
			}
			for _, rec := range stored {
				if len(h.cfg.Issuers) > 0 && rec.Issuer != "" && !slices.Contains(h.cfg.Issuers, rec.Issuer) &&
					(issues[rec.Issuer] > 0 || len(issues) < maxIssuerWarnings) {
					issues[rec.Issuer]++
				}
			}
			res.Chunks = append(res.Chunks, chunk)
			res.Stored += chunk.Stored
			extend()
		}
	}()

	var recs []authz.Record
	first := 0
	sc := bufio.NewScanner(http.MaxBytesReader(w, r.Body, h.cfg.MaxImportBytes))
	sc.Buffer(make([]byte, 0, 64<<10), MaxImportLine)
	// A body that breaks (or passes its bound) mid-line still gives the
	// line's start as a last line: such a line is not one the sender
	// finished, so it is neither refused nor counted.
	terminated := true
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		adv, tok, err := bufio.ScanLines(data, atEOF)
		if tok != nil {
			terminated = adv > len(tok)
		}
		return adv, tok, err
	})
	n := 0
	now := h.now()
	size := firstChunk(h.cfg.ImportChunk)
	for !failed.Load() && sc.Scan() {
		n++
		if n > h.cfg.MaxImportLines {
			stop(http.StatusRequestEntityTooLarge, n, fmt.Sprintf("more than %d lines in one import; import stopped", h.cfg.MaxImportLines))
			break
		}
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		rec, err := DecodeRecordLine(line)
		if err == nil {
			if rec.Actor == "" {
				rec.Actor = actor
			}
			if rec.Reason == "" {
				rec.Reason = reason
			}
			err = h.complete(&rec, now)
		}
		if err != nil {
			res.Rejected = append(res.Rejected, Rejection{Line: n, Error: err.Error()})
			if len(res.Rejected) > MaxImportRejected {
				stop(http.StatusBadRequest, n, fmt.Sprintf("more than %d lines rejected; import stopped", MaxImportRejected))
				break
			}
			continue
		}
		if len(recs) == 0 {
			first = n
			recs = make([]authz.Record, 0, size)
		}
		recs = append(recs, rec)
		if len(recs) == size {
			chunks <- pending{recs: recs, first: first, last: n}
			recs = nil
			now = h.now()
			size = h.cfg.ImportChunk
		}
	}
	if err := sc.Err(); err != nil && !terminated && n > 0 {
		if k := len(res.Rejected); k > 0 && res.Rejected[k-1].Line == n {
			res.Rejected = res.Rejected[:k-1]
		}
		n-- // the line cut short is the one named below
	}
	if res.Error == "" && !failed.Load() {
		switch err := sc.Err(); {
		case errors.As(err, new(*http.MaxBytesError)):
			stop(http.StatusRequestEntityTooLarge, n+1, fmt.Sprintf("body larger than %d bytes at line %d; import stopped", h.cfg.MaxImportBytes, n+1))
		case errors.Is(err, bufio.ErrTooLong):
			stop(http.StatusRequestEntityTooLarge, n+1, fmt.Sprintf("line %d is longer than %d bytes; import stopped", n+1, MaxImportLine))
		case err != nil:
			stop(http.StatusBadRequest, n+1, fmt.Sprintf("read body at line %d: %v; import stopped", n+1, err))
		case len(recs) > 0:
			chunks <- pending{recs: recs, first: first, last: n}
		}
	}
	close(chunks)
	<-done
	<-enforced
	if failed.Load() {
		// The store's failure comes first: what was read after it was not stored.
		stop(storeErr.code, storeErr.line, storeErr.msg)
	}
	for iss, count := range issues {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d records name issuer %q, which is not configured on this server (configured: %s); they are stored but match none of the tokens it accepts",
			count, iss, strings.Join(h.cfg.Issuers, ", ")))
	}
	slices.Sort(res.Warnings)
	h.log.Info("revocations imported", "stored", res.Stored, "chunks", len(res.Chunks), "rejected", len(res.Rejected),
		"lines", n, "last_position", res.LastPosition(), "error", res.Error, "seconds", time.Since(begin).Seconds(), "remote", r.RemoteAddr)
	writeJSON(w, status, res)
}

// firstChunk is the size of an import's first chunk: an eighth of chunk,
// but no less than firstChunkMin (nor more than chunk). Nothing is stored
// before the first chunk is read and prepared; a small one sets the
// store's commits going sooner, the later ones each prepared while the one
// before commits.
func firstChunk(chunk int) int {
	return min(chunk, max(chunk/8, firstChunkMin))
}

// firstChunkMin is the least first chunk firstChunk gives.
const firstChunkMin = 1024

// DecodeRecordLine decodes one record of a --from-file or import line, as
// the server's import and the CLI both read them: strictly, as
// decodeStrict does, at a fraction of its cost (a new json.Decoder a line
// was the import's largest cost after the store). A line of the plain form
// of a bulk file is read by decodePlainLine; any other by json.Unmarshal,
// which takes the same values, then a look at the object's names, which it
// does not check. A line neither takes whole (an error, a name with an
// escape or outside ASCII, a name that is no field) goes through
// decodeStrict, whose answer it is.
func DecodeRecordLine(line []byte) (authz.Record, error) {
	if err := CheckJSONText(line); err != nil {
		return authz.Record{}, err
	}
	if rec, ok := decodePlainLine(line); ok {
		return rec, nil
	}
	return decodeLine(line)
}

// decodeLine is DecodeRecordLine after CheckJSONText, for a line that is
// not of the plain form.
func decodeLine(line []byte) (authz.Record, error) {
	var rec authz.Record
	if json.Unmarshal(line, &rec) == nil && namesKnown(line, recordFields) {
		return rec, nil
	}
	rec = authz.Record{}
	if err := decodeStrict(line, &rec); err != nil {
		return rec, err
	}
	return rec, nil
}

// recordFields are the JSON names of authz.Record's fields.
var recordFields = func() []string {
	var names []string
	t := reflect.TypeFor[authz.Record]()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	return names
}()

// namesKnown reports whether every name of the top-level object of data,
// valid JSON, is plain ASCII without escapes and one of names, matched as
// encoding/json matches a name to a field (ASCII case folded).
func namesKnown(data []byte, names []string) bool {
	depth, isName := 0, false
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{':
			depth++
			isName = depth == 1
		case '[':
			depth++
		case '}', ']':
			depth--
		case ',':
			isName = depth == 1
		case '"':
			j := i + 1
			for ; j < len(data) && data[j] != '"'; j++ {
				if data[j] == '\\' {
					if isName {
						return false
					}
					j++ // the escaped byte
				}
			}
			if isName && !knownName(data[i+1:min(j, len(data))], names) {
				return false
			}
			isName, i = false, j
		}
	}
	return true
}

// knownName reports whether name, plain ASCII, is one of names, ASCII case
// folded.
func knownName(name []byte, names []string) bool {
	for _, c := range name {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	for _, n := range names {
		if strings.EqualFold(string(name), n) {
			return true
		}
	}
	return false
}

// chunkPut stores a prepared chunk with the audit entries that entries
// makes of it (see preparingSource).
type chunkPut func(entries func([]authz.Record) []audit.Entry) ([]authz.Record, error)

// prepareChunk prepares recs ahead of their commit (see preparingSource)
// when putChunk stores them with their audit entry in src's own
// transaction; otherwise it returns nil, and putChunk does all the work.
func (c Config) prepareChunk(ctx context.Context, src source.Source, recs []authz.Record) (chunkPut, error) {
	log, ok := c.Audit.(*audit.Log)
	if !ok {
		return nil, nil
	}
	ps, ok := src.(preparingSource)
	if !ok || ps.Audit() != log.Store() {
		return nil, nil
	}
	put, err := ps.PreparePut(ctx, recs)
	if err != nil {
		return nil, err
	}
	return put, nil
}

// storeChunk stores recs (lines first to last; prepared as put, or nil)
// all or nothing with one audit entry, hands them to enforce (to be
// enforced on this node while the next chunk is stored), logs one line and
// returns them as stored.
func (h *handler) storeChunk(ctx context.Context, r *http.Request, put chunkPut, recs []authz.Record, first, last int, enforce chan<- []authz.Record) (ImportChunk, []authz.Record, error) {
	var chunk ImportChunk
	stored, warnings, err := h.cfg.putChunk(ctx, h.src, put, recs, r.RemoteAddr, &chunk)
	if err != nil {
		return chunk, nil, err
	}
	enforce <- stored
	chunk.FirstLine, chunk.LastLine = first, last
	h.log.Info("revocations accepted", "records", len(stored), "first_line", first, "last_line", last,
		"first_position", chunk.FirstPosition, "last_position", chunk.LastPosition, "digest", chunk.Digest,
		"actor", importActors(stored), "remote", r.RemoteAddr)
	for _, msg := range warnings {
		h.log.Warn("import revocations", "warning", msg)
	}
	return chunk, stored, nil
}

// putChunk stores recs (prepared as put by prepareChunk, or nil) with one
// audit entry naming them all (count, positions and digest, see
// importEntry), in the same transaction when the trail is src's own, and
// fills chunk's count, positions and digest.
func (c Config) putChunk(ctx context.Context, src source.Source, put chunkPut, recs []authz.Record, addr string, chunk *ImportChunk) ([]authz.Record, []string, error) {
	describe := func(stored []authz.Record) audit.Entry {
		*chunk = summarize(stored)
		return importEntry(stored, *chunk, addr)
	}
	if log, ok := c.Audit.(*audit.Log); ok {
		if rs, ok := src.(recordingSource); ok && rs.Audit() == log.Store() {
			if put == nil {
				put = func(entries func([]authz.Record) []audit.Entry) ([]authz.Record, error) {
					return rs.PutRecorded(ctx, recs, entries)
				}
			}
			stored, err := put(func(stored []authz.Record) []audit.Entry {
				return []audit.Entry{log.Prepare(describe(stored))}
			})
			return stored, nil, err
		}
	}
	stored, err := src.Put(ctx, recs)
	if err != nil {
		return nil, nil, err
	}
	e := describe(stored)
	if c.Audit == nil {
		return stored, nil, nil
	}
	if err := c.Audit.Record(ctx, e); err != nil {
		return stored, []string{"audit trail: the revocations are stored but were not recorded in the audit trail: " + err.Error()}, nil
	}
	return stored, nil, nil
}

// summarize counts stored and gives its position range and digest.
func summarize(stored []authz.Record) ImportChunk {
	c := ImportChunk{Stored: len(stored)}
	d := sha256.New()
	var line []byte
	for i := range stored {
		rec := &stored[i]
		if i == 0 || rec.Position < c.FirstPosition {
			c.FirstPosition = rec.Position
		}
		c.LastPosition = max(c.LastPosition, rec.Position)
		line = append(appendRecordTarget(line[:0], rec), '\n')
		d.Write(line)
	}
	c.Digest = hex.EncodeToString(d.Sum(nil))
	return c
}

// importEntry is the one audit entry of an import chunk: who (the actor,
// or the actors, of its records), how many of which kinds, the feed
// positions they hold (List and the feed give each record back) and the
// digest of their targets.
func importEntry(stored []authz.Record, c ImportChunk, addr string) audit.Entry {
	kinds := map[authz.Kind]int{}
	reasons := []string{}
	for _, rec := range stored {
		kinds[rec.Kind]++
		if len(reasons) <= 3 && !slices.Contains(reasons, rec.Reason) {
			reasons = append(reasons, rec.Reason)
		}
	}
	var parts []string
	for k, n := range kinds {
		parts = append(parts, fmt.Sprintf("%d %s", n, k))
	}
	slices.Sort(parts)
	reason := strings.Join(reasons, "; ")
	if len(reasons) > 3 {
		reason = strings.Join(reasons[:3], "; ") + "; ..."
	}
	return audit.Entry{
		Kind:   audit.KindRevoke,
		Actor:  importActors(stored),
		Source: addr,
		Target: fmt.Sprintf("import of %d records (%s) at positions %d-%d, sha256 %s",
			c.Stored, strings.Join(parts, ", "), c.FirstPosition, c.LastPosition, c.Digest),
		Reason: reason,
	}
}

// importActors names the actors of stored: the one, or up to three and a
// count of the others.
func importActors(stored []authz.Record) string {
	var actors []string
	for _, rec := range stored {
		if !slices.Contains(actors, rec.Actor) {
			actors = append(actors, rec.Actor)
			if len(actors) > 3 {
				break
			}
		}
	}
	if len(actors) > 3 {
		return strings.Join(actors[:3], ", ") + " and others"
	}
	return strings.Join(actors, ", ")
}
