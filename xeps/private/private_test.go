package private_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xeps"
	"github.com/xmppd/xmppd/xeps/private"
)

func newDB(t *testing.T) *storage.DB {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "xmppd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newHost(t *testing.T, db *storage.DB, m private.Module) *xeps.Host {
	t.Helper()
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}, DB: db})
	if err := h.Register(m); err != nil {
		t.Fatal(err)
	}
	return h
}

func call(t *testing.T, h *xeps.Host, typ, from, to string, children ...*stanza.Element) (*stanza.Element, error) {
	t.Helper()
	iq, err := stanza.ParseIQ(stanza.New(stanza.NSClient, "iq").Set("type", typ).Set("id", "p").
		Set("from", from).Set("to", to).Append(stanza.New(private.NS, "query").Append(children...)))
	if err != nil {
		t.Fatal(err)
	}
	return h.IQHandler(typ, private.NS, "query", xeps.ToAccount)(context.Background(), iq)
}

func condition(err error) string {
	if err == nil {
		return ""
	}
	return stanza.AsError(err).Condition
}

func bookmarks(name string) *stanza.Element {
	return stanza.New("storage:bookmarks", "storage").Append(
		stanza.New("storage:bookmarks", "conference").Set("jid", "room@muc.example").Set("name", name).Set("autojoin", "true").
			Append(stanza.New("storage:bookmarks", "nick").AppendText("alice")))
}

func TestFeatureAndXEP(t *testing.T) {
	h := newHost(t, newDB(t), private.Module{})
	if !slices.Contains(h.Features(), private.NS) {
		t.Errorf("features %q", h.Features())
	}
	if private.XEP != "0049" {
		t.Errorf("XEP = %q", private.XEP)
	}
}

func TestSetGet(t *testing.T) {
	db := newDB(t)
	h := newHost(t, db, private.Module{})
	// Nothing stored: the empty element comes back.
	res, err := call(t, h, "get", "alice@localhost/a", "", stanza.New("storage:bookmarks", "storage"))
	if err != nil || res.String() != stanza.New(private.NS, "query").Append(stanza.New("storage:bookmarks", "storage")).String() {
		t.Fatalf("empty get: %v, %v", res, err)
	}
	// Two fragments in one set (§2.3 allows several).
	prefs := stanza.New("exodus:prefs", "exodus").Append(stanza.New("exodus:prefs", "defaultnick").AppendText("Hamlet & co"))
	if res, err := call(t, h, "set", "alice@localhost/a", "", bookmarks("Room"), prefs); res != nil || err != nil {
		t.Fatalf("set: %v, %v", res, err)
	}
	for _, tc := range []struct {
		to   string
		ask  *stanza.Element
		want *stanza.Element
	}{
		{"", stanza.New("storage:bookmarks", "storage"), bookmarks("Room")},
		{"alice@localhost", stanza.New("exodus:prefs", "exodus"), prefs},
		// Same namespace, other name: a different fragment.
		{"", stanza.New("exodus:prefs", "other"), stanza.New("exodus:prefs", "other")},
	} {
		res, err := call(t, h, "get", "alice@localhost/b", tc.to, tc.ask)
		want := stanza.New(private.NS, "query").Append(tc.want).String()
		if err != nil || res.String() != want {
			t.Errorf("get %s: %v, %v\nwant %s", tc.ask.Space, res, err, want)
		}
	}
	// Bob's storage is his own.
	res, err = call(t, h, "get", "bob@localhost/b", "", stanza.New("storage:bookmarks", "storage"))
	if err != nil || len(res.FirstChild().Nodes) != 0 {
		t.Errorf("bob sees %v, %v", res, err)
	}
	// Replace, and survive a restart.
	if _, err := call(t, h, "set", "alice@localhost/a", "", bookmarks("Renamed")); err != nil {
		t.Fatal(err)
	}
	res, err = call(t, newHost(t, db, private.Module{}), "get", "alice@localhost/a", "", stanza.New("storage:bookmarks", "storage"))
	if err != nil || res.FirstChild().String() != bookmarks("Renamed").String() {
		t.Errorf("after restart: %v, %v", res, err)
	}
	// An empty fragment deletes.
	if _, err := call(t, h, "set", "alice@localhost/a", "", stanza.New("storage:bookmarks", "storage")); err != nil {
		t.Fatal(err)
	}
	res, _ = call(t, h, "get", "alice@localhost/a", "", stanza.New("storage:bookmarks", "storage"))
	if len(res.FirstChild().Nodes) != 0 {
		t.Errorf("deleted fragment: %v", res)
	}
	// The account's deletion takes the data with it.
	ctx := context.Background()
	creds, _ := storage.DeriveCredentials("pw", 0)
	if err := db.CreateUser(ctx, "localhost", "alice", creds); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteUser(ctx, "localhost", "alice"); err != nil {
		t.Fatal(err)
	}
	res, _ = call(t, h, "get", "alice@localhost/a", "", stanza.New("exodus:prefs", "exodus"))
	if len(res.FirstChild().Nodes) != 0 {
		t.Errorf("fragment outlived the account: %v", res)
	}
}

