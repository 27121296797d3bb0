package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
)

// TestShutdownLetsSessionsEnd: at SIGTERM the serve context ends before the
// sessions are closed (xmppd serve cancels it, then calls Shutdown). A
// session that ends then must still do what ending does: here, its last
// activity is stored (it was lost with "context canceled" before).
func TestShutdownLetsSessionsEnd(t *testing.T) {
	first := startTestServer(t, nil)
	cfg := first.cfg
	stop := func(srv *server) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	stop(first)

	serveCtx, sigterm := context.WithCancel(context.Background())
	defer sigterm()
	srv, err := startServerWith(serveCtx, cfg, slog.New(slog.DiscardHandler), modules(cfg))
	if err != nil {
		t.Fatal(err)
	}
	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "a", false)
	alice.send("<presence/>")
	alice.sync2("presence")
	time.Sleep(1100 * time.Millisecond) // the record is in whole seconds
	ended := time.Now().Unix()
	sigterm()
	stop(srv)

	db, err := storage.Open(cfg.DBPath(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b, err := db.KeyValue("lastactivity").Get(context.Background(), []byte("alice@localhost"))
	var rec struct{ T int64 }
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err != nil || rec.T < ended {
		t.Fatalf("alice's last activity after the shutdown: %s (%v), want the time of the shutdown (%d or later)", b, err, ended)
	}
}
