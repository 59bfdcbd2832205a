// SPDX-License-Identifier: Apache-2.0

package examples

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// The jwtguard container image. The Dockerfile at the repository root
// builds it with Docker; TestImage builds the same image without a Docker
// daemon or a registry, as ko does: a static binary in one layer on an
// empty base, the configuration written by go-containerregistry, saved as
// an OCI image layout. TestDockerfile keeps the two alike.
const (
	// imageRepository is the image every manifest and the chart name,
	// tagged with the chart's appVersion (imageRef).
	imageRepository = "jwtguard/jwtguard"
	imageEntrypoint = "/usr/local/bin/jwtguard"
	// imageUser is numeric (the distroless "nonroot" ids): the image has
	// no /etc/passwd, and Kubernetes' runAsNonRoot can check a number.
	imageUser = "65532:65532"
	// imageWorkDir is the working directory, owned by imageUser, so the
	// default data directory (./jwtguard-data) is writable when the root
	// filesystem is; the manifests mount a volume at --data-dir there.
	imageWorkDir = "/var/lib/jwtguard"
	// imageCABundle holds the CA certificates jwtguard checks JWKS and
	// Redis TLS servers with: the build machine's Debian bundle here, the
	// build stage's (a Debian image) in the Dockerfile.
	imageCABundle = "/etc/ssl/certs/ca-certificates.crt"
	imageSource   = "https://github.com/jwtguard/jwtguard"
	buildInfoPkg  = "github.com/jwtguard/jwtguard/cmd/jwtguard/internal/buildinfo"
	// refNameAnnotation names an image in an OCI layout's index.
	refNameAnnotation = "org.opencontainers.image.ref.name"
)

// imagePorts are the ports the image exposes: gRPC ext_authz, HTTP
// (forward-auth, probes, metrics) and the admin API.
var imagePorts = []string{"9191/tcp", "8181/tcp", "8182/tcp"}

// imageLabels are the image's labels for a version and revision.
func imageLabels(version, revision string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "jwtguard",
		"org.opencontainers.image.description": "JWT revocation enforcement for Envoy ext_authz and forward-auth proxies",
		"org.opencontainers.image.version":     version,
		"org.opencontainers.image.revision":    revision,
		"org.opencontainers.image.source":      imageSource,
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
}

// buildBinary builds cmd/jwtguard as the image ships it: static, without
// local paths, stamped with version, revision and date.
func buildBinary(t *testing.T, dir, version, revision, date string) string {
	t.Helper()
	bin := filepath.Join(dir, "jwtguard")
	ldflags := fmt.Sprintf("-s -w -X %[1]s.version=%[2]s -X %[1]s.revision=%[3]s -X %[1]s.date=%[4]s", buildInfoPkg, version, revision, date)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, "../cmd/jwtguard")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary names a dynamic loader: not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary links %v: not static", libs)
	}
	return bin
}

// tarEntry is one file or directory of the image's layer.
type tarEntry struct {
	name string // without the leading /
	mode int64
	uid  int
	body []byte // nil for a directory
}

