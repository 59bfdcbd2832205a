package examples

import (
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"testing"
	"time"
)

const caddyfile = "caddy/Caddyfile"

func TestCaddyfile(t *testing.T) {
	ds, err := parseCaddyfile(string(readExample(t, caddyfile)))
	if err != nil {
		t.Fatalf("%s: %v", caddyfile, err)
	}
	var auths []*directive
	walk(ds, func(d *directive) {
		if d.name == "forward_auth" {
			auths = append(auths, d)
		}
	})
	if len(auths) != 1 {
		t.Fatalf("%d forward_auth directives, want 1", len(auths))
	}
	fa := auths[0]
	if len(fa.args) == 0 || fa.args[len(fa.args)-1] != "127.0.0.1:8181" {
		t.Errorf("forward_auth to %v, want 127.0.0.1:8181", fa.args)
	}
	if !has(fa.block, "uri", authzPrefix) {
		t.Errorf("forward_auth has no `uri %s`", authzPrefix)
	}
	var copied []string
	for _, d := range named(fa.block, "copy_headers") {
		copied = append(copied, d.args...)
	}
	for _, h := range []string{"X-Jwt-Sub", "X-Jwt-Iss"} {
		if !slices.Contains(copied, h) {
			t.Errorf("forward_auth copy_headers %v lacks %s", copied, h)
		}
	}

	t.Run("client cannot send its own claims", func(t *testing.T) {
		// Inside a route, directives run in written order: the client's
		// X-Jwt-* headers must be dropped before forward_auth.
		var route *directive
		walk(ds, func(d *directive) {
			if d.name == "route" && slices.Contains(d.block, fa) {
				route = d
			}
		})
		if route == nil {
			t.Fatal("forward_auth is not inside a route block: its order against request_header is Caddy's, not the file's")
		}
		at := slices.Index(route.block, fa)
		for _, h := range []string{"X-Jwt-Sub", "X-Jwt-Iss"} {
			i := slices.IndexFunc(route.block, func(d *directive) bool {
				return d.name == "request_header" && slices.Equal(d.args, []string{"-" + h})
			})
			if i < 0 || i > at {
				t.Errorf("no `request_header -%s` before forward_auth in the route", h)
			}
		}
	})

	t.Run("caddy adapt", func(t *testing.T) {
		bin, err := exec.LookPath("caddy")
		if err != nil {
			t.Fatal("caddy is not on PATH; install it: apt-get install -y caddy (the project's test command does)")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "adapt", "--adapter", "caddyfile", "--validate", "--config", caddyfile)
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("caddy adapt --validate: %v\n%s", err, stderr)
		}
		if !json.Valid(out) {
			t.Errorf("caddy adapt printed no JSON config: %.200s", out)
		}
	})
}
