package main

// XEP-0280 Message Carbons over real sockets: alice with three resources
// (two carbons-enabled), bob her contact. Each rule of xeps/carbons is one
// row: what bob or alice sends, and what each of alice's resources gets.

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
	"github.com/xmppd/xmppd/xeps/carbons"
)

// drain pings the server and returns the messages c got before the answer.
// Whatever another session's stanza caused for c is queued before the
// answer when that session synced first.
func (c *wireClient) drain() []*stanza.Element {
	c.t.Helper()
	c.send("<iq type='get' id='drain' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	var out []*stanza.Element
	for {
		el := c.next()
		if el.Local == "iq" && el.Get("id") == "drain" {
			return out
		}
		if el.Local == "message" {
			out = append(out, el)
		}
	}
}

// describe sums up messages as "kind:id" (kind: plain, sent, received,
// error), for comparing with a row's expectation. Only a message from a
// bare JID counts as a carbon (a forged one from a contact's full JID is
// plain).
func describe(msgs []*stanza.Element) []string {
	var out []string
	for _, m := range msgs {
		kind, inner := "plain", m
		for _, k := range []string{"sent", "received"} {
			if w := m.Child(carbons.NS, k); w != nil && !strings.Contains(m.Get("from"), "/") {
				kind = k
				inner = w.Child(carbons.NSForward, "forwarded").Child(stanza.NSClient, "message")
			}
		}
		if m.Get("type") == "error" {
			kind = "error"
		}
		out = append(out, kind+":"+inner.Get("id"))
	}
	return out
}

type carbonsWorld struct {
	srv              *server
	a1, a2, a3, bob  *wireClient
	a1JID, a2JID, bj string
}

// newCarbonsWorld logs in alice/a1 (priority 1, carbons on), alice/a2
// (priority 0, carbons on), alice/a3 (priority 0, carbons off) and bob.
func newCarbonsWorld(t *testing.T, srv *server) *carbonsWorld {
	w := &carbonsWorld{srv: srv}
	login := func(user, res, prio string, enable bool) (*wireClient, string) {
		c := dialWire(t, srv.c2sAddrs[0], false)
		j := c.login("localhost", user, res, false)
		if enable {
			c.send("<iq type='set' id='en'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
			if r := c.next(); r.Get("type") != "result" || r.Get("id") != "en" {
				t.Fatalf("enable: %s", r)
			}
		}
		c.send("<presence><priority>" + prio + "</priority></presence>")
		c.sync2("presence")
		return c, j
	}
	w.a1, w.a1JID = login("alice", "a1", "1", true)
	w.a2, w.a2JID = login("alice", "a2", "0", true)
	w.a3, _ = login("alice", "a3", "0", false)
	w.bob, w.bj = login("bob", "b", "0", false)
	w.syncAll()
	return w
}

// syncAll reads away whatever every client has (presence of the others).
func (w *carbonsWorld) syncAll() {
	for _, c := range []*wireClient{w.bob, w.a1, w.a2, w.a3} {
		c.sync2("world")
	}
}

func TestCarbons(t *testing.T) {
	srv := startTestServer(t, nil)
	w := newCarbonsWorld(t, srv)
	clients := map[string]*wireClient{"a1": w.a1, "a2": w.a2, "a3": w.a3, "bob": w.bob}
	tests := []struct {
		name   string
		sender string
		send   string // %s: the id
		want   map[string][]string
	}{
		// Received (§6).
		{"chat to the bare JID", "bob", `<message to='alice@localhost' type='chat' id='%s'><body>hi</body></message>`,
			map[string][]string{"a1": {"plain"}, "a2": {"received"}}},
		{"chat to a full JID", "bob", `<message to='alice@localhost/a2' type='chat' id='%s'><body>hi</body></message>`,
			map[string][]string{"a1": {"received"}, "a2": {"plain"}}},
		{"chat to the carbons-off resource", "bob", `<message to='alice@localhost/a3' type='chat' id='%s'><body>hi</body></message>`,
			map[string][]string{"a1": {"received"}, "a2": {"received"}, "a3": {"plain"}}},
		{"chat to a resource that is gone", "bob", `<message to='alice@localhost/gone' type='chat' id='%s'><body>hi</body></message>`,
			map[string][]string{"a1": {"plain"}, "a2": {"received"}}},
		{"normal with a body", "bob", `<message to='alice@localhost' id='%s'><body>hi</body></message>`,
			map[string][]string{"a1": {"plain"}, "a2": {"received"}}},
		{"normal, a receipt only", "bob", `<message to='alice@localhost/a1' id='%s'><received xmlns='urn:xmpp:receipts' id='x'/></message>`,
			map[string][]string{"a1": {"plain"}, "a2": {"received"}}},
		{"normal, an OMEMO payload only", "bob", `<message to='alice@localhost/a1' id='%s'><encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/></encrypted></message>`,
			map[string][]string{"a1": {"plain"}, "a2": {"received"}}},
		{"chat state only (type chat)", "bob", `<message to='alice@localhost/a1' type='chat' id='%s'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
			map[string][]string{"a1": {"plain"}, "a2": {"received"}}},
		{"normal, no body, no conversation payload", "bob", `<message to='alice@localhost/a1' id='%s'><x xmlns='jabber:x:oob'><url>http://x</url></x></message>`,
			map[string][]string{"a1": {"plain"}}},
		{"groupchat to a full JID", "bob", `<message to='alice@localhost/a2' type='groupchat' id='%s'><body>room</body></message>`,
			map[string][]string{"a2": {"plain"}}},
		{"headline", "bob", `<message to='alice@localhost/a2' type='headline' id='%s'><body>news</body></message>`,
			map[string][]string{"a2": {"plain"}}},
		{"error", "bob", `<message to='alice@localhost/a2' type='error' id='%s'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`,
			map[string][]string{"a2": {"error"}}},
		{"private", "bob", `<message to='alice@localhost/a2' type='chat' id='%s'><body>psst</body><private xmlns='urn:xmpp:carbons:2'/></message>`,
			map[string][]string{"a2": {"plain"}}},
		{"no-copy hint", "bob", `<message to='alice@localhost/a2' type='chat' id='%s'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>`,
			map[string][]string{"a2": {"plain"}}},
		{"MUC private message", "bob", `<message to='alice@localhost/a2' type='chat' id='%s'><body>pm</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>`,
			map[string][]string{"a2": {"plain"}}},
		{"a forged carbon is not copied again", "bob", `<message to='alice@localhost/a2' type='chat' id='%s'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'/></received></message>`,
			map[string][]string{"a2": {"plain"}}},
		// Sent (§7).
		{"sent chat", "a1", `<message to='bob@localhost' type='chat' id='%s'><body>yo</body></message>`,
			map[string][]string{"a2": {"sent"}, "bob": {"plain"}}},
		{"sent by the carbons-off resource", "a3", `<message to='bob@localhost/b' type='chat' id='%s'><body>yo</body></message>`,
			map[string][]string{"a1": {"sent"}, "a2": {"sent"}, "bob": {"plain"}}},
		{"sent private", "a1", `<message to='bob@localhost' type='chat' id='%s'><body>yo</body><private xmlns='urn:xmpp:carbons:2'/></message>`,
			map[string][]string{"bob": {"plain"}}},
		{"sent no-copy", "a1", `<message to='bob@localhost' type='chat' id='%s'><body>yo</body><no-copy xmlns='urn:xmpp:hints'/></message>`,
			map[string][]string{"bob": {"plain"}}},
		{"sent headline", "a1", `<message to='bob@localhost' type='headline' id='%s'><body>yo</body></message>`,
			map[string][]string{"bob": {"plain"}}},
		{"sent to one's own other resource", "a1", `<message to='alice@localhost/a3' type='chat' id='%s'><body>note</body></message>`,
			map[string][]string{"a2": {"received"}, "a3": {"plain"}}},
		{"sent to one's own bare JID", "a3", `<message to='alice@localhost' type='chat' id='%s'><body>note</body></message>`,
			map[string][]string{"a1": {"plain"}, "a2": {"received"}}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("c%d", i)
			clients[tc.sender].send(fmt.Sprintf(tc.send, id))
			clients[tc.sender].sync2("send")
			for _, name := range []string{"a1", "a2", "a3", "bob"} {
				var want []string
				for _, k := range tc.want[name] {
					want = append(want, k+":"+id)
				}
				msgs := clients[name].drain()
				if got := describe(msgs); !slices.Equal(got, want) {
					t.Errorf("%s got %v, want %v", name, got, want)
				}
				for _, m := range msgs {
					if strings.Contains(m.String(), "<private") {
						t.Errorf("%s got <private/>: %s", name, m)
					}
					if (m.Child(carbons.NS, "sent") != nil || m.Child(carbons.NS, "received") != nil) && !strings.Contains(m.Get("from"), "/") {
						if m.Get("from") != "alice@localhost" || m.Get("to") != "alice@localhost/"+name {
							t.Errorf("%s: carbon addressed from %q to %q", name, m.Get("from"), m.Get("to"))
						}
					}
				}
			}
		})
	}
}

// TestCarbonsCopyContent: a copy forwards the whole original, addressed as
// it was, with the wrapper's type kept (§6, §7, XEP-0297).
func TestCarbonsCopyContent(t *testing.T) {
	srv := startTestServer(t, nil)
	w := newCarbonsWorld(t, srv)
	w.bob.send("<message to='alice@localhost' type='chat' id='r1'><body>hello</body><thread>t1</thread></message>")
	w.bob.sync2("send")
	got := w.a2.drain()
	if len(got) != 1 {
		t.Fatalf("a2 got %v", got)
	}
	m := got[0]
	inner := m.Child(carbons.NS, "received").Child(carbons.NSForward, "forwarded").Child(stanza.NSClient, "message")
	if m.Get("type") != "chat" || inner == nil || inner.Get("from") != w.bj || inner.Get("to") != "alice@localhost" ||
		inner.Child(stanza.NSClient, "body").Text() != "hello" || inner.Child(stanza.NSClient, "thread").Text() != "t1" {
		t.Fatalf("received copy: %s", m)
	}
	w.a1.drain()
	w.a1.send("<message to='bob@localhost' type='chat' id='s1'><body>back</body></message>")
	w.a1.sync2("send")
	got = w.a2.drain()
	if len(got) != 1 {
		t.Fatalf("a2 got %v", got)
	}
	inner = got[0].Child(carbons.NS, "sent").Child(carbons.NSForward, "forwarded").Child(stanza.NSClient, "message")
	if inner == nil || inner.Get("from") != w.a1JID || inner.Get("to") != "bob@localhost" || inner.Child(stanza.NSClient, "body").Text() != "back" {
		t.Fatalf("sent copy: %s", got[0])
	}
}

// TestCarbonsDisableAndSessionEnd: after <disable/> a resource gets no
// copies; enabling and disabling twice is answered with a result (§8.1);
// the state ends with the session (a new session of the same resource
// starts without); another user cannot enable carbons for alice.
func TestCarbonsDisableAndSessionEnd(t *testing.T) {
	srv := startTestServer(t, nil)
	w := newCarbonsWorld(t, srv)
	for _, iq := range []string{"<enable xmlns='urn:xmpp:carbons:2'/>", "<disable xmlns='urn:xmpp:carbons:2'/>", "<disable xmlns='urn:xmpp:carbons:2'/>"} {
		w.a2.send("<iq type='set' id='t'>" + iq + "</iq>")
		if r := w.a2.next(); r.Get("type") != "result" {
			t.Fatalf("%s: %s", iq, r)
		}
	}
	w.bob.send("<message to='alice@localhost' type='chat' id='d1'><body>hi</body></message>")
	w.bob.sync2("send")
	if got := describe(w.a2.drain()); len(got) != 0 {
		t.Fatalf("a2 disabled carbons and got %v", got)
	}
	if got := describe(w.a1.drain()); !slices.Equal(got, []string{"plain:d1"}) {
		t.Fatalf("a1 got %v", got)
	}

	// a1 leaves and comes back: carbons are off for its new session.
	w.a1.send("</stream:stream>")
	w.a1.expectClosed()
	a1 := dialWire(t, srv.c2sAddrs[0], false)
	a1.login("localhost", "alice", "a1", false)
	a1.send("<presence><priority>1</priority></presence>")
	a1.sync2("presence")
	w.a2.send("<iq type='set' id='en'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
	w.a2.sync2("enable")
	w.a2.send("<message to='bob@localhost' type='chat' id='d2'><body>hi</body></message>")
	w.a2.sync2("send")
	if got := describe(a1.drain()); len(got) != 0 {
		t.Fatalf("a1's new session got %v without enabling carbons", got)
	}

	w.bob.send("<iq type='set' id='x' to='alice@localhost'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
	r := w.bob.nextOf("iq")
	if r.Get("type") != "error" || r.Child(stanza.NSClient, "error").Child(stanza.NSStanzas, "forbidden") == nil {
		t.Fatalf("bob enabling alice's carbons: %s", r)
	}
	w.bob.send("<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if r := w.bob.nextOf("iq"); !strings.Contains(r.String(), "urn:xmpp:carbons:2") {
		t.Fatalf("disco#info does not list carbons: %s", r)
	}
}

// stampBefore is a module placed before carbons in the module list that
// stamps every message at FromClient and ForAccount, as mam stamps
// stanza-ids, so that the copies can be checked for the stamp.
type stampBefore struct {
	mu sync.Mutex
	n  int
}

func (*stampBefore) Name() string { return "stamp-before" }

func (m *stampBefore) Register(h *xeps.Host) error {
	stamp := func(by string) xeps.Hook {
		return func(_ context.Context, el *stanza.Element, _, _ stanza.JID) (xeps.Verdict, *stanza.Error) {
			if el.Local == "message" {
				m.mu.Lock()
				m.n++
				id := fmt.Sprint(m.n)
				m.mu.Unlock()
				el.Append(stanza.New("urn:xmpp:sid:0", "stanza-id").Set("by", by).Set("id", id))
			}
			return xeps.Pass, nil
		}
	}
	h.Hook(xeps.FromClient, stamp("sender"))
	h.Hook(xeps.ForAccount, stamp("recipient"))
	return nil
}

// stanzaID returns el's XEP-0359 stanza-id by 'by', or nil.
func stanzaID(el *stanza.Element, by string) *stanza.Element {
	for _, c := range el.Children() {
		if c.Is("urn:xmpp:sid:0", "stanza-id") && c.Get("by") == by {
			return c
		}
	}
	return nil
}

// TestCarbonsCarryStanzaID: the copies carry what a module before carbons
// stamped (here a test module in front of carbons, and mam, which is before
// carbons in modules.go): the received copy the stamp the original got, the
// sent copy the sender's.
func TestCarbonsCarryStanzaID(t *testing.T) {
	srv := startTestServer(t, nil)
	cfg := srv.cfg
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var mods []xeps.Module
	for _, m := range modules(cfg) {
		if m.Name() == "carbons" {
			mods = append(mods, &stampBefore{})
		}
		mods = append(mods, m)
	}
	srv = serveForTest(t, cfg, slog.New(slog.DiscardHandler), mods)
	w := newCarbonsWorld(t, srv)
	w.bob.send("<message to='alice@localhost' type='chat' id='r1'><body>hello</body></message>")
	w.bob.sync2("send")
	orig := w.a1.drain()
	cp := w.a2.drain()
	if len(orig) != 1 || len(cp) != 1 {
		t.Fatalf("a1 got %v, a2 got %v", orig, cp)
	}
	inner := cp[0].Child(carbons.NS, "received").Child(carbons.NSForward, "forwarded").Child(stanza.NSClient, "message")
	for _, by := range []string{"recipient", "alice@localhost"} {
		want, got := stanzaID(orig[0], by), stanzaID(inner, by)
		if by == "alice@localhost" && !hasModule("archive") {
			continue
		}
		if want == nil || got == nil || got.Get("id") != want.Get("id") {
			t.Fatalf("stanza-id by %s: original %s, copy %s", by, orig[0], cp[0])
		}
	}
	w.a1.send("<message to='bob@localhost' type='chat' id='s1'><body>back</body></message>")
	w.a1.sync2("send")
	cp = w.a2.drain()
	if len(cp) != 1 {
		t.Fatalf("a2 got %v", cp)
	}
	inner = cp[0].Child(carbons.NS, "sent").Child(carbons.NSForward, "forwarded").Child(stanza.NSClient, "message")
	if stanzaID(inner, "sender") == nil || hasModule("archive") && stanzaID(inner, "alice@localhost") == nil {
		t.Fatalf("sent copy without the sender's stamps: %s", cp[0])
	}
}

// TestCarbonsSurviveRestart: a phone with stream management enables
// carbons and loses its connection; the server restarts (saving the
// hibernated session); after the phone resumes, carbons are still on: a
// message bob sends to alice's laptop is copied to it. One that disabled
// them again before the cut comes back with them off.
func TestCarbonsSurviveRestart(t *testing.T) {
	cases := []struct {
		name  string
		iqs   []string // what the phone sends before it is cut
		wants []string
	}{
		{"enabled", []string{"enable"}, []string{"received:r1"}},
		{"enabled, then disabled", []string{"enable", "disable"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startTestServer(t, nil)
			phone := smLogin(t, srv, "alice", "phone")
			for _, iq := range tc.iqs {
				phone.send("<iq type='set' id='" + iq + "'><" + iq + " xmlns='urn:xmpp:carbons:2'/></iq>")
				if r := phone.nextStanza(false); r.Get("type") != "result" {
					t.Fatalf("%s: %s", iq, r)
				}
			}
			sess := srv.c2s.Sessions().Session(phone.full)
			phone.cut()
			waitFor(t, func() bool { return sess.State() == session.Detached })
			srv = restartTestServer(t, srv)

			np, ans := phone.resume(srv, "alice", phone.h)
			if !ans.Is(nsSM, "resumed") {
				t.Fatalf("resume after the restart: %s", ans)
			}
			laptop := dialWire(t, srv.c2sAddrs[0], false)
			laptop.login("localhost", "alice", "laptop", false)
			bob := dialWire(t, srv.c2sAddrs[0], false)
			bob.login("localhost", "bob", "b", false)
			bob.send("<message to='alice@localhost/laptop' type='chat' id='r1'><body>hi</body></message>")
			bob.sync2("sent")
			np.send("<iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
			var got []*stanza.Element
			for {
				el := np.nextStanza(true)
				if el.Get("id") == "end" {
					break
				}
				if el.Local == "message" {
					got = append(got, el)
				}
			}
			if d := describe(got); !slices.Equal(d, tc.wants) {
				t.Fatalf("the resumed phone got %v, want %v", d, tc.wants)
			}
		})
	}
}
