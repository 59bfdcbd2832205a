// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/jwtguard/jwtguard/cmd/jwtguard/internal/buildinfo"
)

func TestVersionCommand(t *testing.T) {
	want := buildinfo.Get().String()
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}, {"version", "-o", "text"}} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); err != nil {
			t.Errorf("%v: %v (%s)", args, err, errOut.String())
			continue
		}
		if out.String() != want || !strings.Contains(out.String(), "go:       "+runtime.Version()) {
			t.Errorf("%v printed\n%s\nwant\n%s", args, out.String(), want)
		}
	}

	var out bytes.Buffer
	if err := run(context.Background(), []string{"version", "-o", "json"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	var got buildinfo.Info
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got != buildinfo.Get() {
		t.Errorf("version -o json: %+v (%v), want %+v", got, err, buildinfo.Get())
	}

	for _, args := range [][]string{{"version", "extra"}, {"version", "-o", "yaml"}, {"version", "--nope"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out, &out); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// TestBuildInfoMetric: a running node reports which build it is.
func TestBuildInfoMetric(t *testing.T) {
	s := startServe(t, "--dev", "--data-dir", t.TempDir(), "--log-level", "warn")
	l := buildinfo.Get().Labels()
	want := fmt.Sprintf("jwtguard_build_info{goversion=%q,revision=%q,version=%q} 1", l["goversion"], l["revision"], l["version"])
	if metrics := get(t, "http://"+s.httpAddr+"/metrics"); !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %s", want)
	}
}
