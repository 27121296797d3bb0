package router_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/router"
	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

const (
	nsTest = "urn:xmppd:test"
	alice  = "alice@localhost/a" // the sender in most cases
)

// world is the other side of the router: local sessions in a real
// registry, each with an in-memory transport that logs what it is handed,
// and a remote domain. Every delivery, local or remote, is appended to log
// in order; routing is synchronous, so the order is deterministic.
type world struct {
	reg *session.Registry
	log []delivery
	// refuse makes the transports of these full JIDs refuse every stanza,
	// as a session dropped as a slow consumer does.
	refuse map[string]bool
}

type delivery struct {
	at string // full JID of the session, or "remote:<domain>"
	el *stanza.Element
}

// logTransport is a test transport: it takes a stanza by logging it.
type logTransport struct {
	w    *world
	full string
}

func (tr *logTransport) Deliver(el *stanza.Element) bool {
	if tr.w.refuse[tr.full] {
		return false
	}
	tr.w.log = append(tr.w.log, delivery{at: tr.full, el: el})
	return true
}

func (tr *logTransport) DeliverWait(_ context.Context, el *stanza.Element) bool {
	return tr.Deliver(el)
}
func (tr *logTransport) Start()                    {}
func (tr *logTransport) Close(*stanza.StreamError) {}

func (w *world) Sessions(bare string, buf []*session.Session) []*session.Session {
	if w.reg == nil {
		return buf
	}
	return w.reg.Sessions(bare, buf)
}

func (w *world) Session(full string) *session.Session {
	if w.reg == nil {
		return nil
	}
	return w.reg.Session(full)
}

// fakeRemote stands in for s2s.
type fakeRemote struct {
	w      *world
	accept bool
}

func (r *fakeRemote) Send(_ context.Context, domain string, el *stanza.Element) bool {
	if !r.accept {
		return false
	}
	r.w.log = append(r.w.log, delivery{at: "remote:" + domain, el: el})
	return true
}

// sess describes a session as "full/JID" (connected, no presence sent),
// "full/JID 5" (available, priority 5) or "full/JID -1".
func (w *world) add(t *testing.T, spec string) {
	t.Helper()
	addr, prio, hasPrio := strings.Cut(spec, " ")
	j, err := stanza.ParseJID(addr)
	if err != nil {
		t.Fatalf("session %q: %v", spec, err)
	}
	if w.reg == nil {
		w.reg = session.NewRegistry()
	}
	s := session.New(addr, 8)
	s.SetAddress(j)
	w.reg.Bind(s)
	s.Attach(&logTransport{w: w, full: j.String()})
	if hasPrio {
		s.TrackPresence(stanza.New(stanza.NSClient, "presence").Append(stanza.New(stanza.NSClient, "priority").AppendText(prio)))
	}
}

// moduleFunc is a module written inline.
type moduleFunc struct {
	name string
	fn   func(h *xeps.Host) error
}

func (m moduleFunc) Name() string                { return m.name }
func (m moduleFunc) Register(h *xeps.Host) error { return m.fn(h) }

