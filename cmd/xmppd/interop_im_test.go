//go:build interop

package main

// Instant messaging as users know it (issue 3), between two different real
// clients: one user on slixmpp, the other on xmpp.js, each driven line by
// line by testdata/interop/actor_*. They add each other, see each other come
// online and go offline (cleanly and killed), exchange messages while one is
// offline, and block each other.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type imEvent map[string]any

func (e imEvent) s(k string) string { v, _ := e[k].(string); return v }

// actor is one user in one client process.
type actor struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	events  chan imEvent
	exited  chan error
	history []imEvent // every event read so far, matched or not
	unread  []imEvent // read but not yet matched by expect
}

// startActor runs the client kind ("slixmpp" or "xmppjs") logged in as user.
func startActor(t *testing.T, s *interopServer, kind string, user account, direct bool) *actor {
	t.Helper()
	dir := interopDir(t)
	var cmd *exec.Cmd
	switch kind {
	case "slixmpp":
		py := needPython(t)
		args := []string{filepath.Join(dir, "actor_slixmpp.py"), user.JID(), user.Password, s.StartTLS}
		if direct {
			args = []string{filepath.Join(dir, "actor_slixmpp.py"), user.JID(), user.Password, s.DirectTLS, "--direct-tls"}
		}
		cmd = exec.Command(py, args...)
	case "xmppjs":
		node := needTool(t, "node")
		ensureNodeModules(t)
		service := "xmpp://" + s.StartTLS
		if direct {
			service = "xmpps://" + s.DirectTLS
		}
		cmd = exec.Command(node, filepath.Join(dir, "js", "actor_xmppjs.mjs"), service, user.JID(), user.Password)
	default:
		t.Fatalf("unknown client %q", kind)
	}
	return runActor(t, kind+":"+user.Local, cmd)
}

// runActor starts an actor process, reads its events, kills it at the end of
// the test if it is still running, and waits for it to log in.
func runActor(t *testing.T, name string, cmd *exec.Cmd) *actor {
	t.Helper()
	a := &actor{t: t, name: name, cmd: cmd, events: make(chan imEvent, 256), exited: make(chan error, 1)}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a.stdin = stdin
	go readActorEvents(t, a, stdout)
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	// A client process starting on a loaded 2-core machine (CI runs the race
	// tests just before) has been seen to need more than 15 s to log in.
	a.expectWithin(45*time.Second, "online", func(e imEvent) bool { return e.s("ev") == "online" })
	return a
}

// readActorEvents turns the actor's EVENT lines into events and logs the
// rest, then reports the exit.
func readActorEvents(t *testing.T, a *actor, stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "EVENT "); ok {
			var ev imEvent
			if json.Unmarshal([]byte(rest), &ev) == nil {
				a.events <- ev
				continue
			}
		}
		if strings.TrimSpace(line) != "" && !strings.Contains(line, "Task was destroyed") {
			t.Logf("%s: %s", a.name, line)
		}
	}
	close(a.events)
	a.exited <- a.cmd.Wait()
}

func (a *actor) do(format string, args ...any) {
	a.t.Helper()
	line := fmt.Sprintf(format, args...)
	a.t.Logf("%s <- %s", a.name, line)
	if _, err := io.WriteString(a.stdin, line+"\n"); err != nil {
		a.t.Fatalf("%s: %v", a.name, err)
	}
}

// expect returns the first unmatched event for which ok holds, waiting up to 15 s.
func (a *actor) expect(what string, ok func(imEvent) bool) imEvent {
	a.t.Helper()
	return a.expectWithin(15*time.Second, what, ok)
}

func (a *actor) expectWithin(limit time.Duration, what string, ok func(imEvent) bool) imEvent {
	a.t.Helper()
	for i, e := range a.unread {
		if ok(e) {
			a.unread = append(a.unread[:i], a.unread[i+1:]...)
			return e
		}
	}
	deadline := time.After(limit)
	for {
		select {
		case e, open := <-a.events:
			if !open {
				a.t.Fatalf("%s exited while waiting for %s; events: %v", a.name, what, a.history)
			}
			a.history = append(a.history, e)
			if ok(e) {
				a.t.Logf("%s -> %s: %v", a.name, what, e)
				return e
			}
			a.unread = append(a.unread, e)
		case <-deadline:
			a.t.Fatalf("%s: no %s within %v; events so far: %v", a.name, what, limit, a.history)
		}
	}
}

// quit closes the stream cleanly and waits for the process to end.
func (a *actor) quit() {
	a.t.Helper()
	a.do("quit")
	a.wait()
}

