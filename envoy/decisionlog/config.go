package decisionlog

import (
	"fmt"
	"math"
	"time"
)

// Defaults of Config.
const (
	// DefaultAllowSample logs no allow: a deny is what an operator looks
	// for, and one line per allow would cost as much as the check.
	DefaultAllowSample = 0
	// DefaultDenyRate is the most deny lines a second: a flood of garbage
	// tokens never floods the log.
	DefaultDenyRate = 100
	// DefaultQueueSize is the events waiting for the writer, at most.
	DefaultQueueSize = 1024
	// DefaultSummaryInterval is how often a summary line reports what was
	// left out.
	DefaultSummaryInterval = time.Minute
)

// Config is a decision log's settings.
type Config struct {
	// Node names the node in every line.
	Node string
	// AllowSample is the share of allows logged, from 0 (none) to 1 (all).
	AllowSample float64
	// DenyRate is the most denies logged a second; 0 logs every deny.
	DenyRate int
	// QueueSize is the most events waiting to be written; more are
	// dropped and counted.
	QueueSize int
	// SummaryInterval is how often a summary line is written, when
	// something was left out since the last one.
	SummaryInterval time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		AllowSample:     DefaultAllowSample,
		DenyRate:        DefaultDenyRate,
		QueueSize:       DefaultQueueSize,
		SummaryInterval: DefaultSummaryInterval,
	}
}

// Validate says which field is wrong.
func (c Config) Validate() error {
	switch {
	case math.IsNaN(c.AllowSample) || c.AllowSample < 0 || c.AllowSample > 1:
		return fmt.Errorf("allow sample %v: want a share from 0 to 1", c.AllowSample)
	case c.DenyRate < 0:
		return fmt.Errorf("deny rate %d: want 0 (no limit) or more", c.DenyRate)
	case c.QueueSize < 1 || c.QueueSize > 1<<20:
		return fmt.Errorf("queue size %d: want 1 to %d", c.QueueSize, 1<<20)
	case c.SummaryInterval <= 0:
		return fmt.Errorf("summary interval %s: want more than 0", c.SummaryInterval)
	case len(c.Node) > MaxNodeBytes:
		return fmt.Errorf("node %q: longer than %d bytes", c.Node, MaxNodeBytes)
	}
	return nil
}

// MaxNodeBytes is the longest node name.
const MaxNodeBytes = 512
