// Package xmppd_test holds repository-wide tests. deps_test.go enforces the
// import rules of DESIGN.md ("Import direction") and STYLE.md §3.1.
package xmppd_test

import (
	"bytes"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/xmppd/xmppd"

// The tables below are a statement of policy: which of our packages may
// import which. If this test fails, the import is what is wrong. Do not edit
// these tables to make a build pass; change the design first (a note in
// docs/design/ that says why), then the tables.
//
// Paths are relative to the module. A pattern is either an exact package
// ("c2s/auth"), "p/*" for every package strictly below p ("xeps/*" is
// xeps/ping, xeps/disco, ..., not xeps itself), or "p/..." for p and every
// package below it. Only imports of our own module are checked, and only
// non-test imports: tests may reach across (cmd/xmppd's transcript tests
// drive the whole server).

// allowed lists, for each package, the packages of ours it may import. The
// most specific rule applies: an exact path before "p/*", a longer prefix
// before a shorter one. A package of ours with no rule fails the test, so a
// new package starts with a decision about where it sits.
var allowed = map[string][]string{
	// The XML layer: element tree, JID, errors, decoder. Everything may import it.
	"stanza": {},
	// bbolt stores; knows stanzas at most, never a domain package.
	"storage": {"stanza"},
	// The contract tests every storage backend runs; only tests import it.
	"storage/storetest": {"storage", "stanza"},
	// The module interface and the Host: hands out stores.
	"xeps": {"stanza", "storage", "session"},
	// One package per XEP: registers on the Host, reaches storage only through it.
	"xeps/*": {"xeps", "stanza"},
	// Test support for modules: sessions bound as c2s would bind them.
	"xeps/xepstest": {"xeps", "stanza", "session"},
	// RFC 6121 modules (planned).
	"roster":   {"xeps", "stanza", "storage"},
	"presence": {"xeps", "stanza", "roster", "session"},
	// Delivery rules; declares the LocalSessions and Remote interfaces it needs.
	"router": {"stanza", "xeps", "session"},
	// Local client sessions and their one registry (docs/design/004-sessions.md):
	// a session owns its outbound queue (stream.Queue), transports drain it.
	"session": {"stanza", "stream"},
	// The connection machinery c2s and s2s share (docs/design/001-stream-package.md):
	// the outbound queue and its writer, the close, the listeners. Stanzas only.
	"stream": {"stanza"},
	// Client connections: credentials from storage, the router's interfaces.
	"c2s":      {"stanza", "storage", "router", "c2s/auth", "stream", "session"},
	"c2s/auth": {"stanza", "storage"},
	// Federation: the same footing as c2s.
	"s2s": {"stanza", "storage", "router", "s2s/srv", "stream"},
	// Where a domain's servers listen (static routes, SRV, A/AAAA): no domain knowledge.
	"s2s/srv": {},
	// The binaries: cmd/xmppd is the one place things are wired together;
	// cmd/xmppbench, the load tool, is a client and uses what it needs.
	"cmd/xmppd":     {"..."},
	"cmd/xmppbench": {"..."},
}

// forbidden restates the edges the design names explicitly, so that a
// violation gets a message that says which rule it breaks, and so that
// loosening allowed above cannot quietly permit them.
var forbidden = []struct {
	from, to string
	unless   string // importers exempt from this rule
	why      string
}{
	{"c2s/...", "s2s/...", "", "c2s and s2s never import each other; both talk to the router"},
	{"s2s/...", "c2s/...", "", "c2s and s2s never import each other; both talk to the router"},
	{"stream/...", "c2s/...", "", "stream serves c2s and s2s; it knows neither"},
	{"stream/...", "s2s/...", "", "stream serves c2s and s2s; it knows neither"},
	{"...", "cmd/...", "cmd/...", "nothing imports cmd: it is where wiring happens"},
	{"xeps/*", "c2s/...", "", "modules never see connections; they use the Host"},
	{"xeps/*", "s2s/...", "", "modules never see connections; they use the Host"},
	{"xeps/*", "router/...", "", "modules never see the router; they reply or use Host.Send"},
	{"xeps/*", "storage/...", "", "modules reach storage only through the stores the Host hands out"},
	{"router/...", "c2s/...", "", "the router declares LocalSessions; c2s implements it"},
	{"router/...", "s2s/...", "", "the router declares Remote; s2s implements it"},
	{"storage/...", "xeps/...", "", "storage never imports domain packages"},
	{"storage/...", "router/...", "", "storage never imports domain packages"},
	{"storage/...", "c2s/...", "", "storage never imports domain packages"},
	{"storage/...", "s2s/...", "", "storage never imports domain packages"},
}

// match reports whether path (relative to the module) matches pattern.
func match(pattern, path string) bool {
	switch {
	case pattern == "...":
		return true
	case strings.HasSuffix(pattern, "/..."):
		p := strings.TrimSuffix(pattern, "/...")
		return path == p || strings.HasPrefix(path, p+"/")
	case strings.HasSuffix(pattern, "/*"):
		return strings.HasPrefix(path, strings.TrimSuffix(pattern, "*"))
	}
	return pattern == path
}

// rule finds the allowed-list rule for pkg: exact first, then the longest "p/*".
func rule(pkg string) (pattern string, ok bool) {
	if _, ok := allowed[pkg]; ok {
		return pkg, true
	}
	best := ""
	for p := range allowed {
		if strings.HasSuffix(p, "/*") && match(p, pkg) && len(p) > len(best) {
			best = p
		}
	}
	return best, best != ""
}

// violations checks edges (importer → imported, both relative to the module)
// and returns one message per broken rule.
func violations(edges map[string][]string) []string {
	var out []string
	for _, from := range slices.Sorted(maps.Keys(edges)) {
		p, ok := rule(from)
		if !ok {
			out = append(out, fmt.Sprintf("%s: no import rule for this package in deps_test.go; decide where it sits in DESIGN.md first", from))
			continue
		}
		for _, to := range edges[from] {
			for _, f := range forbidden {
				if match(f.from, from) && match(f.to, to) && (f.unless == "" || !match(f.unless, from)) {
					out = append(out, fmt.Sprintf("%s → %s: forbidden (%s)", from, to, f.why))
				}
			}
			if !slices.ContainsFunc(allowed[p], func(a string) bool { return match(a, to) }) {
				out = append(out, fmt.Sprintf("%s → %s: not allowed (rule %q allows %q)", from, to, p, allowed[p]))
			}
		}
	}
	return out
}

// ourImports runs go list over the module and returns our packages with the
// packages of ours each one imports (non-test imports only), all relative to the module.
func ourImports(t *testing.T) map[string][]string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to check imports: %v", err)
	}
	cmd := exec.Command(gobin, "list", "-deps", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	rel := func(p string) (string, bool) {
		if p == module {
			return ".", true
		}
		r, ok := strings.CutPrefix(p, module+"/")
		return r, ok
	}
	edges := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		from, ok := rel(fields[0])
		if !ok {
			continue // the standard library and other modules
		}
		ours := []string{}
		for _, imp := range fields[1:] {
			if to, ok := rel(imp); ok {
				ours = append(ours, to)
			}
		}
		edges[from] = ours
	}
	return edges
}

