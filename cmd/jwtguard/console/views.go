package console

import (
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/*
var staticFS embed.FS

// page is what every template gets.
type page struct {
	Title string
	Nav   string // the view the navigation marks as current
	CSRF  string
	Error string
	Note  string
	Data  any
}

// views are the navigation's entries: path under Prefix and label.
var views = []struct{ Path, Label string }{
	{"", "Overview"},
	{"revocations", "Revocations"},
	{"tokens", "Live tokens"},
	{"revoke", "Revoke"},
	{"detectors", "Detectors"},
	{"mesh", "Mesh"},
	{"keys", "Keys"},
	{"audit", "Audit"},
}

var templates = func() map[string]*template.Template {
	funcs := template.FuncMap{
		"prefix": func() string { return Prefix },
		"views":  func() any { return views },
		"cell":   cell,
	}
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		out[name] = template.Must(template.Must(layout.Clone()).ParseFS(templateFS, n))
	}
	return out
}()

// render writes the page of template name.
func (c *Console) render(w http.ResponseWriter, status int, name string, s *session, p page) {
	if s != nil {
		p.CSRF = s.csrf
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := templates[name].ExecuteTemplate(w, "layout.html", p); err != nil {
		c.cfg.Log.Error("console: render", "page", name, "err", err)
	}
}

func serveStatic(w http.ResponseWriter, r *http.Request, name string) {
	if name == "" || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	b, err := staticFS.ReadFile("static/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	switch path.Ext(name) {
	case ".js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case ".css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "private, max-age=300")
	_, _ = w.Write(b)
}

func init() {
	routes = map[routeKey]func(*Console, http.ResponseWriter, *http.Request, *session){
		{http.MethodGet, "/"}:              (*Console).overview,
		{http.MethodGet, "/stream"}:        (*Console).stream,
		{http.MethodGet, "/revocations"}:   (*Console).revocations,
		{http.MethodPost, "/lift"}:         (*Console).lift,
		{http.MethodGet, "/revoke"}:        (*Console).revokeForm,
		{http.MethodPost, "/revoke/check"}: (*Console).revokeCheck,
		{http.MethodPost, "/revoke"}:       (*Console).revoke,
		{http.MethodGet, "/tokens"}:        (*Console).tokens,
		{http.MethodGet, "/detectors"}:     apiView("detectors", "Detectors", "/v1/detectors"),
		{http.MethodGet, "/mesh"}:          apiView("mesh", "Mesh", "/v1/mesh"),
		{http.MethodGet, "/keys"}:          apiView("keys", "Keys", "/v1/keys"),
		{http.MethodGet, "/audit"}:         (*Console).audit,
		{http.MethodPost, "/logout"}:       (*Console).logout,
	}
}

// table is an API answer as rows and columns.
type table struct {
	Columns []string
	Rows    []map[string]any
	Next    string // the next page's cursor, if any
	Fields  [][2]string
}

// preferred columns come first, in this order.
var preferred = []string{"time", "id", "node", "node_id", "kind", "actor", "issuer", "iss", "value", "subject", "sub",
	"session", "sid", "kid", "token_id", "reason", "before", "created_at", "expires_at", "position"}

// hidden columns are machine data no operator reads.
var hidden = map[string]bool{"addrs_sketch": true}

// tableOf reads an API answer: the first list of objects in it becomes
// the rows; the other top-level scalars become Fields.
func tableOf(body []byte) (table, error) {
	var t table
	var raw any
	if err := json.Unmarshal(body, &raw); err != nil {
		return t, fmt.Errorf("answer is not JSON: %w", err)
	}
	var list []any
	switch v := raw.(type) {
	case []any:
		list = v
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch x := v[k].(type) {
			case []any:
				if list == nil {
					list = x
				}
			case string:
				if k == "next_cursor" {
					t.Next = x
				} else {
					t.Fields = append(t.Fields, [2]string{k, x})
				}
			case map[string]any:
				if list == nil {
					for _, kk := range sortedKeys(x) {
						t.Fields = append(t.Fields, [2]string{k + "." + kk, cell(x[kk])})
					}
				}
			default:
				t.Fields = append(t.Fields, [2]string{k, cell(x)})
			}
		}
	}
	seen := map[string]bool{}
	for _, item := range list {
		row, ok := item.(map[string]any)
		if !ok {
			row = map[string]any{"value": item}
		}
		t.Rows = append(t.Rows, row)
		for k := range row {
			seen[k] = !hidden[k]
		}
	}
	for k, show := range seen {
		if !show {
			delete(seen, k)
		}
	}
	for _, k := range preferred {
		if seen[k] {
			t.Columns = append(t.Columns, k)
			delete(seen, k)
		}
	}
	t.Columns = append(t.Columns, sortedKeys(seen)...)
	return t, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// cell renders one value for a table cell.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return fmt.Sprint(x)
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// apiView is a page showing one admin API answer as a table.
func apiView(nav, title, apiPath string) func(*Console, http.ResponseWriter, *http.Request, *session) {
	return func(c *Console, w http.ResponseWriter, r *http.Request, s *session) {
		p := page{Title: title, Nav: nav}
		p.Data, p.Error = c.fetchTable(r, apiPath+queryOf(r))
		c.render(w, http.StatusOK, "table", s, p)
	}
}

func queryOf(r *http.Request) string {
	if r.URL.RawQuery == "" {
		return ""
	}
	return "?" + r.URL.Query().Encode()
}

// fetchTable calls the API and reads its answer as a table, or says why
// it cannot.
func (c *Console) fetchTable(r *http.Request, apiPath string) (table, string) {
	res := c.call(r, http.MethodGet, apiPath, nil)
	switch {
	case res.status == http.StatusNotFound && strings.Contains(string(res.body), "no such endpoint"):
		return table{}, errNotAvailable.Error() + " (" + strings.SplitN(apiPath, "?", 2)[0] + ")"
	case res.status != http.StatusOK:
		return table{}, apiError(res)
	}
	t, err := tableOf(res.body)
	if err != nil {
		return table{}, err.Error()
	}
	return t, ""
}

// apiError is the message of an API error answer.
func apiError(res apiResult) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(res.body, &e) == nil && e.Error != "" {
		return fmt.Sprintf("%s (HTTP %d)", e.Error, res.status)
	}
	return fmt.Sprintf("HTTP %d: %.200s", res.status, res.body)
}

// overview shows the live decision rates and the node's status.
func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session) {
	if r.URL.Path != Prefix {
		http.NotFound(w, r)
		return
	}
	p := page{Title: "Overview", Nav: ""}
	t, msg := c.fetchTable(r, "/v1/status")
	p.Error = msg
	p.Data = struct {
		Status table
		Totals []kv
	}{t, totals(c.rates.Totals())}
	c.render(w, http.StatusOK, "overview", s, p)
}

type kv struct {
	Key   string
	Value uint64
}

func totals(m map[string]uint64) []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		out = append(out, kv{k, v})
	}
	slices.SortFunc(out, func(a, b kv) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// maxStreams bounds the live-rate streams open at once.
const maxStreams = 16

var streams = make(chan struct{}, maxStreams)

// stream sends the decision counters once a second as server-sent events,
// until the browser goes away or the session ends.
func (c *Console) stream(w http.ResponseWriter, r *http.Request, s *session) {
	select {
	case streams <- struct{}{}:
		defer func() { <-streams }()
	default:
		http.Error(w, "too many live streams", http.StatusTooManyRequests)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		b, _ := json.Marshal(struct {
			Time   int64             `json:"t"`
			Counts map[string]uint64 `json:"counts"`
		}{c.cfg.Now().UnixMilli(), c.rates.Totals()})
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
		if !c.cfg.Now().Before(s.expires) {
			return
		}
	}
}

// revocations lists the records matching the filters, a page at a time,
// each with a lift button.
func (c *Console) revocations(w http.ResponseWriter, r *http.Request, s *session) {
	q := url.Values{}
	for _, k := range []string{"kind", "issuer", "value", "cursor"} {
		if v := r.URL.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", "100")
	t, msg := c.fetchTable(r, "/v1/revocations?"+q.Encode())
	c.render(w, http.StatusOK, "revocations", s, page{Title: "Revocations", Nav: "revocations", Error: msg, Data: struct {
		Table  table
		Filter url.Values
	}{t, r.URL.Query()}})
}

// lift lifts one revocation through the admin API.
func (c *Console) lift(w http.ResponseWriter, r *http.Request, s *session) {
	id, reason := r.PostForm.Get("id"), strings.TrimSpace(r.PostForm.Get("reason"))
	p := page{Title: "Lift", Nav: "revocations"}
	if id == "" || reason == "" {
		p.Error = "A lift needs the record's id and a reason."
		c.render(w, http.StatusBadRequest, "result", s, p)
		return
	}
	body, _ := json.Marshal(map[string]string{"reason": reason, "actor": Actor})
	res := c.call(r, http.MethodDelete, "/v1/revocations/"+url.PathEscape(id), body)
	if res.status/100 != 2 {
		p.Error = apiError(res)
		c.render(w, res.status, "result", s, p)
		return
	}
	c.cfg.Log.Info("console: lifted", "id", id, "remote", r.RemoteAddr)
	p.Note = "Lifted revocation " + id + "."
	c.render(w, http.StatusOK, "result", s, p)
}

// revokeForm is the form for one revocation.
func (c *Console) revokeForm(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, http.StatusOK, "revoke", s, page{Title: "Revoke", Nav: "revoke", Data: authz.Kinds})
}

// maxConsoleRecords bounds the records one console action writes.
const maxConsoleRecords = 1000

// recordsOf reads the records an action names: parallel kind, issuer and
// value fields (one record each), one reason for all.
func recordsOf(form url.Values) ([]authz.Record, error) {
	kinds, issuers, values := form["kind"], form["issuer"], form["value"]
	if len(kinds) == 0 {
		return nil, fmt.Errorf("nothing to revoke")
	}
	if len(issuers) != len(kinds) || len(values) != len(kinds) {
		return nil, fmt.Errorf("every record needs a kind, an issuer and a value field")
	}
	if len(kinds) > maxConsoleRecords {
		return nil, fmt.Errorf("%d records; the console revokes at most %d at once", len(kinds), maxConsoleRecords)
	}
	reason := strings.TrimSpace(form.Get("reason"))
	if reason == "" {
		return nil, fmt.Errorf("a revocation needs a reason")
	}
	recs := make([]authz.Record, 0, len(kinds))
	seen := map[authz.Record]bool{}
	for i := range kinds {
		rec := authz.Record{Kind: authz.Kind(kinds[i]), Issuer: strings.TrimSpace(issuers[i]),
			Value: strings.TrimSpace(values[i]), Reason: reason, Actor: Actor}
		if rec.Kind == authz.KindIssuerBefore {
			rec.Before = time.Now()
		}
		if err := rec.Validate(); err != nil {
			return nil, fmt.Errorf("record %d: %w", i+1, err)
		}
		if !seen[rec] {
			seen[rec] = true
			recs = append(recs, rec)
		}
	}
	return recs, nil
}

// revokeCheck shows what an action will revoke and asks to confirm.
func (c *Console) revokeCheck(w http.ResponseWriter, r *http.Request, s *session) {
	recs, err := recordsOf(r.PostForm)
	if err != nil {
		c.render(w, http.StatusBadRequest, "result", s, page{Title: "Revoke", Nav: "revoke", Error: err.Error()})
		return
	}
	c.render(w, http.StatusOK, "confirm", s, page{Title: "Confirm revocation", Nav: "revoke", Data: struct {
		Records []authz.Record
		Reason  string
	}{recs, recs[0].Reason}})
}

// revoke writes the confirmed records through the admin API.
func (c *Console) revoke(w http.ResponseWriter, r *http.Request, s *session) {
	p := page{Title: "Revoke", Nav: "revoke"}
	recs, err := recordsOf(r.PostForm)
	if err == nil && r.PostForm.Get("confirm") != "yes" {
		err = fmt.Errorf("not confirmed")
	}
	if err != nil {
		p.Error = err.Error()
		c.render(w, http.StatusBadRequest, "result", s, p)
		return
	}
	body, _ := json.Marshal(recs)
	res := c.call(r, http.MethodPost, "/v1/revocations", body)
	if res.status != http.StatusCreated {
		p.Error = apiError(res)
		c.render(w, res.status, "result", s, p)
		return
	}
	t, _ := tableOf(res.body)
	c.cfg.Log.Info("console: revoked", "records", len(recs), "remote", r.RemoteAddr)
	p.Note = fmt.Sprintf("Revoked: %d record(s) stored; every node enforces them from the feed.", len(t.Rows))
	p.Data = t
	c.render(w, http.StatusOK, "result", s, p)
}

// tokenFilters are the search fields of the live-token view.
var tokenFilters = []string{"subject", "session", "kid", "issuer", "addr", "route", "since"}

// tokens searches the live tokens and offers to revoke what it found.
func (c *Console) tokens(w http.ResponseWriter, r *http.Request, s *session) {
	q := url.Values{}
	for _, k := range tokenFilters {
		if v := strings.TrimSpace(r.URL.Query().Get(k)); v != "" {
			q.Set(k, v)
		}
	}
	p := page{Title: "Live tokens", Nav: "tokens"}
	var t table
	if len(q) > 0 {
		t, p.Error = c.fetchTable(r, "/v1/tokens?"+q.Encode())
	}
	p.Data = struct {
		Filters []string
		Query   url.Values
		Table   table
		Targets map[string][]target
	}{tokenFilters, r.URL.Query(), t, targetsOf(t.Rows)}
	c.render(w, http.StatusOK, "tokens", s, p)
}

// target is one record the live-token view offers to write.
type target struct{ Issuer, Value string }

// targetsOf returns, per kind, the distinct records that would end the
// tokens listed: each token, each session, each subject.
func targetsOf(rows []map[string]any) map[string][]target {
	str := func(row map[string]any, keys ...string) string {
		for _, k := range keys {
			if v, ok := row[k].(string); ok && v != "" {
				return v
			}
		}
		return ""
	}
	out := map[string][]target{}
	seen := map[string]bool{}
	add := func(kind string, t target) {
		if t.Value == "" || seen[kind+"\x00"+t.Issuer+"\x00"+t.Value] {
			return
		}
		seen[kind+"\x00"+t.Issuer+"\x00"+t.Value] = true
		out[kind] = append(out[kind], t)
	}
	for _, row := range rows {
		iss := str(row, "issuer", "iss")
		add(string(authz.KindToken), target{iss, str(row, "token_id", "id", "jti")})
		add(string(authz.KindSession), target{iss, str(row, "session", "sid")})
		add(string(authz.KindSubject), target{iss, str(row, "subject", "sub")})
	}
	return out
}

// audit shows the audit trail and whether its chain verifies.
func (c *Console) audit(w http.ResponseWriter, r *http.Request, s *session) {
	p := page{Title: "Audit trail", Nav: "audit"}
	t, msg := c.fetchTable(r, "/v1/audit"+queryOf(r))
	p.Error = msg
	v, vmsg := c.fetchTable(r, "/v1/audit/verify")
	if vmsg != "" && msg == "" {
		p.Error = "chain verification: " + vmsg
	}
	p.Data = struct{ Table, Verify table }{t, v}
	c.render(w, http.StatusOK, "audit", s, p)
}
