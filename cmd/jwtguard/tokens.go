package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy/scope"
)

// stdin is where a confirmation prompt reads its answer (tests replace it).
var stdin io.Reader = os.Stdin

// tokensFlags are the flags of jwtguard tokens.
type tokensFlags struct {
	adminFlags
	subject, session, kid, issuer, addr, route, since string
	limit                                             int
	revoke, reason, actor                             string
	dryRun, yes                                       bool
}

// tokensFilters are the flags that select tokens by who or where: --revoke
// needs one of them.
var tokensFilters = []string{"subject", "session", "kid", "issuer", "addr", "route"}

func runTokens(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tokens", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: jwtguard tokens [--subject S] [--session SID] [--kid K] [--issuer I]
                      [--addr CIDR] [--route PREFIX] [--since D] [-o json]
                      [--revoke token|session|subject [--dry-run] [--yes] --reason R]

Lists the live tokens the server (with Redis: every node) has recently seen,
and where they were used from; every filter given must match. --revoke turns
the answer into revocations of those tokens, their sessions or their
subjects, after showing them and asking (--yes skips the question).

flags:`)
		fs.PrintDefaults()
	}
	var f tokensFlags
	f.register(fs)
	fs.StringVar(&f.subject, "subject", "", "tokens of this subject (sub)")
	fs.StringVar(&f.session, "session", "", "tokens of this login session (sid)")
	fs.StringVar(&f.kid, "kid", "", "tokens signed with this key id")
	fs.StringVar(&f.issuer, "issuer", "", "tokens of this issuer")
	fs.StringVar(&f.addr, "addr", "", "tokens used from this address or CIDR (among the addresses each token keeps)")
	fs.StringVar(&f.route, "route", "", "tokens used on a route whose path starts with this (or METHOD /path)")
	fs.StringVar(&f.since, "since", "", "tokens seen within this duration (15m) or since this RFC 3339 time")
	fs.IntVar(&f.limit, "limit", scope.DefaultLimit, fmt.Sprintf("tokens listed at most (1 to %d)", scope.MaxLimit))
	fs.StringVar(&f.revoke, "revoke", "", "revoke what the answer lists: token, session or subject")
	fs.BoolVar(&f.dryRun, "dry-run", false, "with --revoke: print the revocations, store nothing")
	fs.BoolVar(&f.yes, "yes", false, "with --revoke: do not ask for confirmation")
	fs.StringVar(&f.reason, "reason", "", "with --revoke: why (kept with the records and in the audit log)")
	fs.StringVar(&f.actor, "actor", defaultActor(), "with --revoke: who revokes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("tokens: unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if f.limit < 1 || f.limit > scope.MaxLimit {
		return fmt.Errorf("tokens: --limit %d: want 1 to %d", f.limit, scope.MaxLimit)
	}
	if f.revoke == "" && (f.dryRun || f.yes) {
		return errors.New("tokens: --dry-run and --yes apply to --revoke only")
	}
	if f.revoke != "" {
		if err := f.checkRevoke(set); err != nil {
			return fmt.Errorf("tokens: %w", err)
		}
	}
	client, err := f.client()
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, f.timeout)
	raw, err := client.Tokens(cctx, f.values())
	cancel()
	if err != nil {
		return err
	}
	var ans scope.Answer
	if err := json.Unmarshal(raw, &ans); err != nil {
		return fmt.Errorf("tokens: decode answer: %w", err)
	}
	for _, w := range ans.Warnings {
		fmt.Fprintln(stderr, "warning:", tableCell(w))
	}
	if ans.Truncated {
		fmt.Fprintf(stderr, "warning: more tokens matched than the %d listed; narrow the query\n", len(ans.Tokens))
	}
	if f.revoke == "" {
		if f.output == "json" {
			return writeJSONOut(stdout, ans)
		}
		return printTokens(stdout, ans)
	}
	return f.revokeAnswer(ctx, client, ans, stdout, stderr)
}

func (f *tokensFlags) checkRevoke(set map[string]bool) error {
	switch f.revoke {
	case "token", "session", "subject":
	default:
		return fmt.Errorf("--revoke %q: want token, session or subject", f.revoke)
	}
	for _, name := range tokensFilters {
		if set[name] {
			return nil
		}
	}
	return fmt.Errorf("--revoke needs a filter (--%s): it never revokes every token seen", strings.Join(tokensFilters, ", --"))
}

// values are the query of GET /v1/tokens.
func (f *tokensFlags) values() map[string][]string {
	v := map[string][]string{}
	for name, val := range map[string]string{"subject": f.subject, "session": f.session, "kid": f.kid, "issuer": f.issuer,
		"addr": f.addr, "route": f.route, "since": f.since} {
		if val != "" {
			v[name] = []string{val}
		}
	}
	v["limit"] = []string{fmt.Sprint(f.limit)}
	return v
}

// revokeAnswer turns the answer into records, shows them, and stores them
// when confirmed.
func (f *tokensFlags) revokeAnswer(ctx context.Context, client interface {
	RevokeWithWarnings(context.Context, []authz.Record) ([]authz.Record, []string, error)
}, ans scope.Answer, stdout, stderr io.Writer) error {
	if ans.Truncated {
		return errors.New("tokens: the answer is truncated: narrow the query (or raise --limit) before --revoke, so that what is revoked is what was shown")
	}
	recs, skipped := scopeRecords(ans.Tokens, f.revoke, f.reason, f.actor)
	if skipped > 0 {
		fmt.Fprintf(stderr, "warning: %d tokens carry no %s and are not covered\n", skipped, f.revoke)
	}
	if len(recs) == 0 {
		fmt.Fprintln(stderr, "tokens: nothing to revoke")
		return nil
	}
	if f.output == "json" && f.dryRun {
		return writeJSONOut(stdout, map[string]any{"tokens": ans.Tokens, "would_revoke": recs})
	}
	if f.output != "json" {
		fmt.Fprintf(stdout, "%d tokens seen; will revoke %d %s records:\n", len(ans.Tokens), len(recs), f.revoke)
		if err := printRecords(stdout, "table", recs); err != nil {
			return err
		}
	}
	if f.dryRun {
		return nil
	}
	if !f.yes {
		fmt.Fprintf(stderr, "revoke these %d? [y/N] ", len(recs))
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			return errors.New("tokens: not confirmed; nothing revoked")
		}
	}
	var stored []authz.Record
	for start := 0; start < len(recs); start += fileBatch {
		cctx, cancel := context.WithTimeout(ctx, f.timeout)
		got, warnings, err := client.RevokeWithWarnings(cctx, recs[start:min(start+fileBatch, len(recs))])
		cancel()
		printWarnings(stderr, warnings)
		if err != nil {
			return fmt.Errorf("tokens: revoked %d of %d, then: %w", len(stored), len(recs), err)
		}
		stored = append(stored, got...)
	}
	if f.output == "json" {
		return writeJSONOut(stdout, map[string]any{"tokens": ans.Tokens, "revoked": stored})
	}
	fmt.Fprintf(stdout, "revoked %d:\n", len(stored))
	return printRecords(stdout, "table", stored)
}

// scopeRecords are the records that revoke what the tokens are, one per
// distinct token, session or subject, and how many tokens carry no such
// value (a token without sid has no session to revoke).
func scopeRecords(tokens []scope.Entry, what, reason, actor string) ([]authz.Record, int) {
	seen := map[[2]string]bool{}
	var recs []authz.Record
	skipped := 0
	for _, e := range tokens {
		rec := authz.Record{Issuer: e.Issuer, Reason: reason, Actor: actor}
		switch what {
		case "token":
			rec.Kind, rec.Value, rec.ExpiresAt = authz.KindToken, e.TokenID, e.Expiry
		case "session":
			rec.Kind, rec.Value = authz.KindSession, e.Session
		case "subject":
			rec.Kind, rec.Value = authz.KindSubject, e.Subject
		}
		if rec.Value == "" {
			skipped++
			continue
		}
		k := [2]string{rec.Issuer, rec.Value}
		if seen[k] {
			continue
		}
		seen[k] = true
		recs = append(recs, rec)
	}
	return recs, skipped
}

// printTokens prints the scope answer as a table.
func printTokens(w io.Writer, ans scope.Answer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOKEN\tISSUER\tSUBJECT\tSESSION\tKID\tREQUESTS\tDENIED\tADDRS\tADDRESSES\tROUTES\tLAST SEEN\tEXPIRES\tNODES")
	for _, e := range ans.Tokens {
		addrs := make([]string, len(e.AddrExamples))
		for i, a := range e.AddrExamples {
			addrs[i] = a.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%d\n",
			tableCell(e.TokenID), tableCell(e.Issuer), orDash(tableCell(e.Subject)), orDash(tableCell(e.Session)), orDash(tableCell(e.KeyID)),
			e.Requests, e.Denied, e.DistinctAddrs, orDash(strings.Join(addrs, ",")), orDash(tableCell(strings.Join(e.Routes, ","))),
			formatTime(e.LastSeen), formatTime(e.Expiry), len(e.Nodes))
	}
	scopeNote := "this node"
	if ans.Mesh {
		scopeNote = "every node sharing the source"
	}
	fmt.Fprintf(tw, "%d tokens (%s)\n", len(ans.Tokens), scopeNote)
	return tw.Flush()
}
