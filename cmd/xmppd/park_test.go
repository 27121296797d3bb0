package main

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/stream"
)

// TestParkedSessions: bound sessions idle long enough to park (no goroutine
// of their own, docs/design/002-parked-sessions.md) are still reached by
// everything that can happen to a session: stanzas for them, their own next
// stanza, a new login that replaces their resource, and shutdown.
func TestParkedSessions(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sessions park only on Linux")
	}
	srv := startTestServer(t, nil)
	base := stream.ParkedStreams() // the count is process-wide: count from here
	waitParked := func(n int64) {
		t.Helper()
		waitFor(t, func() bool { return stream.ParkedStreams()-base >= n })
	}
	alice := dialWire(t, srv.c2sAddrs[0], false)
	aliceJID := alice.login("localhost", "alice", "phone", false)
	bob := dialWire(t, srv.directAddr[0], true)
	bob.login("localhost", "bob", "laptop", true)
	waitParked(2)

	// A message to a parked session goes out through its writer.
	bob.send("<message to='" + aliceJID + "' id='m1'><body>are you there?</body></message>")
	if m := alice.next(); m.Get("id") != "m1" || m.Child(stanza.NSClient, "body").Text() != "are you there?" {
		t.Fatalf("alice got %s", m)
	}
	waitParked(2)

	// Its own next stanza wakes it.
	alice.sync()
	waitParked(2)

	// A new login to the same full JID closes the parked session with <conflict/>.
	again := dialWire(t, srv.c2sAddrs[0], false)
	again.login("localhost", "alice", "phone", false)
	if el := alice.next(); !el.Is(stanza.NSStream, "error") || el.Child(stanza.NSStreams, "conflict") == nil {
		t.Fatalf("replaced session got %s, want conflict", el)
	}
	alice.send("</stream:stream>")
	alice.expectClosed()
	waitParked(2) // bob and the new alice

	// Shutdown reaches parked sessions and waits for them to end.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wireClient{bob, again} {
		if el := c.next(); !el.Is(stanza.NSStream, "error") || el.Child(stanza.NSStreams, "system-shutdown") == nil {
			t.Fatalf("got %s, want system-shutdown", el)
		}
		c.expectClosed()
	}
	if ctx.Err() != nil {
		t.Fatal("Shutdown did not see the parked sessions end")
	}
}
