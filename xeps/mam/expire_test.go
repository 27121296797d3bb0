package mam_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xeps"
	"github.com/xmppd/xmppd/xeps/mam"
)

func newHost(t *testing.T, m *mam.Module) (*xeps.Host, *storage.DB) {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "xmppd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, u := range []string{"alice", "bob"} {
		creds, err := storage.DeriveCredentials(u+"pass", 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.CreateUser(context.Background(), "localhost", u, creds); err != nil {
			t.Fatal(err)
		}
	}
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}, DB: db})
	if err := h.Register(m); err != nil {
		t.Fatal(err)
	}
	return h, db
}

// TestExpiry: the retention loop removes what is older than expire_after,
// for every owner, and keeps the rest; Stop ends it.
func TestExpiry(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	m := &mam.Module{ExpireAfter: 30 * 24 * time.Hour, ExpireEvery: 10 * time.Millisecond, Now: func() time.Time { return now }}
	h, _ := newHost(t, m)
	log := h.Log(mam.LogName)
	ctx := context.Background()
	for _, owner := range []string{"alice@localhost", "bob@localhost"} {
		for _, age := range []time.Duration{60 * 24 * time.Hour, 40 * 24 * time.Hour, 10 * 24 * time.Hour, time.Hour} {
			if _, err := log.Append(ctx, owner, xeps.LogEntry{Time: now.Add(-age), With: "x@y", Data: []byte("<message/>")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Stop(ctx)
	count := func(owner string) int {
		p, err := log.Query(ctx, owner, xeps.LogQuery{})
		if err != nil {
			t.Fatal(err)
		}
		return len(p.Entries)
	}
	deadline := time.Now().Add(10 * time.Second)
	for count("alice@localhost")+count("bob@localhost") != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("alice has %d entries, bob %d; want 2 each", count("alice@localhost"), count("bob@localhost"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestNoExpiry: "never" starts no loop.
func TestNoExpiry(t *testing.T) {
	m := mam.New(mam.Config{ExpireAfter: "never", Default: "always"})
	m.ExpireEvery = time.Millisecond
	h, _ := newHost(t, m)
	ctx := context.Background()
	if _, err := h.Log(mam.LogName).Append(ctx, "alice@localhost", xeps.LogEntry{Time: time.Unix(1, 0), Data: []byte("<message/>")}); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if p, _ := h.Log(mam.LogName).Query(ctx, "alice@localhost", xeps.LogQuery{}); len(p.Entries) != 1 {
		t.Fatalf("%d entries left", len(p.Entries))
	}
}

// TestAccountDeletion: deleting an account deletes its archive and its
// preferences; an account made again under the name starts empty.
func TestAccountDeletion(t *testing.T) {
	m := &mam.Module{}
	h, db := newHost(t, m)
	ctx := context.Background()
	alice, err := stanza.ParseJID("alice@localhost")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Log(mam.LogName).Append(ctx, "alice@localhost", xeps.LogEntry{Data: []byte("<message/>")}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteUser(ctx, "localhost", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := h.AccountDeleted(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if p, _ := h.Log(mam.LogName).Query(ctx, "alice@localhost", xeps.LogQuery{}); len(p.Entries) != 0 {
		t.Fatalf("%d entries left after deletion", len(p.Entries))
	}
}

func TestConfig(t *testing.T) {
	cases := []struct {
		c  mam.Config
		ok bool
	}{
		{mam.DefaultConfig(), true},
		{mam.Config{ExpireAfter: "never", Default: "roster"}, true},
		{mam.Config{ExpireAfter: "720h", Default: "never"}, true},
		{mam.Config{ExpireAfter: "1h", Default: "always"}, false},
		{mam.Config{ExpireAfter: "a year", Default: "always"}, false},
		{mam.Config{ExpireAfter: "8760h", Default: "sometimes"}, false},
	}
	for _, c := range cases {
		if err := c.c.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: %v", c.c, err)
		}
	}
}
