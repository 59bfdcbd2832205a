// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/jwtguard/jwtguard/cmd/jwtguard/internal/buildinfo"
)

// runVersion prints the binary's version, commit, build date and Go
// version (also `jwtguard --version`).
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	output := fs.String("o", "text", "output format: text or json")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("version: unexpected argument %q", fs.Arg(0))
	}
	in := buildinfo.Get()
	switch *output {
	case "text":
		_, err := io.WriteString(stdout, in.String())
		return err
	case "json":
		return writeJSONOut(stdout, in)
	}
	return fmt.Errorf("version: -o %q: want text or json", *output)
}
