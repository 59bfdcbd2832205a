package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/source"
)

// runClamp turns an issuer's emergency clamp on (--max-age) or off (--off).
func runClamp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("clamp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: jwtguard clamp --issuer ISS --max-age D [--reason R]
       jwtguard clamp --issuer ISS --off --reason R

While a clamp is on, every node denies (reason "clamped") each token of the
issuer issued (iat, or nbf) more than --max-age before the request: only
freshly issued tokens pass. It is kept until turned off.

flags:`)
		fs.PrintDefaults()
	}
	var a adminFlags
	a.register(fs)
	var w waitFlags
	w.register(fs)
	issuer := fs.String("issuer", "", "the issuer (iss) to clamp")
	maxAge := fs.Duration("max-age", 0, "deny tokens issued longer ago than this (at least 1s), e.g. 5m")
	off := fs.Bool("off", false, "lift every clamp of --issuer")
	reason := fs.String("reason", "", "why (kept with the record and in the audit log; required with --off)")
	actor := fs.String("actor", defaultActor(), "who clamps")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("clamp: unexpected argument %q", fs.Arg(0))
	case *issuer == "":
		return errors.New("clamp: --issuer is required")
	case *off && *maxAge != 0:
		return errors.New("clamp: --off and --max-age are exclusive")
	case *off && *reason == "":
		return errors.New("clamp: --off needs --reason (it goes to the audit log)")
	case !*off && *maxAge < time.Second:
		return fmt.Errorf("clamp: --max-age %s: want at least 1s (or --off)", *maxAge)
	}
	client, err := a.client()
	if err != nil {
		return fmt.Errorf("clamp: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	if !*off {
		rec := authz.Record{Kind: authz.KindClamp, Issuer: *issuer, MaxAgeSeconds: int64(*maxAge / time.Second), Reason: *reason, Actor: *actor}
		stored, warnings, err := client.RevokeWithWarnings(cctx, []authz.Record{rec})
		printWarnings(stderr, warnings)
		if err != nil {
			return err
		}
		if err := printRecords(stdout, a.output, stored); err != nil {
			return err
		}
		return w.wait(ctx, client, stderr, stored[0].Position)
	}
	// Lift every clamp of the issuer: collect first, since lifting moves
	// the listing.
	var clamps []authz.Record
	q := source.ListQuery{Kind: authz.KindClamp, Issuer: *issuer, Limit: source.MaxListLimit}
	for range maxListPages {
		page, next, err := client.List(cctx, q)
		if err != nil {
			return fmt.Errorf("clamp --off: %w", err)
		}
		clamps = append(clamps, page...)
		if next == "" || next == q.Cursor {
			break
		}
		q.Cursor = next
	}
	if len(clamps) == 0 {
		return fmt.Errorf("clamp --off: issuer %q has no clamp", *issuer)
	}
	var lifts []authz.Record
	for _, c := range clamps {
		lift, err := client.Lift(cctx, c.ID, *actor, *reason)
		if err != nil {
			_ = printLifts(stdout, a.output, lifts)
			return fmt.Errorf("clamp --off: %w", err)
		}
		lifts = append(lifts, lift)
	}
	if err := printLifts(stdout, a.output, lifts); err != nil {
		return err
	}
	return w.wait(ctx, client, stderr, lifts[len(lifts)-1].Position)
}
