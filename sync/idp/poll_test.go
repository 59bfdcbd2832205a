package idp

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

// transmitter is an SSF poll endpoint (RFC 8936) written for the test: it
// holds a queue of SETs, hands out up to maxEvents of the unacknowledged
// ones per request with moreAvailable, and drops those acknowledged or
// reported in setErrs. It can fail its first requests.
type transmitter struct {
	token string

	mu       sync.Mutex
	queue    []queued
	acked    []string
	errs     map[string]pollSetErr
	polls    int
	failures int // requests still to answer 500
}

type queued struct{ jti, set string }

func (tr *transmitter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer "+tr.token || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, `{"err":"authentication_failed"}`, http.StatusUnauthorized)
		return
	}
	tr.polls++
	if tr.failures > 0 {
		tr.failures--
		http.Error(w, "busy", http.StatusInternalServerError)
		return
	}
	var req pollRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.MaxEvents < 1 || !req.ReturnImmediately {
		http.Error(w, `{"err":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	drop := func(jti string) {
		if i := slices.IndexFunc(tr.queue, func(q queued) bool { return q.jti == jti }); i >= 0 {
			tr.queue = slices.Delete(tr.queue, i, i+1)
		}
	}
	for _, jti := range req.Ack {
		tr.acked = append(tr.acked, jti)
		drop(jti)
	}
	for jti, e := range req.SetErrs {
		tr.errs[jti] = e
		drop(jti)
	}
	res := pollResponse{Sets: map[string]string{}}
	for _, q := range tr.queue {
		if len(res.Sets) == req.MaxEvents {
			res.MoreAvailable = true
			break
		}
		if _, dup := res.Sets[q.jti]; dup {
			break // a redelivery goes in a later answer
		}
		res.Sets[q.jti] = q.set
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

func (tr *transmitter) state() (pending int, acked []string, errs map[string]pollSetErr, polls int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.queue), slices.Clone(tr.acked), maps.Clone(tr.errs), tr.polls
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPoll: the receiver polls a transmitter through a failure (backoff),
// pages of two with moreAvailable, acknowledges what it applied, reports
// a SET for another audience in setErrs, and applies a SET delivered
// twice once.
func TestPoll(t *testing.T) {
	tr := &transmitter{token: "poll-token", errs: map[string]pollSetErr{}, failures: 1}
	tsrv := httptest.NewServer(tr)
	t.Cleanup(tsrv.Close)
	e := newEnv(t, func(c *Config) {
		c.PushToken, c.PollURL, c.PollToken, c.PollMaxEvents, c.PollInterval = "", tsrv.URL+"/poll", "poll-token", 2, time.Second
	})
	var users []string
	for i := range 5 {
		user := fmt.Sprint("user-", i)
		users = append(users, user)
		c := e.setClaims(map[string]any{EventAccountDisabled: map[string]any{"subject": issSub(user)}})
		tr.queue = append(tr.queue, queued{c["jti"].(string), sign(t, e.key, authz.SETType, nil, c)})
	}
	bad := e.setClaims(map[string]any{EventAccountDisabled: map[string]any{"subject": issSub("mallory")}})
	bad["aud"] = "https://someone-else.test"
	tr.queue = append(tr.queue, queued{"bad", sign(t, e.key, authz.SETType, nil, bad)}, tr.queue[0])

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	waitFor(t, "every SET answered", func() bool {
		pending, acked, errs, _ := tr.state()
		return pending == 0 && len(acked) == 6 && len(errs) == 1
	})
	_, acked, errs, polls := tr.state()
	if errs["bad"].Err != codeInvalidAudience {
		t.Errorf("setErrs %v, want bad: %s", errs, codeInvalidAudience)
	}
	if polls < 5 {
		t.Errorf("%d polls: pages of two, a failure and the last acknowledgement need at least 5", polls)
	}
	recs := e.records(t)
	if len(recs) != len(users) {
		t.Fatalf("%d records, want %d (acked %v)", len(recs), len(users), acked)
	}
	for _, r := range recs {
		if !slices.Contains(users, r.Value) || r.Kind != authz.KindSubject {
			t.Errorf("record %+v", r)
		}
	}
}
