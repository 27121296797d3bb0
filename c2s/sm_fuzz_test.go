package c2s

import (
	"testing"
	"time"

	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
)

// FuzzSMElement: whatever XEP-0198 element a bound client sends (any
// attributes, any h), the session answers or ends the stream with an
// error; it never panics, and an ack never forgets more than was sent.
func FuzzSMElement(f *testing.F) {
	for _, s := range []string{
		`<a xmlns='urn:xmpp:sm:3' h='3'/>`, `<a xmlns='urn:xmpp:sm:3' h='4294967295'/>`,
		`<a xmlns='urn:xmpp:sm:3' h='-1'/>`, `<a xmlns='urn:xmpp:sm:3'/>`, `<r xmlns='urn:xmpp:sm:3'/>`,
		`<enable xmlns='urn:xmpp:sm:3' resume='true' max='99999999999'/>`,
		`<resume xmlns='urn:xmpp:sm:3' previd='x' h='1'/>`, `<other xmlns='urn:xmpp:sm:3'/>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		el, err := stanza.ParseElement(b)
		if err != nil || el.Space != session.NSSM {
			return
		}
		srv, _ := newBenchServer(64)
		bob := boundSession(t, srv, "bob@localhost/phone", &discardConn{})
		m := session.NewSM("id", time.Hour, 100)
		bob.sess.SetSM(m)
		m.StartCounting()
		m.Taken([]*stanza.Element{stanza.New(stanza.NSClient, "message"), stanza.New(stanza.NSClient, "message")}, 10)
		err = bob.smElement(el)
		if out, acked := m.Counters(); acked > 2 {
			t.Fatalf("acknowledged %d of %d sent (err %v)", acked, out, err)
		}
		if m.Unacked() > 2 {
			t.Fatalf("%d unacked after an ack", m.Unacked())
		}
	})
}
