package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/cmd/jwtguard/node"
	"github.com/jwtguard/jwtguard/sync/admin"
	"github.com/jwtguard/jwtguard/sync/audit"
)

// adminFlags are the flags of every command that calls the admin API.
type adminFlags struct {
	server    string
	tokenFile string
	timeout   time.Duration
	output    string
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.server, "server", "http://127.0.0.1:8182", "admin API address of the jwtguard server (host:port means http://host:port)")
	fs.StringVar(&a.tokenFile, "admin-token-file", "", "file holding the admin API bearer token (else JWTGUARD_ADMIN_TOKEN)")
	fs.DurationVar(&a.timeout, "timeout", 30*time.Second, "timeout of each call to the server")
	fs.StringVar(&a.output, "o", "table", "output format: table or json")
}

// client checks the output format and returns the admin API client.
func (a *adminFlags) client() (*admin.Client, error) {
	if a.output != "table" && a.output != "json" {
		return nil, fmt.Errorf("-o %q: want table or json", a.output)
	}
	token, err := admin.LoadToken(a.tokenFile, os.Getenv("JWTGUARD_ADMIN_TOKEN"))
	if err != nil {
		return nil, err
	}
	return &admin.Client{BaseURL: serverURL(a.server), Token: token, HTTP: &http.Client{Timeout: a.timeout}}, nil
}

// serverURL is --server as a URL: an address without scheme is http, as
// --admin-addr serves it.
func serverURL(s string) string {
	if strings.Contains(s, "://") {
		return s
	}
	return "http://" + s
}

// revokeFlags are the flags of jwtguard revoke.
type revokeFlags struct {
	adminFlags
	waitFlags
	redisURL                                                             string
	redis                                                                node.RedisConfig
	maxTokenLifetime                                                     time.Duration
	leeway                                                               time.Duration
	token, tokenFile, jti, subject, session, kid, issuerBefore, fromFile string
	issuer, before, reason, actor                                        string
}

// revokeModes are the flags of which exactly one says what to revoke.
var revokeModes = []string{"token", "token-file", "jti", "subject", "session", "kid", "issuer-before", "from-file"}

func runRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("revoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: jwtguard revoke <what> [--reason R] [--actor A] [flags]

what (exactly one):
  --token JWT | --token-file FILE   one token (its jti, or a hash of header.payload)
  --token OPAQUE --issuer ISS       one opaque (introspected) token (a hash of it)
  --jti ID --issuer ISS             one token by id
  --subject SUB [--before T] [--issuer ISS]
                                    every token of a subject issued at or before T
                                    (default: every token acceptable now)
  --session SID --issuer ISS [--before T]
                                    every token of a login session issued at or before T
                                    (default: every token acceptable now)
  --kid KID [--issuer ISS] [--before T]
                                    every token signed with a key (issued at or before T;
                                    without --before, kept until lifted)
  --issuer-before T --issuer ISS    every token of an issuer issued at or before T
  --from-file FILE                  newline-delimited JSON records

Times are RFC 3339 (2026-01-02T15:04:05Z).

flags:`)
		fs.PrintDefaults()
	}
	var f revokeFlags
	f.adminFlags.register(fs)
	f.waitFlags.register(fs)
	fs.StringVar(&f.token, "token", "", "revoke this exact token (a JWT; it is decoded, not verified)")
	fs.StringVar(&f.tokenFile, "token-file", "", "revoke the token (a JWT) held in this file, keeping it off the command line")
	fs.StringVar(&f.jti, "jti", "", "revoke the token with this jti (needs --issuer)")
	fs.StringVar(&f.subject, "subject", "", "revoke every token of this subject issued at or before --before")
	fs.StringVar(&f.session, "session", "", "revoke every token carrying this sid (needs --issuer)")
	fs.StringVar(&f.kid, "kid", "", "revoke every token signed with this key id")
	fs.StringVar(&f.issuerBefore, "issuer-before", "", "revoke every token of --issuer issued at or before this time")
	fs.StringVar(&f.fromFile, "from-file", "", "revoke the records of this file (one JSON record a line)")
	fs.StringVar(&f.issuer, "issuer", "", "the issuer (iss) the revocation applies to")
	fs.StringVar(&f.before, "before", "", "with --subject, --session or --kid: revoke tokens issued at or before this time")
	fs.StringVar(&f.reason, "reason", "", "why (kept with the record and in the audit log)")
	fs.StringVar(&f.actor, "actor", defaultActor(), "who revokes")
	fs.StringVar(&f.redisURL, "redis", "", "write straight to this Redis revocation source (redis:// or rediss://) instead of a server's admin API")
	f.redis.Register(fs)
	defaults := authz.DefaultConfig()
	fs.DurationVar(&f.maxTokenLifetime, "max-token-lifetime", defaults.MaxTokenLifetime, "with --redis: the longest token lifetime (how long records are kept), as the servers have it")
	fs.DurationVar(&f.leeway, "leeway", defaults.Leeway, "with --redis: the servers' clock skew allowance")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("revoke: unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	var modes []string
	for _, m := range revokeModes {
		if set[m] {
			modes = append(modes, "--"+m)
		}
	}
	if len(modes) != 1 {
		fs.Usage()
		if len(modes) == 0 {
			return errors.New("revoke: say what to revoke (--token, --jti, --subject, --session, --kid, --issuer-before or --from-file)")
		}
		return fmt.Errorf("revoke: %s are exclusive; give exactly one", strings.Join(modes, ", "))
	}
	client, err := f.revoker()
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if c, ok := client.(io.Closer); ok {
		defer c.Close()
	}
	if set["from-file"] {
		if set["issuer"] || set["before"] {
			return errors.New("revoke: --issuer and --before do not apply to --from-file (each record carries its own)")
		}
		if api, ok := client.(apiRevoker); ok && f.output == "table" {
			return importFile(ctx, api.Client, &f, stdout, stderr)
		}
		return revokeFile(ctx, client, &f, stdout, stderr)
	}
	rec, err := f.record(set)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if err := rec.Validate(); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	stored, warnings, err := client.Revoke(ctx, []authz.Record{rec})
	printWarnings(stderr, warnings)
	if err != nil {
		return err
	}
	if err := printRecords(stdout, f.output, stored); err != nil {
		return err
	}
	return f.waitFlags.wait(ctx, client, stderr, stored[len(stored)-1].Position)
}

// printWarnings shows the server's warnings about stored records.
func printWarnings(w io.Writer, warnings []string) {
	for _, msg := range warnings {
		fmt.Fprintln(w, "warning:", tableCell(msg))
	}
}

// revoker stores revocations: a server's admin API, or a source directly;
// it returns the stored records and warnings about them.
type revoker interface {
	Revoke(ctx context.Context, recs []authz.Record) ([]authz.Record, []string, error)
}

// apiRevoker stores revocations through a server's admin API.
type apiRevoker struct{ *admin.Client }

func (a apiRevoker) Revoke(ctx context.Context, recs []authz.Record) ([]authz.Record, []string, error) {
	return a.RevokeWithWarnings(ctx, recs)
}

// sourceRevoker writes to a Redis source and closes it when done.
type sourceRevoker struct {
	admin.SourceRevoker
}

func (s *sourceRevoker) Revoke(ctx context.Context, recs []authz.Record) ([]authz.Record, []string, error) {
	return s.RevokeWithWarnings(ctx, recs)
}

func (s *sourceRevoker) Close() error { return s.Source.Close() }

// revoker returns where the revocations go: --redis, else the admin API.
func (f *revokeFlags) revoker() (revoker, error) {
	if f.redisURL == "" {
		c, err := f.client()
		if err != nil {
			return nil, err
		}
		return apiRevoker{c}, nil
	}
	if f.output != "table" && f.output != "json" {
		return nil, fmt.Errorf("-o %q: want table or json", f.output)
	}
	if !node.IsRedisURL(f.redisURL) {
		return nil, fmt.Errorf("--redis %q: want a redis:// or rediss:// URL", node.RedactURL(f.redisURL))
	}
	timing := authz.Config{MaxTokenLifetime: f.maxTokenLifetime, Leeway: f.leeway}
	if err := timing.ValidateTiming(); err != nil {
		return nil, err
	}
	src, err := f.redis.Open(f.redisURL)
	if err != nil {
		return nil, err
	}
	trail, err := f.redis.Audit(src)
	if err != nil {
		_ = src.Close()
		return nil, err
	}
	// The trail names the tool and its host as the node.
	log := audit.NewLog(trail, audit.WithNode("jwtguard revoke@"+hostname()))
	return &sourceRevoker{admin.SourceRevoker{Source: src, Config: admin.Config{MaxTokenLifetime: f.maxTokenLifetime, Leeway: f.leeway, Audit: log}}}, nil
}

// hostname is this host's name, or "unknown".
func hostname() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "unknown"
}

// defaultActor is the user running the command, for the audit trail.
func defaultActor() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "cli"
}

// record builds the one record the flags describe.
func (f *revokeFlags) record(set map[string]bool) (authz.Record, error) {
	rec := authz.Record{Issuer: f.issuer, Reason: f.reason, Actor: f.actor}
	var err error
	needIssuer := func(flag string) error {
		if f.issuer == "" {
			return fmt.Errorf("--%s needs --issuer", flag)
		}
		return nil
	}
	if set["before"] && !set["subject"] && !set["session"] && !set["kid"] {
		return rec, errors.New("--before applies to --subject, --session and --kid only (use --issuer-before T for a whole issuer)")
	}
	if set["before"] {
		if rec.Before, err = parseTime("before", f.before); err != nil {
			return rec, err
		}
	}
	switch {
	case set["token"] || set["token-file"]:
		jwt := f.token
		if set["token-file"] {
			b, err := os.ReadFile(f.tokenFile)
			if err != nil {
				return rec, fmt.Errorf("--token-file: %w", err)
			}
			jwt = string(b)
		}
		tok, err := authz.TokenRecord(jwt)
		switch {
		case errors.Is(err, authz.ErrOpaqueToken):
			// An opaque token (introspected) names no issuer: --issuer does.
			if tok, err = authz.OpaqueTokenRecord(jwt, f.issuer); err != nil {
				return rec, fmt.Errorf("--token: %w (an opaque token needs --issuer)", err)
			}
		case err != nil:
			return rec, fmt.Errorf("--token: %w", err)
		case set["issuer"]:
			return rec, errors.New("--issuer does not apply to --token: the token's iss is used")
		}
		tok.Reason, tok.Actor = rec.Reason, rec.Actor
		return tok, nil
	case set["jti"]:
		rec.Kind, rec.Value, err = authz.KindToken, f.jti, needIssuer("jti")
	case set["subject"]:
		// Without --before the server covers every token acceptable now.
		rec.Kind, rec.Value = authz.KindSubject, f.subject
	case set["session"]:
		rec.Kind, rec.Value, err = authz.KindSession, f.session, needIssuer("session")
	case set["kid"]:
		rec.Kind, rec.Value = authz.KindKey, f.kid
	case set["issuer-before"]:
		rec.Kind, err = authz.KindIssuerBefore, needIssuer("issuer-before")
		if err == nil {
			rec.Before, err = parseTime("issuer-before", f.issuerBefore)
		}
	}
	return rec, err
}

func parseTime(flag, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", flag, v)
	}
	return t, nil
}

// Revocations from a file go to the server in batches of this size (the
// admin API's largest), fileSenders batches at a time: a server on the
// embedded store commits the batches that wait together (one transaction
// and one sync for several), so a mass revocation is not one transaction
// per batch. Variables so that tests can make them small.
var (
	fileBatch   = 10_000
	fileSenders = 4
)

// maxFileLine bounds one line of a --from-file file.
const maxFileLine = 1 << 20

// fileRecord is one record of a --from-file file and its line number.
type fileRecord struct {
	line int
	rec  authz.Record
}

// rejection is a line of a --from-file file that was not stored, and why.
type rejection struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// revokeFile revokes the records of f.fromFile: it validates every line
// first, sends the valid ones in batches (several at once), finds the
// records of a refused batch by halving it, and reports the lines that
// were rejected. It stops at the first error that is not a refusal.
func revokeFile(ctx context.Context, client revoker, f *revokeFlags, stdout, stderr io.Writer) error {
	recs, rejected, err := readRecordFile(f.fromFile, f.actor, f.reason)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex // guards the results below, stderr and prog
		prog     = newProgress(stderr, len(recs))
		accepted = make([][]authz.Record, (len(recs)+fileBatch-1)/fileBatch)
		sendErr  error
	)
	// send stores batch (all or nothing), or, when the server refuses its
	// records, each half of it in turn, down to the records at fault.
	var send func(batch []fileRecord) ([]authz.Record, error)
	send = func(batch []fileRecord) ([]authz.Record, error) {
		batchRecs := make([]authz.Record, len(batch))
		for i, fr := range batch {
			batchRecs[i] = fr.rec
		}
		cctx, ccancel := context.WithTimeout(ctx, f.timeout)
		stored, warnings, err := client.Revoke(cctx, batchRecs)
		ccancel()
		if err == nil {
			mu.Lock()
			printWarnings(stderr, warnings)
			mu.Unlock()
			return stored, nil
		}
		if !refusedRecords(err) {
			return nil, err
		}
		// The server names the record at fault: reject it and send the
		// others again. Without a name, halve the batch.
		var apiErr *admin.APIError
		if errors.As(err, &apiErr) && apiErr.Index >= 0 && apiErr.Index < len(batch) || len(batch) == 1 {
			i := 0
			if len(batch) > 1 {
				i = apiErr.Index
			}
			mu.Lock()
			rejected = append(rejected, rejection{Line: batch[i].line, Error: apiMessage(err)})
			mu.Unlock()
			return sendParts(send, batch[:i], batch[i+1:])
		}
		return sendParts(send, batch[:len(batch)/2], batch[len(batch)/2:])
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range fileSenders {
		wg.Go(func() {
			for b := range next {
				batch := recs[b*fileBatch : min((b+1)*fileBatch, len(recs))]
				stored, err := send(batch)
				mu.Lock()
				accepted[b] = stored
				if err != nil && sendErr == nil {
					sendErr = err
					cancel()
				}
				prog.add(len(batch))
				mu.Unlock()
			}
		})
	}
	for b := range accepted {
		if ctx.Err() != nil {
			break
		}
		next <- b
	}
	close(next)
	wg.Wait()
	prog.finish()
	all := slices.Concat(accepted...)
	if err := printFileSummary(stdout, f.output, all, rejected); err != nil {
		return err
	}
	if sendErr == nil && len(all) > 0 {
		// Batches go concurrently: wait for the furthest position.
		last := slices.MaxFunc(all, func(a, b authz.Record) int { return cmp.Compare(a.Position, b.Position) })
		if err := f.waitFlags.wait(ctx, client, stderr, last.Position); err != nil {
			return err
		}
	}
	switch {
	case sendErr != nil:
		return fmt.Errorf("revoke: stopped after %d accepted: %w", len(all), sendErr)
	case len(rejected) > 0:
		return fmt.Errorf("revoke: %d of %d records rejected", len(rejected), len(all)+len(rejected))
	}
	return nil
}

// sendParts sends each non-empty part in turn and joins what was stored.
func sendParts(send func([]fileRecord) ([]authz.Record, error), parts ...[]fileRecord) ([]authz.Record, error) {
	var stored []authz.Record
	for _, p := range parts {
		if len(p) == 0 {
			continue
		}
		s, err := send(p)
		stored = append(stored, s...)
		if err != nil {
			return stored, err
		}
	}
	return stored, nil
}

// refusedRecords reports whether err is the server refusing the records
// themselves (so that sending them one by one finds the bad ones), rather
// than the request (authentication, an outage).
func refusedRecords(err error) bool {
	return admin.IsStatus(err, http.StatusBadRequest) || admin.IsStatus(err, http.StatusRequestEntityTooLarge)
}

// recordPrefix is how the server names the record at fault in a batch.
var recordPrefix = regexp.MustCompile(`^record [0-9]+: `)

// apiMessage is the server's message about one record, without the
// record's index in its batch.
func apiMessage(err error) string {
	var e *admin.APIError
	if errors.As(err, &e) {
		return recordPrefix.ReplaceAllString(e.Message, "")
	}
	return err.Error()
}

// readRecordFile reads newline-delimited JSON records, skipping blank lines
// and lines starting with #; a line that does not decode or validate is
// rejected with its number. Records without actor or reason take the given
// ones.
func readRecordFile(path, actor, reason string) ([]fileRecord, []rejection, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--from-file: %w", err)
	}
	defer file.Close()
	var recs []fileRecord
	var rejected []rejection
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 0, 64<<10), maxFileLine)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		rec, err := admin.DecodeRecordLine(line)
		if err == nil {
			if rec.Actor == "" {
				rec.Actor = actor
			}
			if rec.Reason == "" {
				rec.Reason = reason
			}
			err = rec.Validate()
		}
		if err != nil {
			rejected = append(rejected, rejection{Line: n, Error: err.Error()})
			continue
		}
		recs = append(recs, fileRecord{line: n, rec: rec})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("--from-file %s line %d: %w", path, n+1, err)
	}
	return recs, rejected, nil
}

// printFileSummary prints "accepted N, rejected M" and the rejected lines,
// or, with -o json, both lists.
func printFileSummary(w io.Writer, output string, accepted []authz.Record, rejected []rejection) error {
	slices.SortFunc(rejected, func(a, b rejection) int { return cmp.Compare(a.Line, b.Line) })
	if output == "json" {
		if accepted == nil {
			accepted = []authz.Record{}
		}
		if rejected == nil {
			rejected = []rejection{}
		}
		return writeJSONOut(w, map[string]any{"accepted": accepted, "rejected": rejected})
	}
	fmt.Fprintf(w, "accepted %d, rejected %d\n", len(accepted), len(rejected))
	for _, r := range rejected {
		fmt.Fprintf(w, "  line %d: %s\n", r.Line, tableCell(r.Error))
	}
	return nil
}

// progress reports the records sent: a bar redrawn in place on a terminal,
// otherwise a line at each tenth.
type progress struct {
	w           io.Writer
	tty         bool
	total, done int
	tenths      int
	unit        string // what is counted: "records" or "bytes"
}

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, tty: isTerminal(w), total: total, unit: "records"}
}

func (p *progress) add(n int) {
	if p.total == 0 {
		return
	}
	p.done += n
	pct := p.done * 100 / p.total
	if p.tty {
		const width = 30
		fill := p.done * width / p.total
		fmt.Fprintf(p.w, "\r[%s%s] %3d%% %d/%d", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), pct, p.done, p.total)
		return
	}
	if t := p.done * 10 / p.total; t > p.tenths {
		p.tenths = t
		fmt.Fprintf(p.w, "revoke: %d%% (%d/%d %s sent)\n", pct, p.done, p.total, p.unit)
	}
}

func (p *progress) finish() {
	if p.tty && p.total > 0 {
		fmt.Fprintln(p.w)
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// printRecords prints recs as a table or as a JSON array.
func printRecords(w io.Writer, output string, recs []authz.Record) error {
	if output == "json" {
		if recs == nil {
			recs = []authz.Record{}
		}
		return writeJSONOut(w, recs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tISSUER\tVALUE\tBEFORE\tEXPIRES\tACTOR\tREASON")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", tableCell(r.ID), tableCell(string(r.Kind)), orDash(tableCell(r.Issuer)), orDash(tableCell(r.Value)),
			formatTime(r.Before), formatTime(r.ExpiresAt), orDash(tableCell(r.Actor)), orDash(tableCell(r.Reason)))
	}
	return tw.Flush()
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// tableCell keeps text from the server on one table line and harmless to
// a terminal: control characters (escape sequences, CR, tabs) and Unicode
// format characters (bidirectional overrides) are shown escaped, as Go
// quotes them (\x1b, \r, \u202e).
func tableCell(s string) string {
	if !strings.ContainsFunc(s, unsafeRune) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unsafeRune(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// unsafeRune reports whether r must not reach a terminal as is.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError
}
