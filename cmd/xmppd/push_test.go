package main

// XEP-0357 Push Notifications over real sockets: alice registers an app
// server (a test module serving push.localhost, answering as told), goes
// offline, bob writes; the app server gets the notification, the message
// still waits offline.

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
	"github.com/xmppd/xmppd/xeps/push"
)

// appServer is a push app server on a service domain of the test server. It
// records the iqs it gets and answers with a result, an error, or nothing.
type appServer struct {
	domain string
	mu     sync.Mutex
	answer string // "result", "error" or "none"
	got    []*stanza.Element
	read   int // how many of got wait has returned
	arrive chan struct{}
}

func newAppServer(domain string) *appServer {
	return &appServer{domain: domain, answer: "result", arrive: make(chan struct{}, 1000)}
}

func (a *appServer) Name() string { return "appserver-" + a.domain }

func (a *appServer) Register(h *xeps.Host) error {
	return h.ServeDomain(a.domain, "localhost", func(ctx context.Context, el *stanza.Element, to stanza.JID) {
		if el.Local != "iq" || el.Get("type") != "set" {
			return
		}
		a.mu.Lock()
		a.got = append(a.got, el)
		answer := a.answer
		a.mu.Unlock()
		a.arrive <- struct{}{}
		switch answer {
		case "result":
			h.Send(ctx, stanza.New(stanza.NSClient, "iq").Set("type", "result").Set("id", el.Get("id")).
				Set("from", to.String()).Set("to", el.Get("from")))
		case "error":
			h.Send(ctx, stanza.ErrorReply(el, stanza.NewError("item-not-found")))
		}
	})
}

func (a *appServer) setAnswer(s string) {
	a.mu.Lock()
	a.answer = s
	a.mu.Unlock()
}

// wait returns the next notification, failing after d.
func (a *appServer) wait(t *testing.T, d time.Duration) *stanza.Element {
	t.Helper()
	select {
	case <-a.arrive:
	case <-time.After(d):
		t.Fatal("no notification reached the app server")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.read++
	return a.got[a.read-1]
}

// none checks that nothing arrives within d.
func (a *appServer) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-a.arrive:
		a.mu.Lock()
		defer a.mu.Unlock()
		t.Fatalf("unexpected notification: %s", a.got[len(a.got)-1])
	case <-time.After(d):
	}
}

// summary reads a notification's summary form into a map.
func summary(t *testing.T, iq *stanza.Element) map[string]string {
	t.Helper()
	pub := iq.Child(push.NSPubSub, "pubsub").Child(push.NSPubSub, "publish")
	x := pub.Child(push.NSPubSub, "item").Child(push.NS, "notification").Child(push.NSData, "x")
	if x == nil {
		t.Fatalf("no summary form in %s", iq)
	}
	m := map[string]string{"node": pub.Get("node")}
	for _, f := range x.Children() {
		m[f.Get("var")] = f.Child(push.NSData, "value").Text()
	}
	return m
}

const enableSecret = `<iq type='set' id='%s'><enable xmlns='urn:xmpp:push:0' jid='push.localhost' node='%s'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s3cr3t</value></field></x></enable></iq>`

// pushServer starts a test server with an app server at push.localhost.
func pushServer(t *testing.T, edit func(*Config)) (*server, *appServer) {
	app := newAppServer("push.localhost")
	srv := startTestServerWith(t, edit, app)
	return srv, app
}

// registerAndLeave logs alice in, registers the app server with node, and
// logs her out again.
func registerAndLeave(t *testing.T, srv *server, node string) {
	t.Helper()
	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "phone", false)
	alice.send(fmt.Sprintf(enableSecret, "en", node))
	if r := alice.next(); r.Get("type") != "result" || r.Get("id") != "en" {
		t.Fatalf("enable: %s", r)
	}
	alice.send("</stream:stream>")
	alice.expectClosed()
}

// TestPushOffline: a message to alice while she is offline notifies her app
// server with the summary form (message-count only, by default) and the
// publish-options of her registration, from her bare JID; the message is
// still stored offline and delivered at her next login.
func TestPushOffline(t *testing.T) {
	srv, app := pushServer(t, nil)
	registerAndLeave(t, srv, "node1")
	bob := dialWire(t, srv.c2sAddrs[0], false)
	bob.login("localhost", "bob", "b", false)
	bob.send("<message to='alice@localhost' type='chat' id='m1'><body>wake up</body></message>")
	iq := app.wait(t, wireTimeout)
	if iq.Get("from") != "alice@localhost" || iq.Get("to") != "push.localhost" {
		t.Fatalf("addressed %s", iq)
	}
	s := summary(t, iq)
	if s["node"] != "node1" || s["FORM_TYPE"] != push.NSSummary || s["message-count"] != "1" {
		t.Fatalf("summary %v", s)
	}
	if _, ok := s["last-message-body"]; ok || strings.Contains(iq.String(), "wake up") || strings.Contains(iq.String(), "bob@") {
		t.Fatalf("body or sender leaked by default: %s", iq)
	}
	if !strings.Contains(iq.Child(push.NSPubSub, "pubsub").Child(push.NSPubSub, "publish-options").String(), "s3cr3t") {
		t.Fatalf("no publish-options secret: %s", iq)
	}
	// A chat state alone, a headline and a groupchat wake nobody.
	bob.send("<message to='alice@localhost' type='chat' id='cs'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
	bob.send("<message to='alice@localhost' type='headline' id='h'><body>news</body></message>")
	bob.sync2("send")

	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "phone", false)
	alice.send("<presence/>")
	if m := alice.nextOf("message"); m.Get("id") != "m1" {
		t.Fatalf("offline message: %s", m)
	}
	app.none(t, 300*time.Millisecond)
}