// buildLayer writes entries as an uncompressed tar, every entry dated at
// mtime so the layer only changes when its content does.
func buildLayer(t *testing.T, entries []tarEntry, mtime time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: mtime, Format: tar.FormatPAX}
		if e.body == nil {
			h.Typeflag, h.Name = tar.TypeDir, e.name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// buildImage makes the image of binary bin: one layer on an empty base,
// OCI media types, the configuration of the constants above.
func buildImage(t *testing.T, bin, version, revision string, created time.Time) v1.Image {
	t.Helper()
	binary, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	cas, err := os.ReadFile(imageCABundle)
	if err != nil {
		t.Fatalf("the image ships the build machine's CA bundle: %v (install ca-certificates)", err)
	}
	entries := []tarEntry{
		{name: "etc", mode: 0o755}, {name: "etc/ssl", mode: 0o755}, {name: "etc/ssl/certs", mode: 0o755},
		{name: strings.TrimPrefix(imageCABundle, "/"), mode: 0o644, body: cas},
		{name: "usr", mode: 0o755}, {name: "usr/local", mode: 0o755}, {name: "usr/local/bin", mode: 0o755},
		{name: strings.TrimPrefix(imageEntrypoint, "/"), mode: 0o755, body: binary},
		{name: "var", mode: 0o755}, {name: "var/lib", mode: 0o755},
		{name: strings.TrimPrefix(imageWorkDir, "/"), mode: 0o755, uid: 65532},
	}
	// A gzip layer of stored (not deflated) blocks: valid for every
	// runtime, and cheap to make and read under the race detector, where
	// deflate is slow. A registry push may recompress it.
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.NoCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(buildLayer(t, entries, created)); err != nil || zw.Close() != nil {
		t.Fatalf("gzip layer: %v", err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(gz.Bytes())), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{
		Entrypoint:   []string{imageEntrypoint},
		User:         imageUser,
		WorkingDir:   imageWorkDir,
		ExposedPorts: map[string]struct{}{},
		Labels:       imageLabels(version, revision),
	}
	for _, p := range imagePorts {
		cf.Config.ExposedPorts[p] = struct{}{}
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// TestImage builds the image into an OCI layout, reads it back as a
// runtime would, checks its configuration, and runs `jwtguard version`
// from the binary in its layer.
func TestImage(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("runs the image's linux binary")
	}
	version := chartAppVersion(t)
	const revision, date = "0123456789abcdef0123456789abcdef01234567", "2026-11-30T00:00:00Z"
	created, _ := time.Parse(time.RFC3339, date)
	dir := t.TempDir()
	bin := buildBinary(t, dir, version, revision, date)

	out := filepath.Join(dir, "oci")
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(buildImage(t, bin, version, revision, created),
		layout.WithAnnotations(map[string]string{refNameAnnotation: imageRef(t)})); err != nil {
		t.Fatal(err)
	}

	// Read back from disk only.
	idx, err := layout.ImageIndexFromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations[refNameAnnotation] != imageRef(t) || im.Manifests[0].MediaType != types.OCIManifestSchema1 {
		t.Fatalf("index: %+v, want one OCI manifest named %s", im.Manifests, imageRef(t))
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("the image's digests, sizes or layers do not agree: %v", err)
	}

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("config", func(t *testing.T) {
		c := cf.Config
		if !slices.Equal(c.Entrypoint, []string{imageEntrypoint}) || len(c.Cmd) != 0 {
			t.Errorf("entrypoint %q cmd %q, want [%s] and none", c.Entrypoint, c.Cmd, imageEntrypoint)
		}
		if uid, _, _ := strings.Cut(c.User, ":"); uid == "" || uid == "0" || uid == "root" || c.User != imageUser {
			t.Errorf("user %q, want the non-root %s", c.User, imageUser)
		}
		if got := slices.Sorted(maps.Keys(c.ExposedPorts)); !slices.Equal(got, slices.Sorted(slices.Values(imagePorts))) {
			t.Errorf("exposed ports %v, want %v", got, imagePorts)
		}
		if !maps.Equal(c.Labels, imageLabels(version, revision)) {
			t.Errorf("labels %v, want %v", c.Labels, imageLabels(version, revision))
		}
		if c.WorkingDir != imageWorkDir || cf.OS != "linux" || cf.Architecture != runtime.GOARCH || !cf.Created.Equal(created) {
			t.Errorf("workdir %q, platform %s/%s, created %v", c.WorkingDir, cf.OS, cf.Architecture, cf.Created)
		}
	})

	// The files, as a container sees them.
	files := map[string]*tar.Header{}
	var binary, cas []byte
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := "/" + strings.TrimSuffix(path.Clean(h.Name), "/")
		files[name] = h
		switch name {
		case imageEntrypoint:
			binary, err = io.ReadAll(tr)
		case imageCABundle:
			cas, err = io.ReadAll(tr)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Run("files", func(t *testing.T) {
		if h := files[imageEntrypoint]; h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 || h.Mode&0o022 != 0 {
			t.Errorf("%s: %+v, want an executable file only root can change", imageEntrypoint, h)
		}
		if h := files[imageWorkDir]; h == nil || h.Typeflag != tar.TypeDir || fmt.Sprintf("%d:%d", h.Uid, h.Gid) != imageUser {
			t.Errorf("%s: %+v, want a directory owned by %s", imageWorkDir, h, imageUser)
		}
		for name, h := range files {
			if name != imageWorkDir && (h.Uid != 0 || h.Mode&0o022 != 0) {
				t.Errorf("%s: owner %d mode %o: the user could change what the image runs", name, h.Uid, h.Mode)
			}
		}
		if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(cas) {
			t.Errorf("%s holds no PEM certificate", imageCABundle)
		}
	})

	t.Run("jwtguard version", func(t *testing.T) {
		run := filepath.Join(t.TempDir(), "jwtguard")
		if err := os.WriteFile(run, binary, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"version"}, {"--version"}} {
			out, err := exec.Command(run, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out)
			}
			for _, want := range []string{"jwtguard " + version + "\n", "commit:   " + revision + "\n", "built:    " + date + "\n", "go:       go", "platform: linux/" + runtime.GOARCH} {
				if !strings.Contains(string(out), want) {
					t.Errorf("%v printed\n%s\nwithout %q", args, out, want)
				}
			}
		}
	})
}

// dockerInstruction is one instruction of a Dockerfile's stage.
type dockerInstruction struct{ cmd, args string }

// dockerStages splits a Dockerfile into stages (each from its FROM),
// joining continued lines and dropping comments.
func dockerStages(t *testing.T, raw []byte) [][]dockerInstruction {
	t.Helper()
	var stages [][]dockerInstruction
	var logical strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && logical.Len() == 0) {
			continue
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			logical.WriteString(cont + " ")
			continue
		}
		logical.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(logical.String()), " ")
		logical.Reset()
		in := dockerInstruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.cmd == "ARG" {
				continue
			}
			t.Fatalf("Dockerfile: %s before the first FROM", in.cmd)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	return stages
}

