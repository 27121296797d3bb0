package vcard_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xeps"
	"github.com/xmppd/xmppd/xeps/vcard"
)

func newHost(t *testing.T, db *storage.DB, m vcard.Module) *xeps.Host {
	t.Helper()
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}, DB: db})
	if err := h.Register(m); err != nil {
		t.Fatal(err)
	}
	return h
}

func newDB(t *testing.T) *storage.DB {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "xmppd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func call(t *testing.T, h *xeps.Host, typ, from, to string, payload *stanza.Element) (*stanza.Element, error) {
	t.Helper()
	iq, err := stanza.ParseIQ(stanza.New(stanza.NSClient, "iq").Set("type", typ).Set("id", "v").
		Set("from", from).Set("to", to).Append(payload))
	if err != nil {
		t.Fatal(err)
	}
	fn := h.IQHandler(typ, vcard.NS, "vCard", xeps.ToAccount)
	if fn == nil {
		t.Fatalf("no %s handler", typ)
	}
	return fn(context.Background(), iq)
}

func card() *stanza.Element {
	return stanza.New(vcard.NS, "vCard").Append(
		stanza.New(vcard.NS, "FN").AppendText("Alice <& \"A\">"),
		stanza.New(vcard.NS, "N").Append(stanza.New(vcard.NS, "GIVEN").AppendText("Alice"), stanza.New(vcard.NS, "MIDDLE")),
		&stanza.Element{Space: vcard.NS, Local: "DESC", Attr: []stanza.Attr{{Space: stanza.NSXML, Local: "lang", Value: "en"}},
			Nodes: []stanza.Node{{Text: "line 1\nline 2"}}},
		stanza.New("urn:example:ext", "x").Set("k", "v"),
	)
}

func condition(err error) string {
	if err == nil {
		return ""
	}
	return stanza.AsError(err).Condition
}

func TestFeatures(t *testing.T) {
	h := newHost(t, newDB(t), vcard.Module{})
	if !slices.Contains(h.Features(), vcard.NS) || !slices.Contains(h.AccountFeatures(), vcard.NS) {
		t.Errorf("features %q / %q lack %s", h.Features(), h.AccountFeatures(), vcard.NS)
	}
	if vcard.XEP != "0054" {
		t.Errorf("XEP = %q", vcard.XEP)
	}
}

func TestGetSet(t *testing.T) {
	db := newDB(t)
	h := newHost(t, db, vcard.Module{})
	get := stanza.New(vcard.NS, "vCard")

	// Nothing stored: an empty vCard for oneself, item-not-found for others.
	for _, to := range []string{"", "alice@localhost"} {
		res, err := call(t, h, "get", "alice@localhost/a", to, get)
		if err != nil || !res.Is(vcard.NS, "vCard") || len(res.Nodes) != 0 {
			t.Errorf("own empty vCard (to %q): %v, %v", to, res, err)
		}
	}
	if _, err := call(t, h, "get", "bob@localhost/b", "alice@localhost", get); condition(err) != "item-not-found" {
		t.Errorf("someone else's missing vCard: %v", err)
	}
	if _, err := call(t, h, "get", "bob@localhost/b", "nobody@localhost", get); condition(err) != "item-not-found" {
		t.Errorf("a missing account's vCard: %v", err)
	}

	// Set, then everyone reads the same vCard.
	if res, err := call(t, h, "set", "alice@localhost/a", "", card()); res != nil || err != nil {
		t.Fatalf("set: %v, %v", res, err)
	}
	want := card().String()
	for _, c := range []struct{ from, to string }{
		{"alice@localhost/a", ""}, {"alice@localhost/b", "alice@localhost"}, {"bob@localhost/b", "alice@localhost"}, {"someone@remote.example/r", "alice@localhost"},
	} {
		res, err := call(t, h, "get", c.from, c.to, get)
		if err != nil || res.String() != want {
			t.Errorf("get from %s: %v, %v\nwant %s", c.from, res, err, want)
		}
	}

	// Only the owner may set.
	for _, from := range []string{"bob@localhost/b", "alice@remote.example/x"} {
		if _, err := call(t, h, "set", from, "alice@localhost", stanza.New(vcard.NS, "vCard").Append(stanza.New(vcard.NS, "FN").AppendText("Mallory"))); condition(err) != "forbidden" {
			t.Errorf("set by %s: %v", from, err)
		}
	}

	// It survives a restart (a new Host on the same file).
	h2 := newHost(t, db, vcard.Module{})
	if res, err := call(t, h2, "get", "bob@localhost/b", "alice@localhost", get); err != nil || res.String() != want {
		t.Errorf("after restart: %v, %v", res, err)
	}

	// An empty vCard deletes it.
	if _, err := call(t, h, "set", "alice@localhost/a", "alice@localhost", stanza.New(vcard.NS, "vCard")); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, h, "get", "bob@localhost/b", "alice@localhost", get); condition(err) != "item-not-found" {
		t.Errorf("deleted vCard: %v", err)
	}
}

func TestSizeLimit(t *testing.T) {
	h := newHost(t, newDB(t), vcard.Module{MaxSize: 1024})
	big := stanza.New(vcard.NS, "vCard").Append(stanza.New(vcard.NS, "PHOTO").Append(
		stanza.New(vcard.NS, "BINVAL").AppendText(strings.Repeat("QUJD", 300))))
	if _, err := call(t, h, "set", "alice@localhost/a", "", big); condition(err) != "not-acceptable" {
		t.Errorf("oversized vCard: %v", err)
	}
	res, err := call(t, h, "get", "alice@localhost/a", "", stanza.New(vcard.NS, "vCard"))
	if err != nil || len(res.Nodes) != 0 {
		t.Errorf("after refused set: %v, %v", res, err)
	}
}

func TestDeletedWithAccount(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	creds, _ := storage.DeriveCredentials("pw", 0)
	if err := db.CreateUser(ctx, "localhost", "alice", creds); err != nil {
		t.Fatal(err)
	}
	h := newHost(t, db, vcard.Module{})
	if _, err := call(t, h, "set", "alice@localhost/a", "", card()); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteUser(ctx, "localhost", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, h, "get", "bob@localhost/b", "alice@localhost", stanza.New(vcard.NS, "vCard")); condition(err) != "item-not-found" {
		t.Errorf("vCard outlived its account: %v", err)
	}
}