// TestPushConfigured: with include_sender and include_body on, the summary
// names the sender's bare JID and carries the body.
func TestPushConfigured(t *testing.T) {
	srv, app := pushServer(t, func(c *Config) {
		c.Push.IncludeSender = true
		c.Push.IncludeBody = true
	})
	registerAndLeave(t, srv, "n")
	bob := dialWire(t, srv.c2sAddrs[0], false)
	bob.login("localhost", "bob", "b", false)
	bob.send("<message to='alice@localhost' type='chat' id='m1'><body>wake up</body></message>")
	s := summary(t, app.wait(t, wireTimeout))
	if s["last-message-sender"] != "bob@localhost" || s["last-message-body"] != "wake up" {
		t.Fatalf("summary %v", s)
	}
}

// TestPushRateLimit: a burst of messages is one notification, then one more
// after min_interval with the count of everything since alice was online.
func TestPushRateLimit(t *testing.T) {
	srv, app := pushServer(t, func(c *Config) { c.Push.MinInterval = "1s" })
	registerAndLeave(t, srv, "n")
	bob := dialWire(t, srv.c2sAddrs[0], false)
	bob.login("localhost", "bob", "b", false)
	for i := range 20 {
		bob.send(fmt.Sprintf("<message to='alice@localhost' type='chat' id='b%d'><body>%d</body></message>", i, i))
	}
	bob.sync2("burst")
	first := summary(t, app.wait(t, wireTimeout))
	second := summary(t, app.wait(t, wireTimeout))
	if first["message-count"] == "20" || second["message-count"] != "20" {
		t.Fatalf("counts %s then %s, want fewer then 20", first["message-count"], second["message-count"])
	}
	app.none(t, 1500*time.Millisecond)
}

// TestPushFailuresDisable: an app server that answers with errors
// max_failures times in a row loses the registration; one that does not
// answer within the timeout too.
func TestPushFailuresDisable(t *testing.T) {
	for _, answer := range []string{"error", "none"} {
		t.Run(answer, func(t *testing.T) {
			srv, app := pushServer(t, func(c *Config) {
				c.Push.MinInterval = "0s"
				c.Push.MaxFailures = 2
				c.Push.Timeout = "1s"
			})
			registerAndLeave(t, srv, "n")
			app.setAnswer(answer)
			bob := dialWire(t, srv.c2sAddrs[0], false)
			bob.login("localhost", "bob", "b", false)
			for i := range 2 {
				bob.send(fmt.Sprintf("<message to='alice@localhost' type='chat' id='f%d'><body>x</body></message>", i))
				app.wait(t, wireTimeout)
				if answer == "none" {
					time.Sleep(1200 * time.Millisecond) // the timeout passes
				} else {
					bob.sync2("send")
					time.Sleep(100 * time.Millisecond)
				}
			}
			bob.send("<message to='alice@localhost' type='chat' id='f3'><body>x</body></message>")
			app.none(t, 500*time.Millisecond)
		})
	}
}

