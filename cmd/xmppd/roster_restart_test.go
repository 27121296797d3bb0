package main

import (
	"strings"
	"testing"
)

// TestRosterSurvivesRestart: roster items, subscription states, the roster
// version and a pending subscription request are on disk, not in memory.
func TestRosterSurvivesRestart(t *testing.T) {
	srv := startTestServer(t, nil)

	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	bob := dialWire(t, srv.c2sAddrs[0], false)
	bob.login("localhost", "bob", "b", false)
	carol := dialWire(t, srv.c2sAddrs[0], false)
	carol.login("localhost", "carol", "c", false)
	alice.send("<presence to='bob@localhost' type='subscribe'/>")
	alice.sync()
	bob.send("<presence to='alice@localhost' type='subscribed'/>")
	bob.sync()
	alice.send("<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'><group>Friends</group></item></query></iq>")
	if r := alice.next(); r.Get("type") != "result" {
		t.Fatalf("roster set: %s", r)
	}
	carol.send("<presence to='bob@localhost' type='subscribe' id='c1'/>")
	carol.sync()

	srv2 := restartTestServer(t, srv)

	alice = dialWire(t, srv2.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	alice.send("<iq type='get' id='g1'><query xmlns='jabber:iq:roster'/></iq>")
	got := alice.next().String()
	for _, want := range []string{"ver='3'", "jid='bob@localhost'", "name='Bob'", "subscription='to'", "<group>Friends</group>"} {
		if !strings.Contains(got, want) {
			t.Errorf("alice's roster after restart lacks %s: %s", want, got)
		}
	}
	bob = dialWire(t, srv2.c2sAddrs[0], false)
	bob.login("localhost", "bob", "b", false)
	bob.send("<iq type='get' id='g1'><query xmlns='jabber:iq:roster'/></iq><presence/>")
	got = bob.next().String()
	if !strings.Contains(got, "subscription='from'") || strings.Contains(got, "carol") {
		t.Errorf("bob's roster after restart: %s", got)
	}
	// carol's request is still pending: it comes at bob's initial presence,
	// after the echo of that presence.
	if echo := bob.next(); echo.Local != "presence" || echo.Get("from") != "bob@localhost/b" {
		t.Errorf("the echo of bob's presence: got %s", echo)
	}
	if r := bob.next(); r.Get("type") != "subscribe" || r.Get("from") != "carol@localhost" || r.Get("id") != "c1" {
		t.Errorf("pending request after restart: got %s", r)
	}
}

// TestAccountDataSurvivesRestart: the blocklist (and its enforcement), the
// vCard and private XML are on disk too.
func TestAccountDataSurvivesRestart(t *testing.T) {
	srv := startTestServer(t, nil)
	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	for _, req := range []string{
		"<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='carol@localhost'/></block></iq>",
		"<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Alice Liddell</FN></vCard></iq>",
		"<iq type='set' id='p1'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'>dark</prefs></query></iq>",
	} {
		alice.send(req)
		if r := alice.next(); r.Get("type") != "result" {
			t.Fatalf("%s: %s", req, r)
		}
	}
	srv2 := restartTestServer(t, srv)

	alice = dialWire(t, srv2.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	for _, q := range []struct{ req, want string }{
		{"<iq type='get' id='b2'><blocklist xmlns='urn:xmpp:blocking'/></iq>", "jid='carol@localhost'"},
		{"<iq type='get' id='v2'><vCard xmlns='vcard-temp'/></iq>", "<FN>Alice Liddell</FN>"},
		{"<iq type='get' id='p2'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query></iq>", ">dark</prefs>"},
	} {
		alice.send(q.req)
		if got := alice.next().String(); !strings.Contains(got, q.want) {
			t.Errorf("after restart %s gave %s, want %s in it", q.req, got, q.want)
		}
	}
	alice.send("<presence/>")
	carol := dialWire(t, srv2.c2sAddrs[0], false)
	carol.login("localhost", "carol", "c", false)
	carol.send("<message to='alice@localhost/a' type='chat' id='m1'><body>still blocked?</body></message>")
	if r := carol.next(); r.Get("type") != "error" || r.Get("id") != "m1" {
		t.Fatalf("carol's message to alice after restart: got %s, want an error", r)
	}
	alice.send("<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	for {
		el := alice.next()
		if el.Get("id") == "sync" {
			break
		}
		if el.Local == "message" {
			t.Fatalf("alice got a message from blocked carol after restart: %s", el)
		}
	}
}
