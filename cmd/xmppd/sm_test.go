package main

// XEP-0198 stream management over real sockets: enable, acks both ways,
// resumption after a cut connection (no FIN), hibernation and its timeout,
// the bound on unacknowledged stanzas, SASL2/Bind 2 inline, errors, and a
// server restart between the cut and the resume.

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
)

const nsSM = session.NSSM

// smClient is a wire client that counts the stanzas it handles (its h).
type smClient struct {
	*wireClient
	raw  net.Conn // the TCP connection under TLS, to cut it
	full string
	id   string // resumption id
	h    uint32
}

// dialSM connects to the STARTTLS listener and remembers the raw socket.
func dialSM(t *testing.T, srv *server) *smClient {
	t.Helper()
	c := dialWire(t, srv.c2sAddrs[0], false)
	return &smClient{wireClient: c, raw: c.conn}
}

// smLogin logs in (STARTTLS, PLAIN, bind) and enables stream management
// with resumption.
func smLogin(t *testing.T, srv *server, user, resource string) *smClient {
	t.Helper()
	c := dialSM(t, srv)
	c.full = c.login("localhost", user, resource, false)
	c.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	en := c.next()
	if !en.Is(nsSM, "enabled") || en.Get("id") == "" || en.Get("resume") != "true" {
		t.Fatalf("expected <enabled/> with an id, got %s", en)
	}
	c.id = en.Get("id")
	return c
}

// nextStanza reads the next stanza, counting it, and answers the server's
// <r/>s with <a/> when ack is true (skipping them otherwise).
func (c *smClient) nextStanza(ack bool) *stanza.Element {
	c.t.Helper()
	for {
		el := c.next()
		switch {
		case el.Is(nsSM, "r"):
			if ack {
				c.send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", c.h))
			}
		case el.Space == nsSM:
			c.t.Fatalf("unexpected %s", el)
		default:
			c.h++
			return el
		}
	}
}

// cut drops the connection without FIN: SO_LINGER 0 makes close send RST,
// as a phone that lost its network looks to the server once it notices.
func (c *smClient) cut() {
	c.t.Helper()
	if tc, ok := c.raw.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.raw.Close()
}

// resume connects again, authenticates and resumes with h; it returns the
// new client and the server's answer (<resumed/> or <failed/>).
func (c *smClient) resume(srv *server, user string, h uint32) (*smClient, *stanza.Element) {
	c.t.Helper()
	n := dialSM(c.t.(*testing.T), srv)
	n.send(fmt.Sprintf(clientHeader, "localhost"))
	n.readHeader()
	n.next()
	n.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	n.next()
	n.startTLS()
	n.send(fmt.Sprintf(clientHeader, "localhost"))
	n.readHeader()
	n.next()
	creds := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + user + "pass"))
	n.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + creds + "</auth>")
	if s := n.next(); !s.Is(stanza.NSSASL, "success") {
		c.t.Fatalf("auth: %s", s)
	}
	n.send(fmt.Sprintf(clientHeader, "localhost"))
	n.readHeader()
	if f := n.next(); f.Child(nsSM, "sm") == nil {
		c.t.Fatalf("no <sm/> feature before bind: %s", f)
	}
	n.send(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>", c.id, h))
	ans := n.next()
	n.id, n.full, n.h = c.id, c.full, c.h
	return n, ans
}