// TestPushRegistrations: enable is answered for the account only, bad
// requests get their errors, disable stops notifications, and a
// registration survives a restart. The account's disco#info lists push.
func TestPushRegistrations(t *testing.T) {
	srv, app := pushServer(t, func(c *Config) { c.Push.MinInterval = "0s" })
	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "phone", false)
	bad := []struct{ xml, cond string }{
		{`<iq type='set' id='b1'><enable xmlns='urn:xmpp:push:0' jid='push.localhost'/></iq>`, "bad-request"},
		{`<iq type='set' id='b2'><enable xmlns='urn:xmpp:push:0' jid='' node='n'/></iq>`, "jid-malformed"},
		{`<iq type='set' id='b3'><enable xmlns='urn:xmpp:push:0' jid='push.localhost' node='n'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:nope</value></field></x></enable></iq>`, "bad-request"},
		{`<iq type='set' id='b4' to='bob@localhost'><enable xmlns='urn:xmpp:push:0' jid='push.localhost' node='n'/></iq>`, "forbidden"},
		{`<iq type='set' id='b5'><disable xmlns='urn:xmpp:push:0'/></iq>`, "jid-malformed"},
	}
	for _, b := range bad {
		alice.send(b.xml)
		r := alice.nextOf("iq")
		if r.Get("type") != "error" || r.Child(stanza.NSClient, "error").Child(stanza.NSStanzas, b.cond) == nil {
			t.Errorf("%s: got %s, want %s", b.xml, r, b.cond)
		}
	}
	alice.send("<iq type='get' id='d' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if r := alice.nextOf("iq"); !strings.Contains(r.String(), "urn:xmpp:push:0") {
		t.Errorf("the account's disco#info does not list push: %s", r)
	}
	for _, node := range []string{"a", "b"} {
		alice.send(fmt.Sprintf(enableSecret, "en"+node, node))
		if r := alice.nextOf("iq"); r.Get("type") != "result" {
			t.Fatalf("enable %s: %s", node, r)
		}
	}
	alice.send("</stream:stream>")
	alice.expectClosed()

	srv = restartTestServerWith(t, srv, app)
	bob := dialWire(t, srv.c2sAddrs[0], false)
	bob.login("localhost", "bob", "b", false)
	bob.send("<message to='alice@localhost' type='chat' id='m1'><body>x</body></message>")
	nodes := map[string]bool{}
	for range 2 {
		nodes[summary(t, app.wait(t, wireTimeout))["node"]] = true
	}
	if !nodes["a"] || !nodes["b"] {
		t.Fatalf("after restart notified %v", nodes)
	}

	alice = dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "phone", false)
	alice.send("<iq type='set' id='dis'><disable xmlns='urn:xmpp:push:0' jid='push.localhost' node='a'/></iq>")
	if r := alice.nextOf("iq"); r.Get("type") != "result" {
		t.Fatalf("disable: %s", r)
	}
	alice.send("</stream:stream>")
	alice.expectClosed()
	bob.send("<message to='alice@localhost' type='chat' id='m2'><body>x</body></message>")
	if n := summary(t, app.wait(t, wireTimeout))["node"]; n != "b" {
		t.Fatalf("notified %s after disabling a", n)
	}
	app.none(t, 300*time.Millisecond)

	alice = dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "phone", false)
	alice.send("<iq type='set' id='dis'><disable xmlns='urn:xmpp:push:0' jid='push.localhost'/></iq>")
	if r := alice.nextOf("iq"); r.Get("type") != "result" {
		t.Fatalf("disable all: %s", r)
	}
	alice.send("</stream:stream>")
	alice.expectClosed()
	bob.send("<message to='alice@localhost' type='chat' id='m3'><body>x</body></message>")
	app.none(t, 500*time.Millisecond)
}

// restartTestServerWith restarts srv on the same data folder with the
// standard modules and extra ones.
func restartTestServerWith(t *testing.T, srv *server, extra ...xeps.Module) *server {
	t.Helper()
	cfg := srv.cfg
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	return serveForTest(t, cfg, slog.New(slog.DiscardHandler), append(modules(cfg), extra...))
}

// TestPushHibernated: alice's phone enabled stream management and push,
// then lost its connection: the session waits for a resume (hibernated,
// XEP-0198), and a message for it wakes the phone through the app server
// (the message itself waits in the session and comes with the resume).
// The registration alice's laptop made is not woken for the phone.
func TestPushHibernated(t *testing.T) {
	srv, app := pushServer(t, nil)
	laptop := dialWire(t, srv.c2sAddrs[0], false)
	laptop.login("localhost", "alice", "laptop", false)
	laptop.send(fmt.Sprintf(enableSecret, "en", "lap"))
	if r := laptop.next(); r.Get("type") != "result" {
		t.Fatalf("enable: %s", r)
	}
	laptop.send("</stream:stream>")
	laptop.expectClosed()
	phone := smLogin(t, srv, "alice", "phone")
	phone.send(fmt.Sprintf(enableSecret, "en", "hib"))
	if r := phone.nextStanza(false); r.Get("type") != "result" {
		t.Fatalf("enable: %s", r)
	}
	phone.send("<presence/>")
	phone.drain()
	sess := srv.c2s.Sessions().Session(phone.full)
	phone.cut()
	waitFor(t, func() bool { return sess.State() == session.Detached })

	bob := dialWire(t, srv.c2sAddrs[0], false)
	bob.login("localhost", "bob", "b", false)
	bob.send("<message to='alice@localhost' type='chat' id='h1'><body>are you there</body></message>")
	s := summary(t, app.wait(t, wireTimeout))
	if s["node"] != "hib" || s["message-count"] != "1" {
		t.Fatalf("summary %v", s)
	}
	app.none(t, 300*time.Millisecond)
	np, ans := phone.resume(srv, "alice", phone.h)
	if !ans.Is(nsSM, "resumed") {
		t.Fatalf("resume: %s", ans)
	}
	if m := np.nextStanza(true); m.Get("id") != "h1" {
		t.Fatalf("after resuming the phone got %s", m)
	}
}
