// SPDX-License-Identifier: Apache-2.0

package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFrom(t *testing.T) {
	vcs := &debug.BuildInfo{
		GoVersion: "go1.99.1",
		Main:      debug.Module{Path: "github.com/jwtguard/jwtguard", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-11-30T12:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	installed := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v1.2.3"}}
	for _, tc := range []struct {
		name                    string
		bi                      *debug.BuildInfo
		version, revision, date string
		want                    Info
	}{
		{"checkout", vcs, "", "", "",
			Info{"(devel)", "0123456789abcdef0123456789abcdef01234567", "2026-11-30T12:00:00Z", true, "go1.99.1", ""}},
		{"go install module@version", installed, "", "", "",
			Info{"v1.2.3", Unknown, Unknown, false, "go1.99.1", ""}},
		{"linker flags win", vcs, "0.1.0", "abc", "2026-01-02T03:04:05Z",
			Info{"0.1.0", "abc", "2026-01-02T03:04:05Z", true, "go1.99.1", ""}},
		{"no build info", nil, "", "", "",
			Info{"(devel)", Unknown, Unknown, false, runtime.Version(), ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := from(tc.bi, tc.version, tc.revision, tc.date)
			tc.want.Platform = runtime.GOOS + "/" + runtime.GOARCH
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestStringAndLabels(t *testing.T) {
	in := Info{Version: "0.1.0", Revision: "abc", Date: "2026-11-30T12:00:00Z", Modified: true, GoVersion: "go1.99.1", Platform: "linux/amd64"}
	s := in.String()
	for _, want := range []string{"jwtguard 0.1.0\n", "commit:   abc (modified)\n", "built:    2026-11-30T12:00:00Z\n", "go:       go1.99.1\n", "platform: linux/amd64\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q:\n%s", want, s)
		}
	}
	l := in.Labels()
	if l["version"] != "0.1.0" || l["revision"] != "abc-modified" || l["goversion"] != "go1.99.1" || len(l) != 3 {
		t.Errorf("Labels() = %v", l)
	}
}

// TestGet reads the test binary's own build info: it has a Go version and
// no empty field.
func TestGet(t *testing.T) {
	in := Get()
	if in.Version == "" || in.Revision == "" || in.Date == "" || !strings.HasPrefix(in.GoVersion, "go") {
		t.Errorf("Get() = %+v", in)
	}
}
