package s2s

import (
	"net"
	"net/netip"
	"strings"
)

// Never dial ourselves. A stanza to one of this machine's addresses (Gajim
// sends to='127.0.0.1' after connecting to 127.0.0.1), or to a domain whose
// DNS points back at us, would otherwise open an s2s stream to our own
// listener: a pointless loop that at best ends in a dialback failure and at
// worst feeds stanzas back into the router. Such a send fails at once, and
// the sender gets remote-server-not-found.

// errSelf is the refusal of a target that is this server itself.
var errSelf = &refusedErr{cond: "remote-server-not-found", text: "the target is this server itself"}

// maxSelfLogged bounds the domains remembered as already logged by logSelf.
const maxSelfLogged = 256

// addListener records a listening address, for ownTarget.
func (s *Server) addListener(a net.Addr) (remove func()) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return func() {} // not TCP: nothing we could dial
	}
	s.lmu.Lock()
	s.listeners = append(s.listeners, ap)
	s.lmu.Unlock()
	return func() {
		s.lmu.Lock()
		defer s.lmu.Unlock()
		for i, l := range s.listeners {
			if l == ap {
				s.listeners = append(s.listeners[:i], s.listeners[i+1:]...)
				break
			}
		}
	}
}

// ownDomain reports whether domain is an IP literal of this machine.
func (s *Server) ownDomain(domain string) bool {
	ip, ok := ipLiteral(domain)
	return ok && ownAddress(ip, interfaceAddrs)
}

// ownTarget reports whether connecting to host:port would reach one of our
// own s2s listeners. A host that is not an IP address is not ours as far as
// we can tell before connecting (the Resolver should give addresses).
func (s *Server) ownTarget(host string, port int) bool {
	ip, err := netip.ParseAddr(host)
	if err != nil || port <= 0 || port > 65535 {
		return false
	}
	s.lmu.Lock()
	listeners := append([]netip.AddrPort(nil), s.listeners...)
	s.lmu.Unlock()
	return listenedBy(ip, uint16(port), listeners, interfaceAddrs)
}

// logSelf says once at info level, per domain, why we do not connect to
// it; afterwards at debug, so a client that keeps trying fills no log.
func (s *Server) logSelf(domain, why string) {
	s.lmu.Lock()
	logged := s.selfLogged[domain]
	if !logged {
		if s.selfLogged == nil || len(s.selfLogged) >= maxSelfLogged {
			s.selfLogged = map[string]bool{}
		}
		s.selfLogged[domain] = true
	}
	s.lmu.Unlock()
	if logged {
		s.log.Debug("not connecting to this server itself", "remote_domain", domain, "why", why)
		return
	}
	s.log.Info("not connecting to this server itself: stanzas to this domain bounce with remote-server-not-found",
		"remote_domain", domain, "why", why)
}

// ipLiteral parses a domainpart that is an IP address: dotted IPv4, or IPv6
// in brackets (RFC 7622 §3.2).
func ipLiteral(domain string) (netip.Addr, bool) {
	if v6, ok := strings.CutPrefix(domain, "["); ok {
		v6, ok = strings.CutSuffix(v6, "]")
		ip, err := netip.ParseAddr(v6)
		return ip, ok && err == nil && ip.Is6()
	}
	ip, err := netip.ParseAddr(domain)
	return ip, err == nil && ip.Is4()
}

// interfaceAddrs lists this machine's interface addresses, asked of the
// system each time: addresses come and go (DHCP, VPNs), and the question is
// asked only when dialing.
func interfaceAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// ownAddress reports whether ip is this machine's: loopback, unspecified
// (which connects to the local host), or one of the interface addresses.
func ownAddress(ip netip.Addr, ifaces func() []netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	for _, a := range ifaces() {
		if a.Unmap().WithZone("") == ip {
			return true
		}
	}
	return false
}

// listenedBy reports whether a connection to ip:port reaches one of
// listeners. A listener on the unspecified address (0.0.0.0 or ::) takes
// connections to every address of the machine.
func listenedBy(ip netip.Addr, port uint16, listeners []netip.AddrPort, ifaces func() []netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	for _, l := range listeners {
		if l.Port() != port {
			continue
		}
		la := l.Addr().Unmap().WithZone("")
		if la == ip || la.IsUnspecified() && ownAddress(ip, ifaces) {
			return true
		}
	}
	return false
}
