package main

import (
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// TestServeLogsListeners: serve logs every address it listens on, clients',
// servers' and the admin socket, so that an operator sees what is open.
func TestServeLogsListeners(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.C2S.Listen = []string{"127.0.0.1:0"}
	cfg.C2S.DirectTLS = []string{"127.0.0.1:0"}
	cfg.S2S.Listen = []string{"127.0.0.1:0"}
	cfg.S2S.DirectTLS = []string{"127.0.0.1:0"}
	cfg.S2S.DNSServer = "127.0.0.1:9" // nothing is looked up; never the machine's resolver
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	srv := serveForTest(t, cfg, log, nil)
	// The admin socket starts in its own goroutine: wait for its line.
	waitFor(t, func() bool { return strings.Contains(buf.String(), "admin socket listening") })

	type entry struct {
		Msg, Service, Kind, Addr, Path string
	}
	var listening []entry
	admin := ""
	for line := range strings.Lines(buf.String()) {
		var e entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch e.Msg {
		case "listening":
			listening = append(listening, e)
		case "admin socket listening":
			admin = e.Path
		}
	}
	want := []entry{
		{"listening", "c2s", "starttls", srv.c2sAddrs[0].String(), ""},
		{"listening", "c2s", "direct-tls", srv.directAddr[0].String(), ""},
		{"listening", "s2s", "starttls", srv.s2sAddrs[0].String(), ""},
		{"listening", "s2s", "direct-tls", srv.s2sAddrs[1].String(), ""},
	}
	// In any order, each once.
	byAddr := func(a, b entry) int { return strings.Compare(a.Addr, b.Addr) }
	slices.SortFunc(listening, byAddr)
	slices.SortFunc(want, byAddr)
	if !slices.Equal(listening, want) {
		t.Errorf("listening lines\n %+v\nwant\n %+v", listening, want)
	}
	if admin != cfg.AdminSocket() {
		t.Errorf("admin socket logged as %q, want %q", admin, cfg.AdminSocket())
	}
}
