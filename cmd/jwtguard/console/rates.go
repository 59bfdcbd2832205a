package console

import (
	"sync/atomic"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
)

// maxReasons bounds the reasons Rates counts one by one; a reason past it,
// or one authz.Reasons does not list, counts as "other".
const maxReasons = 48

// Rates counts decisions by reason: an envoy.Observer whose Observe is one
// atomic add. The console samples it once a second for its live chart.
type Rates struct {
	counts [maxReasons + 1]atomic.Uint64
}

var _ envoy.Observer = (*Rates)(nil)

// NewRates returns counters at zero.
func NewRates() *Rates { return &Rates{} }

// Observe counts e's reason.
func (r *Rates) Observe(e *envoy.Event) {
	r.counts[slotOf(e.Reason)].Add(1)
}

func slotOf(reason authz.Reason) int {
	for i, known := range authz.Reasons[:min(len(authz.Reasons), maxReasons)] {
		if known == reason {
			return i
		}
	}
	return maxReasons
}

// Totals returns the count of every reason seen so far, by reason.
func (r *Rates) Totals() map[string]uint64 {
	out := map[string]uint64{}
	for i := range r.counts {
		n := r.counts[i].Load()
		if n == 0 {
			continue
		}
		name := "other"
		if i < maxReasons && i < len(authz.Reasons) {
			name = string(authz.Reasons[i])
		}
		out[name] += n
	}
	return out
}
