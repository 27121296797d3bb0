package roster_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/roster"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xeps"
	"github.com/xmppd/xmppd/xeps/xepstest"
)

func jid(t *testing.T, s string) stanza.JID {
	t.Helper()
	j, err := stanza.ParseJID(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestParseSet(t *testing.T) {
	long := strings.Repeat("x", roster.MaxNameBytes+1)
	alice := jid(t, "alice@localhost")
	cases := []struct {
		name, item string
		cond       string // "" = accepted
	}{
		{"plain", `<item jid='bob@localhost' name='Bob'><group>Friends</group></item>`, ""},
		{"two groups", `<item jid='bob@localhost'><group>A</group><group>B</group></item>`, ""},
		{"subscription and ask ignored", `<item jid='bob@localhost' subscription='both' ask='subscribe'/>`, ""},
		{"remove", `<item jid='bob@localhost' subscription='remove'/>`, ""},
		{"two items", `<item jid='bob@localhost'/><item jid='carol@localhost'/>`, "bad-request"},
		{"no item", ``, "bad-request"},
		{"no jid", `<item name='x'/>`, "bad-request"},
		{"bad jid", `<item jid='a@b@c'/>`, "jid-malformed"},
		{"full jid", `<item jid='bob@localhost/phone'/>`, "bad-request"},
		{"own jid", `<item jid='alice@localhost'/>`, "not-allowed"},
		{"name too long", `<item jid='bob@localhost' name='` + long + `'/>`, "not-acceptable"},
		{"name at the limit", `<item jid='bob@localhost' name='` + long[1:] + `'/>`, ""},
		{"empty group", `<item jid='bob@localhost'><group></group></item>`, "not-acceptable"},
		{"group too long", `<item jid='bob@localhost'><group>` + long + `</group></item>`, "not-acceptable"},
		{"duplicate groups", `<item jid='bob@localhost'><group>A</group><group>A</group></item>`, "bad-request"},
	}
	for _, c := range cases {
		q := parse(t, `<query xmlns='jabber:iq:roster'>`+c.item+`</query>`)
		_, err := roster.ParseSet(q, alice)
		got := ""
		if err != nil {
			got = stanza.AsError(err).Condition
		}
		if got != c.cond {
			t.Errorf("%s: got %q, want %q (%v)", c.name, got, c.cond, err)
		}
	}
}

func parse(t *testing.T, s string) *stanza.Element {
	t.Helper()
	d := stanza.NewDecoder(strings.NewReader(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`+s), stanza.DefaultLimits)
	if _, err := d.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	el, err := d.Next()
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func newHost(t *testing.T, path string) (*xeps.Host, *roster.Module, *storage.DB) {
	t.Helper()
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}, DB: db})
	m := roster.New()
	if err := h.Register(m); err != nil {
		t.Fatal(err)
	}
	return h, m, db
}

func iq(t *testing.T, h *xeps.Host, typ, payload string) (*stanza.Element, error) {
	t.Helper()
	el := parse(t, `<iq type='`+typ+`' id='1' from='alice@localhost/phone'>`+payload+`</iq>`)
	q, err := stanza.ParseIQ(el)
	if err != nil {
		t.Fatal(err)
	}
	xepstest.Bind(h, q.From)
	fn := h.IQHandler(typ, roster.NS, "query", xeps.ToAccount)
	if fn == nil {
		t.Fatalf("no roster %s handler", typ)
	}
	return fn(context.Background(), q)
}

// TestVersioning: XEP-0237. The version changes with every change; a get
// with the current version gets an empty result, any other the full roster;
// items and version survive reopening the database.
func TestVersioning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	h, m, db := newHost(t, path)
	res, err := iq(t, h, "get", `<query xmlns='jabber:iq:roster' ver=''/>`)
	if err != nil || res.Get("ver") != "0" || len(res.Children()) != 0 {
		t.Fatalf("empty roster: %v %v", res, err)
	}
	if _, err := iq(t, h, "set", `<query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'/></query>`); err != nil {
		t.Fatal(err)
	}
	res, err = iq(t, h, "get", `<query xmlns='jabber:iq:roster' ver='0'/>`)
	if err != nil || res.Get("ver") != "1" || len(res.Children()) != 1 || res.Children()[0].Get("name") != "Bob" {
		t.Fatalf("after a set: %v %v", res, err)
	}
	if res, err := iq(t, h, "get", `<query xmlns='jabber:iq:roster' ver='1'/>`); err != nil || res != nil {
		t.Fatalf("current version: got %v %v, want an empty result", res, err)
	}
	if got := m.Interested(jid(t, "alice@localhost")); len(got) != 1 || got[0] != "alice@localhost/phone" {
		t.Errorf("interested resources %q", got)
	}
	db.Close()

	h, m, db = newHost(t, path)
	defer db.Close()
	if res, err := iq(t, h, "get", `<query xmlns='jabber:iq:roster' ver='1'/>`); err != nil || res != nil {
		t.Fatalf("after reopening: got %v %v, want an empty result", res, err)
	}
	if sub, err := m.Subscription(context.Background(), jid(t, "alice@localhost"), jid(t, "bob@localhost")); err != nil || sub != "none" {
		t.Errorf("subscription %q %v", sub, err)
	}
	// Removing an item bumps the version; removing it again is item-not-found.
	if _, err := iq(t, h, "set", `<query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query>`); err != nil {
		t.Fatal(err)
	}
	res, err = iq(t, h, "get", `<query xmlns='jabber:iq:roster' ver='1'/>`)
	if err != nil || res.Get("ver") != "2" || len(res.Children()) != 0 {
		t.Fatalf("after remove: %v %v", res, err)
	}
	_, err = iq(t, h, "set", `<query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query>`)
	if c := stanza.AsError(err).Condition; err == nil || c != "item-not-found" {
		t.Errorf("removing a missing item: %v", err)
	}
	// Someone else's roster is forbidden (RFC 6121 §2.3.3).
	el := parse(t, `<iq type='get' id='2' from='alice@localhost/phone' to='bob@localhost'><query xmlns='jabber:iq:roster'/></iq>`)
	q, _ := stanza.ParseIQ(el)
	if _, err := h.IQHandler("get", roster.NS, "query", xeps.ToAccount)(context.Background(), q); err == nil || stanza.AsError(err).Condition != "forbidden" {
		t.Errorf("another user's roster: %v", err)
	}
}

func TestStreamFeatures(t *testing.T) {
	h, _, db := newHost(t, filepath.Join(t.TempDir(), "x.db"))
	defer db.Close()
	var got []string
	for _, f := range h.StreamFeatures() {
		got = append(got, "{"+f.Space+"}"+f.Local)
	}
	want := []string{"{" + roster.NSVer + "}ver", "{" + roster.NSPreApproval + "}sub"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("stream features %q, want %q", got, want)
	}
}

// TestPushesInCommitOrder: many concurrent changes to one user's roster
// (as when the user and a contact act at once); every interested resource
// must see the pushes in the order of their versions, so the last push it
// gets is the stored item.
func TestPushesInCommitOrder(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "x.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}, DB: db})
	m := roster.New()
	if err := h.Register(m); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var vers []int
	h.SetDeliverer(func(_ context.Context, el *stanza.Element) bool {
		// A delivery takes a while (a session's queue lock, a slow moment):
		// long enough for another change to commit and push meanwhile.
		time.Sleep(time.Duration(rand.IntN(5000)) * time.Microsecond)
		if q := el.Child(roster.NS, "query"); q != nil {
			v, _ := strconv.Atoi(q.Get("ver"))
			mu.Lock()
			vers = append(vers, v)
			mu.Unlock()
		}
		return true
	})
	alice := jid(t, "alice@localhost")
	// alice/phone asked for the roster: it is interested.
	get, _ := stanza.ParseIQ(parse(t, `<iq type='get' id='g' from='alice@localhost/phone'><query xmlns='jabber:iq:roster'/></iq>`))
	xepstest.Bind(h, get.From)
	if _, err := h.IQHandler("get", roster.NS, "query", xeps.ToAccount)(context.Background(), get); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			set, _ := stanza.ParseIQ(parse(t, fmt.Sprintf(`<iq type='set' id='s%d' from='alice@localhost/phone'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='n%d'/></query></iq>`, i, i)))
			if _, err := h.IQHandler("set", roster.NS, "query", xeps.ToAccount)(context.Background(), set); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	_ = alice
	if len(vers) != 40 {
		t.Fatalf("%d pushes, want 40", len(vers))
	}
	if !slices.IsSorted(vers) {
		t.Fatalf("pushes out of commit order: %v", vers)
	}
}

// TestCachedRosterFollowsChanges: what presence reads (Items, Subscription)
// comes from the cache once read, and every change, removal and account
// deletion is seen at once.
func TestCachedRosterFollowsChanges(t *testing.T) {
	h, m, _ := newHost(t, filepath.Join(t.TempDir(), "x.db"))
	ctx := context.Background()
	alice, bob := jid(t, "alice@localhost"), jid(t, "bob@localhost")
	sub := func() string {
		t.Helper()
		s, err := m.Subscription(ctx, alice, bob)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got := sub(); got != "none" {
		t.Fatalf("before: %s", got)
	}
	if items, _ := m.Items(ctx, alice); len(items) != 0 {
		t.Fatalf("before: %d items", len(items))
	}
	if _, err := iq(t, h, "set", `<query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'/></query>`); err != nil {
		t.Fatal(err)
	}
	if items, _ := m.Items(ctx, alice); len(items) != 1 || items[0].Name != "Bob" {
		t.Fatalf("after adding bob: %v", items)
	}
	// bob approves a subscription alice asked for: alice's item becomes 'to'.
	sreq := parse(t, `<presence type='subscribe' to='bob@localhost'/>`)
	if err := m.ApplyOutbound(ctx, sreq, alice, bob); err != nil {
		t.Fatal(err)
	}
	if err := m.ApplyInbound(ctx, parse(t, `<presence type='subscribed' from='bob@localhost'/>`), bob, alice); err != nil {
		t.Fatal(err)
	}
	if got := sub(); got != "to" {
		t.Fatalf("after bob approved: %s", got)
	}
	if _, err := iq(t, h, "set", `<query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query>`); err != nil {
		t.Fatal(err)
	}
	if got := sub(); got != "none" {
		t.Fatalf("after removing bob: %s", got)
	}
	if items, _ := m.Items(ctx, alice); len(items) != 0 {
		t.Fatalf("after removing bob: %v", items)
	}
}
