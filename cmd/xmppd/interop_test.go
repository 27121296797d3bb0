//go:build interop

// Interop tests: the real xmppd binary against real third-party clients
// (slixmpp, xmpp.js, go-sendxmpp, profanity). They only build with
// `-tags interop`:
//
//	go test -tags interop -count=1 -v ./cmd/xmppd/ -run Interop
//
// A client that is not installed skips its test, except with CI=true, where
// it fails it (.ci/run installs everything). The client scripts live in
// testdata/interop. Everything stays on loopback: listeners are 127.0.0.x:0
// and the clients are given IP literals, so nothing looks up DNS.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// interopBin is the xmppd binary built once by TestMain.
var interopBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xmppd-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		os.Exit(1)
	}
	interopBin = filepath.Join(dir, "xmppd")
	start := time.Now()
	build := exec.Command("go", "build", "-o", interopBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "interop: building xmppd:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "interop: built %s in %.1fs\n", interopBin, time.Since(start).Seconds())
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// inCI reports whether missing clients must fail the test instead of skipping it.
func inCI() bool { return os.Getenv("CI") == "true" }

// needTool returns the path of an executable, or skips the test (fails it in CI).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if inCI() {
			t.Fatalf("%s is not installed (CI=true: .ci/run must install it): %v", name, err)
		}
		t.Skipf("%s is not installed; skipping (install it to run this interop test): %v", name, err)
	}
	return p
}

// needPython returns Debian's /usr/bin/python3 if it can import slixmpp. The
// python3 on PATH may be another install that does not see Debian's packages.
func needPython(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	out, err := exec.Command(py, "-c", "import slixmpp; print(slixmpp.__version__)").CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("%s cannot import slixmpp (apt-get install python3-slixmpp): %v: %s", py, err, bytes.TrimSpace(out))
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Logf("slixmpp %s", bytes.TrimSpace(out))
	return py
}

// interopDir is testdata/interop, absolute.
func interopDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "..", "testdata", "interop"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// timing logs how long the test took, in a line that is easy to grep.
func timing(t *testing.T) {
	start := time.Now()
	t.Cleanup(func() { t.Logf("TIMING %s: %.2fs", t.Name(), time.Since(start).Seconds()) })
}

// logBuffer collects the server's stderr; waitFor blocks until a line matches.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
	added chan struct{} // closed and replaced on every new line
	done  bool
}

func newLogBuffer() *logBuffer { return &logBuffer{added: make(chan struct{})} }

func (l *logBuffer) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		close(l.added)
		l.added = make(chan struct{})
		l.mu.Unlock()
	}
	l.mu.Lock()
	l.done = true
	close(l.added)
	l.added = make(chan struct{})
	l.mu.Unlock()
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// waitFor returns the submatches of the first line matching re.
func (l *logBuffer) waitFor(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.After(timeout)
	for i := 0; ; {
		l.mu.Lock()
		for ; i < len(l.lines); i++ {
			if m := re.FindStringSubmatch(l.lines[i]); m != nil {
				l.mu.Unlock()
				return m, nil
			}
		}
		done, ch := l.done, l.added
		l.mu.Unlock()
		if done {
			return nil, fmt.Errorf("server output ended without a line matching %q", re)
		}
		select {
		case <-ch:
		case <-deadline:
			return nil, fmt.Errorf("no line matching %q within %v", re, timeout)
		}
	}
}

// account is one user of the test server.
type account struct {
	Local, Password string
}

func (a account) JID() string { return a.Local + "@localhost" }

// interopServer is one running `xmppd serve`.
type interopServer struct {
	Dir       string // data folder and config live here
	Config    string
	StartTLS  string // host:port of the STARTTLS listener
	DirectTLS string // host:port of the Direct TLS listener
	Log       *logBuffer
	Users     map[string]account // alice and carol made before start, bob while running
}

var (
	reStartTLS  = regexp.MustCompile(`msg=listening service=c2s kind=starttls addr=(\S+)`)
	reDirectTLS = regexp.MustCompile(`msg=listening service=c2s kind=direct-tls addr=(\S+)`)
	reAdmin     = regexp.MustCompile(`msg="admin socket listening"`)
)

