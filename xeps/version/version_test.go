package version_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
	"github.com/xmppd/xmppd/xeps/version"
)

func TestVersion(t *testing.T) {
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}})
	if err := h.Register(version.Module{Software: "xmppd", Version: "1.2.3"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(h.Features(), version.NS) {
		t.Errorf("features %q lack %s", h.Features(), version.NS)
	}
	fn := h.IQHandler("get", version.NS, "query", xeps.ToServer)
	if fn == nil {
		t.Fatal("no version handler")
	}
	iq, err := stanza.ParseIQ(stanza.New(stanza.NSClient, "iq").Set("type", "get").Set("id", "v1").
		Set("from", "alice@localhost/a").Set("to", "localhost").Append(stanza.New(version.NS, "query")))
	if err != nil {
		t.Fatal(err)
	}
	q, err := fn(context.Background(), iq)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Is(version.NS, "query") {
		t.Fatalf("payload %s, want {%s}query", q, version.NS)
	}
	if got := q.Child(version.NS, "name").Text(); got != "xmppd" {
		t.Errorf("name = %q, want xmppd", got)
	}
	if got := q.Child(version.NS, "version").Text(); !strings.HasPrefix(got, "1.2.3") {
		t.Errorf("version = %q, want it to start with 1.2.3", got)
	}
	// XEP-0092 §3: <os/> is optional; we never publish it.
	if q.Child(version.NS, "os") != nil {
		t.Errorf("the answer discloses the OS: %s", q)
	}
	if h.IQHandler("get", version.NS, "query", xeps.ToAccount) != nil {
		t.Error("an account answers version queries for its clients")
	}
	if version.XEP != "0092" {
		t.Errorf("XEP = %q", version.XEP)
	}
}
