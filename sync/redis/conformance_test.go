package redis

import (
	"strings"
	"sync"
	"testing"

	"github.com/jwtguard/jwtguard/sync/redis/redistest"
	"github.com/jwtguard/jwtguard/sync/source"
	"github.com/jwtguard/jwtguard/sync/source/sourcetest"
)

// TestConformance runs the revocation source suite on a Source, each case
// on a redis-server of its own.
func TestConformance(t *testing.T) {
	var mu sync.Mutex
	servers := map[source.Source]*redistest.Server{}
	server := func(src source.Source) *redistest.Server {
		mu.Lock()
		defer mu.Unlock()
		return servers[src]
	}
	sourcetest.Run(t, sourcetest.Harness{
		Open: func(t *testing.T) source.Source {
			s, srv := newSource(t, Options{})
			mu.Lock()
			servers[s] = srv
			mu.Unlock()
			return s
		},
		ErrClosed: ErrClosed,
		// A Feed waits in XREAD BLOCK on the server.
		FeedWaiting: func(t *testing.T, src source.Source) bool {
			list, err := client(t, server(src)).ClientList(ctxT(t)).Result()
			if err != nil {
				return false
			}
			for _, line := range strings.Split(list, "\n") {
				if strings.Contains(line, " cmd=xread") && strings.Contains(line, " flags=b") {
					return true
				}
			}
			return false
		},
		Trim: func(t *testing.T, src source.Source, pos uint64) {
			s := src.(*Source)
			if err := client(t, server(src)).XTrimMinID(ctxT(t), s.k.feed(), streamID(pos+1)).Err(); err != nil {
				t.Fatalf("trim the feed up to %d: %v", pos, err)
			}
		},
	})
}
