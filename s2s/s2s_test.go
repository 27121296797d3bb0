package s2s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

var ctx = context.Background()

// expectMessages checks that rec gets the bodies in order, as jabber:server stanzas.
func expectMessages(t *testing.T, rec *recorder, from, to string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		el := rec.next(t)
		if el.Local != "message" || el.Get("from") != from || el.Get("to") != to || el.Child(el.Space, "body").Text() != b {
			t.Fatalf("routed %s, want a message %q from %s to %s", el, b, from, to)
		}
		if el.Space != stanza.NSServer {
			t.Fatalf("inbound stanza in %q, want jabber:server", el.Space)
		}
	}
}

// TestExternal: valid certificates both ways, so both sides use SASL
// EXTERNAL; stanzas queued while connecting arrive in order; the answer goes
// back over the same connection (XEP-0288) and the stream is reused.
func TestExternal(t *testing.T) {
	ca := newCA(t)
	res := &staticResolver{}
	c := startServer(t, res, "c.test", issue(t, ca, "c.test"), ca.pool, nil)
	d := startServer(t, res, "d.test", issue(t, ca, "d.test"), ca.pool, nil)

	for i := range 5 {
		if !c.Send(ctx, "d.test", message("alice@c.test/x", "bob@d.test", fmt.Sprint("m", i))) {
			t.Fatal("Send refused")
		}
	}
	expectMessages(t, d.router, "alice@c.test/x", "bob@d.test", "m0", "m1", "m2", "m3", "m4")
	st := c.routeOf("c.test", "d.test")
	if st == nil {
		t.Fatal("no route after delivery")
	}
	if m := c.methodOf(st); m != "EXTERNAL" {
		t.Fatalf("authenticated with %q, want EXTERNAL", m)
	}

	// Reuse: one more stanza, no new connection.
	c.Send(ctx, "d.test", message("alice@c.test/x", "bob@d.test", "again"))
	expectMessages(t, d.router, "alice@c.test/x", "bob@d.test", "again")
	if n := d.accepted.Load(); n != 1 {
		t.Fatalf("d accepted %d connections, want 1 (reuse)", n)
	}

	// Bidi: d answers over the stream c opened.
	d.Send(ctx, "c.test", message("bob@d.test/y", "alice@c.test/x", "reply"))
	expectMessages(t, c.router, "bob@d.test/y", "alice@c.test/x", "reply")
	if n := d.dialed.Load(); n != 0 {
		t.Fatalf("d dialed %d times, want 0: the bidi stream should carry its stanzas", n)
	}
	if c.callbacks.Load()+d.callbacks.Load() != 0 {
		t.Fatal("dialback used on a certificate-authenticated link")
	}
}

func (s *testServer) methodOf(st *stream) string {
	if st == nil {
		return ""
	}
	return st.method
}

// TestExternalDirectTLS: an XEP-0368 target.
func TestExternalDirectTLS(t *testing.T) {
	ca := newCA(t)
	res := &staticResolver{}
	c := startServer(t, res, "c.test", issue(t, ca, "c.test"), ca.pool, nil)
	d := startServer(t, res, "d.test", issue(t, ca, "d.test"), ca.pool, nil)
	res.set("d.test", d.direct, true) // XEP-0368: TLS from the first byte
	c.Send(ctx, "d.test", message("alice@c.test", "bob@d.test", "direct"))
	expectMessages(t, d.router, "alice@c.test", "bob@d.test", "direct")
	if m := c.methodOf(c.routeOf("c.test", "d.test")); m != "EXTERNAL" {
		t.Fatalf("authenticated with %q, want EXTERNAL", m)
	}
}

