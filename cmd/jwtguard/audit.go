package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jwtguard/jwtguard/sync/audit"
)

// auditFlags are the flags of jwtguard audit and audit export.
type auditFlags struct {
	adminFlags
	since, actor, kind string
	limit              int
	cursor             string
	all                bool
}

func (f *auditFlags) register(fs *flag.FlagSet, paging bool) {
	f.adminFlags.register(fs)
	fs.StringVar(&f.since, "since", "", "only entries at or after this time: a duration back from now (24h) or an RFC 3339 time")
	fs.StringVar(&f.actor, "actor", "", "only entries of this actor")
	fs.StringVar(&f.kind, "kind", "", "only entries of this kind (revoke, lift, block, keyset-change, auth-failure)")
	if paging {
		fs.IntVar(&f.limit, "limit", 100, fmt.Sprintf("entries per page (1 to %d)", audit.MaxListLimit))
		fs.StringVar(&f.cursor, "cursor", "", "start at this cursor (printed when there are more entries)")
		fs.BoolVar(&f.all, "all", false, "read every page, not just the first")
	} else {
		f.limit = audit.MaxListLimit
	}
}

// query builds the query the flags describe.
func (f *auditFlags) query(now time.Time) (audit.Query, error) {
	q := audit.Query{Actor: f.actor, Kind: audit.Kind(f.kind), Cursor: f.cursor, Limit: f.limit}
	if q.Limit < 1 || q.Limit > audit.MaxListLimit {
		return q, fmt.Errorf("--limit %d: want 1 to %d", q.Limit, audit.MaxListLimit)
	}
	if f.since != "" {
		t, err := parseSince(f.since, now)
		if err != nil {
			return q, err
		}
		q.Since = t
	}
	return q, nil
}

// parseSince reads --since: a duration back from now, or an RFC 3339 time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q: want a positive duration", v)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: want a duration such as 24h or an RFC 3339 time such as 2026-01-02T15:04:05Z", v)
	}
	return t, nil
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "verify":
			return verifyAudit(ctx, args[1:], stdout, stderr)
		case "export":
			return exportAudit(ctx, args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: jwtguard audit [--since D|TIME] [--actor A] [--kind K] [-o json] [flags]\n       jwtguard audit verify [flags]\n       jwtguard audit export [--since D|TIME] [--actor A] [--kind K] [flags]\n\nflags:")
		fs.PrintDefaults()
	}
	var f auditFlags
	f.register(fs, true)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("audit: unexpected argument %q (subcommands: verify, export)", fs.Arg(0))
	}
	q, err := f.query(time.Now())
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	var entries []audit.Entry
	err = f.pages(ctx, q, func(page []audit.Entry, next string) error {
		entries = append(entries, page...)
		if next != "" && !f.all {
			fmt.Fprintf(stderr, "more entries: run with --all, or with --cursor %s\n", next)
			return errStop
		}
		return nil
	})
	if err != nil {
		return err
	}
	return printAudit(stdout, f.output, entries)
}

// errStop ends pages early without an error.
var errStop = errors.New("stop")

// pages reads the pages of q, handing each to fn, until the last page or
// until fn returns errStop.
func (f *auditFlags) pages(ctx context.Context, q audit.Query, fn func([]audit.Entry, string) error) error {
	client, err := f.client()
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	for range maxListPages {
		cctx, cancel := context.WithTimeout(ctx, f.timeout)
		page, next, err := client.Audit(cctx, q)
		cancel()
		if err != nil {
			return err
		}
		if err := fn(page, next); err != nil || next == "" {
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
		if next == q.Cursor {
			return fmt.Errorf("audit: the server answered the same cursor %q twice", next)
		}
		q.Cursor = next
	}
	return fmt.Errorf("audit: more than %d pages", maxListPages)
}

// exportAudit writes every matching entry as JSON lines, page by page.
func exportAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f auditFlags
	f.register(fs, false)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("audit export: unexpected argument %q", fs.Arg(0))
	}
	q, err := f.query(time.Now())
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	enc := json.NewEncoder(stdout)
	return f.pages(ctx, q, func(page []audit.Entry, _ string) error {
		for _, e := range page {
			if err := enc.Encode(e); err != nil {
				return fmt.Errorf("audit export: %w", err)
			}
		}
		return nil
	})
}

// verifyAudit asks the server to verify its trail; a broken chain is an
// error naming the first broken entry.
func verifyAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a adminFlags
	a.register(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("audit verify: unexpected argument %q", fs.Arg(0))
	}
	client, err := a.client()
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	rep, err := client.VerifyAudit(ctx)
	if err != nil {
		return err
	}
	if a.output == "json" {
		if err := writeJSONOut(stdout, rep); err != nil {
			return err
		}
	} else {
		printReport(stdout, rep)
	}
	if b := rep.Broken; b != nil {
		return fmt.Errorf("audit verify: the chain is broken at seq %d (position %s): %s: %s",
			b.Seq, orDash(tableCell(b.Pos)), b.Problem, tableCell(b.Detail))
	}
	return nil
}

func printReport(w io.Writer, rep audit.Report) {
	status := "intact"
	if !rep.OK() {
		status = "BROKEN"
	}
	fmt.Fprintf(w, "chain:    %s\n", status)
	fmt.Fprintf(w, "entries:  %d checked, seq %d to %d\n", rep.Entries, rep.First, rep.Last)
	if rep.Trimmed {
		fmt.Fprintf(w, "          entries before seq %d were dropped by retention; verified from there\n", rep.First)
	}
	fmt.Fprintf(w, "head:     seq %d hash %s\n", rep.Head.Seq, orDash(tableCell(rep.Head.Hash)))
	if b := rep.Broken; b != nil {
		fmt.Fprintf(w, "broken:   seq %d (position %s): %s: %s\n", b.Seq, orDash(tableCell(b.Pos)), b.Problem, tableCell(b.Detail))
	}
}

// printAudit prints entries as a table or as a JSON array.
func printAudit(w io.Writer, output string, entries []audit.Entry) error {
	if output == "json" {
		if entries == nil {
			entries = []audit.Entry{}
		}
		return writeJSONOut(w, entries)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tNODE\tKIND\tACTOR\tSOURCE\tTARGET\tCOUNT\tREASON")
	for _, e := range entries {
		count := "1"
		if e.Count > 1 {
			count = strconv.FormatUint(e.Count, 10)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, formatTime(e.Time), orDash(tableCell(e.Node)), tableCell(string(e.Kind)),
			orDash(tableCell(e.Actor)), orDash(tableCell(e.Source)), orDash(tableCell(e.Target)), count, orDash(tableCell(e.Reason)))
	}
	return tw.Flush()
}
