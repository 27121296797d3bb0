package c2s

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppd/xmppd/router"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// discardConn is a connection whose writes vanish: the benchmark measures
// our work, not the kernel's.
type discardConn struct {
	net.Conn
	written atomic.Int64
	writes  atomic.Int64
}

func (c *discardConn) Write(b []byte) (int, error) {
	c.written.Add(int64(len(b)))
	c.writes.Add(1)
	return len(b), nil
}
func (c *discardConn) Read([]byte) (int, error)         { select {} }
func (c *discardConn) Close() error                     { return nil }
func (c *discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (c *discardConn) SetDeadline(time.Time) error      { return nil }
func (c *discardConn) SetReadDeadline(time.Time) error  { return nil }
func (c *discardConn) SetWriteDeadline(time.Time) error { return nil }

// boundSession registers a session for full without negotiating a stream.
func boundSession(t testing.TB, srv *Server, full string, conn net.Conn) *Session {
	s := newSession(srv, conn)
	addr, err := stanza.ParseJID(full)
	if err != nil {
		t.Fatal(err)
	}
	s.addr, s.full = addr, full
	s.bindSession()
	s.sess.Attach(s)
	s.sess.TrackPresence(stanza.New(stanza.NSClient, "presence"))
	return s
}

func newBenchServer(queue int) (*Server, *router.Router) {
	host := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}})
	srv := New(Config{Domains: []string{"localhost"}, QueueSize: queue})
	rt := router.New(host, srv.Sessions(), nil, nil)
	srv.SetRouter(rt)
	return srv, rt
}

