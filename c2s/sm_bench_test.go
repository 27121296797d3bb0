package c2s

import (
	"strconv"
	"testing"
	"time"

	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
)

// BenchmarkMessageSM is BenchmarkMessageDecodeRouteEncode's chat with and
// without stream management on the receiving session: with it, each stanza
// written is kept until acknowledged, an <r/> goes out every ackEvery
// stanzas, and the client's <a/> (decoded and applied, as the reader does)
// answers each. The bound: sm=on ≤ 1.10 × sm=off per message.
func BenchmarkMessageSM(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run("sm="+map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			srv, rt := newBenchServer(1 << 14)
			conn := &discardConn{}
			bob := boundSession(b, srv, "bob@localhost/phone", conn)
			var m *session.SM
			if on {
				m = session.NewSM("id", time.Hour, 1<<20)
				bob.sess.SetSM(m)
				m.StartCounting()
			}
			msg := `<message to='bob@localhost/phone' type='chat' id='8e4c6b2a-1'><body>Hello Bob, this is a message of ordinary length for a chat.</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='8e4c6b2a-1'/></message>`
			var ackBuf []byte
			b.ReportAllocs()
			b.ResetTimer()
			routeFromAlice(b, rt, bob, msg, func(i int) {
				if !on || i%ackEvery != ackEvery-1 {
					return
				}
				// The client's answer to an <r/>: what it has read.
				out, _ := m.Counters()
				ackBuf = append(ackBuf[:0], "<a xmlns='urn:xmpp:sm:3' h='"...)
				ackBuf = strconv.AppendUint(ackBuf, uint64(out), 10)
				ackBuf = append(ackBuf, "'/>"...)
				a, err := stanza.ParseElement(ackBuf)
				if err != nil {
					b.Fatal(err)
				}
				if err := bob.smElement(a); err != nil {
					b.Fatal(err)
				}
			})
			b.StopTimer()
			if on {
				b.ReportMetric(float64(m.Unacked()), "unacked-at-end")
			}
		})
	}
}
