package main

// These tests run every scenario, at tiny sizes, against the real xmppd
// binary (built once by TestMain; cmd/xmppd is a main package and cannot be
// imported), started on 127.0.0.1:0 with a config in a temporary folder. The
// accounts are created with `xmppbench users` through the server's admin
// socket.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var xmppdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xmppbench-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	xmppdBin = filepath.Join(dir, "xmppd")
	build := exec.Command("go", "build", "-o", xmppdBin, "../xmppd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building xmppd:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type testServer struct {
	pid                 int
	config              string
	starttls, directTLS string
}

var (
	reListen = regexp.MustCompile(`msg=listening service=c2s kind=(starttls|direct-tls) addr=(\S+)`)
	reAdmin  = regexp.MustCompile(`msg="admin socket listening"`)
)

// startServer runs `xmppd serve` with a fresh data folder and waits for its
// two c2s listeners and the admin socket.
func startServer(t *testing.T) *testServer { return startServerWith(t, "") }

// startServerWith is startServer with more lines for the [c2s] section.
func startServerWith(t *testing.T, c2sExtra string) *testServer {
	t.Helper()
	dir := t.TempDir()
	s := &testServer{config: filepath.Join(dir, "xmppd.toml")}
	// Direct TLS on 127.0.0.2: the config check refuses the same
	// "127.0.0.1:0" twice.
	conf := fmt.Sprintf(`domains = ["localhost"]
data_dir = %q
[log]
level = "info"
[c2s]
listen = ["127.0.0.1:0"]
direct_tls = ["127.0.0.2:0"]
%s
[s2s]
listen = []
direct_tls = []
`, filepath.Join(dir, "data"), c2sExtra)
	if err := os.WriteFile(s.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(xmppdBin, "--config", s.config, "serve")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.pid = cmd.Process.Pid
	var logMu sync.Mutex
	var log strings.Builder
	ready := make(chan struct{})
	markReady := sync.OnceFunc(func() { close(ready) })
	go func() {
		sc := bufio.NewScanner(stderr)
		admin := false
		for sc.Scan() {
			line := sc.Text()
			logMu.Lock()
			log.WriteString(line + "\n")
			if m := reListen.FindStringSubmatch(line); m != nil {
				if m[1] == "starttls" {
					s.starttls = m[2]
				} else {
					s.directTLS = m[2]
				}
			}
			admin = admin || reAdmin.MatchString(line)
			if admin && s.starttls != "" && s.directTLS != "" {
				markReady()
			}
			logMu.Unlock()
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("xmppd did not stop within 10s of SIGTERM")
		}
		if t.Failed() {
			logMu.Lock()
			t.Logf("server log:\n%s", log.String())
			logMu.Unlock()
		}
	})
	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("xmppd exited: %v\n%s", err, log.String())
	case <-time.After(15 * time.Second):
		t.Fatal("xmppd did not start listening within 15s")
	}
	return s
}

// bench runs xmppbench with args and returns the decoded JSON report and the exit status.
func runBench(t *testing.T, args ...string) (map[string]any, map[string]float64, int) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append(args, "--json", "--progress=false")
	code := run(ctx, args, &out, &errb)
	var rep map[string]any
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("xmppbench %s: exit %d, output is not JSON: %v\n%s\n%s", strings.Join(args, " "), code, err, out.String(), errb.String())
	}
	figs := map[string]float64{}
	for k, v := range rep["figures"].(map[string]any) {
		figs[k] = v.(map[string]any)["value"].(float64)
	}
	if code != 0 || testing.Verbose() {
		t.Logf("xmppbench %s → exit %d\n%s\nerrors: %v", strings.Join(args, " "), code, indentJSON(figs), rep["errors"])
	}
	return rep, figs, code
}

func indentJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func createUsers(t *testing.T, s *testServer, prefix string, n int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"users", "--server", "xmppd", "--config", s.config,
		"--count", strconv.Itoa(n), "--prefix", prefix, "--password", "pw-" + prefix}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), fmt.Sprintf("%d created", n)) {
		t.Fatalf("users: exit %d\n%s%s", code, out.String(), errb.String())
	}
}