// kill ends the client without a word: no </stream:stream>, no unavailable presence.
func (a *actor) kill() {
	a.t.Helper()
	a.t.Logf("%s: SIGKILL", a.name)
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.wait()
}

func (a *actor) wait() {
	a.t.Helper()
	for range a.events {
	}
	select {
	case <-a.exited:
	case <-time.After(15 * time.Second):
		a.t.Fatalf("%s did not exit", a.name)
	}
}

func presenceFrom(bare, typ string) func(imEvent) bool {
	return func(e imEvent) bool {
		return e.s("ev") == "presence" && e.s("type") == typ && strings.HasPrefix(e.s("from"), bare)
	}
}

func messageWith(token string) func(imEvent) bool {
	return func(e imEvent) bool { return e.s("ev") == "message" && strings.Contains(e.s("body"), token) }
}

func TestInteropIM(t *testing.T) {
	pairs := []struct{ alice, bob string }{{"slixmpp", "xmppjs"}, {"xmppjs", "slixmpp"}}
	for i, p := range pairs {
		t.Run(p.alice+"-and-"+p.bob, func(t *testing.T) {
			timing(t)
			// @xmpp/client enables stream management with resumption: killed,
			// its session hibernates and contacts see it leave only when the
			// resume timeout ends (XEP-0198), short here.
			s := startInteropServerWith(t, "resume_timeout = \"3s\"\n")
			imScenario(t, s, p.alice, p.bob, i == 1)
		})
	}
}

func imScenario(t *testing.T, s *interopServer, kindA, kindB string, direct bool) {
	aliceAcct, bobAcct := s.Users["alice"], s.Users["bob"]
	alice, bob := aliceAcct.JID(), bobAcct.JID()
	tok := randomHex(4)

	A := startActor(t, s, kindA, aliceAcct, direct)
	B := startActor(t, s, kindB, bobAcct, !direct)
	A.do("presence")
	B.do("presence")

	// Subscriptions both ways (RFC 6121 §3): requests arrive from the bare JID.
	A.do("subscribe %s", bob)
	B.expect("alice's subscription request", presenceFrom(alice, "subscribe"))
	B.do("approve %s", alice)
	B.do("subscribe %s", alice)
	A.expect("bob's subscription request", presenceFrom(bob, "subscribe"))
	A.do("approve %s", bob)
	A.expect("bob's presence after approval", presenceFrom(bob+"/", "available"))
	B.expect("alice's presence after approval", presenceFrom(alice+"/", "available"))
	for _, x := range []struct {
		a       *actor
		contact string
	}{{A, bob}, {B, alice}} {
		x.a.do("roster")
		item := x.a.expect("roster item "+x.contact, func(e imEvent) bool { return e.s("ev") == "item" && e.s("jid") == x.contact })
		if item.s("subscription") != "both" {
			t.Fatalf("%s's roster has %s with subscription %q, want both", x.a.name, x.contact, item.s("subscription"))
		}
		x.a.expect("end of roster", func(e imEvent) bool { return e.s("ev") == "roster-end" })
	}

	// Presence indicators reach the contact unchanged.
	B.do("presence away at lunch %s", tok)
	p := A.expect("bob away", func(e imEvent) bool {
		return presenceFrom(bob+"/", "available")(e) && e.s("show") == "away"
	})
	if p.s("status") != "at lunch "+tok {
		t.Fatalf("status %q, want %q", p.s("status"), "at lunch "+tok)
	}
	// The sender hears its own presence back (RFC 6121 §4.4.2): clients such as
	// Gajim show their own status only from that echo.
	own := B.expect("bob's own away presence, echoed", func(e imEvent) bool {
		return presenceFrom(bob+"/", "available")(e) && e.s("show") == "away"
	})
	if own.s("status") != "at lunch "+tok {
		t.Fatalf("echoed status %q, want %q", own.s("status"), "at lunch "+tok)
	}

	// Going offline cleanly, coming back, and being killed.
	B.quit()
	A.expect("bob unavailable after a clean logout", presenceFrom(bob+"/", "unavailable"))
	B = startActor(t, s, kindB, bobAcct, !direct)
	B.do("presence")
	A.expect("bob available again", presenceFrom(bob+"/", "available"))
	B.kill()
	A.expect("bob unavailable after being killed", presenceFrom(bob+"/", "unavailable"))

	// A message to offline bob waits for him, with a delay stamp (XEP-0160, XEP-0203).
	A.do("message %s while you were away %s", bob, tok)
	A.do("roster") // a round trip: the message was processed (stored) before this answers
	A.expect("roster after the offline message", func(e imEvent) bool { return e.s("ev") == "roster-end" })
	B = startActor(t, s, kindB, bobAcct, !direct)
	B.do("presence")
	m := B.expect("the offline message", messageWith("while you were away "+tok))
	if m["delay"] != true {
		t.Fatalf("offline message without a delay stamp: %v", m)
	}
	if !strings.HasPrefix(m.s("from"), alice+"/") {
		t.Fatalf("offline message from %q", m.s("from"))
	}

	// Blocking (XEP-0191): bob blocks alice; her messages no longer reach him
	// and his to her are refused; unblocking restores both.
	B.do("block %s", alice)
	if r := B.expect("block result", func(e imEvent) bool { return e.s("ev") == "iq" && e.s("op") == "block" }); r.s("type") != "result" {
		t.Fatalf("block failed: %v", r)
	}
	A.do("message %s blocked-%s", bob, tok)
	B.do("message %s from a blocker %s", alice, tok)
	e := B.expect("error for messaging a blocked contact", func(e imEvent) bool { return e.s("ev") == "error" })
	if !strings.Contains(fmt.Sprint(e["conditions"]), "not-acceptable") {
		t.Fatalf("error %v, want not-acceptable", e)
	}
	B.do("unblock %s", alice)
	B.expect("unblock result", func(e imEvent) bool { return e.s("ev") == "iq" && e.s("op") == "unblock" && e.s("type") == "result" })
	A.do("message %s unblocked-%s", bob, tok)
	B.expect("the message after unblocking", messageWith("unblocked-"+tok))
	for _, ev := range B.history {
		if messageWith("blocked-"+tok)(ev) && !strings.Contains(ev.s("body"), "unblocked") {
			t.Fatalf("bob received a message from alice while she was blocked: %v", ev)
		}
	}
	for _, ev := range A.history {
		if messageWith("from a blocker " + tok)(ev) {
			t.Fatalf("alice received bob's message while he blocked her: %v", ev)
		}
	}

	A.quit()
	B.quit()
}