// xmppdCLI runs one xmppd command with the test config and returns its stdout.
func xmppdCLI(t *testing.T, config, stdin string, args ...string) string {
	t.Helper()
	if config != "" {
		args = append([]string{"--config", config}, args...)
	}
	cmd := exec.Command(interopBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("xmppd %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// startInteropServer writes a config (domain localhost, STARTTLS and Direct
// TLS on loopback port 0, debug logs), creates alice and carol with the CLI,
// starts `xmppd serve`, waits for both listeners, then creates bob through
// the admin socket of the running server. At the end of the test it sends
// SIGTERM and checks the server exits 0 after logging its shutdown.
func startInteropServer(t *testing.T) *interopServer {
	t.Helper()
	return startInteropServerWith(t, "")
}

// startInteropServerWith is startInteropServer with more [c2s] settings
// (TOML lines).
func startInteropServerWith(t *testing.T, c2s string) *interopServer {
	t.Helper()
	checkPlatform(t)
	dir := t.TempDir()
	s := &interopServer{
		Dir:    dir,
		Config: filepath.Join(dir, "xmppd.toml"),
		Log:    newLogBuffer(),
		Users: map[string]account{
			"alice": {"alice", "alice-" + randomHex(6)},
			"bob":   {"bob", "bob-" + randomHex(6)},
			"carol": {"carol", "carol-" + randomHex(6)},
		},
	}
	// The Direct TLS listener is on 127.0.0.2: the config check rejects the
	// same "127.0.0.1:0" in both lists as a duplicate address (see the report).
	cfg := fmt.Sprintf(`# written by interop_test.go
domains = ["localhost"]
data_dir = %q

[log]
level = "debug"
format = "text"

[c2s]
listen = ["127.0.0.1:0"]
direct_tls = ["127.0.0.2:0"]
%s
[s2s]
listen = ["127.0.0.1:0"]
direct_tls = []
`, filepath.Join(dir, "data"), c2s)
	if err := os.WriteFile(s.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	xmppdCLI(t, "", "", "config", "check", s.Config)

	// Accounts made while the server is stopped: the CLI opens the database.
	for _, name := range []string{"alice", "carol"} {
		u := s.Users[name]
		out := xmppdCLI(t, s.Config, u.Password+"\n", "user", "add", u.JID(), "--password-stdin")
		if want := "user " + u.JID() + " created"; !strings.Contains(out, want) {
			t.Fatalf("user add: got %q, want %q", out, want)
		}
	}

	cmd := exec.Command(interopBin, "--config", s.Config, "serve")
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = os.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logDone := make(chan struct{})
	go func() {
		s.Log.consume(stderr)
		close(logDone)
	}()
	exited := make(chan error, 1)
	go func() {
		<-logDone // read all output before Wait closes the pipe
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		t0 := time.Now()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("SIGTERM: %v", err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("xmppd serve exited with %v after SIGTERM, want status 0", err)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("xmppd serve did not exit within 20s of SIGTERM")
			<-exited
		}
		log := s.Log.String()
		for _, want := range []string{`msg="shutting down"`, `msg=stopped`} {
			if !strings.Contains(log, want) {
				t.Errorf("server log lacks %s after SIGTERM", want)
			}
		}
		if t.Failed() || testing.Verbose() && os.Getenv("INTEROP_SERVER_LOG") != "" {
			t.Logf("server log:\n%s", log)
		}
		t.Logf("server stopped with SIGTERM in %.2fs, exit status 0", time.Since(t0).Seconds())
	})

	m, err := s.Log.waitFor(reStartTLS, 15*time.Second)
	if err != nil {
		t.Fatalf("STARTTLS listener: %v\n%s", err, s.Log)
	}
	s.StartTLS = m[1]
	if m, err = s.Log.waitFor(reDirectTLS, 15*time.Second); err != nil {
		t.Fatalf("Direct TLS listener: %v\n%s", err, s.Log)
	}
	s.DirectTLS = m[1]
	if _, err := s.Log.waitFor(reAdmin, 15*time.Second); err != nil {
		t.Fatalf("admin socket: %v\n%s", err, s.Log)
	}

	// An account made while the server runs: the database is locked by the
	// server, so this can only work through the admin socket.
	bob := s.Users["bob"]
	out := xmppdCLI(t, s.Config, bob.Password+"\n", "user", "add", bob.JID(), "--password-stdin")
	if want := "user " + bob.JID() + " created"; !strings.Contains(out, want) {
		t.Fatalf("user add (running server): got %q, want %q", out, want)
	}
	reAdded := regexp.MustCompile(`msg="admin request done" component=admin op=add jid=` + regexp.QuoteMeta(bob.JID()))
	if _, err := s.Log.waitFor(reAdded, 5*time.Second); err != nil {
		t.Fatalf("bob was not added through the admin socket: %v", err)
	}
	list := xmppdCLI(t, s.Config, "", "user", "list")
	for _, u := range s.Users {
		if !strings.Contains(list, u.JID()+"\n") {
			t.Fatalf("user list lacks %s:\n%s", u.JID(), list)
		}
	}
	t.Logf("xmppd serving localhost: STARTTLS %s, Direct TLS %s; alice and carol added before start, bob through the admin socket",
		s.StartTLS, s.DirectTLS)
	return s
}

// runClient runs a client command with a timeout and returns its combined
// output; it fails the test on a non-zero exit unless allowFail.
func runClient(t *testing.T, timeout time.Duration, allowFail bool, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	t.Logf("$ %s %s  (%.2fs, err=%v)\n%s", filepath.Base(name), redact(strings.Join(args, " ")), time.Since(t0).Seconds(), err, indent(out.String()))
	if err != nil && !allowFail {
		t.Fatalf("%s failed: %v", filepath.Base(name), err)
	}
	return out.String(), err
}

var rePassword = regexp.MustCompile(`(--pass-[ab] |-p )\S+`)

func redact(s string) string { return rePassword.ReplaceAllString(s, "${1}***") }

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// results returns the key=value pairs of every "RESULT ..." line of a client.
func results(out string) []map[string]string {
	var rs []map[string]string
	for _, line := range strings.Split(out, "\n") {
		_, rest, ok := strings.Cut(line, "RESULT ")
		if !ok {
			continue
		}
		r := map[string]string{}
		for _, f := range strings.Fields(rest) {
			if k, v, ok := strings.Cut(f, "="); ok {
				r[k] = v
			}
		}
		rs = append(rs, r)
	}
	return rs
}

func findResult(rs []map[string]string, key string) map[string]string {
	for _, r := range rs {
		if _, ok := r[key]; ok {
			return r
		}
	}
	return nil
}

// checkPlatform skips on systems where the loopback alias 127.0.0.2 may not exist.
func checkPlatform(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("interop tests run on Linux (they listen on 127.0.0.2)")
	}
}
