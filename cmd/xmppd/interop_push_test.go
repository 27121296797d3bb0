//go:build interop

package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInteropPushOverS2S: a push app server on another domain gets its
// notification over federation. The app server is a slixmpp client of
// Prosody (appserver@a.test/app); alice on xmppd (c.test) registers it
// with a secret and goes offline; bob writes to her; the notification goes
// from xmppd to Prosody over s2s and on to the app server, which checks the
// summary and the secret and answers (testdata/interop/slixmpp_push_appserver.py).
func TestInteropPushOverS2S(t *testing.T) {
	timing(t)
	l := newFedLab(t, fedValid)
	needProsody(t)
	py := needPython(t)
	p := startProsody(t, l, prosodyDomain, prosodyIP, "appserver")
	s := startFedXmppd(t, l, "alice", "bob")
	app, alice, bob := p.Users["appserver"], s.Users["alice"], s.Users["bob"]
	out, _ := runClient(t, 90*time.Second, false, "", nil, py, filepath.Join(interopDir(t), "slixmpp_push_appserver.py"),
		"--app-addr", app.Addr, "--app-jid", app.JID+"/app", "--app-pass", app.Password,
		"--addr", alice.Addr, "--jid-a", alice.JID, "--pass-a", alice.Password,
		"--jid-b", bob.JID, "--pass-b", bob.Password)
	if r := findResult(results(out), "push"); r == nil || r["push"] != "ok" {
		t.Fatalf("no RESULT push=ok line")
	}
	// Nothing refused the notification on its way (an error bounced back
	// over s2s is logged at once; a timeout only after [push] timeout).
	if strings.Contains(s.Log.String(), "push notification failed") {
		t.Errorf("xmppd logged a failed notification:\n%s", s.Log)
	}
}
