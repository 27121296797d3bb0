package s2s

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"slices"
	"testing"
	"time"
)

// serviceDomains is an IsLocal for modules' service domains of domain.
func serviceDomains(domain string) func(string) bool {
	return func(d string) bool { return slices.Contains([]string{"conference." + domain, "upload." + domain}, d) }
}

// TestServiceDomainInbound: a domain IsLocal accepts is ours on inbound
// streams (stanza 'to', stream header 'to', dialback 'to'); others stay
// host-unknown.
func TestServiceDomainInbound(t *testing.T) {
	local := func(cfg *Config) { cfg.IsLocal = serviceDomains("d.test") }

	t.Run("stanza to a service domain", func(t *testing.T) {
		d, w := authedRawWith(t, local)
		w.send(`<message from='alice@c.test/x' to='room@conference.d.test' id='1'><body>to the room</body></message>`)
		expectMessages(t, d.router, "alice@c.test/x", "room@conference.d.test", "to the room")
		w.send(`<iq from='alice@c.test/x' to='upload.d.test' type='get' id='2'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
		if el := d.router.next(t); el.Local != "iq" || el.Get("to") != "upload.d.test" {
			t.Fatalf("routed %s, want the iq to upload.d.test", el)
		}
	})

	t.Run("stanza to an unknown domain", func(t *testing.T) {
		d, w := authedRawWith(t, local)
		w.send(`<message from='alice@c.test/x' to='room@conference.x.test'><body>relay</body></message>`)
		w.expectStreamError("host-unknown")
		d.router.none(t, 20*time.Millisecond)
	})

	t.Run("stream and dialback to a service domain", func(t *testing.T) {
		ca := newCA(t)
		d := startServer(t, &staticResolver{}, "d.test", issue(t, ca, "d.test"), ca.pool, local)
		cert := issue(t, ca, "c.test")
		w := dialRaw(t, d.addr)
		if f := w.openTLS("c.test", "conference.d.test", &cert); f.Child(nsDialbackFeature, "dialback") == nil {
			t.Fatalf("features %s: want dialback", f)
		}
		// The certificate proves c.test (XEP-0344): no callback needed.
		w.send(`<db:result from='c.test' to='conference.d.test'>key</db:result>`)
		if r := w.next(); r.Get("type") != "valid" || r.Get("from") != "conference.d.test" {
			t.Fatalf("got %s, want <db:result from='conference.d.test' type='valid'/>", r)
		}
		good := dialbackKey(d.secret, "c.test", "conference.d.test", "s1")
		w.send(`<db:verify from='c.test' to='conference.d.test' id='s1'>` + good + `</db:verify>`)
		if r := w.next(); r.Get("type") != "valid" {
			t.Fatalf("got %s, want valid", r)
		}
		w.send(`<db:result from='c.test' to='upload.x.test'>key</db:result>`)
		if r := w.next(); r.Get("type") != "error" || stanzaErr(r) != "item-not-found" {
			t.Fatalf("got %s, want item-not-found", r)
		}
		w.send(`<message from='alice@c.test' to='room@conference.d.test'><body>hi</body></message>`)
		expectMessages(t, d.router, "alice@c.test", "room@conference.d.test", "hi")
	})

	t.Run("stream header to an unknown domain", func(t *testing.T) {
		d := startServer(t, &staticResolver{}, "d.test", issue(t, nil, "d.test"), nil, local)
		w := dialRaw(t, d.addr)
		w.send(serverHeader("c.test", "conference.x.test"))
		w.header()
		w.expectStreamError("host-unknown")
	})
}

// TestServiceDomainOutbound: a module's stanza from its service domain gets
// a stream of its own, authenticated by dialback as that domain (c's
// certificate names only c.test), and the peer's answer comes back over it
// (XEP-0288) to the service domain.
func TestServiceDomainOutbound(t *testing.T) {
	ca := newCA(t)
	res := &staticResolver{}
	c := startServer(t, res, "c.test", issue(t, ca, "c.test"), ca.pool, func(cfg *Config) { cfg.IsLocal = serviceDomains("c.test") })
	d := startServer(t, res, "d.test", issue(t, ca, "d.test"), ca.pool, nil)
	res.set("conference.c.test", c.addr, false) // where d calls back

	if !c.Send(ctx, "d.test", message("room@conference.c.test/nick", "bob@d.test", "from the room")) {
		t.Fatal("Send refused a stanza from a service domain")
	}
	expectMessages(t, d.router, "room@conference.c.test/nick", "bob@d.test", "from the room")
	st := c.routeOf("conference.c.test", "d.test")
	if st == nil || c.methodOf(st) != "dialback" {
		t.Fatalf("route (conference.c.test, d.test): %v, want a dialback stream", st)
	}
	if c.routeOf("c.test", "d.test") != nil {
		t.Fatal("the service domain's stanza went over its parent's route")
	}
	if d.callbacks.Load() != 1 || c.verified.Load() != 1 {
		t.Fatalf("callbacks %d (d), verifications answered %d (c); want 1 and 1", d.callbacks.Load(), c.verified.Load())
	}

	d.Send(ctx, "conference.c.test", message("bob@d.test/y", "room@conference.c.test", "back"))
	expectMessages(t, c.router, "bob@d.test/y", "room@conference.c.test", "back")
	if n := d.dialed.Load(); n != 1 {
		t.Fatalf("d dialed %d times, want 1 (the callback only): the answer should take the bidi stream", n)
	}
}

// TestServiceDomainNotOurs: without IsLocal, a service domain is not ours:
// Send does not take its stanzas.
func TestServiceDomainNotOurs(t *testing.T) {
	c := startServer(t, &staticResolver{}, "c.test", issue(t, nil, "c.test"), x509.NewCertPool(), nil)
	if c.Send(ctx, "d.test", message("room@conference.c.test", "bob@d.test", "x")) {
		t.Fatal("Send took a stanza from a domain that is not ours")
	}
}

// TestOurCertFor: a service domain uses its parent's certificate for TLS,
// but claims it in SASL EXTERNAL only when the certificate names it.
func TestOurCertFor(t *testing.T) {
	parent := issue(t, nil, "c.test")
	both := issue(t, nil, "c.test", "conference.c.test")
	for _, tc := range []struct {
		name   string
		certs  []tls.Certificate
		domain string
		tls    *tls.Certificate // ourCert
		sasl   *tls.Certificate // ourCertFor
	}{
		{"the parent", []tls.Certificate{parent}, "c.test", &parent, &parent},
		{"a service domain its parent's certificate does not name", []tls.Certificate{parent}, "conference.c.test", &parent, nil},
		{"a service domain the certificate names", []tls.Certificate{parent, both}, "conference.c.test", &both, &both},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Config{Domains: []string{"c.test"}, TLS: &tls.Config{Certificates: tc.certs}})
			same := func(a, b *tls.Certificate) bool {
				return a == nil && b == nil || a != nil && b != nil && bytes.Equal(a.Certificate[0], b.Certificate[0])
			}
			if got := s.ourCert(tc.domain); !same(got, tc.tls) {
				t.Errorf("ourCert(%s) is not the expected certificate", tc.domain)
			}
			if got := s.ourCertFor(tc.domain); !same(got, tc.sasl) {
				t.Errorf("ourCertFor(%s) = %v, want %v", tc.domain, got != nil, tc.sasl != nil)
			}
		})
	}
}
