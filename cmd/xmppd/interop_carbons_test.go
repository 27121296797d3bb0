//go:build interop

package main

import (
	"path/filepath"
	"testing"
	"time"
)

// TestInteropSlixmppCarbonsCSI: slixmpp's own xep_0280 and xep_0352 plugins
// against the server: two resources of alice enable carbons and see the
// received and sent copies; one goes inactive and Bob's chat states to it
// are held, only the latest arriving when it is active again
// (testdata/interop/slixmpp_carbons_csi.py).
func TestInteropSlixmppCarbonsCSI(t *testing.T) {
	timing(t)
	py := needPython(t)
	s := startInteropServer(t)
	alice, bob := s.Users["alice"], s.Users["bob"]
	script := filepath.Join(interopDir(t), "slixmpp_carbons_csi.py")
	out, _ := runClient(t, 90*time.Second, false, "", nil, py, script,
		"--addr", s.StartTLS,
		"--jid-a", alice.JID(), "--pass-a", alice.Password,
		"--jid-b", bob.JID(), "--pass-b", bob.Password)
	r := findResult(results(out), "carbons")
	if r == nil || r["carbons"] != "ok" || r["csi"] != "ok" {
		t.Fatalf("no RESULT carbons=ok csi=ok line")
	}
}
