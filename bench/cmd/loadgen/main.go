// Command loadgen is jwtguard's end-to-end load generator.
//
//	loadgen serve   --mode jwtguard|baseline --keys DIR ...   a server under test
//	loadgen run     --target ADDR --keys DIR ...              drive it and measure
//	loadgen plot    a.json b.json -o out.svg                  latency-percentile chart
//	loadgen compare [--category C] baseline.json candidate.json  throughput and p99 ratios
//	loadgen ab      --a ADDR --b ADDR --keys DIR ...          two servers in interleaved slices
//
// See bench/README.md for the scenarios and their recorded figures.
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

const usage = `usage: loadgen <command> [flags]

commands:
  serve     run a server under test (jwtguard or baseline) until SIGTERM
  run       send checks to a server and measure them
  plot      draw the latency percentiles of result files as SVG
  compare   print the throughput and p99 ratios of two result files
  ab        drive two servers in interleaved slices and print their ratios

"loadgen <command> -h" lists a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"serve": runServe, "run": runRun, "plot": runPlot, "compare": runCompare, "ab": runAB,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "loadgen: unknown command %q\n%s", args[0], usage)
		return 2
	}
	err := cmd(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "loadgen %s: %v\n", args[0], err)
		return 1
	}
}

// errUsage: the flags were wrong; the flag package has said why.
var errUsage = errors.New("usage")

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}
