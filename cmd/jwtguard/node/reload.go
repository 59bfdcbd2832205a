package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwtguard/jwtguard/authz"
)

// This file reloads the configuration of a running node, on SIGHUP and
// when the --config file changes. Each reloadable section opts in with a
// reloader: every section prepares its new state from the new Config
// first, and only when all succeeded does each commit. A bad new
// configuration is refused whole, the running one kept, with a log line and
// jwtguard_config_reload_total{result="error"}. Revocation state is never
// rebuilt: every checker decides over the node's one Revocations.

// reloader is one reloadable section of the configuration.
type reloader struct {
	name string
	// prepare builds the section's new state from cfg, off the hot path;
	// commit, called only when every section prepared, swaps it in.
	prepare func(ctx context.Context, cfg *Config) (commit func(), err error)
}

// WithReload lets the node reload its configuration: load returns the
// configuration as it is now (flags, variables and the file read again).
func WithReload(load func() (*Config, error)) Option {
	return func(n *Node) { n.reload = load }
}

// reloadKeyTimeout bounds the key set loads of a reload.
const reloadKeyTimeout = 30 * time.Second

// reloaders are the sections that reload: issuers (introspection and
// revocation-only settings included), their keys, the claim headers and
// the route rules (the checker). Sections added later join here.
func (n *Node) reloaders() []reloader {
	return []reloader{{name: "issuers, keys, claim headers and rules", prepare: n.prepareChecker}}
}

// prepareChecker builds a checker of cfg.Authz over the node's revocation
// state, taking over the key sets and cache entries that stay valid
// (authz.WithPrevious), and loads its key sets.
func (n *Node) prepareChecker(ctx context.Context, cfg *Config) (func(), error) {
	c, err := authz.NewChecker(cfg.Authz, n.rev, authz.WithLogger(n.log), authz.WithKeySetChange(n.keySetChanged), authz.WithPrevious(n.checker.Load()))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, reloadKeyTimeout)
	defer cancel()
	if err := c.LoadKeys(ctx); err != nil {
		return nil, fmt.Errorf("key sets: %w", err)
	}
	return func() {
		n.checker.Store(c)
		n.authzSvc.SetChecker(c)
		c.Activate()
		n.refreshKeys(c)
	}, nil
}

// Reload reads the configuration again and applies its reloadable
// sections, or refuses it whole and keeps the running one.
func (n *Node) Reload(ctx context.Context) error {
	err := n.reloadOnce(ctx)
	result := "ok"
	if err != nil {
		result = "error"
		n.log.Error("configuration reload refused; keeping the running configuration", "err", err)
	} else {
		n.log.Info("configuration reloaded")
	}
	n.reloads.WithLabelValues(result).Inc()
	return err
}

func (n *Node) reloadOnce(ctx context.Context) error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	if n.reload == nil {
		return errors.New("reload: this node has no configuration to read again")
	}
	if n.cfg.Dev {
		return errors.New("reload: --dev nodes do not reload; restart them")
	}
	cfg, err := n.reload()
	if err != nil {
		return err
	}
	var commits []func()
	for _, r := range n.reloaders() {
		commit, err := r.prepare(ctx, cfg)
		if err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		commits = append(commits, commit)
	}
	for _, commit := range commits {
		commit()
	}
	return nil
}

// refreshKeys keeps c's key sets fresh, in place of the previous checker's.
func (n *Node) refreshKeys(c *authz.Checker) {
	n.keysMu.Lock()
	defer n.keysMu.Unlock()
	if n.keysCancel != nil {
		n.keysCancel()
	}
	if n.keysCtx == nil {
		return // not running yet: Run starts the refresh of the current checker
	}
	ctx, cancel := context.WithCancel(n.keysCtx)
	n.keysCancel = cancel
	n.keysWG.Add(1)
	go func() { defer n.keysWG.Done(); c.Run(ctx) }()
}

// watchReloads reloads on SIGHUP and, debounced, when a file in the
// directory of --config changes (a Kubernetes ConfigMap swaps a symlink
// there), until ctx ends.
func (n *Node) watchReloads(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var events <-chan fsnotify.Event
	var errs <-chan error
	if n.cfg.ConfigFile != "" {
		w, err := fsnotify.NewWatcher()
		if err == nil {
			err = w.Add(filepath.Dir(n.cfg.ConfigFile))
		}
		if err != nil {
			n.log.Warn("not watching the config file; reload with SIGHUP", "file", n.cfg.ConfigFile, "err", err)
		} else {
			defer w.Close()
			events, errs = w.Events, w.Errors
		}
	}
	const debounce = 500 * time.Millisecond
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = n.Reload(ctx)
		case ev := <-events:
			if ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 {
				timer.Reset(debounce)
			}
		case err := <-errs:
			n.log.Warn("config file watch", "err", err)
		case <-timer.C:
			_ = n.Reload(ctx)
		}
	}
}

// reloadState is the node's part in reloads.
type reloadState struct {
	reload   func() (*Config, error)
	reloadMu sync.Mutex
	reloads  *prometheus.CounterVec

	keysMu     sync.Mutex
	keysCtx    context.Context // Run's, once running
	keysCancel context.CancelFunc
	keysWG     sync.WaitGroup
}
