package redis

import (
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/sync/source"
	"github.com/jwtguard/jwtguard/sync/source/sourcetest"
)

// TestConformance runs the revocation source suite on a Source, each case
// on a redis-server of its own, looked at through a plain client.
func TestConformance(t *testing.T) {
	var mu sync.Mutex
	clients := map[source.Source]*goredis.Client{}
	clientOf := func(src source.Source) *goredis.Client {
		mu.Lock()
		defer mu.Unlock()
		return clients[src]
	}
	sourcetest.Run(t, sourcetest.Harness{
		Open: func(t *testing.T) source.Source {
			s, srv := newSource(t, Options{})
			c := client(t, srv)
			mu.Lock()
			clients[s] = c
			mu.Unlock()
			return s
		},
		ErrClosed: ErrClosed,
		// A Feed waits in XREAD BLOCK on the server.
		FeedWaiting: func(t *testing.T, src source.Source) bool { return xreadBlocked(t, clientOf(src)) },
		Trim: func(t *testing.T, src source.Source, pos uint64) {
			if err := clientOf(src).XTrimMinID(ctxT(t), src.(*Source).k.feed(), streamID(pos+1)).Err(); err != nil {
				t.Fatalf("trim the feed up to %d: %v", pos, err)
			}
		},
	})
}
