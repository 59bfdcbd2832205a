package detect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// shareQueueFactor: candidates waiting to be shared are at most this many
// batches; past it new ones wait for a later window (counted).
const (
	shareQueueFactor = 4
	shareBytes       = 256 + 8192 // a pending candidate with its strings
)

// shareState is the worker's side of mesh sharing: candidates waiting
// for the next batch, and the one batch in flight on the sharer goroutine.
type shareState struct {
	pending map[hkey]*pendingShare
	order   []hkey
	busy    bool
	work    chan []*pendingShare
	done    chan []meshFinding
}

// pendingShare is one candidate's addresses not shared yet.
type pendingShare struct {
	local   hkey
	key     string // the same on every node: a hash of issuer and token id or session
	members []string
	ev      event // the latest event, strings cloned
	det     *detector
}

// meshFinding is a candidate that crossed its threshold mesh-wide, and
// was claimed by this node.
type meshFinding struct {
	p     *pendingShare
	count int64
}

func (s *shareState) start(ctx context.Context, e *Engine) {
	s.pending = map[hkey]*pendingShare{}
	s.work = make(chan []*pendingShare, 1)
	s.done = make(chan []meshFinding, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case batch := <-s.work:
				s.done <- e.shareBatch(ctx, batch)
			}
		}
	}()
}

// offer queues the addresses of candidate c not shared yet, once this
// node saw it from ShareFrom distinct addresses.
func (s *shareState) offer(e *Engine, d *detector, k hkey, c *candidate, ev *event) {
	if d.cfg.ShareFrom == 0 || len(c.addrs) < d.cfg.ShareFrom || len(c.addrs) <= c.shared {
		return
	}
	p, ok := s.pending[k]
	if !ok {
		if len(s.pending) >= e.cfg.ShareBatch*shareQueueFactor {
			e.m.shareDropped.Inc()
			return
		}
		p = &pendingShare{local: k, det: d, key: meshKey(d, ev)}
		s.pending[k] = p
		s.order = append(s.order, k)
	}
	for _, a := range c.addrs[c.shared:] {
		p.members = append(p.members, a.String())
	}
	c.shared = len(c.addrs)
	p.ev = *ev
	p.ev.ua = ""
	p.ev.iss, p.ev.sub, p.ev.tid, p.ev.sid = cloneString(ev.iss), cloneString(ev.sub), cloneString(ev.tid), cloneString(ev.sid)
}

// meshKey names a candidate alike on every node.
func meshKey(d *detector, ev *event) string {
	id := "tok\x00" + ev.iss + "\x00" + ev.tid
	if d.cfg.Per == PerSession && ev.sid != "" {
		id = "sid\x00" + ev.iss + "\x00" + ev.sid
	}
	sum := sha256.Sum256([]byte(id))
	return string(d.name) + ":" + hex.EncodeToString(sum[:16])
}

// flush hands the oldest pending candidates, one batch, to the sharer,
// unless a batch is in flight.
func (s *shareState) flush(e *Engine) {
	if s.busy || len(s.order) == 0 {
		return
	}
	n := min(len(s.order), e.cfg.ShareBatch)
	batch := make([]*pendingShare, n)
	for i, k := range s.order[:n] {
		batch[i] = s.pending[k]
		delete(s.pending, k)
	}
	s.order = append(s.order[:0], s.order[n:]...)
	s.busy = true
	s.work <- batch
}

// shareBatch writes a batch to the mesh-wide store and claims the
// candidates that crossed their threshold there (on the sharer goroutine).
func (e *Engine) shareBatch(ctx context.Context, batch []*pendingShare) []meshFinding {
	sg := make([]Sighting, len(batch))
	for i, p := range batch {
		sg[i] = Sighting{Key: p.key, Members: p.members, TTL: p.det.cfg.Window}
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	counts, err := e.shared.AddSightings(wctx, sg)
	e.m.shared.Add(float64(len(batch)))
	if err != nil {
		e.m.shareErrors.Inc()
		e.log.Warn("detectors: sharing with the mesh failed; local counts only until it works again", "err", err)
		return nil
	}
	var out []meshFinding
	for i, p := range batch {
		if counts[i] <= int64(p.det.cfg.Threshold) {
			continue
		}
		if e.cfg.DryRun {
			out = append(out, meshFinding{p, counts[i]})
			continue
		}
		mine, err := e.shared.Claim(wctx, "fired:"+p.key, p.det.cfg.Window)
		if err != nil {
			e.m.shareErrors.Inc()
			e.log.Warn("detectors: claiming a mesh-wide finding failed", "err", err)
			continue
		}
		if mine {
			out = append(out, meshFinding{p, counts[i]})
		}
	}
	return out
}

// meshFindings acts on the candidates that crossed mesh-wide (worker).
func (e *Engine) meshFindings(ctx context.Context, fs []meshFinding) {
	for _, f := range fs {
		d, ev := f.p.det, &f.p.ev
		if c, ok := d.table.Peek(f.p.local); ok {
			if c.fired {
				continue
			}
			c.fired = true
		}
		what := "token " + short(ev.tid)
		if d.cfg.Per == PerSession && ev.sid != "" {
			what = "session " + short(ev.sid)
		}
		evidence := fmt.Sprintf("%s of %s from more than %d distinct addresses within %s across the mesh (about %d; latest %s)",
			what, short(ev.iss), d.cfg.Threshold, d.cfg.Window, f.count, ev.src)
		e.fire(ctx, d, f.p.local, ev, evidence)
	}
}
