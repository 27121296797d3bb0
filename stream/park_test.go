package stream

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

const clientHeader = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"

// parkedReader is a stream read the way c2s reads a bound session: decode,
// park when idle, resume on a new goroutine.
type parkedReader struct {
	c     *Conn[*stanza.Element]
	dec   *stanza.Decoder
	got   chan string // element names, then "end: <error>"
	parks atomic.Int32
}

func (r *parkedReader) read() {
	for {
		el, err := r.dec.Next()
		if errors.Is(err, ErrIdle) {
			if r.c.Park() {
				r.parks.Add(1)
				return
			}
			continue
		}
		if err != nil {
			r.got <- "end: " + err.Error()
			r.c.Close()
			return
		}
		r.got <- el.Local
	}
}

// waitParked waits until the reader has parked n times in all.
func (r *parkedReader) waitParked(t *testing.T, n int32) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); r.parks.Load() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("the reader parked %d times, want %d", r.parks.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func (r *parkedReader) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-r.got:
		if !strings.HasPrefix(got, want) {
			t.Fatalf("read %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("nothing read, want %q", want)
	}
}

// parkPair returns a TLS client connection and the reader of its server end,
// its stream header read and parking enabled, reading on its own goroutine.
func parkPair(t *testing.T, parkAfter time.Duration) (*tls.Conn, *parkedReader) {
	t.Helper()
	client, raw := tcpPair(t)
	srv := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{testCert(t)}})
	tc := tls.Client(&batchConn{Conn: client}, &tls.Config{InsecureSkipVerify: true})
	t.Cleanup(func() { tc.Close(); srv.Close() })
	go tc.Write([]byte(clientHeader))
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	r := &parkedReader{got: make(chan string, 16)}
	r.c = New(net.Conn(srv), Config[*stanza.Element]{
		QueueSize:    8,
		WriteTimeout: time.Second,
		ParkAfter:    parkAfter,
		Append:       func(b []byte, el *stanza.Element) []byte { return AppendStanza(b, el, stanza.NSClient) },
		Header:       func() stanza.StreamHeader { return stanza.StreamHeader{} },
	})
	r.dec = stanza.NewDecoder(r.c, stanza.DefaultLimits)
	if _, err := r.dec.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	r.c.EnableParking(r.read)
	go r.read()
	return tc, r
}

// tcpPair returns both ends of a TCP connection on loopback.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func TestParkedStreamWakes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("streams park only on Linux")
	}
	t.Run("on data", func(t *testing.T) {
		tc, r := parkPair(t, 0)
		r.waitParked(t, 1)
		before := runtime.NumGoroutine()
		io.WriteString(tc, "<a/>")
		r.expect(t, "a")
		r.waitParked(t, 2)
		io.WriteString(tc, "   ") // a whitespace keepalive parks again too
		r.waitParked(t, 3)
		io.WriteString(tc, "<b/>")
		r.expect(t, "b")
		r.waitParked(t, 4)
		if after := runtime.NumGoroutine(); after > before {
			t.Errorf("%d goroutines after parking again, %d before", after, before)
		}
	})
	t.Run("records buffered in TLS", func(t *testing.T) {
		// Two TLS records in one TCP segment: crypto/tls reads both from the
		// socket while the decoder asks for the first; the second must be
		// found in TLS's buffer, not waited for on the (empty) socket.
		tc, r := parkPair(t, 0)
		r.waitParked(t, 1)
		batch := tc.NetConn().(*batchConn)
		batch.hold = true
		io.WriteString(tc, "<c/>")
		io.WriteString(tc, "<d/>")
		batch.flush(t)
		r.expect(t, "c")
		r.expect(t, "d")
		r.waitParked(t, 2)
	})
	t.Run("on our close", func(t *testing.T) {
		tc, r := parkPair(t, 0)
		r.waitParked(t, 1)
		r.c.CloseWithError(&stanza.StreamError{Condition: "system-shutdown"})
		buf := make([]byte, 512)
		n, _ := io.ReadAtLeast(tc, buf, len("</stream:stream>"))
		if !strings.Contains(string(buf[:n]), "system-shutdown") {
			t.Fatalf("client read %q, want the stream error", buf[:n])
		}
		io.WriteString(tc, "</stream:stream>")
		r.expect(t, "end: "+stanza.ErrStreamClosed.Error())
	})
	t.Run("not while busy", func(t *testing.T) {
		// Input within ParkAfter is read by the same goroutine: no parking.
		tc, r := parkPair(t, time.Minute)
		for _, name := range []string{"e", "f", "g"} {
			io.WriteString(tc, "<"+name+"/>")
			r.expect(t, name)
		}
		if n := r.parks.Load(); n != 0 {
			t.Fatalf("parked %d times within ParkAfter", n)
		}
		tc.NetConn().Close()
		r.expect(t, "end: ")
	})
	t.Run("a stanza split across the wait", func(t *testing.T) {
		// ReadIdle's deadline outlives the read that brought the start of
		// the stanza; the read for the rest must not time out on it.
		tc, r := parkPair(t, 50*time.Millisecond)
		io.WriteString(tc, "<h>")
		time.Sleep(200 * time.Millisecond)
		io.WriteString(tc, "</h><i/>")
		r.expect(t, "h")
		r.expect(t, "i")
	})
	t.Run("on the peer's close", func(t *testing.T) {
		tc, r := parkPair(t, 0)
		r.waitParked(t, 1)
		tc.NetConn().Close()
		r.expect(t, "end: ")
	})
}

