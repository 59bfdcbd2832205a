// SPDX-License-Identifier: Apache-2.0

// Package buildinfo says which jwtguard is running: its version, the
// commit it was built from, when, and with which Go. The values come from
// the build information the Go toolchain embeds in every binary
// (runtime/debug.ReadBuildInfo: the module version for `go install
// module@version`, and vcs.revision, vcs.time and vcs.modified when built
// from a checkout), and any of them can be set at link time, which is how
// release and image builds stamp them:
//
//	go build -ldflags "-X github.com/jwtguard/jwtguard/cmd/jwtguard/internal/buildinfo.version=0.1.0 \
//	  -X github.com/jwtguard/jwtguard/cmd/jwtguard/internal/buildinfo.revision=$(git rev-parse HEAD) \
//	  -X github.com/jwtguard/jwtguard/cmd/jwtguard/internal/buildinfo.date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" ./cmd/jwtguard
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set at link time with -ldflags -X; empty means "from the build info".
var (
	version  string
	revision string
	date     string
)

// Unknown stands for a value neither the linker flags nor the build info
// provide (a `go build` with -buildvcs=false, or outside a checkout).
const Unknown = "unknown"

// Info describes one build of jwtguard.
type Info struct {
	Version   string `json:"version"`    // release version, "(devel)" for a build from a checkout
	Revision  string `json:"revision"`   // VCS commit, or Unknown
	Date      string `json:"date"`       // commit or build time (RFC 3339), or Unknown
	Modified  bool   `json:"modified"`   // the checkout had uncommitted changes
	GoVersion string `json:"go_version"` // Go toolchain that built the binary
	Platform  string `json:"platform"`   // GOOS/GOARCH
}

// Get returns the running binary's build information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return from(bi, version, revision, date)
}

// from combines the embedded build info (nil when the binary has none)
// with the link-time values, which win when set.
func from(bi *debug.BuildInfo, version, revision, date string) Info {
	in := Info{
		Version:   "(devel)",
		Revision:  Unknown,
		Date:      Unknown,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi != nil {
		if v := bi.Main.Version; v != "" {
			in.Version = v
		}
		if bi.GoVersion != "" {
			in.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Revision = s.Value
			case "vcs.time":
				in.Date = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if version != "" {
		in.Version = version
	}
	if revision != "" {
		in.Revision = revision
	}
	if date != "" {
		in.Date = date
	}
	return in
}

// String is the text of `jwtguard version`.
func (in Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "jwtguard %s\n", in.Version)
	rev := in.Revision
	if in.Modified {
		rev += " (modified)"
	}
	fmt.Fprintf(&b, "  commit:   %s\n", rev)
	fmt.Fprintf(&b, "  built:    %s\n", in.Date)
	fmt.Fprintf(&b, "  go:       %s\n", in.GoVersion)
	fmt.Fprintf(&b, "  platform: %s\n", in.Platform)
	return b.String()
}

// Labels are the labels of the jwtguard_build_info metric.
func (in Info) Labels() map[string]string {
	rev := in.Revision
	if in.Modified {
		rev += "-modified"
	}
	return map[string]string{"version": in.Version, "revision": rev, "goversion": in.GoVersion}
}
