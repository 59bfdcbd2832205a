package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/bench/loadgen"
)

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantOut    string // in stdout
		wantErr    string // in stderr
	}{
		{"no command", nil, 2, "", "usage: loadgen"},
		{"unknown command", []string{"bench"}, 2, "", `unknown command "bench"`},
		{"compare", []string{"compare", "testdata/baseline.json", "testdata/jwtguard.json"}, 0,
			"repeated-jwtguard-1 vs repeated-baseline-1: throughput 0.869x, p99 1.471x", ""},
		{"compare one file", []string{"compare", "testdata/baseline.json"}, 1, "", "give two result files"},
		{"compare missing file", []string{"compare", "testdata/baseline.json", "testdata/none.json"}, 1, "", "none.json"},
		{"plot", []string{"plot", "-o", filepath.Join(dir, "p.svg"), "testdata/baseline.json", "testdata/jwtguard.json"}, 0, "", ""},
		{"plot nothing", []string{"plot", "-o", filepath.Join(dir, "q.svg")}, 1, "", "give one or more result files"},
		{"run without keys", []string{"run", "--requests", "1"}, 1, "", "--keys is required"},
		{"run with a bad mix", []string{"run", "--keys", dir, "--mix", "stale=1"}, 1, "", "unknown category"},
		{"run with a bad flag", []string{"run", "--no-such-flag"}, 2, "", "flag provided but not defined"},
		{"serve in a bad mode", []string{"serve", "--mode", "fast", "--keys", dir}, 1, "", `mode: "fast"`},
		{"help", []string{"serve", "-h"}, 0, "", "-revoke-mix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			status := run(context.Background(), tt.args, &stdout, &stderr)
			if status != tt.wantStatus {
				t.Errorf("status %d, want %d (stderr %q)", status, tt.wantStatus, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tt.wantOut)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.wantErr)
			}
		})
	}
	assertSVG(t, filepath.Join(dir, "p.svg"), 2)
}

func assertSVG(t *testing.T, path string, series int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	polylines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed: %v", path, err)
		}
		if el, ok := tok.(xml.StartElement); ok && el.Name.Local == "polyline" {
			polylines++
		}
	}
	if polylines != series {
		t.Errorf("%s draws %d series, want %d", path, polylines, series)
	}
}

// TestServeAndRun drives the commands as a user does: serve, run against
// it, then compare and plot the results.
func TestServeAndRun(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	for _, mode := range []string{"baseline", "jwtguard"} {
		addr := serveCommand(t, "--mode", mode, "--keys", keys, "--revoke-mix="+boolString(mode == "jwtguard"), "--log-level", "error")
		var stdout, stderr bytes.Buffer
		args := []string{"run", "--target", addr, "--keys", keys, "--conns", "2", "--streams", "4",
			"--requests", "400", "--mix", "repeated=8,revoked=1,invalid=1", "--expect=" + boolString(mode == "jwtguard"),
			"--label", mode, "--json", filepath.Join(dir, mode+".json"), "--plot", filepath.Join(dir, mode+".svg")}
		if status := run(context.Background(), args, &stdout, &stderr); status != 0 {
			t.Fatalf("%s run: status %d\n%s\n%s", mode, status, stdout.String(), stderr.String())
		}
		for _, want := range []string{"400 requests in", "wrong decisions: 0, transport errors: 0"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("%s run printed %q, want %q in it", mode, stdout.String(), want)
			}
		}
		if !strings.Contains(stderr.String(), "minted") {
			t.Errorf("%s run: no progress on stderr: %q", mode, stderr.String())
		}
		assertSVG(t, filepath.Join(dir, mode+".svg"), 1)
	}
	r, err := loadgen.ReadResult(filepath.Join(dir, "jwtguard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcomes["revoked"] != 40 || r.Outcomes["ok"] != 320 {
		t.Errorf("jwtguard outcomes %v, want 320 ok and 40 revoked", r.Outcomes)
	}
	var stdout, stderr bytes.Buffer
	if status := run(context.Background(), []string{"compare", filepath.Join(dir, "baseline.json"), filepath.Join(dir, "jwtguard.json")}, &stdout, &stderr); status != 0 {
		t.Fatalf("compare: %d %s", status, stderr.String())
	}
	if !strings.Contains(stdout.String(), "jwtguard vs baseline: throughput") {
		t.Errorf("compare printed %q", stdout.String())
	}
	stdout.Reset()
	if status := run(context.Background(), []string{"compare", "--category", "repeated", filepath.Join(dir, "baseline.json"), filepath.Join(dir, "jwtguard.json")}, &stdout, &stderr); status != 0 {
		t.Fatalf("compare --category: %d %s", status, stderr.String())
	}
	if !strings.Contains(stdout.String(), "jwtguard vs baseline: repeated requests: throughput") {
		t.Errorf("compare --category printed %q", stdout.String())
	}
	stderr.Reset()
	if status := run(context.Background(), []string{"compare", "--category", "forged", filepath.Join(dir, "baseline.json"), filepath.Join(dir, "jwtguard.json")}, &stdout, &stderr); status != 1 || !strings.Contains(stderr.String(), "no forged requests") {
		t.Errorf("compare --category forged of runs without it: status %d, %q", status, stderr.String())
	}
}