func TestSMEnableAndAcks(t *testing.T) {
	srv := startTestServer(t, nil)
	bob := smLogin(t, srv, "bob", "phone")
	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	sess := srv.c2s.Sessions().Session(bob.full)

	// The server counts what it sends from <enabled/> on and keeps it
	// until acknowledged; after ackEvery (10) stanzas it asks.
	for i := range 10 {
		alice.send(fmt.Sprintf("<message to='%s' id='m%d'><body>%d</body></message>", bob.full, i, i))
	}
	for i := range 10 {
		if m := bob.nextStanza(false); m.Get("id") != fmt.Sprintf("m%d", i) {
			t.Fatalf("got %s, want m%d", m, i)
		}
	}
	if r := bob.next(); !r.Is(nsSM, "r") {
		t.Fatalf("no <r/> after 10 stanzas: %s", r)
	}
	if n := sess.SM().Unacked(); n != 10 {
		t.Fatalf("%d unacknowledged, want 10", n)
	}
	bob.send("<a xmlns='urn:xmpp:sm:3' h='4'/>")
	bob.sync() // one more stanza from the server (the ping's result): counted
	bob.h++
	waitFor(t, func() bool { return sess.SM().Unacked() == 7 }) // 6 left of the messages, and the ping's result
	bob.send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", bob.h))
	waitFor(t, func() bool { return sess.SM().Unacked() == 0 })

	// One stanza and then nothing: the idle queue asks for an ack (once).
	alice.send(fmt.Sprintf("<message to='%s' id='idle'><body>x</body></message>", bob.full))
	bob.nextStanza(false)
	start := time.Now()
	if r := bob.next(); !r.Is(nsSM, "r") {
		t.Fatalf("no <r/> when idle: %s", r)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("idle <r/> came after %s", d)
	}
	bob.send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", bob.h))

	// The client asks: h counts the stanzas the server handled (the two
	// syncs' pings and nothing else: no nonza counts).
	bob2 := smLogin(t, srv, "bob", "laptop")
	bob2.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	bob2.nextStanza(true)
	bob2.send("<presence/>")
	bob2.send("<r xmlns='urn:xmpp:sm:3'/>")
	for {
		el := bob2.next()
		if el.Is(nsSM, "a") {
			if el.Get("h") != "2" {
				t.Fatalf("server handled %s stanzas, want 2", el.Get("h"))
			}
			break
		}
	}
}

// TestSMErrors: each wrong use gets XEP-0198's answer.
func TestSMErrors(t *testing.T) {
	srv := startTestServer(t, nil)
	other := smLogin(t, srv, "carol", "c") // a resumable session of another account
	cases := []struct {
		name string
		run  func(t *testing.T) *stanza.Element // returns the server's answer
		want func(el *stanza.Element) bool
	}{
		{"enable before bind", func(t *testing.T) *stanza.Element {
			c := dialSM(t, srv)
			_, a := c.resumeUpTo(t, "alice", "<enable xmlns='urn:xmpp:sm:3'/>")
			return a
		}, failedWith("unexpected-request")},
		{"enable twice", func(t *testing.T) *stanza.Element {
			c := smLogin(t, srv, "alice", "twice")
			c.send("<enable xmlns='urn:xmpp:sm:3'/>")
			return c.next()
		}, failedWith("unexpected-request")},
		{"resume unknown previd", func(t *testing.T) *stanza.Element {
			c := dialSM(t, srv)
			_, a := c.resumeUpTo(t, "alice", "<resume xmlns='urn:xmpp:sm:3' previd='nosuchid' h='0'/>")
			return a
		}, failedWith("item-not-found")},
		{"resume another account's session", func(t *testing.T) *stanza.Element {
			c := dialSM(t, srv)
			_, a := c.resumeUpTo(t, "alice", "<resume xmlns='urn:xmpp:sm:3' previd='"+other.id+"' h='0'/>")
			return a
		}, failedWith("item-not-found")},
		{"resume after bind", func(t *testing.T) *stanza.Element {
			c := smLogin(t, srv, "alice", "bound")
			c.send("<resume xmlns='urn:xmpp:sm:3' previd='" + c.id + "' h='0'/>")
			return c.next()
		}, failedWith("unexpected-request")},
		{"resume with h too high", func(t *testing.T) *stanza.Element {
			c := smLogin(t, srv, "bob", "high")
			c.cut()
			waitFor(t, func() bool { return srv.c2s.Sessions().Session(c.full).State() == session.Detached })
			_, a := c.resume(srv, "bob", 5)
			return a
		}, func(el *stanza.Element) bool {
			return failedWith("undefined-condition")(el) && el.Child(nsSM, "handled-count-too-high") != nil
		}},
		{"ack with h too high", func(t *testing.T) *stanza.Element {
			c := smLogin(t, srv, "alice", "ack")
			c.send("<a xmlns='urn:xmpp:sm:3' h='3'/>")
			return c.next()
		}, func(el *stanza.Element) bool {
			return el.Is(stanza.NSStream, "error") && el.Child(stanza.NSStreams, "undefined-condition") != nil &&
				el.Child(nsSM, "handled-count-too-high").Get("send-count") == "0"
		}},
		{"ack without enable", func(t *testing.T) *stanza.Element {
			c := dialSM(t, srv)
			c.login("localhost", "alice", "plain", false)
			c.send("<r xmlns='urn:xmpp:sm:3'/>")
			return c.next()
		}, failedWith("unexpected-request")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.run(t); !tc.want(got) {
				t.Fatalf("got %s", got)
			}
		})
	}
}