// batchConn holds what is written while hold is set, until flush sends it
// in one write.
type batchConn struct {
	net.Conn
	hold bool
	buf  []byte
}

func (c *batchConn) Write(b []byte) (int, error) {
	if !c.hold {
		return c.Conn.Write(b)
	}
	c.buf = append(c.buf, b...)
	return len(b), nil
}

func (c *batchConn) flush(t *testing.T) {
	t.Helper()
	c.hold = false
	if _, err := c.Conn.Write(c.buf); err != nil {
		t.Fatal(err)
	}
	c.buf = nil
}

func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestParkWait(t *testing.T) {
	const base, max = 50 * time.Millisecond, 2 * time.Second
	var p parker
	sec := func(s float64) int64 { return int64(s * float64(time.Second)) }
	for i, step := range []struct {
		parked, woken int64 // 0, 0: no park since the last wait
		want          time.Duration
	}{
		{0, sec(1), base}, // never parked
		{sec(1), sec(1.075), 2 * base},
		{sec(2), sec(2.010), 4 * base},
		{0, sec(2.5), 4 * base}, // busy in between: the wait stays
		{sec(3), sec(3.1), 8 * base},
		{sec(4), sec(4.1), 16 * base},
		{sec(5), sec(5.1), 32 * base},
		{sec(6), sec(6.1), max},  // 64 × 50 ms is over the bound
		{sec(10), sec(13), base}, // parked longer than max: start over
		{sec(20), sec(21.9), 2 * base},
	} {
		if step.parked != 0 {
			p.parkedAt = step.parked
		}
		if got := p.wait(base, max, step.woken); got != step.want {
			t.Errorf("step %d: wait %v, want %v", i, got, step.want)
		}
	}
}

// deadlineCounter counts the deadline changes made on a TCP connection.
type deadlineCounter struct {
	*net.TCPConn
	reads, writes atomic.Int32
}

func (c *deadlineCounter) SetReadDeadline(t time.Time) error {
	c.reads.Add(1)
	return c.TCPConn.SetReadDeadline(t)
}

func (c *deadlineCounter) SetWriteDeadline(t time.Time) error {
	c.writes.Add(1)
	return c.TCPConn.SetWriteDeadline(t)
}

// A busy stream does not change its deadlines for every stanza: each
// change is a runtime timer change, and they added up to several per cent
// of the server's CPU in a chat.
func TestDeadlinesKeptAcrossStanzas(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("streams park only on Linux")
	}
	client, raw := tcpPair(t)
	defer client.Close()
	dc := &deadlineCounter{TCPConn: raw}
	c := New(net.Conn(dc), Config[*stanza.Element]{
		QueueSize:    8,
		WriteTimeout: time.Minute,
		ParkAfter:    time.Minute,
		ParkAfterMax: time.Minute,
		Append:       func(b []byte, el *stanza.Element) []byte { return AppendStanza(b, el, stanza.NSClient) },
		Header:       func() stanza.StreamHeader { return stanza.StreamHeader{} },
	})
	defer c.Close()
	io.WriteString(client, clientHeader)
	dec := stanza.NewDecoder(c, stanza.DefaultLimits)
	if _, err := dec.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	c.EnableParking(func() {})
	const n = 100
	reply := make([]byte, 64)
	for i := range n {
		io.WriteString(client, "<a/>")
		el, err := dec.Next()
		if err != nil {
			t.Fatalf("stanza %d: %v", i, err)
		}
		if ok, _ := c.Enqueue(el, true); !ok {
			t.Fatalf("stanza %d: not queued", i)
		}
		if _, err := io.ReadAtLeast(client, reply, len("<a/>")); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
	}
	// Once each when first needed, not once (or twice) per stanza.
	if r, w := dc.reads.Load(), dc.writes.Load(); r > 2 || w > 2 {
		t.Errorf("%d stanzas each way: %d read and %d write deadline changes", n, r, w)
	}
}