// TestDialback: self-signed certificates and no trusted roots, so c proves
// itself by dialback and d calls c back to verify the key.
func TestDialback(t *testing.T) {
	res := &staticResolver{}
	none := x509.NewCertPool()
	c := startServer(t, res, "c.test", issue(t, nil, "c.test"), none, nil)
	d := startServer(t, res, "d.test", issue(t, nil, "d.test"), none, nil)

	c.Send(ctx, "d.test", message("alice@c.test/x", "bob@d.test", "hello"))
	c.Send(ctx, "d.test", message("alice@c.test/x", "bob@d.test", "world"))
	expectMessages(t, d.router, "alice@c.test/x", "bob@d.test", "hello", "world")
	if m := c.methodOf(c.routeOf("c.test", "d.test")); m != "dialback" {
		t.Fatalf("authenticated with %q, want dialback", m)
	}
	if d.callbacks.Load() != 1 || c.verified.Load() != 1 {
		t.Fatalf("callbacks %d (d), verifications answered %d (c); want 1 and 1", d.callbacks.Load(), c.verified.Load())
	}
	d.Send(ctx, "c.test", message("bob@d.test", "alice@c.test/x", "back"))
	expectMessages(t, c.router, "bob@d.test", "alice@c.test/x", "back")
}

// TestDialbackWrongSecret: an authoritative server that did not make the key says invalid.
func TestDialbackInvalidKey(t *testing.T) {
	res := &staticResolver{}
	none := x509.NewCertPool()
	startServer(t, res, "c.test", issue(t, nil, "c.test"), none, nil)
	d := startServer(t, res, "d.test", issue(t, nil, "d.test"), none, nil)

	w := dialRaw(t, d.addr)
	f := w.openTLS("c.test", "d.test", nil)
	if f.Child(nsDialbackFeature, "dialback") == nil || hasMechanism(f, "EXTERNAL") {
		t.Fatalf("features %s: want dialback and no EXTERNAL", f)
	}
	w.send(`<db:result from='c.test' to='d.test'>0123456789abcdef</db:result>`)
	r := w.next()
	if !r.Is(nsDialback, "result") || r.Get("type") != "invalid" || r.Get("from") != "d.test" || r.Get("to") != "c.test" {
		t.Fatalf("got %s, want <db:result type='invalid'/>", r)
	}
	w.send(`<message from='eve@c.test' to='bob@d.test'><body>spoof</body></message>`)
	w.expectStreamError("not-authorized")
	d.router.none(t, 50*time.Millisecond)
}

// TestDialbackOverVerifiedConnection: the peer's certificate is valid for
// the domain it asks for, so d accepts without calling back (XEP-0344).
// c.test is not even resolvable for d: a callback would fail.
func TestDialbackOverVerifiedConnection(t *testing.T) {
	ca := newCA(t)
	res := &staticResolver{}
	d := startServer(t, res, "d.test", issue(t, ca, "d.test"), ca.pool, nil)
	cert := issue(t, ca, "c.test")

	w := dialRaw(t, d.addr)
	f := w.openTLS("c.test", "d.test", &cert)
	if f.Child(nsDialbackFeature, "dialback") == nil || !hasMechanism(f, "EXTERNAL") || f.Child(nsBidiFeature, "bidi") == nil {
		t.Fatalf("features %s: want EXTERNAL, dialback and bidi", f)
	}
	w.send(`<db:result from='c.test' to='d.test'>not-a-key-we-could-check</db:result>`)
	r := w.next()
	if !r.Is(nsDialback, "result") || r.Get("type") != "valid" {
		t.Fatalf("got %s, want <db:result type='valid'/>", r)
	}
	w.send(`<message from='alice@c.test' to='bob@d.test' id='1'><body>hi</body></message>`)
	expectMessages(t, d.router, "alice@c.test", "bob@d.test", "hi")
	if d.callbacks.Load() != 0 {
		t.Fatal("d called back although the certificate proved the domain")
	}
	// A second domain on the same stream, not covered by the certificate, is
	// asked of its authoritative server; unresolvable here, so an error.
	w.send(`<db:result from='e.test' to='d.test'>abc</db:result>`)
	r = w.next()
	if r.Get("type") != "error" || r.Get("from") != "d.test" || r.Get("to") != "e.test" {
		t.Fatalf("got %s, want <db:result type='error'/>", r)
	}
	// Our domain unknown: item-not-found.
	w.send(`<db:result from='c.test' to='x.test'>abc</db:result>`)
	r = w.next()
	if r.Get("type") != "error" || stanzaErr(r) != "item-not-found" {
		t.Fatalf("got %s, want <db:result type='error'><item-not-found/>", r)
	}
}