func failedWith(cond string) func(*stanza.Element) bool {
	return func(el *stanza.Element) bool {
		return el.Is(nsSM, "failed") && el.Child(stanza.NSStanzas, cond) != nil
	}
}

// resumeUpTo authenticates on c (STARTTLS, PLAIN, restart) and sends el
// before binding; it returns the features and the server's answer.
func (c *smClient) resumeUpTo(t *testing.T, user, el string) (*stanza.Element, *stanza.Element) {
	t.Helper()
	c.send(fmt.Sprintf(clientHeader, "localhost"))
	c.readHeader()
	c.next()
	c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	c.next()
	c.startTLS()
	c.send(fmt.Sprintf(clientHeader, "localhost"))
	c.readHeader()
	c.next()
	creds := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + user + "pass"))
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + creds + "</auth>")
	c.next()
	c.send(fmt.Sprintf(clientHeader, "localhost"))
	c.readHeader()
	f := c.next()
	c.send(el)
	return f, c.next()
}

// subscribed makes alice and bob subscribed to each other, on connections
// that are closed again, and returns alice online (with presence).
func subscribed(t *testing.T, srv *server) *wireClient {
	t.Helper()
	b := dialWire(t, srv.c2sAddrs[0], false)
	b.login("localhost", "bob", "setup", false)
	b.send("<presence/>")
	b.sync2("presence")
	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	alice.send("<presence/>")
	alice.sync2("presence")
	subscribeBoth(t, alice, "alice@localhost", b, "bob@localhost")
	b.send("</stream:stream>")
	b.expectClosed()
	alice.sync2("bob's setup leaves")
	return alice
}

// drain reads everything up to a ping's answer, counting and acknowledging.
func (c *smClient) drain() {
	c.t.Helper()
	c.send("<iq type='get' id='drain' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	for c.nextStanza(true).Get("id") != "drain" {
	}
	c.send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", c.h))
}

