package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"

	"github.com/jwtguard/jwtguard/cmd/jwtguard/node"
)

// runServe loads the settings from flags, the environment and the file,
// and runs one node until ctx ends.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg *node.Config
	err := quietParse(fs, stderr, func() (err error) {
		cfg, err = node.Load(args, os.Getenv, fs)
		return err
	}, func(err error) bool {
		var fe *node.FlagError
		return errors.As(err, &fe)
	})
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	slog.SetDefault(log)
	reload := func() (*node.Config, error) {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		return node.Load(args, os.Getenv, fs)
	}
	return node.Run(ctx, cfg, node.WithLogger(log), node.WithOutput(stdout), node.WithReload(reload))
}

// newLogger is the structured logger cfg asks for, writing to w.
func newLogger(cfg *node.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
