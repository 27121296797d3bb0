package blocking_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xeps"
	"github.com/xmppd/xmppd/xeps/blocking"
	"github.com/xmppd/xmppd/xeps/xepstest"
)

// env is a Host on a real bbolt file with the stanzas modules send and
// deliver captured.
type env struct {
	h         *xeps.Host
	db        *storage.DB
	mu        sync.Mutex
	sent      []*stanza.Element
	delivered []*stanza.Element
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

func newEnv(t *testing.T, db *storage.DB, mods ...xeps.Module) *env {
	t.Helper()
	e := &env{db: db, h: xeps.NewHost(xeps.Config{Domains: []string{"localhost"}, DB: db})}
	e.h.SetSender(func(_ context.Context, el *stanza.Element) {
		e.mu.Lock()
		e.sent = append(e.sent, el)
		e.mu.Unlock()
	})
	e.h.SetDeliverer(func(_ context.Context, el *stanza.Element) bool {
		e.mu.Lock()
		e.delivered = append(e.delivered, el)
		e.mu.Unlock()
		return true
	})
	if err := e.h.Register(append([]xeps.Module{blocking.Module{}}, mods...)...); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) takeDelivered() []*stanza.Element {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.delivered
	e.delivered = nil
	return d
}

func (e *env) takeSent() []*stanza.Element {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.sent
	e.sent = nil
	return d
}

func jid(t *testing.T, s string) stanza.JID {
	t.Helper()
	j, err := stanza.ParseJID(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func item(j string) *stanza.Element { return stanza.New(blocking.NS, "item").Set("jid", j) }

// call runs the handler for an IQ from 'from' (to 'to' if not empty).
func (e *env) call(t *testing.T, typ, from, to string, payload *stanza.Element) (*stanza.Element, error) {
	t.Helper()
	el := stanza.New(stanza.NSClient, "iq").Set("type", typ).Set("id", "x").Set("from", from).Set("to", to).Append(payload)
	iq, err := stanza.ParseIQ(el)
	if err != nil {
		t.Fatal(err)
	}
	if iq.From.Resourcepart() != "" {
		xepstest.Bind(e.h, iq.From) // the sender is a bound session, as over c2s
	}
	fn := e.h.IQHandler(typ, payload.Space, payload.Local, xeps.ToAccount)
	if fn == nil {
		t.Fatalf("no handler for %s {%s}%s", typ, payload.Space, payload.Local)
	}
	return fn(context.Background(), iq)
}

func (e *env) blocklist(t *testing.T, from string) []string {
	t.Helper()
	res, err := e.call(t, "get", from, "", stanza.New(blocking.NS, "blocklist"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Is(blocking.NS, "blocklist") {
		t.Fatalf("result %s", res)
	}
	var out []string
	for _, c := range res.Children() {
		out = append(out, c.Get("jid"))
	}
	return out
}

func condition(err error) string {
	if err == nil {
		return ""
	}
	return stanza.AsError(err).Condition
}

func TestFeatureAndXEP(t *testing.T) {
	e := newEnv(t, newDB(t))
	if !slices.Contains(e.h.Features(), blocking.NS) {
		t.Errorf("features %q lack %s", e.h.Features(), blocking.NS)
	}
	if blocking.XEP != "0191" {
		t.Errorf("XEP = %q", blocking.XEP)
	}
}

func TestBlockUnblockAndPushes(t *testing.T) {
	e := newEnv(t, newDB(t))
	// Two resources ask for the blocklist; a third never does (§3.3: only
	// resources that requested it get pushes).
	if got := e.blocklist(t, "alice@localhost/a"); len(got) != 0 {
		t.Fatalf("new blocklist %q", got)
	}
	e.blocklist(t, "alice@localhost/b")

	res, err := e.call(t, "set", "alice@localhost/c", "", stanza.New(blocking.NS, "block").
		Append(item("bob@localhost"), item("Spam.Example"), item("bob@localhost")))
	if res != nil || err != nil {
		t.Fatalf("block: %v, %v", res, err)
	}
	pushes := e.takeDelivered()
	var to []string
	for _, p := range pushes {
		to = append(to, p.Get("to"))
		if p.Get("type") != "set" || p.Get("id") == "" {
			t.Errorf("push %s", p)
		}
		cmd := p.Child(blocking.NS, "block")
		var jids []string
		for _, c := range cmd.Children() {
			jids = append(jids, c.Get("jid"))
		}
		if !slices.Equal(jids, []string{"bob@localhost", "spam.example"}) {
			t.Errorf("push items %q", jids)
		}
	}
	if !slices.Equal(to, []string{"alice@localhost/a", "alice@localhost/b"}) {
		t.Errorf("pushes went to %q", to)
	}
	if got := e.blocklist(t, "alice@localhost/a"); !slices.Equal(got, []string{"bob@localhost", "spam.example"}) {
		t.Errorf("blocklist %q", got)
	}
	// Another user's list is their own.
	if got := e.blocklist(t, "bob@localhost/x"); len(got) != 0 {
		t.Errorf("bob's blocklist %q", got)
	}

	// Unblock one: pushed with that item.
	if _, err := e.call(t, "set", "alice@localhost/a", "alice@localhost", stanza.New(blocking.NS, "unblock").Append(item("bob@localhost"))); err != nil {
		t.Fatal(err)
	}
	pushes = e.takeDelivered()
	if len(pushes) != 2 || pushes[0].Child(blocking.NS, "unblock").Child(blocking.NS, "item").Get("jid") != "bob@localhost" {
		t.Errorf("unblock pushes %v", pushes)
	}
	if got := e.blocklist(t, "alice@localhost/a"); !slices.Equal(got, []string{"spam.example"}) {
		t.Errorf("blocklist after unblock %q", got)
	}

	// A closed session gets no more pushes.
	closed := e.h.Sessions().Session("alice@localhost/b")
	e.h.Sessions().Unbind(closed)
	e.h.SessionClosed(context.Background(), closed)
	// Unblock all: an empty <unblock/>, pushed as such (§3.5).
	if _, err := e.call(t, "set", "alice@localhost/a", "", stanza.New(blocking.NS, "unblock")); err != nil {
		t.Fatal(err)
	}
	pushes = e.takeDelivered()
	if len(pushes) != 1 || pushes[0].Get("to") != "alice@localhost/a" || len(pushes[0].Child(blocking.NS, "unblock").Children()) != 0 {
		t.Errorf("unblock-all pushes %v", pushes)
	}
	if got := e.blocklist(t, "alice@localhost/a"); len(got) != 0 {
		t.Errorf("blocklist after unblock all %q", got)
	}
}

func TestCommandErrors(t *testing.T) {
	e := newEnv(t, newDB(t))
	for _, tc := range []struct {
		name, typ, from, to string
		payload             *stanza.Element
		want                string
	}{
		{"block without items", "set", "alice@localhost/a", "", stanza.New(blocking.NS, "block"), "bad-request"},
		{"malformed jid", "set", "alice@localhost/a", "", stanza.New(blocking.NS, "block").Append(item("@@")), "jid-malformed"},
		{"empty jid", "set", "alice@localhost/a", "", stanza.New(blocking.NS, "block").Append(item("")), "jid-malformed"},
		{"someone else's blocklist", "get", "bob@localhost/b", "alice@localhost", stanza.New(blocking.NS, "blocklist"), "forbidden"},
		{"block for someone else", "set", "bob@localhost/b", "alice@localhost", stanza.New(blocking.NS, "block").Append(item("carol@localhost")), "forbidden"},
		{"unblock for someone else", "set", "bob@localhost/b", "alice@localhost", stanza.New(blocking.NS, "unblock"), "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.call(t, tc.typ, tc.from, tc.to, tc.payload)
			if got := condition(err); got != tc.want {
				t.Errorf("got %q (%v), want %s", got, err, tc.want)
			}
		})
	}
	// Nothing was stored by the failed commands.
	if got := e.blocklist(t, "alice@localhost/a"); len(got) != 0 {
		t.Errorf("blocklist %q", got)
	}
}

func TestMaxItems(t *testing.T) {
	db := newDB(t)
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}, DB: db})
	if err := h.Register(blocking.Module{MaxItems: 2}); err != nil {
		t.Fatal(err)
	}
	set := h.IQHandler("set", blocking.NS, "block", xeps.ToAccount)
	iq, _ := stanza.ParseIQ(stanza.New(stanza.NSClient, "iq").Set("type", "set").Set("id", "1").Set("from", "alice@localhost/a").
		Append(stanza.New(blocking.NS, "block").Append(item("a.example"), item("b.example"), item("c.example"))))
	if _, err := set(context.Background(), iq); condition(err) != "policy-violation" {
		t.Errorf("three items with MaxItems 2: %v", err)
	}
}

func el(kind, typ string) *stanza.Element {
	return stanza.New(stanza.NSClient, kind).Set("type", typ)
}

func TestFilter(t *testing.T) {
	e := newEnv(t, newDB(t))
	if _, err := e.call(t, "set", "alice@localhost/a", "", stanza.New(blocking.NS, "block").Append(
		item("bob@localhost"), item("carol@localhost/phone"), item("evil.example"), item("bots.example/b1"))); err != nil {
		t.Fatal(err)
	}
	e.takeDelivered()
	const (
		drop   = "drop"
		pass   = "pass"
		unavai = "service-unavailable"
		notacc = "not-acceptable"
	)
	in, out := xeps.Inbound, xeps.Outbound
	for _, tc := range []struct {
		stanza   *stanza.Element
		from, to string
		dir      xeps.Direction
		want     string
	}{
		// Inbound from blocked JIDs (§3.3).
		{el("message", "chat"), "bob@localhost/x", "alice@localhost/a", in, unavai},
		{el("message", ""), "bob@localhost/x", "alice@localhost", in, unavai},
		{el("message", "normal"), "bob@localhost", "alice@localhost", in, unavai},
		{el("message", "headline"), "bob@localhost/x", "alice@localhost", in, drop},
		{el("message", "groupchat"), "bob@localhost/x", "alice@localhost/a", in, drop},
		{el("message", "error"), "bob@localhost/x", "alice@localhost/a", in, drop},
		{el("presence", ""), "bob@localhost/x", "alice@localhost", in, drop},
		{el("presence", "subscribe"), "bob@localhost", "alice@localhost", in, drop},
		{el("presence", "probe"), "bob@localhost", "alice@localhost", in, drop},
		{el("iq", "get"), "bob@localhost/x", "alice@localhost", in, unavai},
		{el("iq", "set"), "bob@localhost/x", "alice@localhost/a", in, unavai},
		{el("iq", "result"), "bob@localhost/x", "alice@localhost/a", in, drop},
		{el("iq", "error"), "bob@localhost/x", "alice@localhost/a", in, drop},
		// JID matching (XEP-0016 §2.1).
		{el("message", "chat"), "carol@localhost/phone", "alice@localhost", in, unavai},
		{el("message", "chat"), "carol@localhost/laptop", "alice@localhost", in, pass},
		{el("message", "chat"), "carol@localhost", "alice@localhost", in, pass},
		{el("message", "chat"), "anyone@evil.example/r", "alice@localhost", in, unavai},
		{el("message", "chat"), "evil.example", "alice@localhost", in, unavai},
		{el("message", "chat"), "evil.example/r", "alice@localhost", in, unavai},
		{el("message", "chat"), "sub.evil.example", "alice@localhost", in, pass},
		{el("message", "chat"), "bots.example/b1", "alice@localhost", in, unavai},
		{el("message", "chat"), "bots.example/b2", "alice@localhost", in, pass},
		{el("message", "chat"), "u@bots.example/b1", "alice@localhost", in, pass},
		// Not filtered: another user's stanzas, the user's own account, the server itself.
		{el("message", "chat"), "bob@localhost/x", "dave@localhost", in, pass},
		{el("message", "chat"), "alice@localhost/b", "alice@localhost/a", in, pass},
		{el("iq", "result"), "localhost", "alice@localhost/a", in, pass},
		// Outbound to blocked JIDs (§3.3).
		{el("message", "chat"), "alice@localhost/a", "bob@localhost", out, notacc},
		{el("message", "headline"), "alice@localhost/a", "bob@localhost/x", out, notacc},
		{el("iq", "get"), "alice@localhost/a", "bob@localhost/x", out, notacc},
		{el("iq", "result"), "alice@localhost/a", "bob@localhost/x", out, drop},
		{el("iq", "error"), "alice@localhost/a", "bob@localhost/x", out, drop},
		{el("message", "error"), "alice@localhost/a", "bob@localhost/x", out, drop},
		{el("presence", ""), "alice@localhost/a", "bob@localhost", out, drop},
		{el("presence", "subscribed"), "alice@localhost/a", "bob@localhost", out, drop},
		{el("message", "chat"), "alice@localhost/a", "x@evil.example", out, notacc},
		{el("message", "chat"), "alice@localhost/a", "carol@localhost/laptop", out, pass},
		{el("iq", "get"), "alice@localhost/a", "localhost", out, pass},
		{el("message", "chat"), "alice@localhost/a", "alice@localhost/b", out, pass},
		{el("message", "chat"), "dave@localhost/a", "bob@localhost", out, pass},
	} {
		want := tc.want
		st := tc.stanza.Copy().Set("id", "s1").Set("from", tc.from).Set("to", tc.to)
		drop, bounce := hostFilter(e.h, context.Background(), st, jid(t, tc.from), jid(t, tc.to), tc.dir)
		got := pass
		switch {
		case drop && bounce != nil:
			got = bounce.Condition
		case drop:
			got = "drop"
			// The outbound error is delivered to the sender by the module.
			if d := e.takeDelivered(); len(d) == 1 {
				got = stanza.ParseError(d[0]).Condition
				wantReply := stanza.New(stanza.NSClient, tc.stanza.Local).Set("id", "s1").Set("from", tc.to).Set("to", tc.from).Set("type", "error").
					Append(stanza.New(stanza.NSClient, "error").Set("type", "cancel").Append(
						stanza.New(stanza.NSStanzas, "not-acceptable"),
						blockedText(),
						stanza.New(blocking.NSErrors, "blocked")))
				if d[0].String() != wantReply.String() {
					t.Errorf("outbound bounce\n got %s\nwant %s", d[0], wantReply)
				}
			} else if len(d) > 1 {
				t.Errorf("delivered %v", d)
			}
		}
		if got != want {
			t.Errorf("%s %s from %s to %s (dir %d): %s, want %s", tc.stanza.Local, tc.stanza.Get("type"), tc.from, tc.to, tc.dir, got, want)
		}
	}
}

// A user who blocks their own server's domain blocks its users but still
// hears from the server itself.
func TestFilterOwnDomain(t *testing.T) {
	e := newEnv(t, newDB(t))
	if _, err := e.call(t, "set", "alice@localhost/a", "", stanza.New(blocking.NS, "block").Append(item("localhost"))); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if drop, b := hostFilter(e.h, ctx, el("message", "chat"), jid(t, "dave@localhost/x"), jid(t, "alice@localhost"), xeps.Inbound); !drop || b == nil {
		t.Error("message from a user of the blocked domain passed")
	}
	if drop, _ := hostFilter(e.h, ctx, el("iq", "result"), jid(t, "localhost"), jid(t, "alice@localhost/a"), xeps.Inbound); drop {
		t.Error("the server's answer was dropped")
	}
	if drop, _ := hostFilter(e.h, ctx, el("iq", "get"), jid(t, "alice@localhost/a"), jid(t, "localhost"), xeps.Outbound); drop {
		t.Error("an iq to the server was stopped")
	}
	if drop, _ := hostFilter(e.h, ctx, el("message", "chat"), jid(t, "alice@localhost/a"), jid(t, "alice@localhost"), xeps.Outbound); drop {
		t.Error("a message to herself was stopped")
	}
}

func TestPersistence(t *testing.T) {
	db := newDB(t)
	e := newEnv(t, db)
	if _, err := e.call(t, "set", "alice@localhost/a", "", stanza.New(blocking.NS, "block").Append(item("bob@localhost"))); err != nil {
		t.Fatal(err)
	}
	// A new server on the same file: the list is read back, the filter applies it.
	e2 := newEnv(t, db)
	drop, _ := hostFilter(e2.h, context.Background(), el("message", "chat"), jid(t, "bob@localhost/x"), jid(t, "alice@localhost"), xeps.Inbound)
	if !drop {
		t.Error("block lost across restart")
	}
	if got := e2.blocklist(t, "alice@localhost/z"); !slices.Equal(got, []string{"bob@localhost"}) {
		t.Errorf("blocklist after restart %q", got)
	}
	// Deleting the account deletes the blocklist (key = bare JID).
	creds, _ := storage.DeriveCredentials("pw", 0)
	if err := db.CreateUser(context.Background(), "localhost", "alice", creds); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteUser(context.Background(), "localhost", "alice"); err != nil {
		t.Fatal(err)
	}
	if got := newEnv(t, db).blocklist(t, "alice@localhost/z"); len(got) != 0 {
		t.Errorf("blocklist survived account deletion: %q", got)
	}
}

// roster answers Subscription from a table.
type roster map[[2]string]string

func (r roster) Subscription(_ context.Context, user, contact stanza.JID) (string, error) {
	if s, ok := r[[2]string{user.String(), contact.String()}]; ok {
		return s, nil
	}
	return "none", nil
}

type provideRoster struct{ r xeps.RosterReader }

func (provideRoster) Name() string { return "fake-roster" }
func (p provideRoster) Register(h *xeps.Host) error {
	h.ProvideRoster(p.r)
	return nil
}

func TestBlockSendsUnavailable(t *testing.T) {
	r := roster{
		{"alice@localhost", "bob@localhost"}:   "both",
		{"alice@localhost", "carol@localhost"}: "from",
		{"alice@localhost", "dave@localhost"}:  "to",
	}
	e := newEnv(t, newDB(t), provideRoster{r})
	ctx := context.Background()
	xepstest.Bind(e.h, jid(t, "alice@localhost/a"))
	e.h.ResourceAvailable(ctx, jid(t, "alice@localhost/a"))
	xepstest.Bind(e.h, jid(t, "alice@localhost/b"))
	e.h.ResourceAvailable(ctx, jid(t, "alice@localhost/b"))
	xepstest.Bind(e.h, jid(t, "alice@localhost/c"))
	e.h.ResourceAvailable(ctx, jid(t, "alice@localhost/c"))
	e.h.ResourceUnavailable(ctx, jid(t, "alice@localhost/c"), false)
	xepstest.Bind(e.h, jid(t, "bob@localhost/x"))
	e.h.ResourceAvailable(ctx, jid(t, "bob@localhost/x"))

	if _, err := e.call(t, "set", "alice@localhost/a", "", stanza.New(blocking.NS, "block").Append(
		item("bob@localhost"), item("carol@localhost/phone"), item("dave@localhost"), item("erin@localhost"), item("evil.example"))); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range e.takeSent() {
		if p.Local != "presence" || p.Get("type") != "unavailable" {
			t.Errorf("sent %s", p)
		}
		got = append(got, p.Get("from")+" → "+p.Get("to"))
	}
	want := []string{
		"alice@localhost/a → bob@localhost", "alice@localhost/b → bob@localhost",
		"alice@localhost/a → carol@localhost/phone", "alice@localhost/b → carol@localhost/phone",
	}
	if !slices.Equal(got, want) {
		t.Errorf("unavailable presence\n got %q\nwant %q", got, want)
	}
	// Blocking again sends nothing: only new items make the user disappear.
	if _, err := e.call(t, "set", "alice@localhost/a", "", stanza.New(blocking.NS, "block").Append(item("bob@localhost"))); err != nil {
		t.Fatal(err)
	}
	if s := e.takeSent(); len(s) != 0 {
		t.Errorf("second block sent %v", s)
	}
	// No available resource, nothing to send.
	e.h.ResourceUnavailable(ctx, jid(t, "alice@localhost/a"), false)
	e.h.ResourceUnavailable(ctx, jid(t, "alice@localhost/b"), true)
	r[[2]string{"alice@localhost", "frank@localhost"}] = "both"
	if _, err := e.call(t, "set", "alice@localhost/a", "", stanza.New(blocking.NS, "block").Append(item("frank@localhost"))); err != nil {
		t.Fatal(err)
	}
	if s := e.takeSent(); len(s) != 0 {
		t.Errorf("offline user's block sent %v", s)
	}
}

func TestConcurrentFilterAndChanges(t *testing.T) {
	e := newEnv(t, newDB(t))
	ctx := context.Background()
	bob, alice := jid(t, "bob@localhost/x"), jid(t, "alice@localhost")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				hostFilter(e.h, ctx, el("message", "chat"), bob, alice, xeps.Inbound)
				if i == 0 {
					e.call(t, "set", "alice@localhost/a", "", stanza.New(blocking.NS, "block").Append(item("bob@localhost")))
					e.call(t, "set", "alice@localhost/a", "", stanza.New(blocking.NS, "unblock"))
				}
			}
		}()
	}
	wg.Wait()
	// The last change wins, in storage and in the cache.
	if drop, _ := hostFilter(e.h, ctx, el("message", "chat"), bob, alice, xeps.Inbound); drop {
		t.Error("unblocked contact still dropped")
	}
}

// hostFilter runs the pipeline stage where the blocking hooks sit for a
// stanza going dir: FromClient for outbound, ForAccount for inbound. drop
// is true when a hook stopped it, bounce the error the sender then gets.
func hostFilter(h *xeps.Host, ctx context.Context, el *stanza.Element, from, to stanza.JID, dir xeps.Direction) (drop bool, bounce *stanza.Error) {
	stage := xeps.ForAccount
	if dir == xeps.Outbound {
		stage = xeps.FromClient
	}
	v, err := h.Run(ctx, stage, el, from, to)
	return v != xeps.Pass, err
}

// blockedText is the <text/> of the error a user gets for writing to a JID
// they blocked.
func blockedText() *stanza.Element {
	text := stanza.New(stanza.NSStanzas, "text").AppendText("you have blocked this contact; unblock them to send to them")
	text.Attr = append(text.Attr, stanza.Attr{Space: stanza.NSXML, Local: "lang", Value: "en"})
	return text
}
