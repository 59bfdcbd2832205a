package detect

import (
	"context"
	"net/netip"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

// recentSize bounds the memory of what fired lately (no second action for
// one candidate within its window, even after its LRU entry was evicted).
const (
	recentSize  = 16384
	recentBytes = 24 + 8 + 96 + 48
)

// firedKey names a candidate of one detector.
type firedKey struct {
	det Name
	k   hkey
}

// fire carries out detector d's policy for candidate k, crossed by ev.
func (e *Engine) fire(ctx context.Context, d *detector, k hkey, ev *event, evidence string) {
	fk := firedKey{d.name, k}
	if t, ok := e.recent.Get(fk); ok && ev.t-t < d.window {
		return
	}
	e.recent.Add(fk, ev.t)
	evidence += "; node " + e.cfg.Node
	policy := d.cfg.Policy
	log := e.log.With("detector", d.name, "policy", policy, "evidence", evidence)
	if e.cfg.DryRun {
		log.Warn("detector fired (dry run: nothing done)", "would", policy)
		e.m.fired(d.name, policy, "dry_run")
		return
	}
	switch {
	case policy == Block:
		e.block(ctx, d, ev, evidence, log)
	case policy.revokes():
		e.revoke(ctx, d, ev, evidence, log)
	default:
		log.Warn("detector fired")
		e.m.fired(d.name, policy, "observed")
	}
}

// block denies the candidate on this node for BlockFor: the address for
// the address detectors, the token or session for the token detectors.
func (e *Engine) block(ctx context.Context, d *detector, ev *event, evidence string, log interface {
	Warn(string, ...any)
}) {
	until := ev.t + int64(d.cfg.BlockFor)
	var target string
	var ok bool
	switch {
	case d.reads(inAllowed) || d.reads(inRetired):
		bk := blockKey{kind: kindToken, iss: ev.iss, v: ev.tid}
		target = "token " + short(ev.iss) + " " + short(ev.tid)
		if d.cfg.Per == PerSession && ev.sid != "" {
			bk = blockKey{kind: kindSession, iss: ev.iss, v: ev.sid}
			target = "session " + short(ev.iss) + " " + short(ev.sid)
		}
		ok = e.addBlock(ev.t, netip.Addr{}, bk, until)
	default:
		target = "address " + ev.src.String()
		ok = ev.src.IsValid() && e.addBlock(ev.t, ev.src, blockKey{}, until)
	}
	if !ok {
		log.Warn("detector fired; block refused (max-blocks reached or no address): observing instead", "target", target)
		e.m.fired(d.name, Block, "block_full")
		return
	}
	log.Warn("detector fired: blocked", "target", target, "until", time.Unix(0, until).UTC())
	e.m.fired(d.name, Block, "blocked")
	e.audit(ctx, AuditEntry{Time: time.Unix(0, ev.t), Actor: Actor(d.name), Action: Block, Target: target + " until " + time.Unix(0, until).UTC().Format(time.RFC3339), Reason: evidence, Address: ev.src})
}

// revoke writes the record of d's policy, within the per-minute cap.
func (e *Engine) revoke(ctx context.Context, d *detector, ev *event, evidence string, log interface {
	Warn(string, ...any)
	Error(string, ...any)
}) {
	policy := d.cfg.Policy
	if e.revoker == nil {
		log.Warn("detector fired; no revocation writer on this node: observing instead")
		e.m.fired(d.name, policy, "no_revoker")
		return
	}
	minute := ev.t / int64(time.Minute)
	if minute != e.capMinute {
		e.capMinute, e.capCount = minute, 0
	}
	if e.capCount >= e.cfg.MaxRevocationsPerMinute {
		log.Warn("detector fired; max-revocations-per-minute reached: observing instead", "cap", e.cfg.MaxRevocationsPerMinute)
		e.m.fired(d.name, policy, "capped")
		return
	}
	e.capCount++
	rec := authz.Record{Kind: authz.KindToken, Issuer: ev.iss, Value: ev.tid, Actor: Actor(d.name), Reason: evidence}
	switch {
	case policy == RevokeSession && ev.sid != "":
		rec.Kind, rec.Value = authz.KindSession, ev.sid
	case policy == RevokeSubject && ev.sub != "":
		rec.Kind, rec.Value = authz.KindSubject, ev.sub
	}
	src := ev.src
	// The write goes to the source over the network: off the worker, so
	// detection goes on meanwhile (the cap bounds how many run).
	e.inflight.Add(1)
	go func() {
		defer e.inflight.Done()
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		stored, err := e.revoker.Revoke(wctx, rec)
		if err != nil {
			log.Error("detector fired; revocation failed", "kind", rec.Kind, "err", err)
			e.m.fired(d.name, policy, "failed")
			return
		}
		log.Warn("detector fired: revoked", "kind", stored.Kind, "value", short(stored.Value), "id", stored.ID)
		e.m.fired(d.name, policy, "revoked")
		e.audit(wctx, AuditEntry{Time: stored.CreatedAt, Actor: rec.Actor, Action: policy,
			Target: string(stored.Kind) + " " + short(stored.Issuer) + " " + short(stored.Value), Reason: evidence, Address: src, Record: &stored})
	}()
}

func (e *Engine) audit(ctx context.Context, a AuditEntry) {
	if e.auditor == nil {
		return
	}
	a.Node = e.cfg.Node
	e.auditor.Audit(ctx, a)
}

// Wait waits for the revocations in flight (tests).
func (e *Engine) Wait() { e.inflight.Wait() }