func ordered(t *testing.T, figs map[string]float64, keys ...string) {
	t.Helper()
	for i := 1; i < len(keys); i++ {
		if figs[keys[i-1]] > figs[keys[i]] {
			t.Errorf("%s = %v > %s = %v", keys[i-1], figs[keys[i-1]], keys[i], figs[keys[i]])
		}
	}
	if figs[keys[0]] <= 0 {
		t.Errorf("%s = %v, want > 0", keys[0], figs[keys[0]])
	}
}

func want(t *testing.T, figs map[string]float64, key string, v float64) {
	t.Helper()
	if got, ok := figs[key]; !ok || got != v {
		t.Errorf("%s = %v (present %v), want %v", key, got, ok, v)
	}
}

func TestScenariosAgainstXmppd(t *testing.T) {
	s := startServer(t)
	createUsers(t, s, "u", 20)
	pid := strconv.Itoa(s.pid)
	common := func(addr string, extra ...string) []string {
		return append([]string{"--addr", addr, "--prefix", "u", "--password", "pw-u"}, extra...)
	}

	t.Run("users-again", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"users", "--config", s.config, "--count", "3", "--password", "pw-u"}, &out, &errb)
		if code != 0 || !strings.Contains(out.String(), "0 created, 3 existed") {
			t.Errorf("rerun: exit %d: %s%s", code, out.String(), errb.String())
		}
	})

	t.Run("login", func(t *testing.T) {
		rep, figs, code := runBench(t, append([]string{"login"}, common(s.starttls, "--n", "20", "--concurrency", "5", "--server-pid", pid)...)...)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		want(t, figs, "logins_ok", 20)
		want(t, figs, "logins_failed", 0)
		ordered(t, figs, "login_p50_ms", "login_p99_ms", "login_max_ms")
		if figs["logins_per_s"] <= 0 {
			t.Errorf("logins/s = %v", figs["logins_per_s"])
		}
		if sasl := fmt.Sprint(rep["sasl"]); sasl != "[SCRAM-SHA-256]" {
			t.Errorf("sasl = %s, want SCRAM-SHA-256", sasl)
		}
		tool := rep["tool"].(map[string]any)
		if tool["cpu_s"].(float64) <= 0 || tool["peak_rss_bytes"].(float64) <= 0 {
			t.Errorf("tool usage not measured: %v", tool)
		}
		if srv, ok := rep["server_process"].(map[string]any); !ok || srv["cpu_s"].(float64) <= 0 {
			t.Errorf("server CPU not measured: %v", rep["server_process"])
		}
	})

	t.Run("login-sasl2", func(t *testing.T) {
		// SASL2 with an inline bind, SCRAM's server signature checked in
		// <additional-data/>; then presence and a chat over those sessions.
		for _, sc := range [][]string{
			{"login", "--n", "10", "--concurrency", "5"},
			{"chat", "--pairs", "2", "--duration", "300ms"},
		} {
			rep, figs, code := runBench(t, append(sc[:1:1], common(s.starttls, append([]string{"--sasl2"}, sc[1:]...)...)...)...)
			if code != 0 {
				t.Fatalf("%s: exit %d", sc[0], code)
			}
			if sasl := fmt.Sprint(rep["sasl"]); sasl != "[SCRAM-SHA-256 (SASL2, Bind 2)]" {
				t.Errorf("%s: sasl = %s, want SCRAM-SHA-256 over SASL2 with Bind 2", sc[0], sasl)
			}
			if sc[0] == "login" {
				want(t, figs, "logins_ok", 10)
			} else if figs["messages_delivered"] <= 0 || figs["lost"] != 0 {
				t.Errorf("chat over SASL2 sessions: %v delivered, %v lost", figs["messages_delivered"], figs["lost"])
			}
		}
	})

	t.Run("login-fast", func(t *testing.T) {
		// FAST (XEP-0484): the warm-up gets each account a token (a password
		// login, then the token's first use); the measured logins use the
		// token alone, bound to the TLS connection (HT-SHA-256-EXPR), and
		// check the server's proof. A second run finds the tokens in the cache.
		cache := filepath.Join(t.TempDir(), "cache")
		for run, wantWarmup := range []float64{3, 0} {
			rep, figs, code := runBench(t, append([]string{"login"}, common(s.directTLS, "--direct-tls", "--sasl2", "--fast",
				"--scram-cache", cache, "--users", "3", "--n", "9", "--concurrency", "3")...)...)
			if code != 0 {
				t.Fatalf("run %d: exit %d", run, code)
			}
			if sasl := fmt.Sprint(rep["sasl"]); sasl != "[HT-SHA-256-EXPR (SASL2, FAST, Bind 2)]" {
				t.Errorf("run %d: sasl = %s, want HT-SHA-256-EXPR over SASL2 with Bind 2", run, sasl)
			}
			if got := rep["params"].(map[string]any)["fast_warmup_accounts"]; got != wantWarmup {
				t.Errorf("run %d: %v accounts warmed up, want %v", run, got, wantWarmup)
			}
			want(t, figs, "logins_ok", 9)
			want(t, figs, "fast_logins", 9)
			want(t, figs, "fast_refused", 0)
		}
		// Tokens the server does not know (another server's, or revoked):
		// each account's first login falls back to its password and gets a
		// new token, which its later logins use.
		bogus := map[string][]byte{}
		for i := 1; i <= 3; i++ {
			bogus[fmt.Sprintf("fast u%d", i)] = []byte("HT-SHA-256-EXPR not-a-token")
		}
		b, _ := json.Marshal(bogus)
		if err := os.WriteFile(cache, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, figs, code := runBench(t, append([]string{"login"}, common(s.directTLS, "--direct-tls", "--sasl2", "--fast",
			"--scram-cache", cache, "--users", "3", "--n", "9", "--concurrency", "1")...)...)
		if code != 0 {
			t.Fatalf("refused tokens: exit %d", code)
		}
		want(t, figs, "logins_ok", 9)
		want(t, figs, "fast_refused", 3)
		want(t, figs, "fast_logins", 6)
	})

	t.Run("tls", func(t *testing.T) {
		_, figs, code := runBench(t, append([]string{"tls"}, common(s.directTLS, "--direct-tls", "--n", "30", "--concurrency", "5")...)...)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		want(t, figs, "handshakes_ok", 30)
		want(t, figs, "handshakes_failed", 0)
		ordered(t, figs, "handshake_p50_ms", "handshake_p99_ms")
		if figs["handshakes_per_s"] <= 0 {
			t.Errorf("handshakes/s = %v", figs["handshakes_per_s"])
		}
		// Without --direct-tls there is no TLS to measure: a clear refusal.
		if _, _, code := runBench(t, append([]string{"tls"}, common(s.starttls, "--n", "1")...)...); code != 1 {
			t.Errorf("tls without --direct-tls: exit %d, want 1", code)
		}
	})

	t.Run("login-direct-tls-sha1", func(t *testing.T) {
		rep, figs, code := runBench(t, append([]string{"login"}, common(s.directTLS, "--direct-tls", "--mech", "SCRAM-SHA-1", "--n", "5")...)...)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		want(t, figs, "logins_ok", 5)
		if rep["tls"] != "direct-tls" || fmt.Sprint(rep["sasl"]) != "[SCRAM-SHA-1]" {
			t.Errorf("tls %v sasl %v", rep["tls"], rep["sasl"])
		}
	})

	t.Run("wrong-password", func(t *testing.T) {
		_, figs, code := runBench(t, "login", "--addr", s.starttls, "--prefix", "u", "--password", "nope", "--n", "2", "--users", "2")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		want(t, figs, "logins_failed", 2)
	})

	t.Run("idle", func(t *testing.T) {
		_, figs, code := runBench(t, append([]string{"idle"}, common(s.starttls, "--n", "10", "--hold", "500ms", "--settle", "100ms", "--server-pid", pid)...)...)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		want(t, figs, "sessions_ok", 10)
		want(t, figs, "sessions_live_end", 10)
		want(t, figs, "sessions_dropped", 0)
		if figs["server_rss_held"] <= 0 {
			t.Errorf("server RSS not read: %v", figs["server_rss_held"])
		}
		if _, ok := figs["server_rss_per_session"]; !ok {
			t.Error("no server_rss_per_session")
		}
	})

	t.Run("chat", func(t *testing.T) {
		_, figs, code := runBench(t, append([]string{"chat"}, common(s.starttls, "--pairs", "5", "--duration", "1s", "--drain", "5s")...)...)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		if figs["messages_sent"] < 10 {
			t.Errorf("only %v messages sent", figs["messages_sent"])
		}
		want(t, figs, "messages_delivered", figs["messages_sent"])
		for _, k := range []string{"lost", "duplicated", "reordered", "unexpected", "sessions_dropped"} {
			want(t, figs, k, 0)
		}
		ordered(t, figs, "latency_p50_ms", "latency_p99_ms", "latency_p999_ms", "latency_max_ms")
	})

	t.Run("chat-rate", func(t *testing.T) {
		// 10 senders × 20/s × 1 s: about 200 messages (each sender starts
		// within one interval and sends at 0, 50 ms, ...).
		_, figs, code := runBench(t, append([]string{"chat"}, common(s.starttls, "--pairs", "5", "--duration", "1s", "--rate", "20")...)...)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		if n := figs["messages_delivered"]; n < 180 || n > 210 || n != figs["messages_sent"] {
			t.Errorf("delivered %v of %v sent, want about 200", n, figs["messages_sent"])
		}
		want(t, figs, "lost", 0)
	})

	t.Run("presence", func(t *testing.T) {
		args := append([]string{"presence"}, common(s.starttls, "--n", "5", "--contacts", "2", "--drain", "5s")...)
		_, figs, code := runBench(t, args...)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		want(t, figs, "setup_subscriptions", 10)
		want(t, figs, "presence_expected", 10)
		want(t, figs, "presence_distinct", 10)
		want(t, figs, "logins_ok", 5)
		if figs["presence_per_s"] <= 0 {
			t.Errorf("presence/s = %v", figs["presence_per_s"])
		}
		ordered(t, figs, "full_presence_p50_ms", "full_presence_p99_ms")
		// A second run finds the rosters ready and skips the setup.
		_, figs, code = runBench(t, args...)
		if code != 0 {
			t.Fatalf("second run: exit %d", code)
		}
		want(t, figs, "setup_subscriptions", 0)
		want(t, figs, "presence_distinct", 10)
	})

	t.Run("chat-sm", func(t *testing.T) {
		// XEP-0198 on every session: the server's acks cover every stanza
		// sent (a final <r/> after the drain), and h counted what arrived.
		_, figs, code := runBench(t, append([]string{"chat"}, common(s.starttls, "--sm", "--sm-ack-every", "5", "--pairs", "2",
			"--duration", "500ms", "--server-pid", pid)...)...)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		want(t, figs, "sm_sessions", 4)
		want(t, figs, "sm_unacked_end", 0)
		want(t, figs, "lost", 0)
		if figs["sm_acks"] < figs["messages_sent"]/5-4 || figs["sm_stanzas_in"] < figs["messages_delivered"] {
			t.Errorf("acks %v for %v sent (every 5th), h %v for %v delivered", figs["sm_acks"], figs["messages_sent"],
				figs["sm_stanzas_in"], figs["messages_delivered"])
		}
		if figs["server_cpu_per_msg_us"] <= 0 {
			t.Errorf("server CPU per message not measured")
		}
	})

	for _, cut := range []string{"silent", "rst"} {
		t.Run("resume-"+cut, func(t *testing.T) {
			// Sessions cut at once, messages sent to them meanwhile, every
			// one resumed: none lost, none twice.
			_, figs, code := runBench(t, append([]string{"resume"}, common(s.starttls, "--cut", cut, "--n", "6", "--senders", "2",
				"--before", "2", "--during", "3", "--offline", "300ms", "--drain", "5s", "--server-pid", pid)...)...)
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			want(t, figs, "resumed", 6)
			want(t, figs, "resume_failed", 0)
			want(t, figs, "messages_sent", 30)
			want(t, figs, "messages_delivered", 30)
			want(t, figs, "lost", 0)
			want(t, figs, "duplicated", 0)
			want(t, figs, "server_missed", 0)
			ordered(t, figs, "resume_p50_ms", "resume_p99_ms")
		})
	}

	t.Run("sasl2-inline", func(t *testing.T) {
		// SM enabled inline in Bind 2 and resumed inline in SASL2's
		// <authenticate/> (one round trip), as Conversations and Monal do.
		rep, figs, code := runBench(t, append([]string{"chat"}, common(s.starttls, "--sasl2", "--sm", "--pairs", "2", "--duration", "300ms")...)...)
		if code != 0 {
			t.Fatalf("chat: exit %d", code)
		}
		if sasl := fmt.Sprint(rep["sasl"]); sasl != "[SCRAM-SHA-256 (SASL2, Bind 2, SM inline)]" {
			t.Errorf("chat: sasl = %s", sasl)
		}
		want(t, figs, "sm_sessions", 4)
		want(t, figs, "sm_unacked_end", 0)
		rep, figs, code = runBench(t, append([]string{"resume"}, common(s.starttls, "--sasl2", "--n", "4", "--senders", "1",
			"--offline", "300ms", "--drain", "5s")...)...)
		if code != 0 {
			t.Fatalf("resume: exit %d", code)
		}
		if sasl := fmt.Sprint(rep["sasl"]); !strings.Contains(sasl, "SCRAM-SHA-256 (SASL2, inline resume)") {
			t.Errorf("resume: sasl = %s", sasl)
		}
		want(t, figs, "resumed", 4)
		want(t, figs, "lost", 0)
		want(t, figs, "duplicated", 0)
	})

	t.Run("hibernate", func(t *testing.T) {
		_, figs, code := runBench(t, append([]string{"hibernate"}, common(s.starttls, "--n", "8", "--senders", "1",
			"--hold", "300ms", "--settle", "100ms", "--drain", "5s", "--server-pid", pid)...)...)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		want(t, figs, "resumed", 8)
		want(t, figs, "lost", 0)
		if figs["server_rss_hibernated"] <= 0 {
			t.Errorf("server RSS not read: %v", figs["server_rss_hibernated"])
		}
		if _, ok := figs["server_rss_per_hibernated"]; !ok {
			t.Error("no server_rss_per_hibernated")
		}
	})

	t.Run("archive", func(t *testing.T) {
		// u1 and u2 fill the archive; u1 pages through it and searches
		// it. 20 words over 200 bodies of 12: every word is in many.
		_, figs, code := runBench(t, append([]string{"archive"}, common(s.starttls, "--fill", "200", "--queries", "5", "--words", "20",
			"--server-pid", pid, "--data-dir", filepath.Join(filepath.Dir(s.config), "data"))...)...)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		want(t, figs, "fill_delivered", 200)
		if _, ok := figs["disk_per_archived"]; !ok || figs["disk_after"] <= 0 || figs["stanza_bytes"] < 100 {
			t.Errorf("disk use not measured: %v per archived copy, %v after, stanza %v bytes", figs["disk_per_archived"],
				figs["disk_after"], figs["stanza_bytes"])
		}
		for _, k := range []string{"newest", "with", "before_id"} {
			want(t, figs, "q_"+k+"_results", 50)
			ordered(t, figs, "q_"+k+"_p50_ms", "q_"+k+"_p99_ms")
		}
		if figs["q_range_results"] <= 0 || figs["q_fulltext_results"] <= 0 {
			t.Errorf("range %v, full-text %v results per query", figs["q_range_results"], figs["q_fulltext_results"])
		}
		for _, k := range []string{"q_fulltext_wrong", "q_fulltext_errors", "q_range_errors"} {
			if v, ok := figs[k]; ok {
				t.Errorf("%s = %v", k, v)
			}
		}
	})
}

