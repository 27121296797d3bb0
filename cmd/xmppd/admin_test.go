package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
)

// testConfig writes a config serving localhost and example.org with its data
// in a temporary folder and returns its path and the loaded Config.
func testConfig(t *testing.T) (string, Config) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "xmppd.toml")
	body := "domains = [\"localhost\", \"example.org\"]\ndata_dir = \"" + filepath.Join(dir, "data") + "\"\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, cfg
}

// startAdmin opens the database and serves the admin socket until the test
// ends. It returns the names OnUserDeleted was called with.
func startAdmin(t *testing.T, cfg Config) func() []string {
	t.Helper()
	db, err := storage.Open(cfg.DBPath(), storage.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var deleted []string
	srv := &AdminServer{DB: db, Domains: cfg.Domains, Log: discardLogger(), OnUserDeleted: func(domain, local string) {
		mu.Lock()
		defer mu.Unlock()
		deleted = append(deleted, local+"@"+domain)
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx, cfg.AdminSocket()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ListenAndServe: %v", err)
		}
		if _, err := os.Stat(cfg.AdminSocket()); !os.IsNotExist(err) {
			t.Errorf("socket not removed after shutdown: %v", err)
		}
		db.Close()
	})
	waitForSocket(t, cfg.AdminSocket())
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), deleted...)
	}
}

func waitForSocket(t *testing.T, path string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("admin socket %s never answered", path)
}

// TestUserCommands runs the same session of user commands against a stopped
// server (the CLI opens the database) and a running one (the CLI goes through
// the admin socket, because the server holds the database lock), and expects
// the same output.
func TestUserCommands(t *testing.T) {
	steps := []struct {
		args    []string
		stdin   string
		wantOut string
		wantErr string
	}{
		{[]string{"user", "list"}, "", "", ""},
		{[]string{"user", "add", "alice@localhost", "--password-stdin"}, "secret\n", "user alice@localhost created\n", ""},
		{[]string{"user", "add", "Bob@Example.ORG", "--password-stdin"}, "pässwörd", "user bob@example.org created\n", ""},
		{[]string{"user", "add", "alice@localhost", "--password-stdin"}, "other\n", "", "user alice@localhost already exists"},
		{[]string{"user", "list"}, "", "alice@localhost\nbob@example.org\n", ""},
		{[]string{"user", "list", "example.org"}, "", "bob@example.org\n", ""},
		{[]string{"user", "list", "foo"}, "", "", `domain "foo" is not served by this server (domains: localhost, example.org)`},
		{[]string{"user", "passwd", "alice@localhost", "--password-stdin"}, "new\r\n", "password of alice@localhost changed\n", ""},
		{[]string{"user", "passwd", "carol@localhost", "--password-stdin"}, "x\n", "", "user carol@localhost does not exist"},
		{[]string{"user", "del", "carol@localhost"}, "", "", "user carol@localhost does not exist"},
		{[]string{"user", "add", "x", "--password-stdin"}, "pw\n", "", `invalid JID "x": an account needs a localpart (user@x)`},
		{[]string{"user", "add", "@@", "--password-stdin"}, "pw\n", "", `invalid JID "@@": `},
		{[]string{"user", "add", "alice@localhost/phone", "--password-stdin"}, "pw\n", "", `invalid JID "alice@localhost/phone": an account has no resource; use alice@localhost`},
		{[]string{"user", "add", "alice@foo", "--password-stdin"}, "pw\n", "", `domain "foo" is not served by this server (domains: localhost, example.org)`},
		{[]string{"user", "add", "dave@localhost", "--password-stdin"}, "\n", "", "empty password"},
		{[]string{"user", "add", "dave@localhost", "--password-stdin"}, "", "", "empty password"},
		{[]string{"user", "add", "dave@localhost"}, "pw\n", "", "standard input is not a terminal; use --password-stdin"},
		{[]string{"user", "del", "alice@localhost"}, "", "user alice@localhost deleted\n", ""},
		{[]string{"user", "list"}, "", "bob@example.org\n", ""},
	}
	for _, mode := range []string{"stopped", "running"} {
		t.Run(mode, func(t *testing.T) {
			cfgPath, cfg := testConfig(t)
			deleted := func() []string { return nil }
			if mode == "running" {
				deleted = startAdmin(t, cfg)
			}
			for _, s := range steps {
				out, _, err := runCLI(t, s.stdin, append([]string{"--config", cfgPath}, s.args...)...)
				switch {
				case s.wantErr == "" && err != nil:
					t.Errorf("%q: %v", s.args, err)
				case s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)):
					t.Errorf("%q: error %v, want %q", s.args, err, s.wantErr)
				case out != s.wantOut:
					t.Errorf("%q: stdout %q, want %q", s.args, out, s.wantOut)
				}
			}
			if mode == "running" {
				if got := deleted(); len(got) != 1 || got[0] != "alice@localhost" {
					t.Errorf("OnUserDeleted calls: %q", got)
				}
				fi, err := os.Stat(cfg.AdminSocket())
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
					t.Errorf("socket mode %v, want 0600 socket", fi.Mode())
				}
			}
		})
	}
}