// TestSMResumeAfterCut: bob's connection is cut without FIN while alice
// writes to him; bob resumes on a new connection and gets exactly what he
// had not acknowledged and what came meanwhile, in order, once; alice
// never sees him go unavailable. "alive": the old connection is still
// open when bob resumes (the server had not noticed): it is closed with a
// stream error.
func TestSMResumeAfterCut(t *testing.T) {
	for _, mode := range []string{"cut", "alive"} {
		t.Run(mode, func(t *testing.T) {
			srv := startTestServer(t, nil)
			alice := subscribed(t, srv)
			bob := smLogin(t, srv, "bob", "phone")
			bob.send("<presence/>")
			bob.drain()
			alice.nextOf("presence")
			acked := bob.h
			for i := range 5 {
				alice.send(fmt.Sprintf("<message to='bob@localhost' id='m%d' type='chat'><body>%d</body></message>", i, i))
			}
			for range 5 {
				bob.nextStanza(false) // read, never acknowledged
			}
			sess := srv.c2s.Sessions().Session(bob.full)
			if mode == "cut" {
				bob.cut()
				waitFor(t, func() bool { return sess.State() == session.Detached })
			}
			for i := 5; i < 10; i++ {
				alice.send(fmt.Sprintf("<message to='bob@localhost' id='m%d' type='chat'><body>%d</body></message>", i, i))
			}
			alice.sync2("messages")
			bob.h = acked
			nb, ans := bob.resume(srv, "bob", acked)
			if !ans.Is(nsSM, "resumed") || ans.Get("previd") != bob.id {
				t.Fatalf("expected <resumed/>, got %s", ans)
			}
			if srv.c2s.Sessions().Session(bob.full) != sess {
				t.Fatal("the resumed session is not the one bob had")
			}
			nb.send("<iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
			var got []string
			for {
				el := nb.nextStanza(true)
				if el.Get("id") == "end" {
					break
				}
				if el.Local == "message" {
					got = append(got, el.Get("id"))
				}
			}
			if want := "m0 m1 m2 m3 m4 m5 m6 m7 m8 m9"; strings.Join(got, " ") != want {
				t.Fatalf("after resuming bob got %v, want %s", got, want)
			}
			if mode == "alive" {
				for {
					el, err := bob.nextErr()
					if err != nil {
						t.Fatalf("old connection ended without a stream error: %v", err)
					}
					if el.Is(stanza.NSStream, "error") {
						if el.Child(stanza.NSStreams, "conflict") == nil {
							t.Fatalf("old connection: %s", el)
						}
						break
					}
				}
			}
			assertNoUnavailable(t, alice)
		})
	}
}

// assertNoUnavailable reads alice's stream up to a ping's answer and fails
// on an unavailable presence.
func assertNoUnavailable(t *testing.T, alice *wireClient) {
	t.Helper()
	alice.send("<iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	for {
		el := alice.next()
		if el.Get("id") == "end" {
			return
		}
		if el.Local == "presence" && el.Get("type") == "unavailable" {
			t.Fatalf("alice saw %s", el)
		}
	}
}

// offlineIDs logs bob in afresh, sends initial presence and returns the ids
// of the messages he gets (offline storage's), in order.
func offlineIDs(t *testing.T, srv *server, user string) []string {
	t.Helper()
	c := dialWire(t, srv.c2sAddrs[0], false)
	c.login("localhost", user, "fresh", false)
	c.send("<presence/><iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	var got []string
	for {
		el := c.next()
		if el.Get("id") == "end" {
			return got
		}
		if el.Local == "message" {
			got = append(got, el.Get("id"))
		}
	}
}

// TestSMHibernationTimeout: a session nobody resumes ends after the resume
// timeout: what bob never acknowledged and what came while he was away go
// to offline storage (each once), and only then does alice see him leave.
func TestSMHibernationTimeout(t *testing.T) {
	const timeout = 2 * time.Second
	srv := startTestServer(t, func(c *Config) { c.C2S.ResumeTimeout = Duration(timeout) })
	alice := subscribed(t, srv)
	bob := smLogin(t, srv, "bob", "phone")
	bob.send("<presence/>")
	bob.drain()
	alice.nextOf("presence")
	alice.send("<message to='bob@localhost' id='m0' type='chat'><body>0</body></message>")
	bob.nextStanza(false) // read, not acknowledged
	sess := srv.c2s.Sessions().Session(bob.full)
	bob.cut()
	waitFor(t, func() bool { return sess.State() == session.Detached })
	cutAt := time.Now()
	alice.send("<message to='bob@localhost' id='m1' type='chat'><body>1</body></message>")
	alice.send("<message to='bob@localhost/phone' id='m2' type='chat'><body>2</body></message>")
	alice.sync2("messages")
	for {
		el := alice.next()
		if el.Local == "presence" && el.Get("type") == "unavailable" {
			if d := time.Since(cutAt); d < timeout-200*time.Millisecond {
				t.Fatalf("alice saw bob leave %s after the cut, before the resume timeout", d)
			}
			break
		}
	}
	if srv.c2s.Sessions().Session(bob.full) != nil {
		t.Fatal("the expired session is still registered")
	}
	if got := offlineIDs(t, srv, "bob"); strings.Join(got, " ") != "m0 m1 m2" {
		t.Fatalf("offline storage has %v, want m0 m1 m2", got)
	}
	// Too late now.
	_, ans := bob.resume(srv, "bob", bob.h)
	if !failedWith("item-not-found")(ans) {
		t.Fatalf("resuming an expired session: %s", ans)
	}
}

// TestSMMaxUnacked: a client that never acknowledges is closed once
// c2s.max_unacked stanzas wait; they go to offline storage.
func TestSMMaxUnacked(t *testing.T) {
	srv := startTestServer(t, func(c *Config) { c.C2S.MaxUnacked = 16 })
	bob := smLogin(t, srv, "bob", "phone")
	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	for i := range 20 {
		alice.send(fmt.Sprintf("<message to='%s' id='m%d' type='chat'><body>%d</body></message>", bob.full, i, i))
	}
	var closed bool
	for !closed {
		el, err := bob.nextErr()
		if err != nil {
			t.Fatalf("no stream error: %v", err)
		}
		if el.Is(stanza.NSStream, "error") {
			if el.Child(stanza.NSStreams, "policy-violation") == nil {
				t.Fatalf("got %s", el)
			}
			closed = true
		}
	}
	alice.sync2("messages")
	waitFor(t, func() bool { return srv.c2s.Sessions().Session(bob.full) == nil })
	// The session leaves the registry before what it never got is stored.
	time.Sleep(300 * time.Millisecond)
	got := offlineIDs(t, srv, "bob")
	t.Logf("offline: %v", got)
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	for i := range 20 {
		if id := fmt.Sprintf("m%d", i); seen[id] != 1 {
			t.Errorf("%s stored %d times", id, seen[id])
		}
	}
}

// TestSMRestart (★): the server restarts between bob's cut and his resume.
// The restarted server has his session, hibernated, with his presence
// (alice, back on the new server, sees him available, never unavailable);
// messages to him wait in its queue; bob resumes and gets exactly what he
// had not acknowledged and what came since, once, in order.
func TestSMRestart(t *testing.T) {
	for _, cut := range []bool{true, false} {
		name := "cut before the restart"
		if !cut {
			name = "connected at the restart"
		}
		t.Run(name, func(t *testing.T) {
			srv := startTestServer(t, nil)
			alice := subscribed(t, srv)
			bob := smLogin(t, srv, "bob", "phone")
			bob.send("<presence><status>on the train</status></presence>")
			bob.drain()
			alice.nextOf("presence")
			acked := bob.h
			alice.send("<message to='bob@localhost' id='m0' type='chat'><body>0</body></message>")
			alice.send("<message to='bob@localhost' id='m1' type='chat'><body>1</body></message>")
			bob.nextStanza(false)
			bob.nextStanza(false)
			if cut {
				sess := srv.c2s.Sessions().Session(bob.full)
				bob.cut()
				waitFor(t, func() bool { return sess.State() == session.Detached })
				alice.send("<message to='bob@localhost' id='m2' type='chat'><body>2</body></message>")
				alice.sync2("m2")
			}
			// alice, connected to the old server, hears nothing of bob leaving.
			assertNoUnavailable(t, alice)
			srv = restartTestServer(t, srv)
			restored := srv.c2s.Sessions().Session(bob.full)
			if restored == nil || restored.State() != session.Detached {
				t.Fatalf("bob's session was not restored hibernated: %v", restored)
			}
			alice = dialWire(t, srv.c2sAddrs[0], false)
			alice.login("localhost", "alice", "a", false)
			alice.send("<presence/>")
			for {
				p := alice.nextOf("presence")
				if p.Get("from") == bob.full {
					if p.Get("type") != "" || p.Child(stanza.NSClient, "status").Text() != "on the train" {
						t.Fatalf("alice sees bob as %s", p)
					}
					break
				}
			}
			alice.send("<message to='bob@localhost' id='m3' type='chat'><body>3</body></message>")
			alice.sync2("m3")
			bob.h = acked
			nb, ans := bob.resume(srv, "bob", acked)
			if !ans.Is(nsSM, "resumed") {
				t.Fatalf("resuming after the restart: %s", ans)
			}
			nb.send("<iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
			var got []string
			for {
				el := nb.nextStanza(true)
				if el.Get("id") == "end" {
					break
				}
				if el.Local == "message" {
					got = append(got, el.Get("id"))
				}
			}
			want := "m0 m1 m3"
			if cut {
				want = "m0 m1 m2 m3"
			}
			if strings.Join(got, " ") != want {
				t.Fatalf("after the restart bob got %v, want %s", got, want)
			}
			assertNoUnavailable(t, alice)
			if ids := offlineIDs(t, srv, "bob"); len(ids) != 0 {
				t.Fatalf("offline storage has %v as well", ids)
			}
		})
	}
}

// TestSMInlineSASL2: Bind 2 enables stream management inline (as
// Conversations and Monal do) and SASL2 resumes inline (XEP-0388):
// <resumed/> inside <success/>, no bind.
func TestSMInlineSASL2(t *testing.T) {
	srv := startTestServer(t, nil)
	c := dialWire(t, srv.directAddr[0], true)
	raw := c.conn.(*tls.Conn).NetConn()
	features, success := c.loginSASL2("bob", "<bind xmlns='urn:xmpp:bind:0'><tag>phone</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>")
	inline := features.Child(stanza.NSSASL2, "authentication").Child(stanza.NSSASL2, "inline")
	if inline.Child(nsSM, "sm") == nil {
		t.Errorf("SASL2 does not offer resumption inline: %s", inline)
	}
	var vars []string
	for _, f := range inline.Child(stanza.NSBind2, "bind").Child(stanza.NSBind2, "inline").Children() {
		vars = append(vars, f.Get("var"))
	}
	if !strings.Contains(strings.Join(vars, " "), nsSM) {
		t.Errorf("Bind 2 does not offer %s inline: %v", nsSM, vars)
	}
	en := success.Child(stanza.NSBind2, "bound").Child(nsSM, "enabled")
	if en == nil || en.Get("id") == "" {
		t.Fatalf("no <enabled/> in <bound/>: %s", success)
	}
	full := success.Child(stanza.NSSASL2, "authorization-identifier").Text()
	c.next() // features
	bob := &smClient{wireClient: c, raw: raw, full: full, id: en.Get("id")}
	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	alice.send("<message to='" + full + "' id='m0'><body>0</body></message>")
	if m := bob.nextStanza(false); m.Get("id") != "m0" {
		t.Fatalf("got %s", m)
	}
	bob.cut()
	waitFor(t, func() bool { return srv.c2s.Sessions().Session(full).State() == session.Detached })
	alice.send("<message to='" + full + "' id='m1'><body>1</body></message>")
	alice.sync2("m1")

	n := dialWire(t, srv.directAddr[0], true)
	_, success = n.loginSASL2("bob", "<resume xmlns='urn:xmpp:sm:3' previd='"+bob.id+"' h='0'/><bind xmlns='urn:xmpp:bind:0'><tag>other</tag></bind>")
	if r := success.Child(nsSM, "resumed"); r == nil || r.Get("h") != "0" {
		t.Fatalf("no <resumed/> in <success/>: %s", success)
	}
	if success.Child(stanza.NSBind2, "bound") != nil {
		t.Errorf("a resumed session is bound again: %s", success)
	}
	if got := success.Child(stanza.NSSASL2, "authorization-identifier").Text(); got != full {
		t.Errorf("resumed as %s, want %s", got, full)
	}
	n.next() // features
	nb := &smClient{wireClient: n}
	for _, want := range []string{"m0", "m1"} {
		if m := nb.nextStanza(true); m.Get("id") != want {
			t.Fatalf("got %s, want %s", m, want)
		}
	}

	// A failed inline resumption binds as asked, and says why.
	f := dialWire(t, srv.directAddr[0], true)
	_, success = f.loginSASL2("bob", "<resume xmlns='urn:xmpp:sm:3' previd='nosuch' h='0'/><bind xmlns='urn:xmpp:bind:0'><tag>other</tag></bind>")
	if !failedWith("item-not-found")(success.Child(nsSM, "failed")) || success.Child(stanza.NSBind2, "bound") == nil {
		t.Fatalf("failed inline resumption: %s", success)
	}
}

// TestSMReplacedWhileHibernated: a new login with the resource of a
// hibernated session replaces it: the old one cannot be resumed any more,
// and what it never got is delivered to the new one's account at once
// (here: offline storage, read at the new session's initial presence),
// not an hour later.
func TestSMReplacedWhileHibernated(t *testing.T) {
	srv := startTestServer(t, nil)
	bob := smLogin(t, srv, "bob", "phone")
	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	alice.send("<message to='" + bob.full + "' id='m0' type='chat'><body>0</body></message>")
	bob.nextStanza(false)
	sess := srv.c2s.Sessions().Session(bob.full)
	bob.cut()
	waitFor(t, func() bool { return sess.State() == session.Detached })
	again := dialWire(t, srv.c2sAddrs[0], false)
	again.login("localhost", "bob", "phone", false)
	again.send("<presence/><iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	var got []string
	for {
		el := again.next()
		if el.Get("id") == "end" {
			break
		}
		if el.Local == "message" {
			got = append(got, el.Get("id"))
		}
	}
	if strings.Join(got, " ") != "m0" {
		t.Fatalf("the new session got %v, want m0", got)
	}
	if _, ans := bob.resume(srv, "bob", 0); !failedWith("item-not-found")(ans) {
		t.Fatalf("resuming a replaced session: %s", ans)
	}
}

// TestSMHibernatedQueue: a hibernated session keeps up to c2s.max_unacked
// stanzas for its client, more than a connection's queue: what comes
// while the phone is away is all there when it resumes, not partly in
// offline storage it would read only at its next fresh login.
func TestSMHibernatedQueue(t *testing.T) {
	srv := startTestServer(t, func(c *Config) { c.C2S.QueueSize = 8; c.C2S.MaxUnacked = 100 })
	bob := smLogin(t, srv, "bob", "phone")
	sess := srv.c2s.Sessions().Session(bob.full)
	bob.cut()
	waitFor(t, func() bool { return sess.State() == session.Detached })
	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	var want []string
	for i := range 30 {
		alice.send(fmt.Sprintf("<message to='%s' id='m%d' type='chat'><body>%d</body></message>", bob.full, i, i))
		want = append(want, fmt.Sprintf("m%d", i))
	}
	alice.sync2("messages")
	nb, ans := bob.resume(srv, "bob", 0)
	if !ans.Is(nsSM, "resumed") {
		t.Fatalf("got %s", ans)
	}
	nb.send("<iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	var got []string
	for {
		el := nb.nextStanza(true)
		if el.Get("id") == "end" {
			break
		}
		if el.Local == "message" {
			got = append(got, el.Get("id"))
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("after resuming bob got %v", got)
	}
}

// TestSMRestartExpired: a saved session whose resume timeout passes after
// the restart ends as on timeout: what it never got goes to offline
// storage, and it cannot be resumed.
func TestSMRestartExpired(t *testing.T) {
	srv := startTestServer(t, func(c *Config) { c.C2S.ResumeTimeout = Duration(2 * time.Second) })
	bob := smLogin(t, srv, "bob", "phone")
	sess := srv.c2s.Sessions().Session(bob.full)
	bob.cut()
	waitFor(t, func() bool { return sess.State() == session.Detached })
	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	alice.send("<message to='" + bob.full + "' id='m0' type='chat'><body>0</body></message>")
	alice.sync2("m0")
	srv = restartTestServer(t, srv)
	// Restored, then expired (on a slow machine it may be over already):
	// without the restore, m0 would stay in the saved record, nowhere.
	waitFor(t, func() bool { return srv.c2s.Sessions().Session(bob.full) == nil })
	time.Sleep(300 * time.Millisecond) // out of the registry before stored offline
	if got := offlineIDs(t, srv, "bob"); strings.Join(got, " ") != "m0" {
		t.Fatalf("offline storage has %v, want m0", got)
	}
	if _, ans := bob.resume(srv, "bob", 0); !failedWith("item-not-found")(ans) {
		t.Fatalf("resuming an expired session: %s", ans)
	}
}

// TestSMExpiredKeepsCSIHeld: what CSI held back for an inactive session
// (a receipt) is not lost when the session hibernates and expires: it goes
// to offline storage like the rest of what the session never got.
func TestSMExpiredKeepsCSIHeld(t *testing.T) {
	srv := startTestServer(t, func(c *Config) { c.C2S.ResumeTimeout = Duration(time.Second) })
	bob := smLogin(t, srv, "bob", "phone")
	bob.send("<presence/>")
	bob.send("<inactive xmlns='urn:xmpp:csi:0'/>")
	bob.drain()
	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	alice.send("<message to='" + bob.full + "' id='r1'><received xmlns='urn:xmpp:receipts' id='m0'/></message>")
	alice.sync2("receipt")
	sess := srv.c2s.Sessions().Session(bob.full)
	bob.cut()
	waitFor(t, func() bool { return sess.State() == session.Detached })
	waitFor(t, func() bool { return srv.c2s.Sessions().Session(bob.full) == nil })
	waitFor(t, func() bool { return strings.Join(offlineIDs(t, srv, "bob"), " ") == "r1" })
}
