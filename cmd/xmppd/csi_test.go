package main

// XEP-0352 Client State Indication over real sockets: alice goes inactive,
// bob and carol send her presence, chat states and messages; what reaches
// her, and in which order, shows what was held, coalesced and flushed.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps/csi"
)

// csiDescribe sums up what alice got: "p:bob/b:s1" (presence, from's
// localpart and resource, its status or type), "m:id", "iq:id".
func csiDescribe(el *stanza.Element) string {
	from := el.Get("from")
	from = strings.TrimSuffix(strings.Replace(from, "@localhost", "", 1), "")
	switch el.Local {
	case "presence":
		s := el.Child(stanza.NSClient, "status").Text()
		if t := el.Get("type"); t != "" {
			s = t
		}
		return "p:" + from + ":" + s
	case "message":
		return "m:" + el.Get("id")
	}
	return el.Local + ":" + el.Get("id")
}

// until reads what c gets up to the iq result with id, described.
func (c *wireClient) until(id string) []string {
	c.t.Helper()
	var out []string
	for {
		el := c.next()
		if el.Local == "iq" && el.Get("id") == id && el.Get("type") == "result" {
			return out
		}
		out = append(out, csiDescribe(el))
	}
}

// nextWithin reads one element, failing if none comes within d.
func (c *wireClient) nextWithin(d time.Duration) *stanza.Element {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(d))
	el, err := c.dec.Next()
	if err != nil {
		c.t.Fatalf("nothing within %s: %v", d, err)
	}
	return el
}

