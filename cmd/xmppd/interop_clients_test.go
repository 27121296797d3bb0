//go:build interop

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// ensureNodeModules runs `npm ci` in testdata/interop/js when @xmpp/client is missing.
func ensureNodeModules(t *testing.T) {
	t.Helper()
	jsDir := filepath.Join(interopDir(t), "js")
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "@xmpp", "client")); err != nil {
		npm := needTool(t, "npm")
		runClient(t, 5*time.Minute, false, jsDir, nil, npm, "ci", "--no-audit", "--no-fund")
	}
}

// TestInteropXmppJS: @xmpp/client 0.14.0 (xmpp.js, from npm) over xmpp://
// (STARTTLS) and xmpps:// (Direct TLS). Runs `npm ci` when node_modules is
// missing.
func TestInteropXmppJS(t *testing.T) {
	timing(t)
	node := needTool(t, "node")
	jsDir := filepath.Join(interopDir(t), "js")
	ensureNodeModules(t)
	s := startInteropServer(t)
	alice, bob := s.Users["alice"], s.Users["bob"]
	for _, tr := range []struct{ name, service string }{
		{"starttls", "xmpp://" + s.StartTLS},
		{"direct-tls", "xmpps://" + s.DirectTLS},
	} {
		t.Run(tr.name, func(t *testing.T) {
			timing(t)
			out, _ := runClient(t, 60*time.Second, false, jsDir, []string{"NODE_NO_WARNINGS=1"}, node,
				"xmppjs_interop.mjs", tr.service, "localhost", alice.Local, alice.Password, bob.Local, bob.Password)
			rs := results(out)
			if findResult(rs, "exchange") == nil {
				t.Fatal("no RESULT exchange=ok line")
			}
			// FAST (XEP-0484): the password login asked for a token, and
			// the next login of the same client used it.
			if f := findResult(rs, "fast"); f == nil {
				t.Error("no RESULT fast= line: xmpp.js did not log in again with a token")
			} else {
				t.Logf("xmpp.js logged in again as %s with %s (a FAST token for %s)", f["relogin"], f["mech"], f["fast"])
				if f["mech"] != "HT-SHA-256-NONE" || f["fast"] != "HT-SHA-256-NONE" || f["relogin"] != alice.Local+"@localhost" || f["profile"] != "sasl2" {
					t.Errorf("token login: %v, want HT-SHA-256-NONE over sasl2 as %s@localhost", f, alice.Local)
				}
			}
			logins := 0
			for _, r := range rs {
				if r["jid"] == "" {
					continue
				}
				logins++
				t.Logf("xmpp.js over %s: %s authenticated with %s over %s, bound with %s", tr.name, r["full"], r["mech"], r["profile"], r["bind"])
				// xmpp.js 0.14 prefers SASL2 (XEP-0388) with an inline bind
				// (XEP-0386) when offered; the resource keeps its tag.
				if r["profile"] != "sasl2" || r["bind"] != "bind2" {
					t.Errorf("%s logged in with %s and bound with %s, want sasl2 and bind2", r["jid"], r["profile"], r["bind"])
				}
				if !strings.HasPrefix(r["full"], r["jid"]+"/xmppjs-") {
					t.Errorf("bound to %s, want the tag xmppjs-… as the resource's start", r["full"])
				}
			}
			if logins != 2 {
				t.Errorf("%d logins reported, want 2", logins)
			}
		})
	}
}

// TestInteropGoSendxmpp: go-sendxmpp (Debian) listens as bob while alice
// sends, then the other way round, over STARTTLS and Direct TLS (-t).
func TestInteropGoSendxmpp(t *testing.T) {
	timing(t)
	bin := needTool(t, "go-sendxmpp")
	s := startInteropServer(t)
	alice, bob := s.Users["alice"], s.Users["bob"]
	for _, tr := range []struct {
		name, addr string
		extra      []string
	}{
		{"starttls", s.StartTLS, nil},
		{"direct-tls", s.DirectTLS, []string{"-t"}},
	} {
		t.Run(tr.name, func(t *testing.T) {
			timing(t)
			tok := randomHex(6)
			sendxmppOneWay(t, s, bin, tr.addr, tr.extra, alice, bob, "ping "+tok)
			sendxmppOneWay(t, s, bin, tr.addr, tr.extra, bob, alice, "pong "+tok)
		})
	}
}

