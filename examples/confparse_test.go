package examples

import (
	"fmt"
	"strings"
	"unicode"
)

// directive is one directive of an nginx.conf or a Caddyfile: its name,
// arguments (unquoted) and block, if any.
type directive struct {
	name  string
	args  []string
	block []*directive
}

// named returns the directives named name directly in ds.
func named(ds []*directive, name string) []*directive {
	var out []*directive
	for _, d := range ds {
		if d.name == name {
			out = append(out, d)
		}
	}
	return out
}

// walk calls fn on every directive of ds and of the blocks below it.
func walk(ds []*directive, fn func(*directive)) {
	for _, d := range ds {
		fn(d)
		walk(d.block, fn)
	}
}

// has reports whether ds holds a directive with exactly these name and args.
func has(ds []*directive, name string, args ...string) bool {
	for _, d := range named(ds, name) {
		if strings.Join(d.args, "\x00") == strings.Join(args, "\x00") {
			return true
		}
	}
	return false
}

// token is a lexical token; quoted tells a quoted "{" from a brace.
type token struct {
	text    string
	quoted  bool
	newline bool // first token of its line
}

// lex splits config text into tokens: words, quoted strings (with
// backslash escapes), and the one-character tokens in punct; '#' starts a
// comment at the start of a token.
func lex(src, punct string) ([]token, error) {
	var toks []token
	line := true
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line = true
			i++
		case unicode.IsSpace(rune(c)):
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(src) && src[j] != c; j++ {
				if src[j] == '\\' && j+1 < len(src) {
					j++
				}
				b.WriteByte(src[j])
			}
			if j >= len(src) {
				return nil, fmt.Errorf("unterminated quote at byte %d", i)
			}
			toks = append(toks, token{b.String(), true, line})
			line = false
			i = j + 1
		case strings.IndexByte(punct, c) >= 0:
			toks = append(toks, token{string(c), false, line})
			line = false
			i++
		default:
			j := i
			for j < len(src) && !unicode.IsSpace(rune(src[j])) && strings.IndexByte(punct, src[j]) < 0 {
				j++
			}
			toks = append(toks, token{src[i:j], false, line})
			line = false
			i = j
		}
	}
	return toks, nil
}

// parseNginx parses nginx configuration syntax: directives end with ';'
// or a '{ ... }' block.
func parseNginx(src string) ([]*directive, error) {
	return parseWith(src, "{};", nginxBlock)
}

// parseWith lexes src with the given special characters and parses the
// top level with block, which must consume every token.
func parseWith(src, specials string, block func([]token, bool) ([]*directive, []token, error)) ([]*directive, error) {
	toks, err := lex(src, specials)
	if err != nil {
		return nil, err
	}
	ds, rest, err := block(toks, false)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("unexpected %q", rest[0].text)
	}
	return ds, nil
}

func nginxBlock(toks []token, inner bool) ([]*directive, []token, error) {
	var ds []*directive
	for len(toks) > 0 {
		t := toks[0]
		if !t.quoted && t.text == "}" {
			if !inner {
				return nil, nil, fmt.Errorf("unexpected }")
			}
			return ds, toks[1:], nil
		}
		if !t.quoted && (t.text == "{" || t.text == ";") {
			return nil, nil, fmt.Errorf("unexpected %q", t.text)
		}
		d := &directive{name: t.text}
		toks = toks[1:]
		for {
			if len(toks) == 0 {
				return nil, nil, fmt.Errorf("directive %s: missing ; or {", d.name)
			}
			t := toks[0]
			toks = toks[1:]
			if !t.quoted && t.text == ";" {
				break
			}
			if !t.quoted && t.text == "{" {
				var err error
				if d.block, toks, err = nginxBlock(toks, true); err != nil {
					return nil, nil, fmt.Errorf("%s: %w", d.name, err)
				}
				break
			}
			d.args = append(d.args, t.text)
		}
		ds = append(ds, d)
	}
	if inner {
		return nil, nil, fmt.Errorf("missing }")
	}
	return ds, nil, nil
}

// parseCaddyfile parses Caddyfile syntax: one directive a line, a '{' at
// the end of a line opens its block, a '}' alone on a line closes it.
func parseCaddyfile(src string) ([]*directive, error) {
	return parseWith(src, "", caddyBlock)
}

func caddyBlock(toks []token, inner bool) ([]*directive, []token, error) {
	var ds []*directive
	for len(toks) > 0 {
		t := toks[0]
		if !t.quoted && t.text == "}" {
			if !inner {
				return nil, nil, fmt.Errorf("unexpected }")
			}
			return ds, toks[1:], nil
		}
		// A line: its tokens up to the next line; a trailing "{" opens a block.
		var line []token
		line, toks = append(line, t), toks[1:]
		for len(toks) > 0 && !toks[0].newline {
			line, toks = append(line, toks[0]), toks[1:]
		}
		d := &directive{}
		last := line[len(line)-1]
		open := !last.quoted && last.text == "{"
		if open {
			line = line[:len(line)-1]
		}
		if len(line) > 0 {
			d.name = line[0].text
			for _, a := range line[1:] {
				d.args = append(d.args, a.text)
			}
		}
		if open {
			var err error
			if d.block, toks, err = caddyBlock(toks, true); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", d.name, err)
			}
		}
		ds = append(ds, d)
	}
	if inner {
		return nil, nil, fmt.Errorf("missing }")
	}
	return ds, nil, nil
}
