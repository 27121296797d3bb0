package disco_test

import (
	"context"
	"slices"
	"testing"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
	"github.com/xmppd/xmppd/xeps/disco"
)

// moduleFunc is a module written inline.
type moduleFunc struct {
	name string
	fn   func(h *xeps.Host) error
}

func (m moduleFunc) Name() string                { return m.name }
func (m moduleFunc) Register(h *xeps.Host) error { return m.fn(h) }

// other advertises features out of order, and one twice.
var other = moduleFunc{"other", func(h *xeps.Host) error {
	h.AdvertiseFeature("urn:z")
	h.AdvertiseFeature("jabber:iq:a")
	h.AdvertiseFeature("urn:z")
	h.AdvertiseIdentity(xeps.Identity{Category: "store", Type: "file", Name: "Files"})
	h.AdvertiseAccountFeature("urn:xmpp:mam:2")
	return nil
}}

func query(t *testing.T, h *xeps.Host, ns string, target xeps.Target, node string) (*stanza.Element, error) {
	t.Helper()
	fn := h.IQHandler("get", ns, "query", target)
	if fn == nil {
		t.Fatalf("no handler for {%s}query to %s", ns, target)
	}
	q := stanza.New(ns, "query").Set("node", node)
	iq, err := stanza.ParseIQ(stanza.New(stanza.NSClient, "iq").Set("type", "get").Set("id", "d1").
		Set("from", "alice@localhost/a").Append(q))
	if err != nil {
		t.Fatal(err)
	}
	return fn(context.Background(), iq)
}

type info struct {
	identities [][3]string
	features   []string
}

func parseInfo(t *testing.T, q *stanza.Element) info {
	t.Helper()
	if !q.Is(disco.NSInfo, "query") {
		t.Fatalf("payload %s, want {%s}query", q, disco.NSInfo)
	}
	var in info
	for _, c := range q.Children() {
		switch {
		case c.Is(disco.NSInfo, "identity"):
			in.identities = append(in.identities, [3]string{c.Get("category"), c.Get("type"), c.Get("name")})
		case c.Is(disco.NSInfo, "feature"):
			in.features = append(in.features, c.Get("var"))
		default:
			t.Errorf("unexpected child %s", c)
		}
	}
	return in
}

// The module order does not matter for disco#info: disco reads the Host when
// it answers. (It does for the caps hash: see TestCapsNode.)
func TestServerInfo(t *testing.T) {
	for _, order := range [][]xeps.Module{{other, disco.Module{}}, {disco.Module{}, other}} {
		h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}})
		if err := h.Register(order...); err != nil {
			t.Fatal(err)
		}
		q, err := query(t, h, disco.NSInfo, xeps.ToServer, "")
		if err != nil {
			t.Fatal(err)
		}
		got := parseInfo(t, q)
		wantFeatures := []string{disco.NSCaps, disco.NSInfo, disco.NSItems, "jabber:iq:a", "urn:z"}
		if !slices.Equal(got.features, wantFeatures) {
			t.Errorf("order %s first: features %q, want %q", order[0].Name(), got.features, wantFeatures)
		}
		var wantIDs [][3]string
		for _, id := range h.Identities() {
			wantIDs = append(wantIDs, [3]string{id.Category, id.Type, id.Name})
		}
		if !slices.Equal(got.identities, wantIDs) || len(wantIDs) != 2 || !slices.Contains(wantIDs, [3]string{"server", "im", "xmppd"}) {
			t.Errorf("order %s first: identities %q, want server/im/xmppd and store/file/Files", order[0].Name(), got.identities)
		}
	}
}

func TestAccountInfo(t *testing.T) {
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}})
	if err := h.Register(other, disco.Module{}); err != nil {
		t.Fatal(err)
	}
	q, err := query(t, h, disco.NSInfo, xeps.ToAccount, "")
	if err != nil {
		t.Fatal(err)
	}
	got := parseInfo(t, q)
	if want := [][3]string{{"account", "registered", ""}}; !slices.Equal(got.identities, want) {
		t.Errorf("identities %q, want %q", got.identities, want)
	}
	if want := []string{disco.NSInfo, disco.NSItems, "urn:xmpp:mam:2"}; !slices.Equal(got.features, want) {
		t.Errorf("features %q, want %q (account features only, sorted)", got.features, want)
	}
}

func TestItems(t *testing.T) {
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}})
	if err := h.Register(disco.Module{}); err != nil {
		t.Fatal(err)
	}
	for _, target := range []xeps.Target{xeps.ToServer, xeps.ToAccount} {
		q, err := query(t, h, disco.NSItems, target, "")
		if err != nil {
			t.Fatal(err)
		}
		if !q.Is(disco.NSItems, "query") || len(q.Children()) != 0 {
			t.Errorf("%s items: %s, want an empty query", target, q)
		}
	}
}

func TestUnknownNode(t *testing.T) {
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}})
	if err := h.Register(disco.Module{}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ns     string
		target xeps.Target
	}{
		{disco.NSInfo, xeps.ToServer},
		{disco.NSItems, xeps.ToServer},
		{disco.NSInfo, xeps.ToAccount},
	} {
		el, err := query(t, h, tt.ns, tt.target, "nope")
		if se := stanza.AsError(err); err == nil || se.Condition != "item-not-found" {
			t.Errorf("{%s}query node='nope' to %s: %v, %v; want item-not-found", tt.ns, tt.target, el, err)
		}
	}
	if disco.XEP != "0030" {
		t.Errorf("XEP = %q", disco.XEP)
	}
}

// TestCapsVerExample checks CapsVer against the simple generation example of
// XEP-0115 §5.2 (Exodus, hash QgayPKawpkPSDYmwT/WM94uAlu0=).
func TestCapsVerExample(t *testing.T) {
	ids := []xeps.Identity{{Category: "client", Type: "pc", Name: "Exodus 0.9.1"}}
	features := []string{"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items",
		"http://jabber.org/protocol/muc", "http://jabber.org/protocol/caps"}
	if got, want := disco.CapsVer(ids, features), "QgayPKawpkPSDYmwT/WM94uAlu0="; got != want {
		t.Fatalf("CapsVer = %s, want %s", got, want)
	}
}

// TestCapsNode: the stream feature carries the hash of the server's disco#info,
// and a disco#info query for node#ver answers with that node.
func TestCapsNode(t *testing.T) {
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}})
	if err := h.Register(other, disco.Module{}); err != nil {
		t.Fatal(err)
	}
	var c *stanza.Element
	for _, f := range h.StreamFeatures() {
		if f.Is(disco.NSCaps, "c") {
			c = f
		}
	}
	if c == nil {
		t.Fatal("no caps stream feature")
	}
	if want := disco.CapsVer(h.Identities(), h.Features()); c.Get("ver") != want {
		t.Fatalf("ver %s, want %s", c.Get("ver"), want)
	}
	q, err := query(t, h, disco.NSInfo, xeps.ToServer, disco.CapsNode+"#"+c.Get("ver"))
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("node") != disco.CapsNode+"#"+c.Get("ver") {
		t.Fatalf("node %q", q.Get("node"))
	}
}
