package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/roster"
	"github.com/xmppd/xmppd/xeps/blocking"
	"github.com/xmppd/xmppd/xeps/caps"
	"github.com/xmppd/xmppd/xeps/carbons"
	"github.com/xmppd/xmppd/xeps/csi"
	"github.com/xmppd/xmppd/xeps/disco"
	"github.com/xmppd/xmppd/xeps/entitytime"
	"github.com/xmppd/xmppd/xeps/lastactivity"
	"github.com/xmppd/xmppd/xeps/mam"
	"github.com/xmppd/xmppd/xeps/offline"
	"github.com/xmppd/xmppd/xeps/ping"
	"github.com/xmppd/xmppd/xeps/private"
	"github.com/xmppd/xmppd/xeps/push"
	"github.com/xmppd/xmppd/xeps/vcard"
	swversion "github.com/xmppd/xmppd/xeps/version"
)

// coreXEPs are implemented outside the module list, by the listeners, the
// SASL code and federation.
var coreXEPs = []string{
	"0178", // SASL EXTERNAL between servers (s2s)
	"0198", // Stream Management: acks, resumption, hibernation, saved across restarts (c2s, session)
	"0220", // Server Dialback (s2s)
	"0288", // bidirectional server streams (s2s)
	"0368", // Direct TLS listeners (c2s, s2s) and _xmpps-server lookups (s2s/srv)
	"0386", // Bind 2: a resource bound inline with SASL2 (c2s)
	"0388", // SASL2, the extensible SASL profile (c2s)
	"0440", // channel-binding types in the SASL features (c2s/auth)
	"0484", // FAST: token logins in one round trip over SASL2 (c2s, c2s/auth)
}

// moduleXEPs maps each module's name to the XEPs its package implements (its
// XEP constant; none for modules that implement an RFC). A module added to
// modules.go without an entry here fails the test, so the README's list
// cannot fall behind the code.
var moduleXEPs = map[string][]string{
	"ping":         {ping.XEP},
	"version":      {swversion.XEP},
	"time":         {entitytime.XEP},
	"disco":        {disco.XEP},
	"roster":       {roster.XEP},
	"presence":     {},
	"caps":         {caps.XEP},
	"offline":      {offline.XEP, "0203", "0334"},
	"blocking":     {blocking.XEP},
	"carbons":      {carbons.XEP, "0297"},
	"archive":      {mam.XEP, "0059", "0359", "0431", "0441"},
	"vcard":        {vcard.XEP},
	"private":      {private.XEP},
	"push":         {push.XEP},
	"csi":          {csi.XEP},
	"lastactivity": {lastactivity.XEP},
}

func TestREADMESpecs(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(coreXEPs)
	for _, m := range modules(DefaultConfig()) {
		x, ok := moduleXEPs[m.Name()]
		if !ok {
			t.Errorf("module %q has no entry in moduleXEPs", m.Name())
			continue
		}
		want = append(want, x...)
	}
	var listed []string
	for _, m := range regexp.MustCompile(`(?m)^- XEP-(\d{4}):`).FindAllSubmatch(readme, -1) {
		listed = append(listed, string(m[1]))
	}
	slices.Sort(want)
	slices.Sort(listed)
	if !slices.Equal(want, slices.Compact(listed)) {
		t.Errorf("README lists XEPs %v, the code implements %v", listed, want)
	}
}

// readmeSection returns the text of the README section under the heading
// "## name" (or "### name"), up to the next heading of any level.
func readmeSection(t *testing.T, readme, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^#{2,3} ` + regexp.QuoteMeta(name) + `\n`).FindStringIndex(readme)
	if m == nil {
		t.Fatalf("README has no section %q", name)
	}
	rest := readme[m[1]:]
	if end := regexp.MustCompile(`(?m)^#{1,3} `).FindStringIndex(rest); end != nil {
		rest = rest[:end[0]]
	}
	return rest
}

// fencedBlocks returns the fenced code blocks of md with the given info
// string ("sh", "toml").
func fencedBlocks(md, lang string) []string {
	var out []string
	for _, m := range regexp.MustCompile("(?ms)^```"+lang+"\n(.*?)^```\n").FindAllStringSubmatch(md, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestREADMESetUp: "Set up" stays two commands, and what it says a newcomer
// gets is what DefaultConfig gives.
func TestREADMESetUp(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	setUp := readmeSection(t, readme, "Set up")
	want := []string{"go run ./cmd/xmppd serve\n", "go test -race ./...\n"}
	if got := fencedBlocks(setUp, "sh"); !slices.Equal(got, want) {
		t.Errorf("Set up's commands are %q, want exactly %q", got, want)
	}
	if n := strings.Count(setUp, "```"); n != 4 {
		t.Errorf("Set up has %d fences, want the two blocks only", n)
	}
	def := DefaultConfig()
	for _, s := range []string{strings.TrimPrefix(def.DataDir, "./"), def.Domains[0], "every interface"} {
		if !strings.Contains(setUp, s) {
			t.Errorf("Set up does not mention %q", s)
		}
	}
	for _, a := range slices.Concat(def.C2S.Listen, def.C2S.DirectTLS, def.S2S.Listen, def.S2S.DirectTLS) {
		if !strings.HasPrefix(a, ":") {
			t.Errorf("default listener %q is not on every interface: fix the README", a)
		}
		if !strings.Contains(setUp, strings.TrimPrefix(a, ":")) {
			t.Errorf("Set up does not mention the default listener %s", a)
		}
	}
}

// TestREADMEConfiguration: the README points to `xmppd config example` (not
// to a file of the source tree), names where the config is read from, and
// its way to turn federation off works.
func TestREADMEConfiguration(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, s := range []string{"config example", configEnv, systemConfigPath, "config check", "--version", "s2s.listen = []", "s2s.direct_tls = []"} {
		if !strings.Contains(readme, s) {
			t.Errorf("README does not mention %q", s)
		}
	}
	if strings.Contains(readme, "xmppd.example.toml") {
		t.Error("README points to the example file; point to `xmppd config example`")
	}
	fed := readmeSection(t, readme, "Federation")
	blocks := fencedBlocks(fed, "toml")
	if len(blocks) != 1 {
		t.Fatalf("Federation has %d toml blocks, want 1", len(blocks))
	}
	cfg, err := parseConfig([]byte(blocks[0]))
	if err != nil {
		t.Fatalf("the README's federation-off config: %v", err)
	}
	if len(cfg.S2S.Listen) != 0 || len(cfg.S2S.DirectTLS) != 0 {
		t.Errorf("the README's federation-off config leaves s2s listeners: %q %q", cfg.S2S.Listen, cfg.S2S.DirectTLS)
	}
	def := DefaultConfig()
	for _, a := range slices.Concat(def.S2S.Listen, def.S2S.DirectTLS) {
		if !strings.Contains(fed, strings.TrimPrefix(a, ":")) {
			t.Errorf("Federation does not mention the default listener %s", a)
		}
	}
}
