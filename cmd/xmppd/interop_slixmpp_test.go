//go:build interop

package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// slixmppRun runs testdata/interop/slixmpp_interop.py with Debian's python.
func slixmppRun(t *testing.T, py string, allowFail bool, args ...string) (string, error) {
	t.Helper()
	script := filepath.Join(interopDir(t), "slixmpp_interop.py")
	return runClient(t, 60*time.Second, allowFail, "", nil, py, append([]string{script}, args...)...)
}

// TestInteropSlixmpp: two slixmpp clients exchange presence, messages and iqs
// over STARTTLS and over Direct TLS, then single logins check every SASL
// mechanism the server offers and that a wrong password fails.
func TestInteropSlixmpp(t *testing.T) {
	timing(t)
	py := needPython(t)
	s := startInteropServer(t)
	alice, bob, carol := s.Users["alice"], s.Users["bob"], s.Users["carol"]

	transports := []struct {
		name, addr string
		extra      []string
	}{
		{"starttls", s.StartTLS, nil},
		{"direct-tls", s.DirectTLS, []string{"--direct-tls"}},
	}

	// The exchange, on both transports. --cb tls-server-end-point makes
	// slixmpp do channel binding the way the server offers it (see the
	// script: stock slixmpp 1.8.3 only knows tls-unique).
	for _, tr := range transports {
		t.Run("exchange-"+tr.name, func(t *testing.T) {
			timing(t)
			args := append([]string{"exchange", "--addr", tr.addr, "--cb", "tls-server-end-point",
				"--jid-a", alice.JID(), "--pass-a", alice.Password,
				"--jid-b", bob.JID(), "--pass-b", bob.Password}, tr.extra...)
			out, _ := slixmppRun(t, py, false, args...)
			rs := results(out)
			if findResult(rs, "exchange") == nil {
				t.Fatalf("no RESULT exchange=ok line")
			}
			for _, r := range rs {
				if r["jid"] == "" {
					continue
				}
				t.Logf("slixmpp over %s: %s authenticated with %s (%s)", tr.name, r["jid"], r["mech"], r["tls"])
				if r["mech"] != "SCRAM-SHA-256-PLUS" {
					t.Errorf("%s: slixmpp chose %s, want SCRAM-SHA-256-PLUS (the strongest offered)", r["jid"], r["mech"])
				}
			}
		})
	}

	// One login per mechanism. cb is the channel-binding mode of the script.
	type login struct {
		name, mech, cb string
		tr             int // index into transports
		user           account
		wantOK         bool
	}
	wrong := account{alice.Local, alice.Password + "-wrong"}
	logins := []login{
		// What a client without channel binding picks by itself.
		{"default-no-cb", "", "none", 0, carol, true},
		// Forced mechanisms, as the brief asks; the client binds with tls-server-end-point.
		{"SCRAM-SHA-1", "SCRAM-SHA-1", "tls-server-end-point", 0, carol, true},
		{"SCRAM-SHA-256", "SCRAM-SHA-256", "tls-server-end-point", 0, carol, true},
		{"PLAIN", "PLAIN", "tls-server-end-point", 0, carol, true},
		{"SCRAM-SHA-1-PLUS", "SCRAM-SHA-1-PLUS", "tls-server-end-point", 1, carol, true},
		{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256-PLUS", "tls-server-end-point", 1, carol, true},
		// Stock slixmpp with PLAIN forced: no channel binding involved.
		{"stock-PLAIN", "PLAIN", "stock", 1, carol, true},
		// Wrong passwords must fail.
		{"wrong-password-PLAIN", "PLAIN", "none", 0, wrong, false},
		{"wrong-password-SCRAM-SHA-256", "SCRAM-SHA-256", "none", 1, wrong, false},
		{"wrong-password-SCRAM-SHA-256-PLUS", "SCRAM-SHA-256-PLUS", "tls-server-end-point", 0, wrong, false},
	}
	for _, l := range logins {
		tr := transports[l.tr]
		t.Run("login-"+l.name+"-"+tr.name, func(t *testing.T) {
			timing(t)
			args := append([]string{"login", "--addr", tr.addr, "--cb", l.cb,
				"--jid-a", l.user.JID(), "--pass-a", l.user.Password}, tr.extra...)
			if l.mech != "" {
				args = append(args, "--mech", l.mech)
			}
			if !l.wantOK {
				args = append(args, "--expect-fail")
			}
			out, _ := slixmppRun(t, py, false, args...)
			r := findResult(results(out), "login")
			switch {
			case r == nil:
				t.Fatal("no RESULT login= line")
			case l.wantOK && r["login"] != "ok":
				t.Fatalf("login failed: %v", r)
			case !l.wantOK && r["login"] != "failed":
				t.Fatalf("login with a wrong password succeeded: %v", r)
			case l.wantOK && l.mech != "" && r["mech"] != l.mech:
				t.Errorf("authenticated with %s, want the forced %s", r["mech"], l.mech)
			}
			if l.wantOK {
				t.Logf("slixmpp (cb=%s) over %s: %s with %s", l.cb, tr.name, r["login"], r["mech"])
			} else {
				t.Logf("slixmpp over %s: wrong password rejected (%s)", tr.name, r["failures"])
			}
		})
	}

	// Stock slixmpp 1.8.3 left to choose by itself. It tries
	// SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS with tls-unique (which the
	// server does not offer: it is undefined under TLS 1.3), then plain
	// SCRAM with the gs2 flag "y", which RFC 5802 §6 makes the server reject
	// because it does offer -PLUS; the third failure ends the connection
	// (c2s.max_auth_failures = 3). That is a client bug, documented here and
	// not counted as a failure; anything else is.
	t.Run("login-stock-default-starttls", func(t *testing.T) {
		timing(t)
		out, _ := slixmppRun(t, py, true, "login", "--addr", s.StartTLS, "--cb", "stock",
			"--jid-a", carol.JID(), "--pass-a", carol.Password)
		r := findResult(results(out), "login")
		if r == nil {
			t.Fatal("no RESULT login= line")
		}
		if r["login"] == "ok" {
			t.Logf("stock slixmpp logged in with %s (the tls-unique/downgrade problem is gone)", r["mech"])
			return
		}
		known := "SCRAM-SHA-256-PLUS:not-authorized,SCRAM-SHA-1-PLUS:not-authorized,SCRAM-SHA-256:not-authorized"
		if r["failures"] != known {
			t.Fatalf("stock slixmpp failed in an unexpected way: %s (known: %s)", r["failures"], known)
		}
		t.Logf("KNOWN CLIENT ISSUE: stock slixmpp 1.8.3 cannot log in without a forced mechanism: %s", strings.ReplaceAll(r["failures"], ",", ", "))
	})
}
