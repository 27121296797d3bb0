package ping_test

import (
	"context"
	"slices"
	"testing"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
	"github.com/xmppd/xmppd/xeps/ping"
)

func TestPing(t *testing.T) {
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}})
	if err := h.Register(ping.Module{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(h.Features(), ping.NS) {
		t.Errorf("features %q lack %s", h.Features(), ping.NS)
	}
	// A ping to the server and one to an account (or with no 'to') both get an empty result.
	for _, target := range []xeps.Target{xeps.ToServer, xeps.ToAccount} {
		fn := h.IQHandler("get", ping.NS, "ping", target)
		if fn == nil {
			t.Errorf("no ping handler for %s", target)
			continue
		}
		iq, err := stanza.ParseIQ(stanza.New(stanza.NSClient, "iq").Set("type", "get").Set("id", "p1").
			Set("from", "alice@localhost/a").Append(stanza.New(ping.NS, "ping")))
		if err != nil {
			t.Fatal(err)
		}
		el, err := fn(context.Background(), iq)
		if el != nil || err != nil {
			t.Errorf("%s: got %v, %v; want an empty result", target, el, err)
		}
	}
	if h.IQHandler("set", ping.NS, "ping", xeps.ToServer) != nil {
		t.Error("a ping of type set has a handler")
	}
	if ping.XEP != "0199" {
		t.Errorf("XEP = %q", ping.XEP)
	}
}
