package idp

import (
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/jwtguard/jwtguard/authz"
)

// TestReplayCacheBounded: the cache never holds more than its bound, forgets
// expired entries and the oldest first, and a failed application frees
// its jti for a retry.
func TestReplayCacheBounded(t *testing.T) {
	c := newReplayCache(3)
	for i := range 10 {
		jti := fmt.Sprint("j", i)
		if got := c.reserve(jti, 100, 0); got != replayNew {
			t.Fatalf("%s: %v", jti, got)
		}
		c.finish(jti, true)
		if c.len() > 3 {
			t.Fatalf("%d entries, bound 3", c.len())
		}
	}
	if got := c.reserve("j9", 100, 0); got != replayDone {
		t.Fatalf("newest: %v, want done", got)
	}
	if got := c.reserve("j0", 100, 0); got != replayNew {
		t.Fatalf("oldest, evicted: %v, want new", got)
	}
	if got := c.reserve("j0", 100, 0); got != replayPending {
		t.Fatalf("reserved: %v, want pending", got)
	}
	c.finish("j0", false)
	if got := c.reserve("j0", 100, 0); got != replayNew {
		t.Fatalf("after a failure: %v, want new", got)
	}
	if got := c.reserve("j9", 100, 100); got != replayNew {
		t.Fatalf("expired: %v, want new", got)
	}
	if c.len() > 3 {
		t.Fatalf("%d entries, bound 3", c.len())
	}
}

// TestLogoutConcurrentDeliveries: one logout token sent eight times at once
// is applied once.
func TestLogoutConcurrentDeliveries(t *testing.T) {
	e := newEnv(t, nil)
	tok := sign(t, e.key, authz.LogoutTokenType, nil, e.logoutClaims("s-1", ""))
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		oks int
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.srv.Client().PostForm(e.srv.URL+testPrefix+"backchannel-logout", url.Values{"logout_token": {tok}})
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				mu.Lock()
				oks++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if recs := e.records(t); oks != 1 || len(recs) != 1 {
		t.Fatalf("%d answers 200 and %d records, want 1 and 1", oks, len(recs))
	}
}
