package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"text/tabwriter"
	"time"
)

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a adminFlags
	a.register(fs)
	mesh := fs.Bool("mesh", false, "show every live node of the mesh (position, lag, key sets, readiness), flagging stragglers and differing key sets")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("status: unexpected argument %q", fs.Arg(0))
	}
	client, err := a.client()
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	if *mesh {
		ms, err := client.Mesh(ctx)
		if err != nil {
			return err
		}
		return printMesh(stdout, a.output, ms, time.Now())
	}
	st, err := client.Status(ctx)
	if err != nil {
		return err
	}
	if a.output == "json" {
		return writeJSONOut(stdout, st)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	printFields(tw, "", st)
	return tw.Flush()
}

// printFields prints m one field a line, nested objects as dotted names,
// in name order.
func printFields(w io.Writer, prefix string, m map[string]any) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		switch v := m[k].(type) {
		case map[string]any:
			if len(v) == 0 {
				fmt.Fprintf(w, "%s%s\t-\n", prefix, k)
			}
			printFields(w, prefix+k+".", v)
		case float64:
			if v == math.Trunc(v) && math.Abs(v) < 1e15 {
				fmt.Fprintf(w, "%s%s\t%d\n", prefix, k, int64(v))
			} else {
				fmt.Fprintf(w, "%s%s\t%.6g\n", prefix, k, v)
			}
		case nil:
			fmt.Fprintf(w, "%s%s\t-\n", prefix, k)
		default:
			fmt.Fprintf(w, "%s%s\t%v\n", prefix, k, v)
		}
	}
}
