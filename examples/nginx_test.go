package examples

import (
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const nginxConf = "nginx/nginx.conf"

// nginxLocations returns the location blocks of the conf's servers, keyed
// by their arguments ("= /_jwtguard", "/", "@name").
func nginxLocations(ds []*directive) map[string]*directive {
	locs := map[string]*directive{}
	walk(ds, func(d *directive) {
		if d.name == "location" {
			locs[strings.Join(d.args, " ")] = d
		}
	})
	return locs
}

// nginxUpstreams returns the server addresses of each upstream block.
func nginxUpstreams(ds []*directive) map[string][]string {
	ups := map[string][]string{}
	walk(ds, func(d *directive) {
		if d.name == "upstream" && len(d.args) == 1 {
			for _, s := range named(d.block, "server") {
				ups[d.args[0]] = append(ups[d.args[0]], s.args[0])
			}
		}
	})
	return ups
}

// isLoopback reports whether host:port names a loopback address.
func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

func TestNginxConf(t *testing.T) {
	raw := string(readExample(t, nginxConf))
	ds, err := parseNginx(raw)
	if err != nil {
		t.Fatalf("%s: %v", nginxConf, err)
	}
	locs := nginxLocations(ds)
	ups := nginxUpstreams(ds)

	t.Run("upstreams on loopback", func(t *testing.T) {
		for name, servers := range ups {
			for _, s := range servers {
				if !isLoopback(s) {
					t.Errorf("upstream %s: server %s is not on loopback", name, s)
				}
			}
		}
		walk(ds, func(d *directive) {
			if d.name != "proxy_pass" {
				return
			}
			u, err := url.Parse(d.args[0])
			if err != nil {
				t.Errorf("proxy_pass %s: %v", d.args[0], err)
				return
			}
			if _, ok := ups[u.Host]; !ok && !isLoopback(u.Host) {
				t.Errorf("proxy_pass %s: neither an upstream nor loopback", d.args[0])
			}
		})
	})

	t.Run("check subrequest", func(t *testing.T) {
		loc, ok := locs["= /_jwtguard"]
		if !ok {
			t.Fatal("no location = /_jwtguard")
		}
		b := loc.block
		if !has(b, "internal") {
			t.Error("/_jwtguard is not internal: clients could call it")
		}
		pp := named(b, "proxy_pass")
		if len(pp) != 1 {
			t.Fatalf("/_jwtguard: %d proxy_pass, want 1", len(pp))
		}
		u, err := url.Parse(pp[0].args[0])
		if err != nil {
			t.Fatalf("/_jwtguard proxy_pass: %v", err)
		}
		hosts := []string{u.Host}
		if servers, ok := ups[u.Host]; ok {
			hosts = servers
		}
		if !slices.Equal(hosts, []string{"127.0.0.1:8181"}) || u.Path != authzPrefix {
			t.Errorf("/_jwtguard goes to %v path %s, want 127.0.0.1:8181 path %s", hosts, u.Path, authzPrefix)
		}
		for _, want := range [][]string{
			{"proxy_pass_request_body", "off"},
			{"proxy_set_header", "Content-Length", ""},
			{"proxy_set_header", "X-Original-URI", "$request_uri"},
			{"proxy_set_header", "X-Forwarded-Method", "$request_method"},
			{"proxy_set_header", "X-Forwarded-For", "$proxy_add_x_forwarded_for"},
		} {
			if !has(b, want[0], want[1:]...) {
				t.Errorf("/_jwtguard lacks %s %q", want[0], want[1:])
			}
		}
	})

	t.Run("protected location", func(t *testing.T) {
		loc, ok := locs["/"]
		if !ok {
			t.Fatal("no location /")
		}
		b := loc.block
		for _, want := range [][]string{
			{"auth_request", "/_jwtguard"},
			{"auth_request_set", "$jwt_sub", "$upstream_http_x_jwt_sub"},
			{"auth_request_set", "$auth_www", "$upstream_http_www_authenticate"},
			{"proxy_set_header", "x-jwt-sub", "$jwt_sub"},
		} {
			if !has(b, want[0], want[1:]...) {
				t.Errorf("location / lacks %s %q", want[0], want[1:])
			}
		}
		ep := named(b, "error_page")
		if len(ep) != 1 || ep[0].args[0] != "401" {
			t.Fatalf("location / error_page %v, want one for 401", ep)
		}
		target := ep[0].args[len(ep[0].args)-1]
		denied, ok := locs[target]
		if !ok {
			t.Fatalf("error_page 401 goes to %s, which is no location", target)
		}
		// auth_request already copies WWW-Authenticate from a 401 check;
		// adding it again would send it twice.
		walk(denied.block, func(d *directive) {
			if d.name == "add_header" && strings.EqualFold(d.args[0], "WWW-Authenticate") {
				t.Errorf("%s adds WWW-Authenticate: clients would get it twice", target)
			}
		})
	})

	t.Run("nginx -t", func(t *testing.T) {
		nginxTest(t, raw, true)
	})
	t.Run("nginx -t rejects a broken copy", func(t *testing.T) {
		nginxTest(t, strings.Replace(raw, "auth_request /_jwtguard;", "auth_request;", 1), false)
	})
}

var (
	pidDirective = regexp.MustCompile(`(?m)^(\s*pid\s+)[^;\s]+;`)
	logDirective = regexp.MustCompile(`(?m)^(\s*(?:error_log|access_log)\s+)(/[^;\s]+)`)
)

// writeRelocated writes conf into dir with its pid and log files moved
// there, and returns the path of the copy.
func writeRelocated(t *testing.T, conf, dir string) string {
	t.Helper()
	if !pidDirective.MatchString(conf) || !logDirective.MatchString(conf) {
		t.Fatalf("%s: no pid or log directive to move into the test's directory", nginxConf)
	}
	conf = pidDirective.ReplaceAllString(conf, "${1}"+filepath.Join(dir, "nginx.pid")+";")
	conf = logDirective.ReplaceAllStringFunc(conf, func(m string) string {
		sub := logDirective.FindStringSubmatch(m)
		return sub[1] + filepath.Join(dir, filepath.Base(sub[2]))
	})
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// nginxTest runs `nginx -t` on a copy of conf whose pid and log files are
// in a temporary directory (the upstream addresses stay as they are, on
// loopback), and checks that it passes or fails as wanted.
func nginxTest(t *testing.T, conf string, wantOK bool) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Fatal("nginx is not on PATH; install it to test nginx/nginx.conf: apt-get install -y nginx (or nginx-light)")
	}
	dir := t.TempDir()
	path := writeRelocated(t, conf, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-t", "-q", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path).CombinedOutput()
	switch {
	case wantOK && err != nil:
		t.Errorf("nginx -t: %v\n%s", err, out)
	case !wantOK && err == nil:
		t.Errorf("nginx -t accepted a broken configuration:\n%s", out)
	}
}
