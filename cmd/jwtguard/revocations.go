package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/admin"
	"github.com/jwtguard/jwtguard/sync/source"
)

// maxListPages bounds the pages "revocations list --all" reads, so that a
// server answering the same cursor forever cannot keep it running.
const maxListPages = 100_000

func runRevocations(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "usage: jwtguard revocations list [flags] | jwtguard revocations get [flags] ID | jwtguard revocations lift --reason R [flags] ID")
		if len(args) == 0 {
			return errors.New("revocations: no subcommand given (list, get or lift)")
		}
		return flag.ErrHelp
	}
	switch args[0] {
	case "list":
		return listRevocations(ctx, args[1:], stdout, stderr)
	case "get":
		return getRevocation(ctx, args[1:], stdout, stderr)
	case "lift":
		return liftRevocation(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("revocations: unknown subcommand %q (want list, get or lift)", args[0])
}

func listRevocations(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("revocations list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a adminFlags
	a.register(fs)
	var q source.ListQuery
	var kind string
	var all bool
	fs.StringVar(&kind, "kind", "", "only records of this kind ("+authz.KindNames+")")
	fs.StringVar(&q.Issuer, "issuer", "", "only records of this issuer")
	fs.StringVar(&q.Value, "value", "", "only records with this value (jti, token hash, sub, sid or kid)")
	fs.StringVar(&q.Cursor, "cursor", "", "start at this cursor (printed when there are more records)")
	fs.IntVar(&q.Limit, "limit", 100, fmt.Sprintf("records per page (1 to %d)", admin.MaxListLimit))
	fs.BoolVar(&all, "all", false, "read every page, not just the first")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("revocations list: unexpected argument %q", fs.Arg(0))
	}
	q.Kind = authz.Kind(kind)
	if kind != "" && !slices.Contains(authz.Kinds, q.Kind) {
		return fmt.Errorf("revocations list: --kind %q: want one of %s", kind, authz.KindNames)
	}
	if q.Limit < 1 || q.Limit > admin.MaxListLimit {
		return fmt.Errorf("revocations list: --limit %d: want 1 to %d", q.Limit, admin.MaxListLimit)
	}
	client, err := a.client()
	if err != nil {
		return fmt.Errorf("revocations list: %w", err)
	}
	var recs []authz.Record
	for range maxListPages {
		cctx, cancel := context.WithTimeout(ctx, a.timeout)
		page, next, err := client.List(cctx, q)
		cancel()
		if err != nil {
			return err
		}
		recs = append(recs, page...)
		if next == "" {
			break
		}
		if !all {
			fmt.Fprintf(stderr, "more records: run with --all, or with --cursor %s\n", next)
			break
		}
		if next == q.Cursor {
			return fmt.Errorf("revocations list: the server answered the same cursor %q twice", next)
		}
		q.Cursor = next
	}
	return printRecords(stdout, a.output, recs)
}

func getRevocation(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("revocations get", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a adminFlags
	a.register(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("revocations get: want exactly one record ID")
	}
	client, err := a.client()
	if err != nil {
		return fmt.Errorf("revocations get: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	rec, err := client.Get(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if a.output == "json" {
		return writeJSONOut(stdout, rec)
	}
	return printRecords(stdout, a.output, []authz.Record{rec})
}

// liftRevocation lifts one record: every node stops enforcing it (a token
// another record covers stays revoked).
func liftRevocation(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("revocations lift", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a adminFlags
	a.register(fs)
	var w waitFlags
	w.register(fs)
	reason := fs.String("reason", "", "why the revocation is lifted (required; kept in the audit log)")
	actor := fs.String("actor", defaultActor(), "who lifts it")
	// The ID may come before the flags: jwtguard revocations lift ID --reason R.
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	} else if fs.NArg() > 0 || id == "" {
		return errors.New("revocations lift: want exactly one record ID")
	}
	if *reason == "" {
		return errors.New("revocations lift: --reason is required (it goes to the audit log)")
	}
	client, err := a.client()
	if err != nil {
		return fmt.Errorf("revocations lift: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	lift, err := client.Lift(cctx, id, *actor, *reason)
	if admin.IsStatus(err, http.StatusConflict) {
		return fmt.Errorf("revocations lift: %s was lifted already (lift %s at position %d): %w", id, lift.ID, lift.Position, err)
	}
	if err != nil {
		return err
	}
	if err := printLifts(stdout, a.output, []authz.Record{lift}); err != nil {
		return err
	}
	return w.wait(ctx, client, stderr, lift.Position)
}

// printLifts prints lift entries as a table or as a JSON array.
func printLifts(w io.Writer, output string, lifts []authz.Record) error {
	if output == "json" {
		if lifts == nil {
			lifts = []authz.Record{}
		}
		return writeJSONOut(w, lifts)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LIFTED\tKIND\tISSUER\tVALUE\tPOSITION\tACTOR\tREASON")
	for _, l := range lifts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", tableCell(l.Lifts), tableCell(string(l.Kind)), orDash(tableCell(l.Issuer)),
			orDash(tableCell(l.Value)), l.Position, orDash(tableCell(l.Actor)), orDash(tableCell(l.Reason)))
	}
	return tw.Flush()
}
