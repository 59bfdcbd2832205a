package decisionlog

import (
	"net/netip"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
)

// The string fields a record copies, in the order of its buffer.
const (
	fMethod = iota
	fHost
	fPath
	fRequestID
	fIss
	fSub
	fJTI
	fSID
	fKID
	fTokenID
	fRule
	numFields
)

// fieldCaps are the most bytes kept of each field; a longer value is cut
// and the line marked truncated.
var fieldCaps = [numFields]int{
	fMethod: 16, fHost: 256, fPath: 1024, fRequestID: 128,
	fIss: 256, fSub: 256, fJTI: 128, fSID: 128, fKID: 128, fTokenID: 80, fRule: 128,
}

// bufSize is the room of a record's buffer: every field at its cap.
const bufSize = 16 + 256 + 1024 + 128 + 256 + 256 + 128 + 128 + 128 + 80 + 128

// record is one queued decision: its own copy of the event's strings in a
// buffer allocated with the queue, so queueing allocates nothing and keeps
// no reference into the request (whose headers hold the token).
type record struct {
	time      time.Time
	took      time.Duration
	reason    authz.Reason
	revokedBy authz.Kind
	transport string
	source    netip.Addr
	err       error
	truncated bool
	ends      [numFields]uint16
	buf       [bufSize]byte
}

// fill copies e into r.
func (r *record) fill(e *envoy.Event) {
	r.time, r.took, r.source, r.err = e.Time, e.Took, e.Request.Source, e.Err
	r.reason, r.revokedBy, r.transport = e.Reason, e.RevokedBy, e.Request.Transport
	r.truncated = false
	n := 0
	for i, s := range [numFields]string{
		fMethod: e.Request.Method, fHost: e.Request.Host, fPath: e.Request.Path, fRequestID: e.Request.RequestID,
		fIss: e.Claims.Issuer, fSub: e.Claims.Subject, fJTI: e.Claims.JTI, fSID: e.Claims.Session,
		fKID: e.Claims.KeyID, fTokenID: e.Claims.TokenID, fRule: e.Rule,
	} {
		if len(s) > fieldCaps[i] {
			s, r.truncated = s[:fieldCaps[i]], true
		}
		n += copy(r.buf[n:], s)
		r.ends[i] = uint16(n)
	}
}

// field returns field i's bytes.
func (r *record) field(i int) []byte {
	start := uint16(0)
	if i > 0 {
		start = r.ends[i-1]
	}
	return r.buf[start:r.ends[i]]
}