func stanzaErr(el *stanza.Element) string {
	for _, c := range el.Child(stanza.NSServer, "error").Children() {
		if c.Space == stanza.NSStanzas {
			return c.Local
		}
	}
	return ""
}

// TestAuthoritative: db:verify on any stream is answered by key (XEP-0220 §2.1.3).
func TestAuthoritative(t *testing.T) {
	res := &staticResolver{}
	d := startServer(t, res, "d.test", issue(t, nil, "d.test"), x509.NewCertPool(), nil)
	good := dialbackKey(d.secret, "c.test", "d.test", "s1")
	w := dialRaw(t, d.addr)
	w.openTLS("c.test", "d.test", nil)
	w.send(`<db:verify from='c.test' to='d.test' id='s1'>` + good + `</db:verify>`)
	if r := w.next(); r.Get("type") != "valid" || r.Get("id") != "s1" || r.Get("from") != "d.test" || r.Get("to") != "c.test" {
		t.Fatalf("got %s, want valid", r)
	}
	w.send(`<db:verify from='c.test' to='d.test' id='s2'>` + good + `</db:verify>`)
	if r := w.next(); r.Get("type") != "invalid" {
		t.Fatalf("got %s, want invalid (another stream ID)", r)
	}
	w.send(`<db:verify from='c.test' to='x.test' id='s1'>` + good + `</db:verify>`)
	if r := w.next(); r.Get("type") != "error" || stanzaErr(r) != "item-not-found" {
		t.Fatalf("got %s, want item-not-found", r)
	}
}

// TestRequireValidCert: a self-signed peer gets no dialback offer and cannot federate.
func TestRequireValidCert(t *testing.T) {
	ca := newCA(t)
	res := &staticResolver{}
	c := startServer(t, res, "c.test", issue(t, nil, "c.test"), ca.pool, nil)
	d := startServer(t, res, "d.test", issue(t, ca, "d.test"), ca.pool, func(cfg *Config) { cfg.RequireValidCert = true })

	w := dialRaw(t, d.addr)
	if f := w.openTLS("c.test", "d.test", nil); len(f.Children()) != 1 || f.Child(nsBidiFeature, "bidi") == nil {
		t.Fatalf("features %s: want only bidi (no EXTERNAL without a certificate, no dialback by policy)", f)
	}
	w.send(`<db:result from='c.test' to='d.test'>abc</db:result>`)
	w.expectStreamError("not-authorized")

	c.Send(ctx, "d.test", message("alice@c.test/x", "bob@d.test", "no"))
	b := c.router.next(t)
	if b.Get("type") != "error" || stanzaErr2(b) != "remote-server-not-found" || b.Get("to") != "alice@c.test/x" || b.Get("from") != "bob@d.test" {
		t.Fatalf("bounce %s, want remote-server-not-found to the sender", b)
	}
	d.router.none(t, 50*time.Millisecond)
}

// stanzaErr2 reads a bounce's condition (the bounce is a jabber:client stanza).
func stanzaErr2(el *stanza.Element) string {
	if e := stanza.ParseError(el); e != nil {
		return e.Condition
	}
	return ""
}