// serveCommand runs `loadgen serve` on loopback until the test ends and
// returns its gRPC address once it has printed "ready".
func serveCommand(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, append([]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", ""}, args...), pw, &stderr)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if status := <-done; status != 0 {
			t.Errorf("serve exited with %d: %s", status, stderr.String())
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, pr)
	}()
	addr := ""
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("serve stopped before ready: %s", stderr.String())
			}
			if a, found := strings.CutPrefix(l, "grpc "); found {
				addr = a
			}
			if l == "ready" {
				go func() {
					for range lines {
					}
				}()
				return addr
			}
		case <-timeout:
			t.Fatal("serve not ready after 20s")
		}
	}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// TestAB drives a baseline and a jwtguard server side by side in
// interleaved slices; checking the baseline's decisions against the mix
// fails the run, as a wrong decision must.
func TestAB(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	base := serveCommand(t, "--mode", "baseline", "--keys", keys, "--log-level", "error")
	guard := serveCommand(t, "--mode", "jwtguard", "--keys", keys, "--revoke-mix", "--log-level", "error")
	args := []string{"ab", "--a", base, "--b", guard, "--label-a", "baseline", "--label-b", "jwtguard", "--keys", keys,
		"--conns", "1", "--streams", "2", "--pairs", "2", "--slice", "100ms", "--mix", "repeated=8,revoked=1,invalid=1", "--warm-fresh", "10"}
	var stdout, stderr bytes.Buffer
	out := filepath.Join(dir, "ab.json")
	if status := run(context.Background(), append(args, "--json", out), &stdout, &stderr); status != 0 {
		t.Fatalf("ab: status %d\n%s\n%s", status, stdout.String(), stderr.String())
	}
	for _, want := range []string{"pair  1 (A B)", "pair  2 (B A)", "jwtguard vs baseline: throughput", "0 wrong decisions, 0 transport errors"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("ab printed %q, want %q in it", stdout.String(), want)
		}
	}
	var res loadgen.ABResult
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Pairs) != 2 || res.Pairs[0].ThroughputA <= 0 || res.Pairs[1].ThroughputB <= 0 || res.ThroughputRatio <= 0 || res.B.Outcomes["revoked"] == 0 {
		t.Fatalf("result %+v: want 2 pairs with throughputs, a ratio, and revoked decisions from jwtguard", res)
	}

	// One category compared: a tenth of the requests.
	stdout.Reset()
	cat := []string{"ab", "--a", base, "--b", guard, "--keys", keys, "--conns", "1", "--streams", "2", "--pairs", "1", "--slice", "200ms",
		"--mix", "repeated=1,invalid=9", "--category", "repeated", "--json", out}
	if status := run(context.Background(), cat, &stdout, &stderr); status != 0 || !strings.Contains(stdout.String(), "B vs A: repeated requests: throughput") {
		t.Fatalf("ab --category: status %d, %q", status, stdout.String())
	}
	res = loadgen.ABResult{}
	if b, err = os.ReadFile(out); err == nil {
		err = json.Unmarshal(b, &res)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Pairs[0].ThroughputA * res.A.Seconds; res.Category != "repeated" || got <= 0 || got > 0.5*float64(res.A.Requests) {
		t.Fatalf("category throughput %v over %d requests in all: want about a tenth (%+v)", got, res.A.Requests, res)
	}
	// Two mixes on one server.
	stdout.Reset()
	two := []string{"ab", "--a", guard, "--b", guard, "--expect-a", "--keys", keys, "--conns", "1", "--streams", "2", "--pairs", "1", "--slice", "100ms",
		"--mix", "repeated=1", "--mix-b", "invalid=1", "--json", out}
	if status := run(context.Background(), two, &stdout, &stderr); status != 0 || !strings.Contains(stdout.String(), "mix A repeated=1, mix B invalid=1") {
		t.Fatalf("ab --mix-b: status %d, %q", status, stdout.String())
	}
	res = loadgen.ABResult{}
	if b, err = os.ReadFile(out); err == nil {
		err = json.Unmarshal(b, &res)
	}
	if err != nil || res.A.Outcomes["ok"] == 0 || res.B.Outcomes["ok"] != 0 || res.B.Outcomes["malformed"]+res.B.Outcomes["bad_signature"]+res.B.Outcomes["expired"] == 0 {
		t.Fatalf("ab --mix-b: %v, outcomes A %v, B %v: want A allowed, B denied", err, res.A.Outcomes, res.B.Outcomes)
	}

	stderr.Reset()
	if status := run(context.Background(), append(args, "--category", "forged"), &stdout, &stderr); status != 1 || !strings.Contains(stderr.String(), `category "forged" is not in the mix`) {
		t.Fatalf("a category not in the mix: status %d, %q", status, stderr.String())
	}

	stdout.Reset()
	stderr.Reset()
	wrong := []string{"ab", "--a", guard, "--b", base, "--expect-a", "--expect-b", "--keys", keys, "--conns", "1", "--streams", "2",
		"--pairs", "1", "--slice", "100ms", "--mix", "repeated=8,revoked=1,invalid=1"}
	if status := run(context.Background(), wrong, &stdout, &stderr); status != 1 || !strings.Contains(stderr.String(), "wrong decisions") {
		t.Fatalf("a baseline checked against the mix: status %d, stderr %q; want 1 and wrong decisions", status, stderr.String())
	}
}
