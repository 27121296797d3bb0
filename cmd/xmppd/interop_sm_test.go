//go:build interop

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInteropSlixmppSM: slixmpp's xep_0198 enables stream management with
// resumption; its TCP connection is cut without FIN while messages keep
// coming; it reconnects and resumes: every message arrives exactly once
// (testdata/interop/slixmpp_sm.py).
func TestInteropSlixmppSM(t *testing.T) {
	timing(t)
	py := needPython(t)
	s := startInteropServer(t)
	alice, bob := s.Users["alice"], s.Users["bob"]
	script := filepath.Join(interopDir(t), "slixmpp_sm.py")
	out, _ := runClient(t, 90*time.Second, false, "", nil, py, script,
		"--addr", s.StartTLS,
		"--jid-a", alice.JID(), "--pass-a", alice.Password,
		"--jid-b", bob.JID(), "--pass-b", bob.Password)
	if r := findResult(results(out), "sm"); r == nil || r["sm"] != "ok" {
		t.Fatalf("no RESULT sm=ok line")
	}
}

// TestInteropXmppJSSM: @xmpp/client's stream-management enables SM inline
// in Bind 2; its TCP connection is reset; it reconnects and resumes inline
// in SASL2: every message arrives exactly once
// (testdata/interop/js/xmppjs_sm.mjs).
func TestInteropXmppJSSM(t *testing.T) {
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
			out, _ := runClient(t, 60*time.Second, false, jsDir, []string{"NODE_NO_WARNINGS=1"}, node,
				"xmppjs_sm.mjs", tr.service, "localhost", alice.Local, alice.Password, bob.Local, bob.Password)
			if r := findResult(results(out), "sm"); r == nil || r["sm"] != "ok" {
				t.Fatalf("no RESULT sm=ok line")
			}
		})
	}
}

// smProcess is one `xmppd serve` run on a config of its own; stop sends
// SIGTERM, as an operator's restart does.
type smProcess struct {
	cmd    *exec.Cmd
	log    *logBuffer
	exited chan error
	addr   string // the STARTTLS listener
}

func startSMProcess(t *testing.T, config string) *smProcess {
	t.Helper()
	p := &smProcess{cmd: exec.Command(interopBin, "--config", config, "serve"), log: newLogBuffer(), exited: make(chan error, 1)}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logDone := make(chan struct{})
	go func() { p.log.consume(stderr); close(logDone) }()
	go func() { <-logDone; p.exited <- p.cmd.Wait() }()
	m, err := p.log.waitFor(reStartTLS, 15*time.Second)
	if err != nil {
		t.Fatalf("STARTTLS listener: %v\n%s", err, p.log)
	}
	p.addr = m[1]
	return p
}

func (p *smProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("xmppd serve exited with %v after SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		t.Fatal("xmppd serve did not stop within 20s of SIGTERM")
	}
}

// TestInteropSlixmppSMRestart (★): as TestInteropSlixmppSM, but the server
// is stopped with SIGTERM and started again between the cut and the
// resume: slixmpp resumes on the new process and gets every message once.
func TestInteropSlixmppSMRestart(t *testing.T) {
	timing(t)
	py := needPython(t)
	checkPlatform(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "xmppd.toml")
	cfg := fmt.Sprintf("domains = [\"localhost\"]\ndata_dir = %q\n\n[log]\nlevel = \"debug\"\n\n[c2s]\nlisten = [\"127.0.0.1:0\"]\ndirect_tls = []\n\n[s2s]\nlisten = []\ndirect_tls = []\n", filepath.Join(dir, "data"))
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	users := map[string]account{"alice": {"alice", "alice-" + randomHex(6)}, "bob": {"bob", "bob-" + randomHex(6)}}
	for _, u := range users {
		xmppdCLI(t, config, u.Password+"\n", "user", "add", u.JID(), "--password-stdin")
	}
	first := startSMProcess(t, config)
	gate := filepath.Join(dir, "gate")
	script := filepath.Join(interopDir(t), "slixmpp_sm.py")
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	second := make(chan *smProcess, 1)
	go func() {
		out, err := runClient(t, 120*time.Second, false, "", nil, py, script,
			"--addr", first.addr, "--restart-file", gate, "--addr2", "wait-for-gate",
			"--jid-a", users["alice"].JID(), "--pass-a", users["alice"].Password,
			"--jid-b", users["bob"].JID(), "--pass-b", users["bob"].Password)
		done <- result{out, err}
	}()
	// The script cuts bob, lets alice write, then waits for "go".
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, _ := os.ReadFile(gate); strings.TrimSpace(string(b)) == "cut" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the script never cut its connection")
		}
		time.Sleep(50 * time.Millisecond)
	}
	first.stop(t)
	if !strings.Contains(first.log.String(), `msg="resumable sessions saved" component=c2s count=1`) {
		t.Errorf("the first run did not save bob's session:\n%s", first.log)
	}
	next := startSMProcess(t, config)
	second <- next
	t.Cleanup(func() { next.stop(t) })
	if err := os.WriteFile(gate+".addr", []byte(next.addr), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gate, []byte("go"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r := findResult(results(r.out), "sm"); r == nil || r["sm"] != "ok" {
		t.Fatalf("no RESULT sm=ok line; second server's log:\n%s", next.log)
	}
}
