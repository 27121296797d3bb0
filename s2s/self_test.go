package s2s

import (
	"net"
	"net/netip"
	"testing"
)

func TestListenedBy(t *testing.T) {
	// The machine of this table: one LAN address of each family.
	ifaces := func() []netip.Addr {
		return []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")}
	}
	ap := netip.MustParseAddrPort
	specific := []netip.AddrPort{ap("127.0.0.1:5269"), ap("[::1]:5270")}
	wildcard4 := []netip.AddrPort{ap("0.0.0.0:5269")}
	wildcard6 := []netip.AddrPort{ap("[::]:5269")}
	for _, tc := range []struct {
		name      string
		ip        string
		port      uint16
		listeners []netip.AddrPort
		want      bool
	}{
		{"the listener itself", "127.0.0.1", 5269, specific, true},
		{"IPv4-mapped", "::ffff:127.0.0.1", 5269, specific, true},
		{"IPv6 listener", "::1", 5270, specific, true},
		{"another port: another server", "127.0.0.1", 5270, specific, false},
		{"another loopback address", "127.0.0.2", 5269, specific, false},
		{"wildcard: loopback", "127.0.0.1", 5269, wildcard4, true},
		{"wildcard: other loopback", "127.0.0.53", 5269, wildcard4, true},
		{"wildcard: interface address", "192.0.2.10", 5269, wildcard4, true},
		{"wildcard: IPv6 interface address", "2001:db8::10", 5269, wildcard6, true},
		{"wildcard: unspecified", "0.0.0.0", 5269, wildcard4, true},
		{"wildcard: a remote address", "192.0.2.11", 5269, wildcard4, false},
		{"wildcard: another port", "192.0.2.10", 5270, wildcard4, false},
		{"no listener", "127.0.0.1", 5269, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := listenedBy(netip.MustParseAddr(tc.ip), tc.port, tc.listeners, ifaces); got != tc.want {
				t.Fatalf("listenedBy(%s:%d) = %v, want %v", tc.ip, tc.port, got, tc.want)
			}
		})
	}
}

func TestOwnDomain(t *testing.T) {
	// This machine's first non-loopback address, if any, must count too.
	var lan string
	for _, a := range interfaceAddrs() {
		if !a.IsLoopback() && a.Is4() {
			lan = a.String()
			break
		}
	}
	s := New(Config{Domains: []string{"c.test"}})
	for _, tc := range []struct {
		domain string
		want   bool
	}{
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"[::1]", true},
		{"0.0.0.0", true},
		{"192.0.2.200", false}, // TEST-NET-1: nobody's interface
		{"[2001:db8::200]", false},
		{"example.com", false},
		{"::1", false}, // not a domainpart: IPv6 needs its brackets
	} {
		if got := s.ownDomain(tc.domain); got != tc.want {
			t.Errorf("ownDomain(%q) = %v, want %v", tc.domain, got, tc.want)
		}
	}
	if lan != "" && !s.ownDomain(lan) {
		t.Errorf("ownDomain(%q), an interface address, = false", lan)
	}
}

// TestNeverDialSelf: a stanza to our own IP address, or to a domain that
// resolves to our own listener, is refused without any connection: our
// listener accepts nothing, the sender gets remote-server-not-found, and
// the reason is logged once at info.
func TestNeverDialSelf(t *testing.T) {
	res := &staticResolver{}
	var log *logBuf
	c := startServer(t, res, "c.test", issue(t, nil, "c.test"), nil, func(cfg *Config) { log = captureLog(cfg) })
	// Without the guard, both would resolve to c's own STARTTLS listener.
	res.set("127.0.0.1", c.addr, false)
	res.set("self.test", c.addr, false)
	waitFor(t, "the listener to be recorded", func() bool { return c.ownTarget("127.0.0.1", c.addr.(*net.TCPAddr).Port) })

	t.Run("IP literal", func(t *testing.T) {
		for range 2 {
			// false: the router bounces remote-server-not-found (router.Remote).
			if c.Send(ctx, "127.0.0.1", message("alice@c.test/gajim", "127.0.0.1", "ping")) {
				t.Fatal("Send to our own IP address accepted")
			}
		}
		log.expectLine(t, "level=INFO", "remote_domain=127.0.0.1", "not connecting to this server itself")
	})

	t.Run("resolves to our listener", func(t *testing.T) {
		for i := range 2 {
			if !c.Send(ctx, "self.test", message("alice@c.test/x", "bob@self.test", "loop")) {
				t.Fatal("Send refused")
			}
			b := c.router.next(t)
			if stanzaErr2(b) != "remote-server-not-found" || b.Get("to") != "alice@c.test/x" {
				t.Fatalf("bounce %d: %s, want remote-server-not-found to the sender", i, b)
			}
		}
		log.expectLine(t, "level=INFO", "remote_domain=self.test", "not connecting to this server itself")
		if got := log.lines("level=WARN"); len(got) != 0 {
			t.Fatalf("warnings for a refusal that is not trouble: %q", got)
		}
	})

	if n := c.accepted.Load(); n != 0 {
		t.Fatalf("our listener accepted %d connections, want 0", n)
	}
	if n := c.dialed.Load(); n != 0 {
		t.Fatalf("%d connection attempts, want 0", n)
	}
}