// TestBounceNotFound: nothing listens, so every queued stanza but errors bounces.
func TestBounceNotFound(t *testing.T) {
	res := &staticResolver{}
	c := startServer(t, res, "c.test", issue(t, nil, "c.test"), nil, nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	res.set("e.test", ln.Addr(), false)
	ln.Close()

	c.Send(ctx, "e.test", message("alice@c.test/x", "bob@e.test", "1"))
	c.Send(ctx, "e.test", message("alice@c.test/x", "bob@e.test", "2").Set("type", "error"))
	c.Send(ctx, "e.test", message("alice@c.test/x", "bob@e.test", "3"))
	for _, id := range []string{"1", "3"} {
		b := c.router.next(t)
		if b.Get("id") != id || stanzaErr2(b) != "remote-server-not-found" {
			t.Fatalf("bounce %s, want id %s remote-server-not-found", b, id)
		}
	}
	c.router.none(t, 100*time.Millisecond)
	// Unresolvable: the same.
	c.Send(ctx, "nowhere.test", message("alice@c.test/x", "bob@nowhere.test", "4"))
	if b := c.router.next(t); stanzaErr2(b) != "remote-server-not-found" {
		t.Fatalf("bounce %s, want remote-server-not-found", b)
	}
}

// TestBounceTimeout: the peer accepts the connection and never answers.
func TestBounceTimeout(t *testing.T) {
	res := &staticResolver{}
	c := startServer(t, res, "c.test", issue(t, nil, "c.test"), nil, func(cfg *Config) { cfg.AuthTimeout = 300 * time.Millisecond })
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	res.set("e.test", ln.Addr(), false)
	c.Send(ctx, "e.test", message("alice@c.test/x", "bob@e.test", "1"))
	if b := c.router.next(t); stanzaErr2(b) != "remote-server-timeout" {
		t.Fatalf("bounce %s, want remote-server-timeout", b)
	}
}

// TestQueueBound: beyond QueueSize stanzas waiting for a stream, resource-constraint.
func TestQueueBound(t *testing.T) {
	res := &staticResolver{}
	c := startServer(t, res, "c.test", issue(t, nil, "c.test"), nil, func(cfg *Config) {
		cfg.QueueSize = 2
		cfg.AuthTimeout = 300 * time.Millisecond
	})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	res.set("e.test", ln.Addr(), false)
	for i := range 3 {
		c.Send(ctx, "e.test", message("alice@c.test/x", "bob@e.test", fmt.Sprint(i)))
	}
	want := map[string]string{"2": "resource-constraint", "0": "remote-server-timeout", "1": "remote-server-timeout"}
	for range 3 {
		b := c.router.next(t)
		if stanzaErr2(b) != want[b.Get("id")] {
			t.Fatalf("bounce %s, want %s", b, want[b.Get("id")])
		}
		delete(want, b.Get("id"))
	}
}

// authedRaw is a raw peer c.test authenticated to d by SASL EXTERNAL.
func authedRaw(t *testing.T) (*testServer, *raw) {
	t.Helper()
	return authedRawWith(t, nil)
}

// authedRawWith is authedRaw with d's Config edited.
func authedRawWith(t *testing.T, edit func(*Config)) (*testServer, *raw) {
	t.Helper()
	ca := newCA(t)
	res := &staticResolver{}
	d := startServer(t, res, "d.test", issue(t, ca, "d.test"), ca.pool, edit)
	return d, externalRaw(t, d, issue(t, ca, "c.test"))
}

// externalRaw is a raw peer c.test authenticated to d by SASL EXTERNAL with cert.
func externalRaw(t *testing.T, d *testServer, cert tls.Certificate) *raw {
	t.Helper()
	w := dialRaw(t, d.addr)
	f := w.openTLS("c.test", "d.test", &cert)
	if !hasMechanism(f, "EXTERNAL") {
		t.Fatalf("features %s: want EXTERNAL", f)
	}
	w.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>` + base64.StdEncoding.EncodeToString([]byte("c.test")) + `</auth>`)
	if s := w.next(); !s.Is(stanza.NSSASL, "success") {
		t.Fatalf("got %s, want <success/>", s)
	}
	w.send(serverHeader("c.test", "d.test"))
	w.header()
	if f := w.next(); !f.Is(stanza.NSStream, "features") || len(f.Children()) != 0 {
		t.Fatalf("got %s, want empty <stream:features/>", f)
	}
	return w
}

// TestRefusals: what an authenticated peer may not send (RFC 6120 §4.9.3).
func TestRefusals(t *testing.T) {
	t.Run("accepted", func(t *testing.T) {
		d, w := authedRaw(t)
		w.send(`<message from='alice@c.test/x' to='bob@d.test' id='ok'><body>fine</body></message>`)
		expectMessages(t, d.router, "alice@c.test/x", "bob@d.test", "fine")
	})
	for _, tc := range []struct{ name, xml, cond string }{
		{"invalid-from", `<message from='eve@e.test' to='bob@d.test'><body>spoof</body></message>`, "invalid-from"},
		{"malformed-from", `<message from='@c.test' to='bob@d.test'><body>x</body></message>`, "invalid-from"},
		{"host-unknown", `<message from='alice@c.test' to='bob@e.test'><body>relay</body></message>`, "host-unknown"},
		{"no-to", `<message from='alice@c.test'><body>x</body></message>`, "improper-addressing"},
		{"no-from", `<iq to='d.test' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>`, "improper-addressing"},
		{"unknown-element", `<foo xmlns='urn:example'/>`, "unsupported-stanza-type"},
		{"oversize", `<message from='alice@c.test' to='bob@d.test'><body>` + string(make([]byte, 0)) + bigText(600<<10) + `</body></message>`, "policy-violation"},
		{"restricted-xml", `<!-- comment -->`, "restricted-xml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, w := authedRaw(t)
			w.send(tc.xml)
			w.expectStreamError(tc.cond)
			d.router.none(t, 20*time.Millisecond)
		})
	}
}

func bigText(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a'
	}
	return string(b)
}

// TestHeaderRefusals: the stream header checks.
func TestHeaderRefusals(t *testing.T) {
	res := &staticResolver{}
	d := startServer(t, res, "d.test", issue(t, nil, "d.test"), nil, nil)
	for _, tc := range []struct{ name, header, cond string }{
		{"host-unknown", serverHeader("c.test", "x.test"), "host-unknown"},
		{"no-to", `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`, "host-unknown"},
		{"client-namespace", `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='d.test' version='1.0'>`, "invalid-namespace"},
		{"no-version", `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='d.test'>`, "unsupported-version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := dialRaw(t, d.addr)
			w.send(tc.header)
			w.header()
			w.expectStreamError(tc.cond)
		})
	}
	t.Run("stanza-before-auth", func(t *testing.T) {
		w := dialRaw(t, d.addr)
		w.send(serverHeader("c.test", "d.test"))
		w.header()
		w.next() // features
		w.send(`<message from='alice@c.test' to='bob@d.test'><body>early</body></message>`)
		w.expectStreamError("not-authorized")
	})
	t.Run("dialback-before-tls", func(t *testing.T) {
		w := dialRaw(t, d.addr)
		w.send(serverHeader("c.test", "d.test"))
		w.header()
		w.next()
		w.send(`<db:result from='c.test' to='d.test'>abc</db:result>`)
		w.expectStreamError("policy-violation")
	})
	t.Run("auth-timeout", func(t *testing.T) {
		d := startServer(t, res, "f.test", issue(t, nil, "f.test"), nil, func(cfg *Config) { cfg.AuthTimeout = 200 * time.Millisecond })
		w := dialRaw(t, d.addr)
		w.send(serverHeader("c.test", "f.test"))
		w.header()
		w.next()
		w.expectStreamError("connection-timeout")
	})
}

// TestIdleClose: a stream with no traffic for IdleTimeout is closed at both ends.
func TestIdleClose(t *testing.T) {
	ca := newCA(t)
	res := &staticResolver{}
	idle := func(cfg *Config) { cfg.IdleTimeout = 300 * time.Millisecond }
	c := startServer(t, res, "c.test", issue(t, ca, "c.test"), ca.pool, idle)
	d := startServer(t, res, "d.test", issue(t, ca, "d.test"), ca.pool, idle)
	c.Send(ctx, "d.test", message("alice@c.test", "bob@d.test", "1"))
	expectMessages(t, d.router, "alice@c.test", "bob@d.test", "1")
	waitFor(t, "the idle stream to close", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(c.routes) == 0 && c.open.Len() == 0 && d.open.Len() == 0
	})
	// A new stanza opens a new stream.
	c.Send(ctx, "d.test", message("alice@c.test", "bob@d.test", "2"))
	expectMessages(t, d.router, "alice@c.test", "bob@d.test", "2")
	if n := d.accepted.Load(); n != 2 {
		t.Fatalf("d accepted %d connections, want 2", n)
	}
}

// TestShutdown: every stream gets <system-shutdown/>.
func TestShutdown(t *testing.T) {
	ca := newCA(t)
	res := &staticResolver{}
	d := startServer(t, res, "d.test", issue(t, ca, "d.test"), ca.pool, nil)
	w2 := dialRaw(t, d.addr)
	w2.send(serverHeader("c.test", "d.test"))
	w2.header()
	w2.next()
	go d.Shutdown(ctx)
	w2.expectStreamError("system-shutdown")
	if d.Send(ctx, "c.test", message("bob@d.test", "alice@c.test", "late")) {
		t.Fatal("Send accepted a stanza after Shutdown")
	}
}

// TestSendRefuses: what Send does not take (the router bounces it).
func TestSendRefuses(t *testing.T) {
	res := &staticResolver{}
	c := startServer(t, res, "c.test", issue(t, nil, "c.test"), nil, nil)
	for _, tc := range []struct{ domain, from string }{
		{"c.test", "alice@c.test"},     // ours
		{"d.test", "alice@x.test"},     // not from us
		{"bad domain", "alice@c.test"}, // not a domain
		{"d.test", ""},
	} {
		if c.Send(ctx, tc.domain, message(tc.from, "bob@"+tc.domain, "x")) {
			t.Errorf("Send(%q) from %q accepted", tc.domain, tc.from)
		}
	}
}

// TestOriginatingWire: our outgoing side against a raw receiving server,
// with every byte the raw side sends written out: STARTTLS, then dialback
// because the raw side offers no EXTERNAL.
func TestOriginatingWire(t *testing.T) {
	res := &staticResolver{}
	c := startServer(t, res, "c.test", issue(t, nil, "c.test"), x509.NewCertPool(), nil)
	ln := listenRaw(t, res, "d.test")
	c.Send(ctx, "d.test", message("alice@c.test/x", "bob@d.test", "over the wire"))
	w := acceptOriginating(t, c, ln)
	el := w.next()
	if !el.Is(stanza.NSServer, "message") || el.Get("from") != "alice@c.test/x" || el.Child(stanza.NSServer, "body").Text() != "over the wire" {
		t.Fatalf("got %s, want the message in jabber:server", el)
	}
	w.send(`</stream:stream>`)
	w.expectClose()
}

// listenRaw is a raw receiving server for domain, registered in res.
func listenRaw(t *testing.T, res *staticResolver, domain string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	res.set(domain, ln.Addr(), false)
	return ln
}

// acceptRaw takes the next connection on ln as a raw peer.
func acceptRaw(t *testing.T, ln net.Listener) *raw {
	t.Helper()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &raw{t: t, conn: conn, dec: stanza.NewDecoder(conn, stanza.Limits{MaxStanza: 1 << 20, MaxDepth: 64, MaxAttrs: 64, MaxHeader: 8192})}
}

// acceptOriginating takes the stream c opens to the raw server d.test on ln
// and runs it through STARTTLS and dialback, checking each of c's steps, up
// to d.test's <db:result type='valid'/>.
func acceptOriginating(t *testing.T, c *testServer, ln net.Listener) *raw {
	t.Helper()
	w := acceptRaw(t, ln)
	conn := w.conn
	h := w.header()
	if h.NS != stanza.NSServer || h.From != "c.test" || h.To != "d.test" || h.Version != "1.0" || !declares(h, nsDialback) {
		t.Fatalf("header %+v", h)
	}
	w.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='d.test' to='c.test' id='S0' version='1.0'>` +
		`<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`)
	if el := w.next(); !el.Is(stanza.NSTLS, "starttls") {
		t.Fatalf("got %s, want <starttls/>", el)
	}
	w.send(`<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	dcert := issue(t, nil, "d.test")
	tc := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{dcert}, ClientAuth: tls.RequestClientCert})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if sni := tc.ConnectionState().ServerName; sni != "d.test" {
		t.Fatalf("SNI %q, want d.test", sni)
	}
	if len(tc.ConnectionState().PeerCertificates) == 0 {
		t.Fatal("c presented no client certificate")
	}
	w.conn = tc
	w.dec.Reset(tc)
	w.header()
	w.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='d.test' to='c.test' id='S1' version='1.0'>` +
		`<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>`)
	el := w.next()
	want := dialbackKey(c.secret, "d.test", "c.test", "S1")
	if !el.Is(nsDialback, "result") || el.Get("from") != "c.test" || el.Get("to") != "d.test" || el.Text() != want {
		t.Fatalf("got %s, want <db:result from='c.test' to='d.test'>%s</db:result>", el, want)
	}
	w.send(`<db:result from='d.test' to='c.test' type='valid'/>`)
	return w
}
