// Command jwtguard is the JWT revocation enforcement point: an Envoy
// ext_authz server (serve) and the tools to revoke tokens and inspect its
// state (revoke, revocations, status, audit), and version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand: it parses its own flags from args.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"serve", "run the ext_authz gRPC server, forward-auth HTTP, admin API", runServe},
	{"revoke", "revoke tokens, subjects, sessions, keys or an issuer's past tokens", runRevoke},
	{"revocations", "list, show or lift revocations (revocations list, get, lift)", runRevocations},
	{"clamp", "deny an issuer's tokens older than a max age until turned off (incident clamp)", runClamp},
	{"status", "show a server's revocation state", runStatus},
	{"audit", "list, verify or export the audit trail (audit verify, audit export)", runAudit},
	{"tokens", "list the live tokens seen and where they are used; revoke them (--revoke)", runTokens},
	{"publish", "publish a filter snapshot to a Redis source once", runPublish},
	{"version", "print the version, commit, build date and Go version", runVersion},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "jwtguard:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	if args[0] == "--version" || args[0] == "-version" {
		return runVersion(ctx, args[1:], stdout, stderr)
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: jwtguard <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'jwtguard <command> -h' for a command's flags.")
}
