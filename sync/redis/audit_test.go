package redis

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/sync/audit"
	"github.com/jwtguard/jwtguard/sync/audit/audittest"
	"github.com/jwtguard/jwtguard/sync/redis/redistest"
)

// TestAuditConformance runs the audit trail suite on the audit stream, one
// redis-server for the suite and a key prefix per trail, tampering with
// the stream through a plain client.
func TestAuditConformance(t *testing.T) {
	srv := redistest.Start(t)
	c := client(t, srv)
	var n atomic.Int64
	var mu sync.Mutex
	sources := map[audit.Store]*Source{}
	open := func(t *testing.T, prefix string) audit.Store {
		t.Helper()
		s := openSource(t, srv.URL(), Options{Prefix: prefix})
		a, err := s.Audit(AuditRetention{})
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		sources[a] = s
		mu.Unlock()
		return a
	}
	sourceOf := func(a audit.Store) *Source {
		mu.Lock()
		defer mu.Unlock()
		return sources[a]
	}
	audittest.Run(t, audittest.Harness{
		Open: func(t *testing.T) audit.Store { return open(t, fmt.Sprintf("{t%d}:", n.Add(1))) },
		Reopen: func(t *testing.T, a audit.Store) audit.Store {
			s := sourceOf(a)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, s.k.prefix)
		},
		Another: func(t *testing.T, a audit.Store) audit.Store { return open(t, sourceOf(a).k.prefix) },
		Raw: func(t *testing.T, a audit.Store) [][]byte {
			msgs, err := c.XRange(ctxT(t), sourceOf(a).k.audit(), "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			out := make([][]byte, len(msgs))
			for i, m := range msgs {
				out[i] = []byte(m.Values["e"].(string))
			}
			return out
		},
		Rewrite: func(t *testing.T, a audit.Store, data [][]byte) {
			key := sourceOf(a).k.audit()
			if err := c.Del(ctxT(t), key).Err(); err != nil {
				t.Fatal(err)
			}
			for i, d := range data {
				if err := c.XAdd(ctxT(t), &goredis.XAddArgs{Stream: key, ID: fmt.Sprintf("1-%d", i+1), Values: []any{"e", string(d)}}).Err(); err != nil {
					t.Fatal(err)
				}
			}
		},
	})
}

// TestAuditRetention: a stream trimmed by MAXLEN verifies from the oldest
// entry kept.
func TestAuditRetention(t *testing.T) {
	s, srv := newSource(t, Options{})
	a, err := s.Audit(AuditRetention{MaxLen: 10})
	if err != nil {
		t.Fatal(err)
	}
	l := audit.NewLog(a)
	const n = 300
	for i := range n {
		if err := l.Record(ctxT(t), audit.Entry{Kind: audit.KindBlock, Target: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	kept, err := client(t, srv).XLen(ctxT(t), s.k.audit()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if kept >= n {
		t.Fatalf("the stream keeps %d of %d entries with MAXLEN 10", kept, n)
	}
	rep, err := l.Verify(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || !rep.Trimmed || rep.Last != n || rep.First != uint64(n-rep.Entries+1) {
		t.Fatalf("Verify of a trimmed stream: %+v; want intact from the oldest kept to seq %d", rep, n)
	}
}

func TestAuditRetentionRefused(t *testing.T) {
	s, _ := newSource(t, Options{})
	for _, r := range []AuditRetention{{MaxLen: -1}, {MaxAge: -1}, {MaxAge: 1}} {
		if _, err := s.Audit(r); err == nil {
			t.Errorf("Audit(%+v): no error", r)
		}
	}
}

// TestAuditMaxAge appends through the MINID path: entries younger than the
// age are kept.
func TestAuditMaxAge(t *testing.T) {
	s, _ := newSource(t, Options{})
	a, err := s.Audit(AuditRetention{MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	l := audit.NewLog(a)
	for i := range 3 {
		if err := l.Record(ctxT(t), audit.Entry{Kind: audit.KindBlock, Target: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := l.Verify(ctxT(t))
	if err != nil || !rep.OK() || rep.Entries != 3 || rep.Trimmed {
		t.Fatalf("Verify = %+v, %v; want 3 intact entries, none trimmed", rep, err)
	}
}

// BenchmarkAuditAppend measures one audit append (read the head, seal,
// compare-and-append script) by one writer, and by 4 writers contending
// for the head.
func BenchmarkAuditAppend(b *testing.B) {
	s, _ := newSource(b, Options{})
	a, err := s.Audit(AuditRetention{})
	if err != nil {
		b.Fatal(err)
	}
	l := audit.NewLog(a)
	e := audit.Entry{Kind: audit.KindRevoke, Actor: "bench", Source: "127.0.0.1:1", Target: "token https://idp jti"}
	b.Run("one-writer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := l.Record(ctxT(b), e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("four-writers", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := l.Record(context.Background(), e); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
