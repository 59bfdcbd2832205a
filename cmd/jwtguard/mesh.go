package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jwtguard/jwtguard/sync/admin"
)

// waitFlags are --wait and --wait-timeout of the commands that write.
type waitFlags struct {
	on      bool
	waitFor time.Duration
}

func (w *waitFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&w.on, "wait", false, "return only once every live node has applied it (see status --mesh)")
	fs.DurationVar(&w.waitFor, "wait-timeout", 30*time.Second, "with --wait: give up after this long, naming the nodes that have not applied it")
}

// wait waits, with --wait, until every live node has applied position
// pos, reading the mesh status from client (an admin.MeshReader), and says
// so on stderr.
func (w *waitFlags) wait(ctx context.Context, client any, stderr io.Writer, pos uint64) error {
	if !w.on || pos == 0 {
		return nil
	}
	m, ok := client.(admin.MeshReader)
	if !ok {
		return errors.New("--wait: this client cannot read the mesh status")
	}
	start := time.Now()
	st, err := admin.WaitApplied(ctx, m, pos, w.waitFor, 100*time.Millisecond)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "applied at position %d by all %d live nodes after %s\n", pos, len(st.Nodes), time.Since(start).Round(time.Millisecond))
	return nil
}

// meshOutput is status --mesh -o json: the status and each node's flags.
type meshOutput struct {
	admin.MeshStatus
	Flags map[string][]string `json:"flags"`
}

// printMesh prints the mesh status: one line per node with its flags.
func printMesh(w io.Writer, output string, st admin.MeshStatus, now time.Time) error {
	flags := st.Flags(now)
	if output == "json" {
		return writeJSONOut(w, meshOutput{MeshStatus: st, Flags: flags})
	}
	fmt.Fprintf(w, "source position %d, %d live nodes, %d flagged\n", st.Head, len(st.Nodes), len(flags))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tVERSION\tPOSITION\tLAG\tREADY\tHEARTBEAT\tSNAPSHOT\tKEY SETS\tFLAGS")
	for _, n := range st.Nodes {
		var keys []string
		for _, iss := range slices.Sorted(maps.Keys(n.KeySets)) {
			keys = append(keys, iss+"="+orDash(n.KeySets[iss]))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%v\t%s ago\t%s\t%s\t%s\n", tableCell(n.ID), tableCell(n.Version), n.Position, n.Lag, n.Ready,
			now.Sub(n.Heartbeat).Round(100*time.Millisecond), formatTime(n.LastSnapshot), orDash(tableCell(strings.Join(keys, " "))),
			orDash(strings.Join(flags[n.ID], ",")))
	}
	return tw.Flush()
}
