package embedded

import (
	"testing"

	"github.com/jwtguard/jwtguard/sync/source"
	"github.com/jwtguard/jwtguard/sync/source/sourcetest"
)

// TestConformance runs the revocation source suite on a Store in a fresh
// directory, on the real clock.
func TestConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness{
		Open: func(t *testing.T) source.Source {
			s, err := Open(t.TempDir(), Options{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		},
		ErrClosed: ErrClosed,
		FeedWaiting: func(_ *testing.T, src source.Source) bool {
			return src.(*Store).waiting.Load() > 0
		},
	})
}
