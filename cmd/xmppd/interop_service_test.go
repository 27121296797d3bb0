//go:build interop

package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInteropServiceDomainFromProsody: a module serving a domain of its own
// (conference.c.test, the test module echoService) gets a message that a
// user of a real Prosody (a.test) sends it over federation, and its answer
// from that domain goes back over a stream xmppd opens from the service
// domain. Dialback covers the service domain both ways (the lab's
// certificate names c.test only).
func TestInteropServiceDomainFromProsody(t *testing.T) {
	timing(t)
	l := newFedLab(t, fedDialback)
	needProsody(t)
	needPython(t)
	p := startProsody(t, l, prosodyDomain, prosodyIP, "bob")

	dir := filepath.Join(l.Dir, "xmppd-service")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "xmppd.toml")
	if err := writeXmppdFedConfig(path, xmppdFedConfigFor(l, dir)); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	echo := newEchoService("conference." + xmppdDomain)
	echo.parent = xmppdDomain
	logs := &syncBuffer{}
	srv, err := startServerWith(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		append(modules(cfg), echo))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if t.Failed() {
			t.Logf("xmppd log:\n%s", indent(logs.String()))
		}
	})

	bob := p.Users["bob"]
	B := startFedActor(t, "prosody:"+bob.JID, bob)
	B.do("presence")
	B.do("message room@%s hello service", echo.domain)
	got := echo.wait(t)
	if !strings.HasPrefix(got.Get("from"), bob.JID+"/") || got.Get("to") != "room@"+echo.domain {
		t.Fatalf("the service got %s", got)
	}
	if body := got.Child(got.Space, "body"); body == nil || body.Text() != "hello service" {
		t.Fatalf("the service got %s", got)
	}
	// The echo module answers from room@conference.c.test.
	B.expect("the service's answer", func(e imEvent) bool {
		return e.s("ev") == "message" && strings.HasPrefix(e.s("from"), "room@"+echo.domain) && e.s("body") == "echo: hello service"
	})
}
