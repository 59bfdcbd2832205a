package node

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startLimited serves h on loopback within l, as serve does.
func startLimited(t *testing.T, l httpLimits, h http.Handler) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := l.server(h)
	go func() { _ = srv.Serve(l.listener(lis)) }()
	t.Cleanup(func() { srv.Close() })
	return lis.Addr().String()
}

// closedByServer reports whether the server closes c (EOF or reset) before
// a generous deadline; any answer it writes first is read and dropped.
func closedByServer(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if err == nil || errors.Is(err, io.EOF) {
		return true
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	return strings.Contains(err.Error(), "reset") // closed with unread data
}

// TestSlowAndIdleConnectionsAreClosed: a client that never finishes its
// headers, one that trickles its body, and an idle keep-alive connection
// are each closed by the server, and a normal request is still answered.
func TestSlowAndIdleConnectionsAreClosed(t *testing.T) {
	l := httpLimits{readHeader: 300 * time.Millisecond, read: 500 * time.Millisecond, write: 5 * time.Second, idle: 300 * time.Millisecond, maxConns: 16}
	addr := startLimited(t, l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok\n")
	}))
	const each = 4 // connections of each kind, well under maxConns
	tests := []struct {
		name string
		send func(c net.Conn) error
	}{
		{"headers never finished", func(c net.Conn) error {
			_, err := io.WriteString(c, "POST /authz/ HTTP/1.1\r\nHost: x\r\n")
			return err
		}},
		{"body trickled", func(c net.Conn) error {
			_, err := io.WriteString(c, "POST /authz/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
			return err
		}},
		{"idle keep-alive", func(c net.Conn) error {
			if _, err := io.WriteString(c, "GET /authz/ HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				return err
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.Close {
				return errors.New("the server closed at once instead of keeping the connection alive")
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var wg sync.WaitGroup
			for range each {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if err := tc.send(c); err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					if !closedByServer(t, c) {
						t.Error("the server kept the connection open")
					}
				}()
			}
			wg.Wait()
			resp, err := http.Get("http://" + addr + "/authz/")
			if err != nil {
				t.Fatalf("a normal request after them: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("a normal request after them: status %d", resp.StatusCode)
			}
		})
	}
}

// TestConnectionLimit holds requests in the handler: no more than maxConns
// are ever served at once, the others wait and are answered afterwards.
func TestConnectionLimit(t *testing.T) {
	const maxConns, clients = 3, 8
	var active, peak atomic.Int32
	release := make(chan struct{})
	l := httpLimits{readHeader: 10 * time.Second, read: 30 * time.Second, write: 30 * time.Second, idle: 30 * time.Second, maxConns: maxConns}
	addr := startLimited(t, l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := active.Add(1)
		defer active.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		_, _ = io.WriteString(w, "ok\n")
	}))
	var wg sync.WaitGroup
	var answered atomic.Int32
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
			resp, err := c.Get("http://" + addr + "/")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			answered.Add(1)
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for active.Load() < maxConns && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if active.Load() != maxConns {
		t.Fatalf("%d requests in the handler, want %d", active.Load(), maxConns)
	}
	// Give the other clients every chance to get in: they must not.
	time.Sleep(200 * time.Millisecond)
	close(release)
	wg.Wait()
	if p := peak.Load(); p > maxConns {
		t.Errorf("%d connections served at once, limit %d", p, maxConns)
	}
	if answered.Load() != clients {
		t.Errorf("%d of %d clients answered", answered.Load(), clients)
	}
}

// TestServeListenersAreBounded: both HTTP listeners of serve have every
// limit set.
func TestServeListenersAreBounded(t *testing.T) {
	for name, l := range map[string]httpLimits{"http": forwardAuthLimits, "admin": adminLimits} {
		if l.readHeader <= 0 || l.read <= 0 || l.write <= 0 || l.idle <= 0 || l.maxConns <= 0 {
			t.Errorf("%s listener: a limit is unset: %+v", name, l)
		}
	}
}
