package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/jwtguard/jwtguard/bench/loadgen"
)

func runPlot(_ context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("plot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "latency.svg", "SVG file to write")
	if err := parse(fs, args); err != nil {
		return err
	}
	results, err := readResults(fs.Args())
	if err != nil {
		return err
	}
	if len(results) == 0 {
		return errors.New("give one or more result files")
	}
	return writeSVG(*out, results)
}

func runCompare(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cat := fs.String("category", "", "compare only the requests of this token category (e.g. repeated), to see the share it keeps when mixed with others")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errors.New("give two result files: baseline.json candidate.json")
	}
	rs, err := readResults(fs.Args())
	if err != nil {
		return err
	}
	if *cat == "" {
		fmt.Fprintln(stdout, loadgen.Compare(rs[0], rs[1]))
		return nil
	}
	cmp, err := loadgen.CompareCategory(rs[0], rs[1], loadgen.Category(*cat))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, cmp)
	return nil
}

func readResults(paths []string) ([]*loadgen.Result, error) {
	var rs []*loadgen.Result
	for _, p := range paths {
		r, err := loadgen.ReadResult(p)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}