// A server that holds the database but whose admin socket is gone.
func TestUserCommandLockedWithoutSocket(t *testing.T) {
	cfgPath, cfg := testConfig(t)
	db, err := storage.Open(cfg.DBPath(), storage.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, _, err = runCLI(t, "", "--config", cfgPath, "user", "list")
	want := "the database is locked by a running xmppd, but its admin socket at " + cfg.AdminSocket() + " did not answer"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}

func TestAdminServerStaleAndLiveSocket(t *testing.T) {
	_, cfg := testConfig(t)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A socket file left by a crashed server.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: cfg.AdminSocket(), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(cfg.AdminSocket()); err != nil {
		t.Fatal("stale socket file missing:", err)
	}
	startAdmin(t, cfg) // removes it and listens

	// A second server must not steal a live socket.
	srv := &AdminServer{Domains: cfg.Domains}
	err = srv.ListenAndServe(t.Context(), cfg.AdminSocket())
	if err == nil || !strings.Contains(err.Error(), "another xmppd is answering") {
		t.Fatalf("second ListenAndServe: %v", err)
	}

	// A regular file is never removed.
	other := filepath.Join(cfg.DataDir, "notasocket")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.ListenAndServe(t.Context(), other); err == nil {
		t.Fatal("ListenAndServe replaced a regular file")
	}
}

func TestAdminServerBadRequests(t *testing.T) {
	_, cfg := testConfig(t)
	startAdmin(t, cfg)
	tests := []struct{ name, send, want string }{
		{"not json", "hello\n", "bad request"},
		{"unknown field", `{"op":"list","admin":true}`, "bad request"},
		{"unknown op", `{"op":"drop"}`, `unknown operation "drop"`},
		{"too large", `{"op":"add","jid":"a@localhost","password":"` + strings.Repeat("x", 70<<10) + `"}`, "bad request"},
		{"empty password", `{"op":"add","jid":"a@localhost"}`, "empty password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("unix", cfg.AdminSocket())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte(tt.send)); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(c).ReadBytes('\n')
			if err != nil {
				t.Fatal(err)
			}
			var resp adminResponse
			if err := json.Unmarshal(line, &resp); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if resp.OK || !strings.Contains(resp.Error, tt.want) {
				t.Errorf("response %s, want error containing %q", line, tt.want)
			}
		})
	}
}

func TestCallAdminSocketNoServer(t *testing.T) {
	_, err := callAdminSocket(t.Context(), filepath.Join(t.TempDir(), "admin.sock"), adminRequest{Op: opList})
	if !errors.Is(err, errNoServer) {
		t.Fatalf("absent socket: %v", err)
	}
}
