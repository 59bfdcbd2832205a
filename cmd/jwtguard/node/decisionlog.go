package node

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwtguard/jwtguard/envoy/decisionlog"
)

// The decision-log targets that are not a file path.
const (
	DecisionLogStdout = decisionlog.Stdout
	DecisionLogOff    = "off"
)

// decisionLogCloseTimeout bounds the last flush of the decision log at
// shutdown.
const decisionLogCloseTimeout = 10 * time.Second

// checkDecisionLog checks a --decision-log value: off, stdout, or a path
// that is not a directory.
func checkDecisionLog(target string) error {
	switch target {
	case "", DecisionLogOff, DecisionLogStdout:
		return nil
	}
	if fi, err := os.Stat(target); err == nil && fi.IsDir() {
		return fmt.Errorf("decision-log: %s is a directory, want a file path, stdout or off", target)
	}
	return nil
}

// trustedProxies parses --trusted-proxies: CIDRs or single addresses,
// each item possibly a comma-separated list.
func trustedProxies(items []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range items {
		for _, s := range strings.Split(item, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				ip, ierr := netip.ParseAddr(s)
				if ierr != nil || ip.Zone() != "" {
					return nil, fmt.Errorf("trusted-proxies: %q, want a CIDR (10.0.0.0/8, fd00::/8) or an address", s)
				}
				p = netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())
			}
			if p.Addr().Is4In6() {
				// Addresses are compared unmapped: ::ffff:10.0.0.0/104 is 10.0.0.0/8.
				if p.Bits() < 96 {
					return nil, fmt.Errorf("trusted-proxies: %q covers more than IPv4-mapped addresses", s)
				}
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

// openDecisionLog opens the decision log the config asks for (nil when
// off) and registers its counters.
func (n *Node) openDecisionLog(reg prometheus.Registerer) error {
	c := n.cfg
	if c.DecisionLog == "" || c.DecisionLog == DecisionLogOff {
		return nil
	}
	cfg := decisionlog.DefaultConfig()
	cfg.Node, cfg.AllowSample, cfg.DenyRate = n.id, c.DecisionLogAllowSample, c.DecisionLogDenyRate
	l, err := decisionlog.Open(c.DecisionLog, n.out, cfg, decisionlog.WithLogger(n.log))
	if err != nil {
		return fmt.Errorf("decision-log: %w", err)
	}
	n.decisions = l
	return l.Register(reg)
}

// closeDecisionLog writes what the decision log holds; the servers have
// stopped, so nothing more comes.
func (n *Node) closeDecisionLog() {
	if n.decisions == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), decisionLogCloseTimeout)
	defer cancel()
	if err := n.decisions.Close(ctx); err != nil {
		n.log.Error("closing the decision log failed", "err", err)
	}
}