// TestDockerfile keeps the Dockerfile's image what TestImage builds: the
// same static build, base, files, user, ports, entrypoint and labels.
// Docker cannot run here; this reads the file.
func TestDockerfile(t *testing.T) {
	raw := readExample(t, "../Dockerfile")
	stages := dockerStages(t, raw)
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a build stage and the image", len(stages))
	}
	var build strings.Builder
	for _, st := range stages[:len(stages)-1] {
		for _, in := range st {
			build.WriteString(in.cmd + " " + in.args + "\n")
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "go build -trimpath", buildInfoPkg + ".version=", buildInfoPkg + ".revision=", buildInfoPkg + ".date=", "./cmd/jwtguard"} {
		if !strings.Contains(build.String(), want) {
			t.Errorf("Dockerfile build stage lacks %q", want)
		}
	}

	versions := 0
	for _, st := range stages {
		for _, in := range st {
			if v, ok := strings.CutPrefix(in.args, "VERSION="); ok && in.cmd == "ARG" {
				versions++
				if v != chartAppVersion(t) {
					t.Errorf("Dockerfile: ARG VERSION=%s, want the chart's appVersion %s", v, chartAppVersion(t))
				}
			}
		}
	}
	if versions == 0 {
		t.Error("Dockerfile: no ARG VERSION defaulting to the chart's appVersion")
	}

	final := stages[len(stages)-1]
	got := map[string][]string{}
	for _, in := range final {
		got[in.cmd] = append(got[in.cmd], in.args)
	}
	if from := got["FROM"]; len(from) != 1 || from[0] != "scratch" {
		t.Errorf("image stage FROM %v, want scratch (the empty base TestImage uses)", from)
	}
	if u := got["USER"]; !slices.Equal(u, []string{imageUser}) {
		t.Errorf("USER %v, want %s", u, imageUser)
	}
	if w := got["WORKDIR"]; !slices.Equal(w, []string{imageWorkDir}) {
		t.Errorf("WORKDIR %v, want %s", w, imageWorkDir)
	}
	var exposed []string
	for _, e := range got["EXPOSE"] {
		for _, p := range strings.Fields(e) {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			exposed = append(exposed, p)
		}
	}
	if slices.Sort(exposed); !slices.Equal(exposed, slices.Sorted(slices.Values(imagePorts))) {
		t.Errorf("EXPOSE %v, want %v", exposed, imagePorts)
	}
	var entry []string
	if e := got["ENTRYPOINT"]; len(e) != 1 || json.Unmarshal([]byte(e[0]), &entry) != nil || !slices.Equal(entry, []string{imageEntrypoint}) {
		t.Errorf("ENTRYPOINT %v, want [%q] in exec form", e, imageEntrypoint)
	}
	if c := got["CMD"]; len(c) != 0 {
		t.Errorf("CMD %v: the image has none (a container says what to run)", c)
	}
	var copies []string
	ownedWorkDir := false
	for _, c := range got["COPY"] {
		f := strings.Fields(c)
		dest := f[len(f)-1]
		copies = append(copies, dest)
		if slices.Contains(f, "--chown="+imageUser) && strings.HasPrefix(imageWorkDir+"/", strings.TrimSuffix(dest, "/")+"/") {
			ownedWorkDir = true
		}
	}
	if !ownedWorkDir {
		t.Errorf("no COPY --chown=%s makes %s the user's", imageUser, imageWorkDir)
	}
	for _, want := range []string{imageEntrypoint, imageCABundle} {
		if !slices.Contains(copies, want) {
			t.Errorf("the image stage copies to %v, not to %s", copies, want)
		}
	}
	labelKey := regexp.MustCompile(`([a-z.]+)=`)
	labels := map[string]bool{}
	for _, l := range got["LABEL"] {
		for _, m := range labelKey.FindAllStringSubmatch(l, -1) {
			labels[m[1]] = true
		}
	}
	if want := slices.Sorted(maps.Keys(imageLabels("", ""))); !slices.Equal(slices.Sorted(maps.Keys(labels)), want) {
		t.Errorf("LABEL keys %v, want %v", slices.Sorted(maps.Keys(labels)), want)
	}
}
