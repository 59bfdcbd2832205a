package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/admin"
)

// refusingRevoker stores every record but those whose value starts with
// "bad", refusing a batch holding one as the admin API does (400, naming
// the first such record, or naming none when anonymous is set).
type refusingRevoker struct {
	anonymous bool
	calls     atomic.Int64
	mu        sync.Mutex
	stored    []string
}

func (r *refusingRevoker) Revoke(_ context.Context, recs []authz.Record) ([]authz.Record, []string, error) {
	r.calls.Add(1)
	for i, rec := range recs {
		if strings.HasPrefix(rec.Value, "bad") {
			e := &admin.APIError{StatusCode: http.StatusBadRequest, Message: fmt.Sprintf("record %d: refused %s", i, rec.Value), Index: i}
			if r.anonymous {
				e.Index = -1
			}
			return nil, nil, e
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range recs {
		r.stored = append(r.stored, rec.Value)
	}
	return recs, nil, nil
}

// TestRevokeFileFindsRefusedRecords: a batch the server refuses is sent
// again without the record it names (or halved when it names none), so a
// few refused records among many cost a few requests, not one per record,
// and every other record is stored once.
func TestRevokeFileFindsRefusedRecords(t *testing.T) {
	defer func(n int) { fileBatch = n }(fileBatch)
	fileBatch = 1000
	const n = 5000
	bad := map[int]bool{17: true, 18: true, 2500: true, 4999: true}
	var b strings.Builder
	for i := range n {
		prefix := "good"
		if bad[i] {
			prefix = "bad"
		}
		fmt.Fprintf(&b, `{"kind":"token","issuer":"https://idp","value":"%s-%d"}`+"\n", prefix, i)
	}
	file := writeTestFile(t, "mixed.ndjson", b.String())
	for _, tc := range []struct {
		name      string
		anonymous bool
		maxCalls  int64
	}{
		{"server names the record", false, 5 + 2*int64(len(bad))},
		{"server names none", true, 5 + 2*int64(len(bad))*11}, // log2(1000) halvings each
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &refusingRevoker{anonymous: tc.anonymous}
			f := &revokeFlags{fromFile: file, actor: "test"}
			f.output, f.timeout = "table", 30*time.Second
			var stdout strings.Builder
			err := revokeFile(context.Background(), r, f, &stdout, io.Discard)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d of %d records rejected", len(bad), n)) {
				t.Fatalf("err %v, want %d of %d rejected", err, len(bad), n)
			}
			for i := range bad {
				if want := fmt.Sprintf("line %d: refused bad-%d", i+1, i); !strings.Contains(stdout.String(), want) {
					t.Errorf("summary lacks %q:\n%s", want, stdout.String())
				}
			}
			if len(r.stored) != n-len(bad) {
				t.Errorf("%d records stored, want %d", len(r.stored), n-len(bad))
			}
			seen := map[string]bool{}
			for _, v := range r.stored {
				if seen[v] || strings.HasPrefix(v, "bad") {
					t.Fatalf("stored %s twice or refused", v)
				}
				seen[v] = true
			}
			if c := r.calls.Load(); c > tc.maxCalls {
				t.Errorf("%d requests, want at most %d", c, tc.maxCalls)
			}
		})
	}
}
