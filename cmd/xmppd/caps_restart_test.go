package main

import (
	"testing"
)

// TestCapsSurviveRestart: a verified ver (XEP-0115) is on disk, so after a
// restart a client with the same caps is not asked for disco#info again,
// while one with a ver the server has never seen is.
func TestCapsSurviveRestart(t *testing.T) {
	const (
		exodus = "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://code.google.com/p/exodus' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>"
		info   = "<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' name='Exodus 0.9.1' type='pc'/>" +
			"<feature var='http://jabber.org/protocol/caps'/><feature var='http://jabber.org/protocol/disco#info'/>" +
			"<feature var='http://jabber.org/protocol/disco#items'/><feature var='http://jabber.org/protocol/muc'/></query>"
		psi = "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://psi-im.org' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/>"
	)
	srv := startTestServer(t, nil)
	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	alice.send("<presence>" + exodus + "</presence>")
	if echo := alice.next(); echo.Local != "presence" || echo.Get("from") != "alice@localhost/a" {
		t.Fatalf("the echo of alice's presence: got %s", echo)
	}
	q := alice.next()
	if q.Local != "iq" || q.Get("type") != "get" || q.Get("from") != "localhost" {
		t.Fatalf("caps query: got %s", q)
	}
	alice.send("<iq type='result' id='" + q.Get("id") + "' to='localhost'>" + info + "</iq>")
	alice.sync()

	srv2 := restartTestServer(t, srv)

	alice = dialWire(t, srv2.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	alice.send("<presence>" + exodus + "</presence>")
	if echo := alice.next(); echo.Local != "presence" {
		t.Fatalf("the echo of alice's presence: got %s", echo)
	}
	alice.sync() // a query would come before the answer to the ping

	// The control: an unknown ver is still asked for after the restart.
	bob := dialWire(t, srv2.c2sAddrs[0], false)
	bob.login("localhost", "bob", "b", false)
	bob.send("<presence>" + psi + "</presence>")
	if echo := bob.next(); echo.Local != "presence" {
		t.Fatalf("the echo of bob's presence: got %s", echo)
	}
	if q := bob.next(); q.Local != "iq" || q.Child("http://jabber.org/protocol/disco#info", "query").Get("node") != "http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w=" {
		t.Fatalf("caps query for an unknown ver after restart: got %s", q)
	}
}