// waitUntil polls cond every 50ms until it holds or the timeout passes.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// sendxmppOneWay starts `go-sendxmpp -l` as to, waits until its session is
// bound and its presence reached the server, sends body from `from`, and
// waits for the listener to print it.
func sendxmppOneWay(t *testing.T, srv *interopServer, bin, addr string, extra []string, from, to account, body string) {
	t.Helper()
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// -d prints the XML, which shows when the resource is bound; -n accepts the
	// self-signed certificate; -j host:port avoids any SRV lookup.
	args := append([]string{"-d", "-n", "-j", addr, "-u", to.JID(), "-p", to.Password, "-l"}, extra...)
	listen := exec.CommandContext(ctx, bin, args...)
	listen.WaitDelay = 2 * time.Second
	var lout syncBuffer
	listen.Stdout, listen.Stderr = &lout, &lout
	if err := listen.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = listen.Wait()
	}()
	bound := regexp.MustCompile(`<jid>` + regexp.QuoteMeta(to.JID()) + `/([^<]+)</jid>`)
	var resource string
	if !waitUntil(15*time.Second, func() bool {
		m := bound.FindStringSubmatch(lout.String())
		if m != nil {
			resource = m[1]
		}
		return m != nil
	}) {
		t.Fatalf("go-sendxmpp -l as %s never bound a resource:\n%s", to.JID(), indent(lout.String()))
	}
	// The listener sends its presence right after binding; the server logs
	// each stanza at debug level. Wait for it so the message finds an
	// available resource.
	rePresence := regexp.MustCompile(`msg=stanza .*jid=` + regexp.QuoteMeta(to.JID()+"/"+resource) + ` kind=presence`)
	if !waitUntil(5*time.Second, func() bool { return rePresence.MatchString(srv.Log.String()) }) {
		t.Logf("no debug log line for %s's presence (log format changed?); sending anyway", to.JID())
	}

	send := exec.CommandContext(ctx, bin, append(append([]string{"-n", "-j", addr, "-u", from.JID(), "-p", from.Password}, extra...), to.JID())...)
	send.Stdin = strings.NewReader(body + "\n")
	if out, err := send.CombinedOutput(); err != nil {
		t.Fatalf("go-sendxmpp send as %s: %v\n%s", from.JID(), err, out)
	}
	want := regexp.MustCompile(regexp.QuoteMeta(from.JID()) + `(/\S*)?: ` + regexp.QuoteMeta(body))
	if !waitUntil(15*time.Second, func() bool { return want.MatchString(lout.String()) }) {
		t.Fatalf("listener %s did not print %q:\n%s", to.JID(), body, indent(lout.String()))
	}
	line := want.FindString(lout.String())
	t.Logf("go-sendxmpp: %s -> %s over %s: listener printed %q (%.2fs)", from.JID(), to.JID(), addr, line, time.Since(t0).Seconds())
}

// TestInteropProfanity: two profanity terminal clients driven in a private
// tmux server over STARTTLS ("tls trust" accepts the self-signed cert).
func TestInteropProfanity(t *testing.T) {
	timing(t)
	needTool(t, "tmux")
	needTool(t, "profanity")
	s := startInteropServer(t)
	alice, bob := s.Users["alice"], s.Users["bob"]
	host, port, ok := strings.Cut(s.StartTLS, ":")
	if !ok {
		t.Fatalf("bad address %q", s.StartTLS)
	}
	script := filepath.Join(interopDir(t), "profanity_interop.sh")
	out, _ := runClient(t, 90*time.Second, false, "", nil, "bash", script, filepath.Join(t.TempDir(), "prof"),
		host, port, "localhost", alice.Local, alice.Password, bob.Local, bob.Password, randomHex(6))
	if !strings.Contains(out, "profanity: OK") {
		t.Fatal("no OK line from the profanity script")
	}
}
