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
	"strings"
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
	if strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("flags go after a command: jwtguard <command> %s (run 'jwtguard help' for the commands)", args[0])
	}
	if near := nearestCommand(args[0]); near != "" {
		return fmt.Errorf("unknown command %q; did you mean %q? (run 'jwtguard help' for the commands)", args[0], near)
	}
	return fmt.Errorf("unknown command %q (run 'jwtguard help' for the commands)", args[0])
}

// nearestCommand is the command name that name most likely mistypes: a
// prefix of it or one it is a prefix of, or one at most two edits away;
// "" when none is.
func nearestCommand(name string) string {
	best, bestDist := "", 3
	for _, c := range commands {
		d := editDistance(strings.ToLower(name), c.name)
		if strings.HasPrefix(c.name, name) || strings.HasPrefix(name, c.name) {
			d = min(d, 1)
		}
		if d < bestDist {
			best, bestDist = c.name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// parseFlags parses args into fs. A mistyped flag or a bad value gets its
// error and a one-line hint (returned, printed once by main), not the
// whole usage; -h prints the usage.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	return quietParse(fs, stderr, func() error { return fs.Parse(args) }, func(error) bool { return true })
}

// quietParse runs parse, which parses fs, with the flag package's own
// printing off, then prints the usage for -h, or adds the hint to an error
// that isFlagError says came from the flags.
func quietParse(fs *flag.FlagSet, stderr io.Writer, parse func() error, isFlagError func(error) bool) error {
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := parse()
	fs.Usage = usage
	fs.SetOutput(stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		if usage != nil {
			usage()
		} else {
			fmt.Fprintf(stderr, "usage of jwtguard %s:\n", fs.Name())
			fs.PrintDefaults()
		}
		return err
	case err != nil && isFlagError(err):
		return fmt.Errorf("%s: %w (run 'jwtguard %s -h' for its flags)", fs.Name(), err, fs.Name())
	}
	return err
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: jwtguard <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'jwtguard <command> -h' for a command's flags.")
}