// BenchmarkMessageDecodeRouteEncode is one chat message's whole trip between
// two local sessions: decoded from alice's stream, 'from' stamped, routed by
// full JID, queued on bob's session, serialized and written by bob's writer.
func BenchmarkMessageDecodeRouteEncode(b *testing.B) {
	for _, target := range []string{"full", "bare"} {
		b.Run("to="+target, func(b *testing.B) {
			srv, rt := newBenchServer(1 << 14)
			conn := &discardConn{}
			bob := boundSession(b, srv, "bob@localhost/phone", conn)
			to := "bob@localhost/phone"
			if target == "bare" {
				to = "bob@localhost"
			}
			msg := fmt.Sprintf(`<message to='%s' type='chat' id='8e4c6b2a-1'><body>Hello Bob, this is a message of ordinary length for a chat.</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='8e4c6b2a-1'/></message>`, to)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			routeFromAlice(b, rt, bob, msg, nil)
			b.StopTimer()
			if conn.written.Load() < int64(b.N)*int64(len(msg)) {
				b.Fatalf("bob's connection got %d bytes for %d messages", conn.written.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/float64(conn.writes.Load()), "msgs/write")
		})
	}
}

// routeFromAlice decodes b.N copies of msg from alice's stream, in streams
// of 1000, stamps 'from' and routes each; after, if set, runs after the
// i-th. It returns once bob's session has written everything.
func routeFromAlice(b *testing.B, rt *router.Router, bob *Session, msg string, after func(i int)) {
	const batch = 1000
	in := []byte(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>` + strings.Repeat(msg, batch))
	ctx := context.Background()
	for i := 0; i < b.N; {
		dec := stanza.NewDecoder(bytes.NewReader(in), stanza.DefaultLimits)
		if _, err := dec.ReadHeader(); err != nil {
			b.Fatal(err)
		}
		for j := 0; j < batch && i < b.N; j, i = j+1, i+1 {
			el, err := dec.Next()
			if err != nil {
				b.Fatal(err)
			}
			el.Set("from", "alice@localhost/laptop")
			rt.RouteFromClient(ctx, el)
			if after != nil {
				after(i)
			}
		}
		waitDrained(b, bob)
	}
	waitDrained(b, bob)
}

func waitDrained(b *testing.B, s *Session) {
	for {
		idle := !s.out.Busy()
		if s.out.Closing() {
			b.Fatal("session closed: the queue overflowed")
		}
		if idle {
			return
		}
		time.Sleep(10 * time.Microsecond)
	}
}

// TestRegistryConcurrent binds, looks up and unbinds sessions from many
// goroutines at once: run with -race, it checks the sharded registry.
func TestRegistryConcurrent(t *testing.T) {
	srv, _ := newBenchServer(16)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				full := fmt.Sprintf("user%d@localhost/r%d", i%10, g)
				s := boundSession(t, srv, full, &discardConn{})
				if srv.Sessions().Session(full) != s.sess {
					t.Errorf("%s not found after bind", full)
					return
				}
				var buf [8]router.Session
				if len(srv.Sessions().Sessions(fmt.Sprintf("user%d@localhost", i%10), buf[:0])) == 0 {
					t.Errorf("no sessions for the bare JID of %s", full)
					return
				}
				srv.Sessions().Unbind(s.sess)
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 10; i++ {
		var buf [8]router.Session
		if n := len(srv.Sessions().Sessions(fmt.Sprintf("user%d@localhost", i), buf[:0])); n != 0 {
			t.Fatalf("user%d still has %d sessions", i, n)
		}
	}
}

// TestBindConflictReturnsOld: binding a taken full JID hands back the old
// session so the caller can close it with <conflict/>.
func TestBindConflictReturnsOld(t *testing.T) {
	srv, _ := newBenchServer(16)
	old := boundSession(t, srv, "alice@localhost/phone", &discardConn{})
	s := newSession(srv, &discardConn{})
	s.addr, s.full = old.addr, old.full
	if got := s.bindSession(); got != old.sess {
		t.Fatalf("bind returned %v, want the old session", got)
	}
	if srv.Sessions().Session("alice@localhost/phone") != s.sess {
		t.Fatal("the new session does not own the JID")
	}
	srv.Sessions().Unbind(old.sess) // a late unbind of the loser must not remove the winner
	if srv.Sessions().Session("alice@localhost/phone") != s.sess {
		t.Fatal("unbinding the old session removed the new one")
	}
}

// gateConn blocks every Write until the test lets it through.
type gateConn struct {
	discardConn
	gate chan struct{}
}

func (c *gateConn) Write(b []byte) (int, error) {
	<-c.gate
	return c.discardConn.Write(b)
}

// TestDeliverWaitBacklog: a backlog larger than the queue reaches a client
// that reads slowly, where plain Deliver would drop it as a slow consumer.
func TestDeliverWaitBacklog(t *testing.T) {
	srv, _ := newBenchServer(2)
	conn := &gateConn{gate: make(chan struct{})}
	s := boundSession(t, srv, "bob@localhost/phone", conn)
	done := make(chan int)
	go func() {
		n := 0
		for i := 0; i < 10; i++ {
			el := stanza.New(stanza.NSClient, "message").Set("id", fmt.Sprint(i))
			if s.DeliverWait(context.Background(), el) {
				n++
			}
		}
		done <- n
	}()
	go func() {
		for i := 0; i < 10; i++ {
			conn.gate <- struct{}{}
		}
	}()
	select {
	case n := <-done:
		if n != 10 {
			t.Fatalf("delivered %d of 10", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("DeliverWait did not finish")
	}
	if s.isClosing() {
		t.Fatal("the session was closed as a slow consumer")
	}
	// Plain Deliver on a queue that stays full (the client reads nothing)
	// waits slowConsumerGrace for room, then closes the session.
	conn2 := &gateConn{gate: make(chan struct{})}
	s2 := boundSession(t, srv, "bob@localhost/laptop", conn2)
	start := time.Now()
	for i := 0; i < 8 && !s2.isClosing(); i++ {
		s2.Deliver(stanza.New(stanza.NSClient, "message"))
	}
	if !s2.isClosing() {
		t.Fatal("a queue that stayed full did not close the session")
	}
	if waited := time.Since(start); waited < slowConsumerGrace {
		t.Fatalf("closed after %v, before the grace of %v", waited, slowConsumerGrace)
	}
	close(conn2.gate)
}

// TestDeliverBurstToReadingClient: a burst larger than the queue, to a
// client that reads (slowly), is delivered whole: the sender is held back,
// the reader is not disconnected.
func TestDeliverBurstToReadingClient(t *testing.T) {
	srv, _ := newBenchServer(4)
	conn := &gateConn{gate: make(chan struct{})}
	s := boundSession(t, srv, "carol@localhost/phone", conn)
	go func() { // the client reads a batch every 5 ms
		for range time.Tick(5 * time.Millisecond) {
			select {
			case conn.gate <- struct{}{}:
			default:
			}
			if s.isClosing() {
				return
			}
		}
	}()
	for i := 0; i < 100; i++ {
		if !s.Deliver(stanza.New(stanza.NSClient, "message").Set("id", fmt.Sprint(i))) {
			t.Fatalf("message %d refused", i)
		}
	}
	if s.isClosing() {
		t.Fatal("a reading client was closed as a slow consumer")
	}
}