// TestTable checks the human output of a tiny run.
func TestTable(t *testing.T) {
	s := startServer(t)
	createUsers(t, s, "t", 2)
	var out bytes.Buffer
	code := run(context.Background(), []string{"login", "--addr", s.starttls, "--prefix", "t", "--password", "pw-t",
		"--n", "2", "--progress=false"}, &out, io.Discard)
	for _, w := range []string{"xmppbench login", "logins/s", "login time p99", "tool:", "cores"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, out.String())
		}
	}
	if code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestResumeRefused: sessions whose hibernation expired before they come
// back cannot resume; the run counts every failure (and the messages sent
// to them meanwhile as not delivered to the session) and exits 1.
func TestResumeRefused(t *testing.T) {
	s := startServerWith(t, `resume_timeout = "1s"`)
	createUsers(t, s, "u", 5)
	_, figs, code := runBench(t, "resume", "--addr", s.starttls, "--prefix", "u", "--password", "pw-u", "--cut", "rst",
		"--n", "4", "--senders", "1", "--before", "1", "--during", "2", "--offline", "2500ms", "--drain", "1s")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	want(t, figs, "resumed", 0)
	want(t, figs, "resume_failed", 4)
	want(t, figs, "lost", 8)
	want(t, figs, "duplicated", 0)
}