func TestImportRules(t *testing.T) {
	edges := ourImports(t)
	delete(edges, ".") // this test-only package, if go list reports it
	// A guard against checking nothing: go list must have seen the core packages.
	for _, p := range []string{"stanza", "router", "xeps", "c2s", "cmd/xmppd"} {
		if _, ok := edges[p]; !ok {
			t.Fatalf("go list did not report %s; got %q", p, slices.Sorted(maps.Keys(edges)))
		}
	}
	for _, v := range violations(edges) {
		t.Error(v)
	}
}

// TestImportRulesCatch checks the checker: each edge here breaks a rule and
// must be reported; each edge in ok is one the design allows.
func TestImportRulesCatch(t *testing.T) {
	bad := [][2]string{
		{"stanza", "storage"},
		{"storage", "xeps"},
		{"xeps", "router"},
		{"xeps/ping", "c2s"},
		{"xeps/ping", "router"},
		{"xeps/ping", "storage"},
		{"xeps/mam", "s2s"},
		{"xeps/ping", "xeps/disco"},
		{"router", "c2s"},
		{"router", "storage"},
		{"c2s", "s2s"},
		{"c2s/auth", "s2s/dialback"},
		{"s2s", "c2s"},
		{"c2s", "cmd/xmppd"},
		{"c2s", "xeps"},
		{"roster", "presence"},
		{"stream", "c2s"},
		{"stream", "s2s"},
		{"stream", "router"},
		{"stream", "storage"},
		{"newpkg", "stanza"}, // no rule at all
	}
	for _, e := range bad {
		if v := violations(map[string][]string{e[0]: {e[1]}}); len(v) == 0 {
			t.Errorf("%s → %s was not reported", e[0], e[1])
		}
	}
	ok := [][2]string{
		{"storage", "stanza"},
		{"xeps", "storage"},
		{"xeps/ping", "xeps"},
		{"xeps/ping", "stanza"},
		{"router", "xeps"},
		{"c2s", "router"},
		{"c2s", "c2s/auth"},
		{"c2s/auth", "storage"},
		{"c2s", "stream"},
		{"s2s", "stream"},
		{"stream", "stanza"},
		{"presence", "roster"},
		{"cmd/xmppd", "c2s"},
		{"cmd/xmppd", "xeps/disco"},
		{"cmd/xmppd", "cmd/xmppd/internal/wire"},
	}
	for _, e := range ok {
		if v := violations(map[string][]string{e[0]: {e[1]}}); len(v) != 0 {
			t.Errorf("%s → %s was reported: %q", e[0], e[1], v)
		}
	}
}
