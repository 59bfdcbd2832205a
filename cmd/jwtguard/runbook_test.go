package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz/mint"
)

// runbookCommands returns the jwtguard commands of each section ("## "
// heading) of docs/incident-runbook.md, in order.
func runbookCommands(t *testing.T) (headings []string, cmds map[string][]string) {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "docs", "incident-runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmds = map[string][]string{}
	heading, inCode := "", false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			heading = strings.TrimPrefix(line, "## ")
			headings = append(headings, heading)
		case strings.HasPrefix(line, "```"):
			inCode = !inCode
		case inCode && strings.HasPrefix(line, "jwtguard "):
			cmds[heading] = append(cmds[heading], line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return headings, cmds
}

// shellWords expands $VAR from vars and splits line as a shell would
// (words, double quotes); it knows no more of the shell than the runbook
// uses, and fails on anything else.
func shellWords(t *testing.T, line string, vars map[string]string) []string {
	t.Helper()
	line = os.Expand(line, func(name string) string {
		v, ok := vars[name]
		if !ok {
			t.Fatalf("runbook line %q uses $%s, which the test does not set", line, name)
		}
		return v
	})
	if strings.ContainsAny(line, "'`\\|;&<>#") {
		t.Fatalf("runbook line %q uses shell syntax the test does not run", line)
	}
	var words []string
	var cur strings.Builder
	quoted, inWord := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("runbook line %q: unbalanced quotes", line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words[1:] // without "jwtguard"
}

// TestRunbook runs every command of docs/incident-runbook.md, as written,
// against three nodes on one Redis, and checks after each what the page
// says it does, on every node.
func TestRunbook(t *testing.T) {
	headings, cmds := runbookCommands(t)
	m := newMesh(t, 3, meshConfirm...)
	vars := map[string]string{"ISS": meshIssuer}
	runCmd := func(line string) string {
		t.Helper()
		return m.cli(t, shellWords(t, line, vars)...)
	}
	key := m.key // the signing key until it leaks
	sign := func(jti, sub string, iat time.Time) string { return m.signed(t, key, jti, sub, iat) }
	now := time.Now()
	sections := map[string]func(t *testing.T, lines []string){
		"One stolen token": func(t *testing.T, lines []string) {
			stolen, sibling := sign("stolen", "user-s", now), sign("sibling", "user-s", now)
			vars["TOKEN_FILE"] = writeTestFile(t, "stolen.jwt", stolen+"\n")
			runCmd(lines[0])
			decided(t, stolen, "revoked", m.nodes...)
			decided(t, sibling, "ok", m.nodes...)
		},
		"A compromised user": func(t *testing.T, lines []string) {
			vars["SUB"] = "user-c"
			tok, other := sign("c1", "user-c", now), sign("d1", "user-d", now)
			runCmd(lines[0])
			decided(t, tok, "revoked", m.nodes...)
			decided(t, other, "ok", m.nodes...)
		},
		"A leaked signing key": func(t *testing.T, lines []string) {
			vars["KID"] = key.KID
			leaked := sign("k1", "user-k", now)
			runCmd(lines[0])
			decided(t, leaked, "revoked", m.nodes...)
			// Rotate: the identity provider publishes a new key and
			// withdraws the leaked one.
			next := newKey(t, "mesh-2")
			jwks, err := mint.JWKS(next)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(m.jwks, jwks, 0o600); err != nil {
				t.Fatal(err)
			}
			key = next
			eventuallyDecided(t, sign("k2", "user-k", now), "ok", m.nodes...)
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				out := runCmd(lines[1])
				if strings.Contains(out, "3 live nodes, 0 flagged") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("status --mesh still flags nodes after the rotation:\n%s", out)
				}
			}
		},
		"Undoing a mistake": func(t *testing.T, lines []string) {
			tok := sign("c2", vars["SUB"], now.Add(-time.Minute)) // covered by the subject record
			decided(t, tok, "revoked", m.nodes...)
			out := runCmd(lines[0])
			rows := strings.Split(strings.TrimSpace(out), "\n")
			if len(rows) != 2 {
				t.Fatalf("list shows %d rows, want a header and the subject record:\n%s", len(rows), out)
			}
			vars["ID"] = strings.Fields(rows[1])[0]
			runCmd(lines[1])
			decided(t, tok, "ok", m.nodes...)
		},
		"A breach": func(t *testing.T, lines []string) {
			start := time.Now()
			old, fresh := sign("b-old", "user-b", start.Add(-10*time.Minute)), sign("b-fresh", "user-b", start)
			decided(t, old, "ok", m.nodes...)
			runCmd(lines[0]) // clamp
			decided(t, old, "clamped", m.nodes...)
			decided(t, fresh, "ok", m.nodes...)
			at := time.Now().Truncate(time.Second).Add(time.Second)
			vars["NOW"] = at.UTC().Format(time.RFC3339)
			runCmd(lines[1]) // kill switch
			decided(t, fresh, "revoked", m.nodes...)
			relogin := sign("b-new", "user-b", at.Add(2*time.Second))
			decided(t, relogin, "ok", m.nodes...)
			runCmd(lines[2])                       // clamp off
			decided(t, old, "revoked", m.nodes...) // the kill switch still covers it
			decided(t, relogin, "ok", m.nodes...)
		},
		"Confirm every node enforces it": func(t *testing.T, lines []string) {
			if out := runCmd(lines[0]); !strings.Contains(out, "3 live nodes") {
				t.Errorf("status --mesh:\n%s", out)
			}
		},
	}
	order := []string{"One stolen token", "A compromised user", "A leaked signing key", "Undoing a mistake", "A breach", "Confirm every node enforces it"}
	for _, h := range headings {
		if sections[h] == nil {
			t.Fatalf("the runbook's section %q has no test", h)
		}
	}
	for _, h := range order {
		lines := cmds[h]
		if len(lines) == 0 {
			t.Fatalf("the runbook has no commands under %q", h)
		}
		t.Run(strings.ReplaceAll(h, " ", "_"), func(t *testing.T) { sections[h](t, lines) })
	}
}
