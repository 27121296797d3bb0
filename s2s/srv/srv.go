// Package srv finds where the servers of an XMPP domain listen (RFC 6120
// §3.2, XEP-0368): a static route if the operator set one, else the
// _xmpps-server._tcp (Direct TLS) and _xmpp-server._tcp SRV records, else
// the domain itself on port 5269. Names are resolved with the configured DNS
// server, so a test or a private deployment never asks the system resolver.
package srv

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Target is one address to try.
type Target struct {
	Host      string // an IP address once resolved
	Port      int
	DirectTLS bool // TLS from the first byte (_xmpps-server)
}

func (t Target) String() string { return net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) }

// Resolver resolves domains to targets.
type Resolver struct {
	// Routes maps a domain to "host:port" (plain STARTTLS) and overrides DNS.
	Routes map[string]string
	// DNSServer is "host:port" of the DNS server to ask; "" uses the system's.
	DNSServer string
	// Timeout bounds one lookup (default 5s).
	Timeout time.Duration

	// Targets may be called from many goroutines at once (every outgoing
	// stream resolves its domain), so the lazily built resolver is made once.
	once   sync.Once
	lookup *net.Resolver
}

// ErrNotSupported means the domain publishes "." as its only SRV target:
// it offers no XMPP server service (RFC 6120 §3.2.1 step 4).
var ErrNotSupported = errors.New("the domain offers no XMPP server service")

// resolver returns the net.Resolver for DNSServer, built on first use; the
// fields are read then, so they must be set before the first lookup.
func (r *Resolver) resolver() *net.Resolver {
	r.once.Do(func() {
		if r.DNSServer == "" {
			r.lookup = net.DefaultResolver
			return
		}
		server := r.DNSServer
		r.lookup = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}}
	})
	return r.lookup
}

// Targets lists where to connect for domain, best first.
func (r *Resolver) Targets(ctx context.Context, domain string) ([]Target, error) {
	if route, ok := r.Routes[domain]; ok {
		host, port, err := splitHostPort(route)
		if err != nil {
			return nil, fmt.Errorf("srv: static route for %s: %w", domain, err)
		}
		return r.addresses(ctx, []Target{{Host: host, Port: port}})
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	type rec struct {
		*net.SRV
		direct bool
	}
	var recs []rec
	sawRecords, dot := false, 0
	for _, svc := range []struct {
		name   string
		direct bool
	}{{"xmpps-server", true}, {"xmpp-server", false}} {
		_, addrs, err := r.resolver().LookupSRV(ctx, svc.name, "tcp", domain)
		if err != nil {
			continue // no records of this kind (NXDOMAIN or none): try the next
		}
		for _, a := range addrs {
			sawRecords = true
			if a.Target == "." || a.Target == "" {
				dot++
				continue
			}
			recs = append(recs, rec{a, svc.direct})
		}
	}
	if sawRecords && len(recs) == 0 && dot > 0 {
		return nil, fmt.Errorf("srv: %s: %w", domain, ErrNotSupported)
	}
	var targets []Target
	if len(recs) == 0 {
		// RFC 6120 §3.2.2: no SRV records, the domain itself on the default port.
		targets = []Target{{Host: domain, Port: 5269}}
	} else {
		// XEP-0368 §3: both kinds merged by priority; LookupSRV already
		// ordered each list by weight within a priority. Direct TLS wins ties.
		slices.SortStableFunc(recs, func(a, b rec) int {
			if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
				return c
			}
			if a.direct != b.direct {
				if a.direct {
					return -1
				}
				return 1
			}
			return 0
		})
		for _, a := range recs {
			targets = append(targets, Target{Host: strings.TrimSuffix(a.Target, "."), Port: int(a.Port), DirectTLS: a.direct})
		}
	}
	return r.addresses(ctx, targets)
}

// addresses resolves each target's host to its addresses (IPv6 and IPv4, in
// the resolver's order), keeping the order of the targets.
func (r *Resolver) addresses(ctx context.Context, targets []Target) ([]Target, error) {
	var out []Target
	var lastErr error
	for _, t := range targets {
		if net.ParseIP(t.Host) != nil {
			out = append(out, t)
			continue
		}
		ips, err := r.resolver().LookupIPAddr(ctx, t.Host)
		if err != nil {
			lastErr = err
			continue
		}
		for _, ip := range ips {
			out = append(out, Target{Host: ip.IP.String(), Port: t.Port, DirectTLS: t.DirectTLS})
		}
	}
	if len(out) == 0 {
		if lastErr == nil {
			lastErr = errors.New("no addresses")
		}
		return nil, fmt.Errorf("srv: %w", lastErr)
	}
	return out, nil
}

func splitHostPort(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", s)
	}
	return host, port, nil
}