// TestInteropAccountData: what Gajim and Conversations fetch after login,
// through slixmpp's own plugins: vcard-temp (own and a contact's), private
// XML storage, and last activity of a contact who went offline.
func TestInteropAccountData(t *testing.T) {
	timing(t)
	s := startInteropServer(t)
	aliceAcct, bobAcct := s.Users["alice"], s.Users["bob"]
	alice, bob := aliceAcct.JID(), bobAcct.JID()
	A := startActor(t, s, "slixmpp", aliceAcct, false)
	B := startActor(t, s, "slixmpp", bobAcct, true)
	A.do("presence")
	B.do("presence")

	A.do("vcard-set Alice Liddell")
	A.expect("vcard published", func(e imEvent) bool { return e.s("ev") == "vcard-set" })
	for _, x := range []*actor{A, B} {
		x.do("vcard-get %s", alice)
		if v := x.expect("alice's vcard", func(e imEvent) bool { return e.s("ev") == "vcard" }); v.s("fn") != "Alice Liddell" {
			t.Fatalf("%s read FN %q", x.name, v.s("fn"))
		}
	}

	A.do("private-set remember the milk")
	A.expect("private stored", func(e imEvent) bool { return e.s("ev") == "private-set" })
	A.do("private-get")
	if p := A.expect("private read back", func(e imEvent) bool { return e.s("ev") == "private" }); p.s("text") != "remember the milk" {
		t.Fatalf("private XML read back %q", p.s("text"))
	}

	// Last activity needs a subscription to bob's presence.
	A.do("last %s", bob)
	if e := A.expect("last activity refused", func(e imEvent) bool { return e.s("ev") == "iq-error" && e.s("op") == "last" }); e.s("condition") != "forbidden" {
		t.Fatalf("last activity without subscription: %v, want forbidden", e)
	}
	A.do("subscribe %s", bob)
	B.expect("subscription request", presenceFrom(alice, "subscribe"))
	B.do("approve %s", alice)
	A.expect("bob's presence", presenceFrom(bob+"/", "available"))
	B.quit()
	A.expect("bob offline", presenceFrom(bob+"/", "unavailable"))
	A.do("last %s", bob)
	if e := A.expect("bob's last activity", func(e imEvent) bool { return e.s("ev") == "last" }); e["seconds"] == nil {
		t.Fatalf("last activity: %v", e)
	}
	A.quit()
}
