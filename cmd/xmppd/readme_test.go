package main

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/xmppd/xmppd/roster"
	"github.com/xmppd/xmppd/xeps/blocking"
	"github.com/xmppd/xmppd/xeps/caps"
	"github.com/xmppd/xmppd/xeps/disco"
	"github.com/xmppd/xmppd/xeps/entitytime"
	"github.com/xmppd/xmppd/xeps/lastactivity"
	"github.com/xmppd/xmppd/xeps/offline"
	"github.com/xmppd/xmppd/xeps/ping"
	"github.com/xmppd/xmppd/xeps/private"
	"github.com/xmppd/xmppd/xeps/vcard"
	swversion "github.com/xmppd/xmppd/xeps/version"
)

// coreXEPs are implemented outside the module list, by the listeners, the
// SASL code and federation.
var coreXEPs = []string{
	"0178", // SASL EXTERNAL between servers (s2s)
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
	"vcard":        {vcard.XEP},
	"private":      {private.XEP},
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
