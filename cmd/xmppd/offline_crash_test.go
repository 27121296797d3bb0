package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xeps/offline"
)

// TestOfflineMessageSurvivesSIGKILL: a message taken for offline storage is on
// disk before the server answers the sender's next stanza, so killing the
// real binary with SIGKILL right after loses nothing. Alice sends bob (who is
// not connected) a message and then a ping; the ping's answer proves the
// message was routed, hence committed (one session's stanzas are processed in
// order). The server is killed, the database is checked, the server is
// started again on the same data folder, and bob gets the message when he
// comes online.
func TestOfflineMessageSurvivesSIGKILL(t *testing.T) {
	bin, config, data := crashSetup(t)

	srv := startCrashServer(t, bin, config)
	alice := dialWire(t, srv.addr, false)
	alice.login("localhost", "alice", "a", false)
	alice.send("<message to='bob@localhost' type='chat' id='m1'><body>survives a crash</body></message>")
	alice.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if el := alice.next(); el.Get("id") != "p1" || el.Get("type") != "result" {
		t.Fatalf("got %s, want the ping result (the message must not bounce)", el)
	}
	srv.kill()

	// The killed server left the message on disk.
	db, err := storage.Open(filepath.Join(data, "xmppd.db"), storage.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n, err := db.Archive(offline.ArchiveName).Count(context.Background(), "localhost", "bob")
	db.Close()
	if err != nil || n != 1 {
		t.Fatalf("after SIGKILL bob has %d offline messages (%v), want 1", n, err)
	}

	if !hasModule("presence") {
		// Delivery needs the presence module, which fires the initial-presence hook.
		t.Log("no presence module yet: delivery after restart not checked")
		return
	}
	srv = startCrashServer(t, bin, config)
	bob := dialWire(t, srv.addr, false)
	bobJID := bob.login("localhost", "bob", "b", false)
	bob.send("<presence/>")
	for {
		el := bob.next()
		if !el.Is(stanza.NSClient, "message") {
			continue // bob's own presence, if echoed
		}
		if el.Get("id") != "m1" || el.Get("to") != bobJID || el.Child(stanza.NSClient, "body").Text() != "survives a crash" ||
			el.Child(stanza.NSDelay, "delay") == nil {
			t.Fatalf("bob got %s", el)
		}
		break
	}
}

// crashSetup builds the binary and writes a config (domain localhost,
// loopback listeners) with a data folder holding alice and bob, made with
// the CLI. It skips the test with -short.
func crashSetup(t *testing.T) (bin, config, data string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin = filepath.Join(dir, "xmppd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data = filepath.Join(dir, "data")
	config = filepath.Join(dir, "xmppd.toml")
	err := os.WriteFile(config, fmt.Appendf(nil, "domains = [\"localhost\"]\ndata_dir = %q\n[c2s]\nlisten = [\"127.0.0.1:0\"]\ndirect_tls = []\n[s2s]\nlisten = [\"127.0.0.1:0\"]\ndirect_tls = []\n", data), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		cmd := exec.Command(bin, "--config", config, "user", "add", u+"@localhost", "--password-stdin")
		cmd.Stdin = strings.NewReader(u + "pass\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("user add %s: %v\n%s", u, err, out)
		}
	}
	return bin, config, data
}

func hasModule(name string) bool {
	for _, m := range modules(DefaultConfig()) {
		if m.Name() == name {
			return true
		}
	}
	return false
}

// crashServer is one `xmppd serve` process.
type crashServer struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr net.Addr
	log  *crashLog
	done chan struct{}
}

// crashLog collects the server's stderr.
type crashLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *crashLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

var reCrashListen = regexp.MustCompile(`msg=listening service=c2s kind=starttls addr=(\S+)`)

// startCrashServer runs `xmppd serve` and waits for its STARTTLS listener.
// At the end of the test it is killed if still running.
func startCrashServer(t *testing.T, bin, config string) *crashServer {
	t.Helper()
	s := &crashServer{t: t, cmd: exec.Command(bin, "--config", config, "serve"), log: &crashLog{}, done: make(chan struct{})}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.log.mu.Lock()
			s.log.buf.WriteString(line + "\n")
			s.log.mu.Unlock()
			if m := reCrashListen.FindStringSubmatch(line); m != nil {
				select {
				case addrs <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("server log:\n%s", s.log)
		}
	})
	select {
	case a := <-addrs:
		if s.addr, err = net.ResolveTCPAddr("tcp", a); err != nil {
			t.Fatal(err)
		}
	case <-s.done:
		t.Fatalf("xmppd serve exited:\n%s", s.log)
	case <-time.After(15 * time.Second):
		t.Fatalf("xmppd serve did not listen within 15s:\n%s", s.log)
	}
	return s
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *crashServer) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill() // SIGKILL on Unix: no shutdown code runs
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.t.Errorf("xmppd serve still running 10s after SIGKILL")
	}
}
