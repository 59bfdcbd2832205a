package admin

import (
	"errors"
	"fmt"
	"net"
)

// ErrUnprotectedBind is returned by CheckBind for an admin API without a
// token on an address other hosts can reach.
var ErrUnprotectedBind = errors.New("admin API without a token must listen on a loopback address")

// CheckBind refuses an admin listen address that other hosts can reach when
// the API has no token: without one, addr must be a loopback IP or
// "localhost" (":8182", "0.0.0.0:8182" and "[::]:8182" are refused).
func CheckBind(addr string, hasToken bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin listen address %q: %w", addr, err)
	}
	if hasToken {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %q is reachable from other hosts; listen on 127.0.0.1 or set --admin-token-file", ErrUnprotectedBind, addr)
}
