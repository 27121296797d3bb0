package main

import (
	"context"
	"log/slog"
	"testing"
	"time"
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
	sync := func(c *wireClient) {
		t.Helper()
		c.send("<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
		if r := c.next(); r.Get("id") != "sync" {
			t.Fatalf("sync: got %s", r)
		}
	}
	var cfg Config
	srv := startTestServer(t, func(c *Config) { cfg = *c })
	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	alice.send("<presence>" + exodus + "</presence>")
	q := alice.next()
	if q.Local != "iq" || q.Get("type") != "get" || q.Get("from") != "localhost" {
		t.Fatalf("caps query: got %s", q)
	}
	alice.send("<iq type='result' id='" + q.Get("id") + "' to='localhost'>" + info + "</iq>")
	sync(alice)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	srv2, err := startServer(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Shutdown(context.Background())

	alice = dialWire(t, srv2.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	alice.send("<presence>" + exodus + "</presence>")
	sync(alice) // a query would come before the answer to the ping

	// The control: an unknown ver is still asked for after the restart.
	bob := dialWire(t, srv2.c2sAddrs[0], false)
	bob.login("localhost", "bob", "b", false)
	bob.send("<presence>" + psi + "</presence>")
	if q := bob.next(); q.Local != "iq" || q.Child("http://jabber.org/protocol/disco#info", "query").Get("node") != "http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w=" {
		t.Fatalf("caps query for an unknown ver after restart: got %s", q)
	}
}
