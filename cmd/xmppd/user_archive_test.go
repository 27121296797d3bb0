package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xeps/mam"
)

// TestUserArchivePurge runs `xmppd user archive purge` against a stopped
// server (the CLI opens the database) and a running one (through the admin
// socket), and checks what is left of the archives: only the account's
// messages go, and only those asked for.
func TestUserArchivePurge(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2025, 1, d, 12, 0, 0, 0, time.UTC) }
	steps := []struct {
		args    []string
		wantOut string
		wantErr string
		left    int // alice's messages left after the step
	}{
		{[]string{"alice@localhost"}, "", "say which messages to delete: --before DATE or --all", 10},
		{[]string{"alice@localhost", "--before", "2025-01-03", "--all"}, "", "give either --before DATE or --all, not both", 10},
		{[]string{"alice@localhost", "--before", "yesterday"}, "", `invalid --before "yesterday": want a day (2025-01-31) or an RFC 3339 time`, 10},
		{[]string{"alice@localhost", "--before", "2025-13-01"}, "", `invalid --before "2025-13-01"`, 10},
		{[]string{"alice@foo", "--all"}, "", `domain "foo" is not served by this server`, 10},
		{[]string{"alice@localhost/phone", "--all"}, "", "an account has no resource", 10},
		{[]string{"carol@localhost", "--all"}, "", "user carol@localhost does not exist", 10},
		{[]string{"alice@localhost", "--before", "2025-01-03"}, "alice@localhost: 2 removed (archived messages older than 2025-01-03T00:00:00Z)\n", "", 8},
		{[]string{"alice@localhost", "--before", "2025-01-03"}, "alice@localhost: 0 removed (archived messages older than 2025-01-03T00:00:00Z)\n", "", 8},
		{[]string{"alice@localhost", "--before", "2025-01-05T12:00:00.001+00:00"}, "alice@localhost: 3 removed (archived messages older than 2025-01-05T12:00:00.001Z)\n", "", 5},
		{[]string{"alice@localhost", "--all"}, "alice@localhost: 5 removed (all archived messages)\n", "", 0},
	}
	for _, mode := range []string{"stopped", "running"} {
		t.Run(mode, func(t *testing.T) {
			cfgPath, cfg := testConfig(t)
			for _, u := range []string{"alice@localhost", "bob@localhost"} {
				if _, _, err := runCLI(t, "pw\n", "--config", cfgPath, "user", "add", u, "--password-stdin"); err != nil {
					t.Fatal(err)
				}
			}
			db, err := storage.Open(cfg.DBPath(), storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			log := db.Log(mam.LogName)
			ctx := context.Background()
			for d := 1; d <= 10; d++ {
				for _, owner := range []string{"alice@localhost", "bob@localhost"} {
					if _, err := log.Append(ctx, owner, storage.LogEntry{Time: day(d), With: "x@example.net", Text: "hello", Data: []byte("<message/>")}); err != nil {
						t.Fatal(err)
					}
				}
			}
			count := func(owner string) int {
				p, err := log.Query(ctx, owner, storage.LogQuery{})
				if err != nil {
					t.Fatal(err)
				}
				return len(p.Entries)
			}
			if mode == "running" {
				db = startAdminOn(t, db, cfg)
				log = db.Log(mam.LogName)
			} else {
				db.Close()
			}
			for _, s := range steps {
				args := append([]string{"--config", cfgPath, "user", "archive", "purge"}, s.args...)
				out, _, err := runCLI(t, "", args...)
				switch {
				case s.wantErr == "" && err != nil:
					t.Errorf("%q: %v", s.args, err)
				case s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)):
					t.Errorf("%q: error %v, want %q", s.args, err, s.wantErr)
				case out != s.wantOut:
					t.Errorf("%q: stdout %q, want %q", s.args, out, s.wantOut)
				}
				if mode == "stopped" {
					db, err = storage.Open(cfg.DBPath(), storage.Options{})
					if err != nil {
						t.Fatal(err)
					}
					log = db.Log(mam.LogName)
				}
				if got := count("alice@localhost"); got != s.left {
					t.Errorf("%q: alice has %d messages, want %d", s.args, got, s.left)
				}
				if got := count("bob@localhost"); got != 10 {
					t.Errorf("%q: bob has %d messages, want 10", s.args, got)
				}
				if mode == "stopped" {
					db.Close()
				}
			}
		})
	}
}

// startAdminOn serves the admin socket on an open database until the test
// ends, and returns it (the test reads it while the server holds it).
func startAdminOn(t *testing.T, db *storage.DB, cfg Config) *storage.DB {
	t.Helper()
	srv := &AdminServer{DB: db, Domains: cfg.Domains, Log: discardLogger()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx, cfg.AdminSocket()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ListenAndServe: %v", err)
		}
		db.Close()
	})
	waitForSocket(t, cfg.AdminSocket())
	if _, err := os.Stat(cfg.AdminSocket()); err != nil {
		t.Fatal(err)
	}
	return db
}