func TestCSI(t *testing.T) {
	srv := startTestServer(t, func(c *Config) { c.CSI.MaxHeld = 4 })
	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	alice.send("<presence/>")
	alice.sync2("presence")
	bob := dialWire(t, srv.c2sAddrs[0], false)
	bob.login("localhost", "bob", "b", false)
	carol := dialWire(t, srv.c2sAddrs[0], false)
	carol.login("localhost", "carol", "c", false)
	// bob's resource "Alice" plays a room: its presence with status 110
	// tells alice's server that her nick in the room bob@localhost is Alice.
	room := dialWire(t, srv.c2sAddrs[0], false)
	room.login("localhost", "bob", "Alice", false)
	room.send("<presence to='alice@localhost/a'><x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/></x></presence>")
	room.sync2("self-presence")
	alice.sync2("room")

	clients := map[string]*wireClient{"bob": bob, "carol": carol}
	pres := func(status string) string {
		return "<presence to='alice@localhost/a'><status>" + status + "</status></presence>"
	}
	const composing = "<message to='alice@localhost/a' type='chat' id='%s'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
	const paused = "<message to='alice@localhost/a' type='chat' id='%s'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>"
	const body = "<message to='alice@localhost/a' type='chat' id='%s'><body>hi</body></message>"
	type step struct{ who, xml string }
	tests := []struct {
		name  string
		steps []step
		// trigger is sent last ("active": alice sends <active/>); want is
		// what alice then gets, in order, before her ping's answer.
		trigger step
		want    []string
	}{
		{"presence coalesced per contact, flushed by a message",
			[]step{{"bob", pres("s1")}, {"carol", pres("c1")}, {"bob", pres("s2")}},
			step{"bob", fmt.Sprintf(body, "m1")},
			[]string{"p:carol/c:c1", "p:bob/b:s2", "m:m1"}},
		{"unavailable after available replaces it",
			[]step{{"bob", pres("s3")}, {"bob", "<presence to='alice@localhost/a' type='unavailable'/>"}},
			step{"alice", "active"},
			[]string{"p:bob/b:unavailable"}},
		{"chat states superseded per sender",
			[]step{{"bob", fmt.Sprintf(composing, "cs1")}, {"carol", fmt.Sprintf(composing, "cs2")}, {"bob", fmt.Sprintf(paused, "cs3")}},
			step{"carol", fmt.Sprintf(body, "m2")},
			[]string{"m:cs2", "m:cs3", "m:m2"}},
		{"an iq flushes",
			[]step{{"bob", pres("s4")}, {"bob", pres("s5")}},
			step{"bob", "<iq type='get' id='q1' to='alice@localhost/a'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"},
			[]string{"p:bob/b:s5", "iq:q1"}},
		{"a subscription request flushes",
			[]step{{"carol", fmt.Sprintf(composing, "cs4")}, {"carol", fmt.Sprintf(paused, "cs5")}},
			step{"carol", "<presence to='alice@localhost' type='subscribe'/>"},
			[]string{"m:cs5", "p:carol:subscribe"}},
		{"an OMEMO message without a body flushes",
			[]step{{"bob", fmt.Sprintf(composing, "cs6")}, {"bob", fmt.Sprintf(paused, "cs7")}},
			step{"bob", "<message to='alice@localhost/a' type='chat' id='o1'><encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/></encrypted></message>"},
			[]string{"m:cs7", "m:o1"}},
		{"group chat held until the user's nick is mentioned",
			[]step{{"carol", pres("c2")}, {"carol", pres("c3")}, {"bob", "<message to='alice@localhost/a' type='groupchat' id='g1'><body>hello all</body></message>"}},
			step{"bob", "<message to='alice@localhost/a' type='groupchat' id='g2'><body>alice, look</body></message>"},
			[]string{"p:carol/c:c3", "m:g1", "m:g2"}},
		{"a limit of held stanzas flushes",
			[]step{{"bob", pres("s6")}, {"carol", pres("c4")}, {"bob", fmt.Sprintf(composing, "cs8")}, {"carol", fmt.Sprintf(composing, "cs9")}},
			step{},
			[]string{"p:bob/b:s6", "p:carol/c:c4", "m:cs8", "m:cs9"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			alice.send("<inactive xmlns='urn:xmpp:csi:0'/>")
			alice.sync2("inactive") // an iq result is urgent: it goes out
			for _, s := range tc.steps {
				clients[s.who].send(s.xml)
				clients[s.who].sync2("step")
			}
			if tc.trigger.who == "" {
				// No trigger: the limit must have sent them already.
				var got []string
				for range tc.want {
					got = append(got, csiDescribe(alice.nextWithin(5*time.Second)))
				}
				if !slices.Equal(got, tc.want) {
					t.Fatalf("alice got %v, want %v", got, tc.want)
				}
				alice.send("<active xmlns='urn:xmpp:csi:0'/>")
				alice.sync2("active")
				return
			}
			if tc.trigger.who == "alice" {
				alice.send("<active xmlns='urn:xmpp:csi:0'/>")
			} else {
				clients[tc.trigger.who].send(tc.trigger.xml)
				clients[tc.trigger.who].sync2("trigger")
				alice.send("<active xmlns='urn:xmpp:csi:0'/>")
			}
			alice.send("<iq type='get' id='seen' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
			if got := alice.until("seen"); !slices.Equal(got, tc.want) {
				t.Fatalf("alice got %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("active passes everything", func(t *testing.T) {
		bob.send(pres("s7"))
		bob.send(pres("s8"))
		bob.sync2("presence")
		alice.send("<iq type='get' id='seen2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
		if got, want := alice.until("seen2"), []string{"p:bob/b:s7", "p:bob/b:s8"}; !slices.Equal(got, want) {
			t.Fatalf("alice got %v, want %v", got, want)
		}
	})
}

// TestCSIFeatureAndBind2: <csi/> is a stream feature, Bind 2 offers it
// inline, and an <inactive/> in <bind/> starts the session inactive.
func TestCSIFeatureAndBind2(t *testing.T) {
	srv := startTestServer(t, nil)
	c := dialWire(t, srv.directAddr[0], true)
	features, success := c.loginSASL2("alice", "<bind xmlns='urn:xmpp:bind:0'><tag>phone</tag><inactive xmlns='urn:xmpp:csi:0'/><enable xmlns='urn:xmpp:carbons:2'/></bind>")
	inline := features.Child(stanza.NSSASL2, "authentication").Child(stanza.NSSASL2, "inline").Child(stanza.NSBind2, "bind").Child(stanza.NSBind2, "inline")
	if s := inline.String(); !strings.Contains(s, csi.NS) || !strings.Contains(s, "urn:xmpp:carbons:2") {
		t.Fatalf("Bind 2 inline features: %s", s)
	}
	if f := c.next(); f.Child(csi.NS, "csi") == nil {
		t.Fatalf("no <csi/> in the stream features: %s", f)
	}
	full := success.Child(stanza.NSSASL2, "authorization-identifier").Text()
	c.send("<presence/>")
	c.sync2("presence")
	bob := dialWire(t, srv.c2sAddrs[0], false)
	bob.login("localhost", "bob", "b", false)
	for _, s := range []string{"s1", "s2"} {
		bob.send("<presence to='" + full + "'><status>" + s + "</status></presence>")
	}
	bob.send("<message to='" + full + "' type='chat' id='m1'><body>hi</body></message>")
	bob.sync2("sent")
	c.send("<iq type='get' id='seen' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got, want := c.until("seen"), []string{"p:bob/b:s2", "m:m1"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v (inactive from Bind 2)", got, want)
	}

	// Carbons were enabled inline too: a message bob sends to alice's
	// other resource is copied to this one.
	other := dialWire(t, srv.c2sAddrs[0], false)
	other.login("localhost", "alice", "laptop", false)
	c.send("<active xmlns='urn:xmpp:csi:0'/>")
	c.sync2("active")
	bob.send("<message to='alice@localhost/laptop' type='chat' id='m2'><body>hi</body></message>")
	bob.sync2("sent")
	if got := describe(c.drain()); !slices.Equal(got, []string{"received:m2"}) {
		t.Fatalf("carbons enabled in Bind 2: got %v", got)
	}
}

// TestCSIHeldNotLost: a message held for an inactive session (a receipt,
// which is not urgent) is not lost when the session ends: it goes the way
// of what the session did not get, to offline storage, and reaches alice
// at her next login.
func TestCSIHeldNotLost(t *testing.T) {
	srv := startTestServer(t, nil)
	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	alice.send("<presence/>")
	alice.sync2("presence")
	alice.send("<inactive xmlns='urn:xmpp:csi:0'/>")
	alice.sync2("inactive")
	bob := dialWire(t, srv.c2sAddrs[0], false)
	bob.login("localhost", "bob", "b", false)
	bob.send("<message to='alice@localhost/a' id='r1'><received xmlns='urn:xmpp:receipts' id='m0'/></message>")
	bob.sync2("receipt")
	alice.send("</stream:stream>")
	alice.expectClosed()

	again := dialWire(t, srv.c2sAddrs[0], false)
	again.login("localhost", "alice", "a", false)
	again.send("<presence/>")
	if m := again.nextOf("message"); m.Get("id") != "r1" {
		t.Fatalf("after login alice got %s", m)
	}
}
