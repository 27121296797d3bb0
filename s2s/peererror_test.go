package s2s

import (
	"crypto/x509"
	"testing"
)

// A peer's <stream:error/> ends the stream: we log its condition and text at
// warn level with its domain, and close our side with </stream:stream>
// alone (RFC 6120 §4.9.1.1), on either kind of stream at any stage.
func TestPeerStreamError(t *testing.T) {
	const conflict = `<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>` +
		`<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>Replaced by new connection</text></stream:error>`

	t.Run("inbound authenticated", func(t *testing.T) {
		var log *logBuf
		_, w := authedRawWith(t, func(cfg *Config) { log = captureLog(cfg) })
		w.send(conflict)
		w.expectClose()
		log.expectLine(t, "level=WARN", "direction=in", "remote_domain=c.test", "condition=conflict", `text="Replaced by new connection"`, "authenticated=[c.test]")
	})

	t.Run("inbound before TLS", func(t *testing.T) {
		var log *logBuf
		d := startServer(t, &staticResolver{}, "d.test", issue(t, nil, "d.test"), nil, func(cfg *Config) { log = captureLog(cfg) })
		w := dialRaw(t, d.addr)
		w.send(serverHeader("c.test", "d.test"))
		w.header()
		w.next() // features
		w.send(`<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`)
		w.expectClose()
		log.expectLine(t, "level=WARN", "remote_domain=c.test", "condition=host-unknown")
	})

	t.Run("outbound negotiating", func(t *testing.T) {
		res := &staticResolver{}
		var log *logBuf
		c := startServer(t, res, "c.test", issue(t, nil, "c.test"), x509.NewCertPool(), func(cfg *Config) { log = captureLog(cfg) })
		ln := listenRaw(t, res, "d.test")
		c.Send(ctx, "d.test", message("alice@c.test/x", "bob@d.test", "1"))
		w := acceptRaw(t, ln)
		w.header()
		w.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='d.test' to='c.test' id='S0' version='1.0'>` +
			`<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>` +
			`<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>c.test is blocked here</text></stream:error>`)
		w.expectClose()
		if b := c.router.next(t); stanzaErr2(b) != "remote-server-not-found" {
			t.Fatalf("bounce %s, want remote-server-not-found", b)
		}
		log.expectLine(t, "level=WARN", "direction=out", "remote_domain=d.test", "condition=policy-violation", `text="c.test is blocked here"`)
	})

	t.Run("outbound established", func(t *testing.T) {
		res := &staticResolver{}
		var log *logBuf
		c := startServer(t, res, "c.test", issue(t, nil, "c.test"), x509.NewCertPool(), func(cfg *Config) { log = captureLog(cfg) })
		ln := listenRaw(t, res, "d.test")
		c.Send(ctx, "d.test", message("alice@c.test/x", "bob@d.test", "1"))
		w := acceptOriginating(t, c, ln)
		w.next() // the message
		w.send(conflict)
		w.expectClose()
		log.expectLine(t, "level=WARN", "direction=out", "remote_domain=d.test", "condition=conflict", `text="Replaced by new connection"`)
	})
}
