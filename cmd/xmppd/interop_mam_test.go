//go:build interop

package main

import (
	"path/filepath"
	"testing"
	"time"
)

// TestInteropSlixmppMAM: slixmpp's own xep_0313 and xep_0059 plugins against
// the archive: two clients chat, the recipient's client sees stanza-ids
// that its archive returns, and the sender pages through the conversation
// forwards and backwards with slixmpp's RSM iterator (testdata/interop/slixmpp_mam.py).
func TestInteropSlixmppMAM(t *testing.T) {
	timing(t)
	py := needPython(t)
	s := startInteropServer(t)
	alice, bob := s.Users["alice"], s.Users["bob"]
	script := filepath.Join(interopDir(t), "slixmpp_mam.py")
	out, _ := runClient(t, 120*time.Second, false, "", nil, py, script,
		"--addr", s.StartTLS,
		"--jid-a", alice.JID(), "--pass-a", alice.Password,
		"--jid-b", bob.JID(), "--pass-b", bob.Password,
		"--count", "25", "--page", "7")
	r := findResult(results(out), "mam")
	if r == nil || r["mam"] != "ok" {
		t.Fatalf("no RESULT mam=ok line")
	}
	// 25 + 5 replies = 30 messages: 5 pages of 7 (the last one short), and
	// slixmpp's iterator stops at the first empty page.
	if r["messages"] != "30" || r["forward_pages"] != "5" || r["backward_pages"] != "5" {
		t.Errorf("messages=%s in %s pages forwards, %s backwards; want 30 in 5 and 5", r["messages"], r["forward_pages"], r["backward_pages"])
	}
	t.Logf("slixmpp MAM: %s messages, %s pages forwards, %s backwards", r["messages"], r["forward_pages"], r["backward_pages"])
}

// TestInteropFederationProsodyMAM: a Prosody user's message to an xmppd
// user, over s2s, lands in the xmppd user's archive, where slixmpp's
// xep_0313 finds it (lab peers as in interop_fed_test.go).
func TestInteropFederationProsodyMAM(t *testing.T) {
	timing(t)
	l := newFedLab(t, fedDialback)
	needProsody(t)
	py := needPython(t)
	p := startProsody(t, l, prosodyDomain, prosodyIP, "bob")
	s := startFedXmppd(t, l, "alice")
	alice, bob := s.Users["alice"], p.Users["bob"]
	tok := randomHex(4)
	P := startFedActor(t, "prosody:"+bob.JID, bob)
	P.do("presence")
	P.do("message %s archived across %s", alice.JID, tok)
	// A ping after the message, on the same s2s stream: when it is
	// answered, the message has been handled (archived, stored offline).
	P.do("ping %s", xmppdDomain)
	fedExpectIQ(t, P, "ping after the message", "ping", "ping", xmppdDomain)
	P.quit()
	script := filepath.Join(interopDir(t), "slixmpp_mam.py")
	out, _ := runClient(t, 60*time.Second, false, "", nil, py, script, "--archive",
		"--addr", alice.Addr, "--jid-a", alice.JID, "--pass-a", alice.Password,
		"--with", bob.JID, "--body", "archived across "+tok)
	if r := findResult(results(out), "archived"); r == nil || r["archived"] != "yes" {
		t.Fatalf("the Prosody user's message is not in the archive")
	}
}