// testHost has a few handlers for the server and for accounts.
func testHost(t *testing.T) *xeps.Host {
	t.Helper()
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost", "conference.localhost"}})
	err := h.Register(moduleFunc{"test", func(h *xeps.Host) error {
		// The payload echoes what the handler saw, so cases can check it.
		echo := func(_ context.Context, iq *stanza.IQ) (*stanza.Element, error) {
			return stanza.New(nsTest, "echo").Set("to", iq.Get("to")).Set("from", iq.Get("from")), nil
		}
		h.HandleIQ("get", nsTest, "echo", xeps.ToServer, echo)
		h.HandleIQ("get", nsTest, "whoami", xeps.ToAccount, echo)
		h.HandleIQ("set", nsTest, "refuse", xeps.ToServer, func(context.Context, *stanza.IQ) (*stanza.Element, error) {
			return nil, stanza.Errorf("not-allowed", "no")
		})
		h.HandleIQ("set", nsTest, "fail", xeps.ToServer, func(context.Context, *stanza.IQ) (*stanza.Element, error) {
			return nil, errors.New("disk on fire") // a plain error: internal-server-error
		})
		h.HandleIQ("set", nsTest, "panic", xeps.ToServer, func(context.Context, *stanza.IQ) (*stanza.Element, error) {
			panic("handler bug")
		})
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// parse reads one stanza written as in a client stream (default namespace jabber:client).
func parse(t *testing.T, xml string) *stanza.Element {
	t.Helper()
	stream := "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>" + xml
	d := stanza.NewDecoder(strings.NewReader(stream), stanza.DefaultLimits)
	if _, err := d.ReadHeader(); err != nil {
		t.Fatalf("header: %v", err)
	}
	el, err := d.Next()
	if err != nil {
		t.Fatalf("parse %s: %v", xml, err)
	}
	return el
}

// want is one expected delivery. from "*" is not checked. cond is the
// stanza error condition, for type='error'. payload is "{space}local" of the
// first child, checked when set ("-" = no child at all).
type want struct {
	at, kind, id, typ, from, to string
	cond                        string
	payload                     string
	same                        bool // the very element that was routed, not a new one
}

func TestRoute(t *testing.T) {
	const server = "{" + nsTest + "}echo"
	tests := []struct {
		name     string
		sessions []string
		remote   *bool // nil: no Remote; else whether it accepts
		in       string
		want     []want
	}{
		// Local full JID (RFC 6121 §8.5.3).
		{
			name:     "full JID present: message delivered as is",
			sessions: []string{alice + " 0", "bob@localhost/phone 0"},
			in:       `<message from='alice@localhost/a' to='bob@localhost/phone' type='chat' id='m1'><body>hi</body></message>`,
			want:     []want{{at: "bob@localhost/phone", kind: "message", id: "m1", typ: "chat", from: alice, to: "bob@localhost/phone", same: true}},
		},
		{
			name:     "full JID present without presence: iq still delivered",
			sessions: []string{alice + " 0", "bob@localhost/phone"},
			in:       `<iq from='alice@localhost/a' to='bob@localhost/phone' type='get' id='q1'><query xmlns='jabber:iq:version'/></iq>`,
			want:     []want{{at: "bob@localhost/phone", kind: "iq", id: "q1", typ: "get", from: alice, to: "bob@localhost/phone", same: true}},
		},
		{
			name:     "full JID present: presence delivered",
			sessions: []string{alice + " 0", "bob@localhost/phone 0"},
			in:       `<presence from='alice@localhost/a' to='bob@localhost/phone'/>`,
			want:     []want{{at: "bob@localhost/phone", kind: "presence", from: alice, to: "bob@localhost/phone", same: true}},
		},
		{
			name:     "full JID absent: iq get bounces service-unavailable",
			sessions: []string{alice + " 0", "bob@localhost/phone 0"},
			in:       `<iq from='alice@localhost/a' to='bob@localhost/gone' type='get' id='q2'><query xmlns='jabber:iq:version'/></iq>`,
			want:     []want{{at: alice, kind: "iq", id: "q2", typ: "error", from: "bob@localhost/gone", to: alice, cond: "service-unavailable"}},
		},
		{
			name:     "full JID absent: chat falls back to the bare JID",
			sessions: []string{alice + " 0", "bob@localhost/phone 1", "bob@localhost/laptop 0"},
			in:       `<message from='alice@localhost/a' to='bob@localhost/gone' type='chat' id='m2'><body>hi</body></message>`,
			want:     []want{{at: "bob@localhost/phone", kind: "message", id: "m2", typ: "chat", from: alice, to: "bob@localhost/gone", same: true}},
		},
		{
			name:     "full JID absent: normal message, no sessions at all, bounces",
			sessions: []string{alice + " 0"},
			in:       `<message from='alice@localhost/a' to='bob@localhost/gone' id='m3'><body>hi</body></message>`,
			want:     []want{{at: alice, kind: "message", id: "m3", typ: "error", from: "bob@localhost/gone", to: alice, cond: "service-unavailable"}},
		},
		{
			name:     "full JID absent: groupchat bounces even with available resources",
			sessions: []string{alice + " 0", "bob@localhost/phone 1"},
			in:       `<message from='alice@localhost/a' to='bob@localhost/gone' type='groupchat' id='g1'><body>hi</body></message>`,
			want:     []want{{at: alice, kind: "message", id: "g1", typ: "error", from: "bob@localhost/gone", to: alice, cond: "service-unavailable"}},
		},
		{
			name:     "full JID absent: error message dropped",
			sessions: []string{alice + " 0", "bob@localhost/phone 1"},
			in:       `<message from='alice@localhost/a' to='bob@localhost/gone' type='error' id='e1'/>`,
		},
		{
			name:     "full JID absent: presence dropped",
			sessions: []string{alice + " 0", "bob@localhost/phone 1"},
			in:       `<presence from='alice@localhost/a' to='bob@localhost/gone'/>`,
		},

		// Local bare JID, messages (RFC 6121 §8.5.2).
		{
			name:     "bare: chat to the highest non-negative priority only",
			sessions: []string{alice + " 0", "bob@localhost/a 5", "bob@localhost/b 1", "bob@localhost/c", "bob@localhost/d -1"},
			in:       `<message from='alice@localhost/a' to='bob@localhost' type='chat' id='m4'><body>hi</body></message>`,
			want:     []want{{at: "bob@localhost/a", kind: "message", id: "m4", typ: "chat", from: alice, to: "bob@localhost", same: true}},
		},
		{
			name:     "bare: normal message, tied priorities all get it",
			sessions: []string{alice + " 0", "bob@localhost/a 3", "bob@localhost/b 1", "bob@localhost/c 3"},
			in:       `<message from='alice@localhost/a' to='bob@localhost' id='m5'><body>hi</body></message>`,
			want: []want{
				{at: "bob@localhost/a", kind: "message", id: "m5", from: alice, to: "bob@localhost", same: true},
				{at: "bob@localhost/c", kind: "message", id: "m5", from: alice, to: "bob@localhost", same: true},
			},
		},
		{
			name:     "bare: priority 0 is enough",
			sessions: []string{alice + " 0", "bob@localhost/a 0"},
			in:       `<message from='alice@localhost/a' to='bob@localhost' type='chat' id='m6'/>`,
			want:     []want{{at: "bob@localhost/a", kind: "message", id: "m6", typ: "chat", from: alice, to: "bob@localhost", same: true}},
		},
		{
			name:     "bare: headline to every non-negative resource",
			sessions: []string{alice + " 0", "bob@localhost/a 5", "bob@localhost/b 0", "bob@localhost/c -1", "bob@localhost/d"},
			in:       `<message from='alice@localhost/a' to='bob@localhost' type='headline' id='h1'><body>news</body></message>`,
			want: []want{
				{at: "bob@localhost/a", kind: "message", id: "h1", typ: "headline", from: alice, to: "bob@localhost", same: true},
				{at: "bob@localhost/b", kind: "message", id: "h1", typ: "headline", from: alice, to: "bob@localhost", same: true},
			},
		},
		{
			name:     "bare: all resources negative, chat bounces",
			sessions: []string{alice + " 0", "bob@localhost/a -1", "bob@localhost/b -5"},
			in:       `<message from='alice@localhost/a' to='bob@localhost' type='chat' id='m7'/>`,
			want:     []want{{at: alice, kind: "message", id: "m7", typ: "error", from: "bob@localhost", to: alice, cond: "service-unavailable"}},
		},
		{
			name:     "bare: connected but unavailable resources do not count",
			sessions: []string{alice + " 0", "bob@localhost/a"},
			in:       `<message from='alice@localhost/a' to='bob@localhost' id='m8'/>`,
			want:     []want{{at: alice, kind: "message", id: "m8", typ: "error", from: "bob@localhost", to: alice, cond: "service-unavailable"}},
		},
		{
			name:     "bare: no sessions, chat bounces",
			sessions: []string{alice + " 0"},
			in:       `<message from='alice@localhost/a' to='nobody@localhost' type='chat' id='m9'/>`,
			want:     []want{{at: alice, kind: "message", id: "m9", typ: "error", from: "nobody@localhost", to: alice, cond: "service-unavailable"}},
		},
		{
			name:     "bare: no sessions, headline vanishes",
			sessions: []string{alice + " 0", "bob@localhost/a -1"},
			in:       `<message from='alice@localhost/a' to='bob@localhost' type='headline' id='h2'/>`,
		},
		{
			name:     "bare: no sessions, error vanishes",
			sessions: []string{alice + " 0"},
			in:       `<message from='alice@localhost/a' to='bob@localhost' type='error' id='e2'/>`,
		},
		{
			name:     "bare: groupchat bounces although a resource is available",
			sessions: []string{alice + " 0", "bob@localhost/a 1"},
			in:       `<message from='alice@localhost/a' to='bob@localhost' type='groupchat' id='g2'/>`,
			want:     []want{{at: alice, kind: "message", id: "g2", typ: "error", from: "bob@localhost", to: alice, cond: "service-unavailable"}},
		},
		{
			name:     "bare: groupchat with no resource bounces",
			sessions: []string{alice + " 0"},
			in:       `<message from='alice@localhost/a' to='bob@localhost' type='groupchat' id='g3'/>`,
			want:     []want{{at: alice, kind: "message", id: "g3", typ: "error", from: "bob@localhost", to: alice, cond: "service-unavailable"}},
		},

		// Local bare JID, presence and iq.
		{
			name:     "bare: presence to every available resource, negative priority included",
			sessions: []string{alice + " 0", "bob@localhost/a 5", "bob@localhost/b", "bob@localhost/c -1"},
			in:       `<presence from='alice@localhost/a' to='bob@localhost'/>`,
			want: []want{
				{at: "bob@localhost/a", kind: "presence", from: alice, to: "bob@localhost", same: true},
				{at: "bob@localhost/c", kind: "presence", from: alice, to: "bob@localhost", same: true},
			},
		},
		{
			name:     "bare: presence with no available resource vanishes",
			sessions: []string{alice + " 0", "bob@localhost/b"},
			in:       `<presence from='alice@localhost/a' to='bob@localhost' type='unavailable'/>`,
		},
		{
			name:     "bare: iq get answered by the account handler",
			sessions: []string{alice + " 0", "bob@localhost/a 5"},
			in:       `<iq from='alice@localhost/a' to='bob@localhost' type='get' id='w1'><whoami xmlns='urn:xmppd:test'/></iq>`,
			want:     []want{{at: alice, kind: "iq", id: "w1", typ: "result", from: "bob@localhost", to: alice, payload: "{" + nsTest + "}echo"}},
		},
		{
			name:     "bare: iq get with no account handler bounces",
			sessions: []string{alice + " 0", "bob@localhost/a 5"},
			in:       `<iq from='alice@localhost/a' to='bob@localhost' type='get' id='w2'><query xmlns='urn:example:unknown'/></iq>`,
			want:     []want{{at: alice, kind: "iq", id: "w2", typ: "error", from: "bob@localhost", to: alice, cond: "service-unavailable"}},
		},
		{
			name:     "bare: server-only handler is not an account handler",
			sessions: []string{alice + " 0"},
			in:       `<iq from='alice@localhost/a' to='bob@localhost' type='get' id='w3'><echo xmlns='urn:xmppd:test'/></iq>`,
			want:     []want{{at: alice, kind: "iq", id: "w3", typ: "error", from: "bob@localhost", to: alice, cond: "service-unavailable"}},
		},
		{
			name:     "bare: iq result with no waiter dropped",
			sessions: []string{alice + " 0", "bob@localhost/a 5"},
			in:       `<iq from='alice@localhost/a' to='bob@localhost' type='result' id='r1'/>`,
		},
		{
			name:     "bare: iq error with no waiter dropped",
			sessions: []string{alice + " 0", "bob@localhost/a 5"},
			in:       `<iq from='alice@localhost/a' to='bob@localhost' type='error' id='r2'><error type='cancel'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},

		// Our domain.
		{
			name:     "server: handler result comes from the domain",
			sessions: []string{alice + " 0"},
			in:       `<iq from='alice@localhost/a' to='localhost' type='get' id='s1'><echo xmlns='urn:xmppd:test'/></iq>`,
			want:     []want{{at: alice, kind: "iq", id: "s1", typ: "result", from: "localhost", to: alice, payload: server}},
		},
		{
			name:     "server: every domain we serve is ours",
			sessions: []string{alice + " 0"},
			in:       `<iq from='alice@localhost/a' to='conference.localhost' type='get' id='s2'><echo xmlns='urn:xmppd:test'/></iq>`,
			want:     []want{{at: alice, kind: "iq", id: "s2", typ: "result", from: "conference.localhost", to: alice, payload: server}},
		},
		{
			name:     "server: no handler bounces service-unavailable",
			sessions: []string{alice + " 0"},
			in:       `<iq from='alice@localhost/a' to='localhost' type='get' id='s3'><query xmlns='urn:example:unknown'/></iq>`,
			want:     []want{{at: alice, kind: "iq", id: "s3", typ: "error", from: "localhost", to: alice, cond: "service-unavailable"}},
		},
		{
			name:     "server: handler registered for get only, set bounces",
			sessions: []string{alice + " 0"},
			in:       `<iq from='alice@localhost/a' to='localhost' type='set' id='s4'><echo xmlns='urn:xmppd:test'/></iq>`,
			want:     []want{{at: alice, kind: "iq", id: "s4", typ: "error", from: "localhost", to: alice, cond: "service-unavailable"}},
		},
		{
			name:     "server: handler's stanza error becomes the reply",
			sessions: []string{alice + " 0"},
			in:       `<iq from='alice@localhost/a' to='localhost' type='set' id='s5'><refuse xmlns='urn:xmppd:test'/></iq>`,
			want:     []want{{at: alice, kind: "iq", id: "s5", typ: "error", from: "localhost", to: alice, cond: "not-allowed"}},
		},
		{
			name:     "server: handler's plain error is internal-server-error",
			sessions: []string{alice + " 0"},
			in:       `<iq from='alice@localhost/a' to='localhost' type='set' id='s6'><fail xmlns='urn:xmppd:test'/></iq>`,
			want:     []want{{at: alice, kind: "iq", id: "s6", typ: "error", from: "localhost", to: alice, cond: "internal-server-error"}},
		},
		{
			name:     "server: handler panic is internal-server-error",
			sessions: []string{alice + " 0"},
			in:       `<iq from='alice@localhost/a' to='localhost' type='set' id='s7'><panic xmlns='urn:xmppd:test'/></iq>`,
			want:     []want{{at: alice, kind: "iq", id: "s7", typ: "error", from: "localhost", to: alice, cond: "internal-server-error"}},
		},
		{
			name:     "server: iq get with two payloads is bad-request",
			sessions: []string{alice + " 0"},
			in:       `<iq from='alice@localhost/a' to='localhost' type='get' id='s8'><echo xmlns='urn:xmppd:test'/><echo xmlns='urn:xmppd:test'/></iq>`,
			want:     []want{{at: alice, kind: "iq", id: "s8", typ: "error", from: "localhost", to: alice, cond: "bad-request"}},
		},
		{
			name:     "server: iq result dropped",
			sessions: []string{alice + " 0"},
			in:       `<iq from='alice@localhost/a' to='localhost' type='result' id='s9'/>`,
		},
		{
			name:     "server: message to the server ignored",
			sessions: []string{alice + " 0"},
			in:       `<message from='alice@localhost/a' to='localhost' id='s10'><body>hello server</body></message>`,
		},
		{
			name:     "server: presence to the server ignored",
			sessions: []string{alice + " 0"},
			in:       `<presence from='alice@localhost/a' to='localhost'/>`,
		},

		// No 'to' (RFC 6120 §10.3).
		{
			name:     "no to: iq handled for the account, answered from the bare JID",
			sessions: []string{alice + " 0", "alice@localhost/b 0"},
			in:       `<iq from='alice@localhost/a' type='get' id='n1'><whoami xmlns='urn:xmppd:test'/></iq>`,
			want:     []want{{at: alice, kind: "iq", id: "n1", typ: "result", from: "alice@localhost", to: alice, payload: "{" + nsTest + "}echo"}},
		},
		{
			name:     "no to: iq with no account handler bounces from the bare JID",
			sessions: []string{alice + " 0"},
			in:       `<iq from='alice@localhost/a' type='get' id='n2'><query xmlns='urn:example:unknown'/></iq>`,
			want:     []want{{at: alice, kind: "iq", id: "n2", typ: "error", from: "alice@localhost", to: alice, cond: "service-unavailable"}},
		},
		{
			name:     "no to: iq result dropped",
			sessions: []string{alice + " 0"},
			in:       `<iq from='alice@localhost/a' type='result' id='n3'/>`,
		},
		{
			name:     "no to: presence broadcast to the available resources, the sender included (RFC 6121 §4.2.2)",
			sessions: []string{alice + " 0", "alice@localhost/b -1", "alice@localhost/c", "alice@localhost/d 3", "bob@localhost/a 0"},
			in:       `<presence from='alice@localhost/a'><priority>0</priority></presence>`,
			want: []want{
				{at: alice, kind: "presence", from: alice, same: true},
				{at: "alice@localhost/b", kind: "presence", from: alice, same: true},
				{at: "alice@localhost/d", kind: "presence", from: alice, same: true},
			},
		},
		{
			name:     "no to: unavailable presence broadcast too, the sender included",
			sessions: []string{alice, "alice@localhost/b 1"},
			in:       `<presence from='alice@localhost/a' type='unavailable'/>`,
			want: []want{
				{at: alice, kind: "presence", typ: "unavailable", from: alice, same: true},
				{at: "alice@localhost/b", kind: "presence", typ: "unavailable", from: alice, same: true},
			},
		},
		{
			name:     "no to: other presence types are not broadcast",
			sessions: []string{alice + " 0", "alice@localhost/b 1"},
			in:       `<presence from='alice@localhost/a' type='probe'/>`,
		},
		{
			name:     "no to: message goes to the sender's own bare JID",
			sessions: []string{alice + " 0", "alice@localhost/b 2"},
			in:       `<message from='alice@localhost/a' id='n4'><body>note to self</body></message>`,
			want:     []want{{at: "alice@localhost/b", kind: "message", id: "n4", from: alice, same: true}},
		},

		// Remote domains.
		{
			name:     "remote: no federation bounces remote-server-not-found",
			sessions: []string{alice + " 0"},
			in:       `<message from='alice@localhost/a' to='romeo@example.net' type='chat' id='x1'/>`,
			want:     []want{{at: alice, kind: "message", id: "x1", typ: "error", from: "romeo@example.net", to: alice, cond: "remote-server-not-found"}},
		},
		{
			name:     "remote: federation accepts",
			sessions: []string{alice + " 0"},
			remote:   ptr(true),
			in:       `<iq from='alice@localhost/a' to='romeo@example.net/orchard' type='get' id='x2'><ping xmlns='urn:xmpp:ping'/></iq>`,
			want:     []want{{at: "remote:example.net", kind: "iq", id: "x2", typ: "get", from: alice, to: "romeo@example.net/orchard", same: true}},
		},
		{
			name:     "remote: federation refuses, bounce",
			sessions: []string{alice + " 0"},
			remote:   ptr(false),
			in:       `<presence from='alice@localhost/a' to='example.net' id='x3'/>`,
			want:     []want{{at: alice, kind: "presence", id: "x3", typ: "error", from: "example.net", to: alice, cond: "remote-server-not-found"}},
		},

		// Malformed addresses.
		{
			name:     "malformed to: jid-malformed",
			sessions: []string{alice + " 0"},
			in:       `<message from='alice@localhost/a' to='bob@local host' id='j1'/>`,
			want:     []want{{at: alice, kind: "message", id: "j1", typ: "error", from: "*", to: alice, cond: "jid-malformed"}},
		},
		{
			name:     "malformed to: iq gets jid-malformed too",
			sessions: []string{alice + " 0"},
			in:       `<iq from='alice@localhost/a' to='@localhost' type='get' id='j2'><ping xmlns='urn:xmpp:ping'/></iq>`,
			want:     []want{{at: alice, kind: "iq", id: "j2", typ: "error", from: "*", to: alice, cond: "jid-malformed"}},
		},

		// An error is never answered with an error (RFC 6120 §8.3.1).
		{
			name:     "error iq to absent full JID: nothing",
			sessions: []string{alice + " 0"},
			in:       `<iq from='alice@localhost/a' to='bob@localhost/gone' type='error' id='z1'/>`,
		},
		{
			name:     "error message to nobody: nothing",
			sessions: []string{alice + " 0"},
			in:       `<message from='alice@localhost/a' to='nobody@localhost' type='error' id='z2'/>`,
		},
		{
			name:     "error to a remote domain without federation: nothing",
			sessions: []string{alice + " 0"},
			in:       `<message from='alice@localhost/a' to='romeo@example.net' type='error' id='z3'/>`,
		},
		{
			name:     "error with a malformed to: nothing",
			sessions: []string{alice + " 0"},
			in:       `<presence from='alice@localhost/a' to='@localhost' type='error' id='z4'/>`,
		},
		{
			name:     "error iq to the server: nothing",
			sessions: []string{alice + " 0"},
			in:       `<iq from='alice@localhost/a' to='localhost' type='error' id='z5'/>`,
		},
		{
			name: "bounce to a sender that is gone ends there",
			in:   `<message from='alice@localhost/a' to='nobody@localhost' id='z6'/>`,
		},
		{
			name: "iq bounce to a sender that is gone ends there",
			in:   `<iq from='alice@localhost/a' to='bob@localhost/gone' type='get' id='z7'><ping xmlns='urn:xmpp:ping'/></iq>`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &world{}
			for _, s := range tt.sessions {
				w.add(t, s)
			}
			var remote router.Remote
			if tt.remote != nil {
				remote = &fakeRemote{w: w, accept: *tt.remote}
			}
			r := router.New(testHost(t), w, remote, nil)
			in := parse(t, tt.in)
			r.Route(context.Background(), in)
			check(t, in, w.log, tt.want)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func check(t *testing.T, in *stanza.Element, got []delivery, want []want) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d deliveries, want %d:\n%s", len(got), len(want), dump(got))
		return
	}
	for i, w := range want {
		d, el := got[i], got[i].el
		if d.at != w.at {
			t.Errorf("delivery %d went to %s, want %s: %s", i, d.at, w.at, el)
		}
		if el.Local != w.kind {
			t.Errorf("delivery %d is <%s/>, want <%s/>: %s", i, el.Local, w.kind, el)
		}
		if w.same && el != in {
			t.Errorf("delivery %d is a new element, want the routed one: %s", i, el)
		}
		for _, a := range [...][2]string{{"id", w.id}, {"type", w.typ}, {"from", w.from}, {"to", w.to}} {
			if a[1] == "*" {
				continue
			}
			if v := el.Get(a[0]); v != a[1] {
				t.Errorf("delivery %d: %s=%q, want %q: %s", i, a[0], v, a[1], el)
			}
		}
		if w.typ == "error" {
			se := stanza.ParseError(el)
			if se == nil {
				t.Errorf("delivery %d has no <error/>: %s", i, el)
			} else if se.Condition != w.cond {
				t.Errorf("delivery %d: condition %q, want %q: %s", i, se.Condition, w.cond, el)
			}
		}
		if w.payload != "" {
			p := "-"
			if c := el.FirstChild(); c != nil {
				p = "{" + c.Space + "}" + c.Local
			}
			if p != w.payload {
				t.Errorf("delivery %d: payload %s, want %s: %s", i, p, w.payload, el)
			}
		}
	}
}

func dump(got []delivery) string {
	var b strings.Builder
	for _, d := range got {
		fmt.Fprintf(&b, "  %s ← %s\n", d.at, d.el)
	}
	return b.String()
}

// TestRouteResultAddressing checks the whole reply, not only its attributes:
// the handler sees the iq as addressed, and the answer is the iq's id, from
// the address the client used, to the client, carrying the payload.
func TestRouteResultAddressing(t *testing.T) {
	w := &world{}
	w.add(t, alice+" 0")
	r := router.New(testHost(t), w, nil, nil)
	r.Route(context.Background(), parse(t, `<iq from='alice@localhost/a' to='localhost' type='get' id='p1'><echo xmlns='urn:xmppd:test'/></iq>`))
	if len(w.log) != 1 {
		t.Fatalf("got %d deliveries:\n%s", len(w.log), dump(w.log))
	}
	res := w.log[0].el
	echo := res.Child(nsTest, "echo")
	if echo == nil {
		t.Fatalf("no payload: %s", res)
	}
	if echo.Get("to") != "localhost" || echo.Get("from") != alice {
		t.Errorf("handler saw to=%q from=%q", echo.Get("to"), echo.Get("from"))
	}
	if res.Space != stanza.NSClient {
		t.Errorf("result namespace %q, want %q", res.Space, stanza.NSClient)
	}
}

// TestErrorReplyShape checks a bounce end to end: kind, id, swapped
// addresses, and an <error/> in the stanza's namespace with the condition
// and its usual type.
func TestErrorReplyShape(t *testing.T) {
	w := &world{}
	w.add(t, alice+" 0")
	r := router.New(testHost(t), w, nil, nil)
	r.Route(context.Background(), parse(t, `<message from='alice@localhost/a' to='nobody@localhost' type='chat' id='b1'><body>secret</body></message>`))
	if len(w.log) != 1 {
		t.Fatalf("got %d deliveries:\n%s", len(w.log), dump(w.log))
	}
	el := w.log[0].el
	errEl := el.Child(stanza.NSClient, "error")
	if errEl == nil {
		t.Fatalf("no <error/> in jabber:client: %s", el)
	}
	if errEl.Get("type") != "cancel" {
		t.Errorf("error type %q, want cancel", errEl.Get("type"))
	}
	if errEl.Child(stanza.NSStanzas, "service-unavailable") == nil {
		t.Errorf("no service-unavailable condition: %s", el)
	}
	if el.Child(stanza.NSClient, "body") != nil {
		t.Errorf("the bounce echoes the body back: %s", el)
	}
}

// TestErrorMessageToBareWithAvailableResource: RFC 6121 §8.5.2.1.1 says a
// message of type "error" to a bare JID is silently ignored even when the
// account has available resources ("For a message stanza of type "error",
// the server MUST silently ignore the message"). messageToBare delivers it
// to the highest-priority resources instead.
func TestErrorMessageToBareWithAvailableResource(t *testing.T) {
	w := &world{}
	w.add(t, alice+" 0")
	w.add(t, "bob@localhost/a 5")
	r := router.New(testHost(t), w, nil, nil)
	in := parse(t, `<message from='alice@localhost/a' to='bob@localhost' type='error' id='e3'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`)
	r.Route(context.Background(), in)
	if len(w.log) != 0 {
		t.Errorf("an error message to a bare JID was delivered:\n%s", dump(w.log))
	}
}

// Routing must be safe to call from many session goroutines at once: the
// router holds no lock and the Host is read-only after Register.
func TestRouteConcurrent(t *testing.T) {
	h := testHost(t)
	const n, m = 16, 50
	type job struct {
		w   *world
		ins []*stanza.Element
	}
	jobs := make([]job, n)
	for i := range jobs {
		from := fmt.Sprintf("u%d@localhost/r", i)
		jobs[i].w = &world{}
		jobs[i].w.add(t, from+" 0")
		for j := range m {
			jobs[i].ins = append(jobs[i].ins, parse(t, fmt.Sprintf(`<iq from='%s' to='localhost' type='get' id='c%d'><echo xmlns='urn:xmppd:test'/></iq>`, from, j)))
		}
	}
	done := make(chan []delivery)
	for _, jb := range jobs {
		go func() {
			r := router.New(h, jb.w, nil, nil)
			for _, in := range jb.ins {
				r.Route(context.Background(), in)
			}
			done <- jb.w.log
		}()
	}
	for range n {
		log := <-done
		if len(log) != m || slices.ContainsFunc(log, func(d delivery) bool { return d.el.Get("type") != "result" }) {
			t.Errorf("concurrent routing lost or failed answers:\n%s", dump(log))
		}
	}
}

// TestOwnAddress: a stanza to one of this machine's IP addresses (Gajim
// sends server queries to the custom host it connected to) is answered by
// the server itself; nothing goes to federation, and an account "at" the
// address does not exist.
func TestOwnAddress(t *testing.T) {
	for _, addr := range []string{"127.0.0.1", "[::1]"} {
		t.Run(addr, func(t *testing.T) {
			w := &world{}
			w.add(t, alice+" 0")
			r := router.New(testHost(t), w, &fakeRemote{w: w, accept: true}, nil)
			r.Route(context.Background(), parse(t, `<iq from='alice@localhost/a' to='`+addr+`' type='get' id='i1'><echo xmlns='urn:xmppd:test'/></iq>`))
			r.Route(context.Background(), parse(t, `<message from='alice@localhost/a' to='bob@`+addr+`' type='chat' id='m1'><body>x</body></message>`))
			if len(w.log) != 2 || w.log[0].at != alice || w.log[0].el.Get("type") != "result" || w.log[0].el.Get("from") != addr {
				t.Fatalf("the server query was not answered locally:\n%s", dump(w.log))
			}
			if e := stanza.ParseError(w.log[1].el); w.log[1].at != alice || e == nil || e.Condition != "item-not-found" || e.Text == "" {
				t.Fatalf("the message to an account at the address:\n%s", dump(w.log))
			}
		})
	}
}

// TestFailedDeliveryNotLost: a session that does not take a stanza (it was
// dropped as a slow consumer, or is closing) is like one that is gone: a
// message to its full JID goes to the user's other resources, or to the
// Undeliverable stage, or bounces; never nowhere.
func TestFailedDeliveryNotLost(t *testing.T) {
	for _, tt := range []struct {
		name     string
		sessions []string
		refuse   string
		in       string
		want     []string // "at kind/type"
		stored   int
	}{
		{"to the full JID, another resource", []string{alice + " 0", "bob@localhost/a 1", "bob@localhost/b 0"}, "bob@localhost/a",
			`<message from='alice@localhost/a' to='bob@localhost/a' type='chat' id='m'><body>x</body></message>`, []string{"bob@localhost/b message/chat"}, 0},
		{"to the full JID, no other resource: stored", []string{alice + " 0", "bob@localhost/a 1"}, "bob@localhost/a",
			`<message from='alice@localhost/a' to='bob@localhost/a' type='chat' id='m'><body>x</body></message>`, nil, 1},
		{"to the bare JID, its only resource: stored", []string{alice + " 0", "bob@localhost/a 1"}, "bob@localhost/a",
			`<message from='alice@localhost/a' to='bob@localhost' type='chat' id='m'><body>x</body></message>`, nil, 1},
		{"an iq request bounces", []string{alice + " 0", "bob@localhost/a 1"}, "bob@localhost/a",
			`<iq from='alice@localhost/a' to='bob@localhost/a' type='get' id='q'><echo xmlns='urn:xmppd:test'/></iq>`, []string{alice + " iq/error"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := &world{refuse: map[string]bool{tt.refuse: true}}
			for _, s := range tt.sessions {
				w.add(t, s)
			}
			stored := 0
			h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}})
			if err := h.Register(moduleFunc{"store", func(h *xeps.Host) error {
				h.Hook(xeps.Undeliverable, func(context.Context, *stanza.Element, stanza.JID, stanza.JID) (xeps.Verdict, *stanza.Error) {
					stored++
					return xeps.Consume, nil
				})
				return nil
			}}); err != nil {
				t.Fatal(err)
			}
			r := router.New(h, w, nil, nil)
			r.Route(context.Background(), parse(t, tt.in))
			var got []string
			for _, d := range w.log {
				got = append(got, d.at+" "+d.el.Local+"/"+d.el.Get("type"))
			}
			if !slices.Equal(got, tt.want) || stored != tt.stored {
				t.Errorf("deliveries %q, stored %d; want %q, %d", got, stored, tt.want, tt.stored)
			}
		})
	}
}
