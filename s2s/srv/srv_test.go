package srv

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// zone is what the test DNS server knows: SRV records by "_svc._tcp.domain."
// and A records by "host.".
type zone struct {
	srv map[string][]dnsmessage.SRVResource
	a   map[string][4]byte
}

// serveDNS answers queries on a loopback UDP port until the test ends.
func serveDNS(t *testing.T, z zone) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var m dnsmessage.Message
			if m.Unpack(buf[:n]) != nil || len(m.Questions) != 1 {
				continue
			}
			q := m.Questions[0]
			resp := dnsmessage.Message{Header: dnsmessage.Header{ID: m.ID, Response: true, Authoritative: true}, Questions: m.Questions}
			name := strings.ToLower(q.Name.String())
			hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
			switch q.Type {
			case dnsmessage.TypeSRV:
				for _, r := range z.srv[name] {
					h := hdr
					h.Type = dnsmessage.TypeSRV
					resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: h, Body: &r})
				}
			case dnsmessage.TypeA:
				if ip, ok := z.a[name]; ok {
					h := hdr
					h.Type = dnsmessage.TypeA
					resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AResource{A: ip}})
				}
			}
			if len(resp.Answers) == 0 && q.Type != dnsmessage.TypeAAAA {
				if _, known := z.a[name]; !known {
					resp.RCode = dnsmessage.RCodeNameError
				}
			}
			out, err := resp.Pack()
			if err == nil {
				pc.WriteTo(out, addr)
			}
		}
	}()
	return pc.LocalAddr().String()
}

func srvRR(target string, prio, weight, port uint16) dnsmessage.SRVResource {
	return dnsmessage.SRVResource{Priority: prio, Weight: weight, Port: port, Target: dnsmessage.MustNewName(target)}
}

func TestTargets(t *testing.T) {
	dns := serveDNS(t, zone{
		srv: map[string][]dnsmessage.SRVResource{
			"_xmpp-server._tcp.b.test.":    {srvRR("xmpp1.b.test.", 10, 0, 15269), srvRR("xmpp2.b.test.", 20, 0, 5269)},
			"_xmpps-server._tcp.b.test.":   {srvRR("xmpp1.b.test.", 10, 0, 5270)},
			"_xmpp-server._tcp.none.test.": {srvRR(".", 0, 0, 0)},
		},
		a: map[string][4]byte{
			"xmpp1.b.test.": {127, 0, 0, 3},
			"xmpp2.b.test.": {127, 0, 0, 5},
			"a.test.":       {127, 0, 0, 2},
		},
	})
	r := &Resolver{DNSServer: dns, Routes: map[string]string{"static.test": "127.0.0.9:5999"}}
	tests := []struct {
		domain string
		want   []string // host:port, "+tls" for Direct TLS
		err    error
	}{
		// SRV of both kinds, merged by priority, Direct TLS first on a tie.
		{"b.test", []string{"127.0.0.3:5270+tls", "127.0.0.3:15269", "127.0.0.5:5269"}, nil},
		// No SRV records: the domain itself on 5269.
		{"a.test", []string{"127.0.0.2:5269"}, nil},
		// A static route wins over DNS.
		{"static.test", []string{"127.0.0.9:5999"}, nil},
		// "." means no service at all.
		{"none.test", nil, ErrNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			got, err := r.Targets(context.Background(), tt.domain)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, tg := range got {
				x := tg.String()
				if tg.DirectTLS {
					x += "+tls"
				}
				s = append(s, x)
			}
			if !slices.Equal(s, tt.want) {
				t.Fatalf("targets %v, want %v", s, tt.want)
			}
		})
	}
	if _, err := r.Targets(context.Background(), "nxdomain.test"); err == nil {
		t.Fatal("a domain with no records and no address resolved")
	}
}

// TestTargetsConcurrent: outgoing streams resolve their domains at the same
// time on one shared Resolver; the lazily built net.Resolver must be made once
// (a data race under -race before it was).
func TestTargetsConcurrent(t *testing.T) {
	dns := serveDNS(t, zone{a: map[string][4]byte{"a.test.": {127, 0, 0, 2}}})
	r := &Resolver{DNSServer: dns}
	const n = 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	made := make([]*net.Resolver, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			made[i] = r.resolver()
			_, errs[i] = r.Targets(context.Background(), "a.test")
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("lookup %d: %v", i, errs[i])
		}
		if made[i] != made[0] {
			t.Fatalf("lookup %d got another net.Resolver: built more than once", i)
		}
	}
}