func TestErrors(t *testing.T) {
	h := newHost(t, newDB(t), private.Module{})
	for _, tc := range []struct {
		name, typ, from, to string
		children            []*stanza.Element
		want                string
	}{
		{"someone else's get", "get", "bob@localhost/b", "alice@localhost", []*stanza.Element{stanza.New("storage:bookmarks", "storage")}, "forbidden"},
		{"someone else's set", "set", "bob@localhost/b", "alice@localhost", []*stanza.Element{bookmarks("x")}, "forbidden"},
		{"remote user", "get", "alice@remote.example/r", "alice@localhost", []*stanza.Element{stanza.New("storage:bookmarks", "storage")}, "forbidden"},
		{"get without child", "get", "alice@localhost/a", "", nil, "bad-request"},
		{"set without child", "set", "alice@localhost/a", "", nil, "not-acceptable"},
		{"jabber:iq:private itself", "set", "alice@localhost/a", "", []*stanza.Element{stanza.New(private.NS, "x").AppendText("y")}, "not-acceptable"},
		{"jabber:iq:private get", "get", "alice@localhost/a", "", []*stanza.Element{stanza.New(private.NS, "query")}, "not-acceptable"},
		{"stanza namespace", "set", "alice@localhost/a", "", []*stanza.Element{stanza.New(stanza.NSClient, "message").AppendText("y")}, "not-acceptable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := call(t, h, tc.typ, tc.from, tc.to, tc.children...); condition(err) != tc.want {
				t.Errorf("got %v, want %s", err, tc.want)
			}
		})
	}
}

func TestQuota(t *testing.T) {
	h := newHost(t, newDB(t), private.Module{MaxBytes: 2000})
	frag := func(ns string) *stanza.Element {
		return stanza.New(ns, "data").AppendText(strings.Repeat("x", 900))
	}
	if _, err := call(t, h, "set", "alice@localhost/a", "", frag("urn:a")); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, h, "set", "alice@localhost/a", "", frag("urn:b")); err != nil {
		t.Fatal(err)
	}
	// A third would pass the limit: refused, and nothing of it is stored.
	if _, err := call(t, h, "set", "alice@localhost/a", "", frag("urn:c")); condition(err) != "policy-violation" {
		t.Fatalf("over quota: %v", err)
	}
	res, _ := call(t, h, "get", "alice@localhost/a", "", stanza.New("urn:c", "data"))
	if len(res.FirstChild().Nodes) != 0 {
		t.Errorf("refused fragment stored: %v", res)
	}
	// Replacing a fragment counts its new size, not both.
	if _, err := call(t, h, "set", "alice@localhost/a", "", frag("urn:b")); err != nil {
		t.Errorf("replacing within quota: %v", err)
	}
	// Other users have their own quota.
	if _, err := call(t, h, "set", "bob@localhost/b", "", frag("urn:c")); err != nil {
		t.Errorf("bob: %v", err)
	}
}
