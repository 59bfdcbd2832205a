package node

import (
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// httpLimits bound what clients can hold on one HTTP listener: without
// them, slow bodies and idle keep-alive connections are kept forever and a
// few hundred of them exhaust the process's file descriptors, gRPC checks
// included.
type httpLimits struct {
	readHeader time.Duration // to read a request's headers
	read       time.Duration // to read a whole request, body included
	write      time.Duration // from the end of the headers to the end of the answer
	idle       time.Duration // a keep-alive connection waiting for its next request
	maxConns   int           // connections served at once; more wait in the kernel's backlog
}

var (
	// forwardAuthLimits are those of --http-addr: forward-auth checks (a
	// proxy's keep-alive connections; nginx keeps idle ones 60s by
	// default, so idle is longer), health and metrics.
	forwardAuthLimits = httpLimits{readHeader: 5 * time.Second, read: 10 * time.Second, write: 10 * time.Second, idle: 2 * time.Minute, maxConns: 1024}
	// adminLimits are those of --admin-addr: a few operators and tools,
	// bodies up to 16 MiB of revocations.
	adminLimits = httpLimits{readHeader: 5 * time.Second, read: time.Minute, write: time.Minute, idle: 30 * time.Second, maxConns: 64}
)

// server returns an http.Server serving h within l.
func (l httpLimits) server(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: l.readHeader, ReadTimeout: l.read, WriteTimeout: l.write, IdleTimeout: l.idle}
}

// listener caps the connections lis serves at once.
func (l httpLimits) listener(lis net.Listener) net.Listener {
	return netutil.LimitListener(lis, l.maxConns)
}
