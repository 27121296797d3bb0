package s2s

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

// stream is one server-to-server connection, inbound or outbound: the
// writing half shared by both directions, built like c2s.Session's. One
// goroutine reads and owns the negotiation state; during negotiation it
// writes directly (writeRaw); afterwards everything goes through a bounded
// queue drained by a writer goroutine that exists only while there is
// something to write.
type stream struct {
	srv *Server
	dir string // "in" or "out", for logs
	log *slog.Logger
	dec *stanza.Decoder

	// local is our domain on this stream (the 'to' of an inbound header, the
	// 'from' of an outbound one); remote the peer's domain as claimed or dialed.
	// Set by the reader before the stream is shared.
	local, remote string
	method        string // outbound: how we authenticated, "EXTERNAL" or "dialback"

	wmu        sync.Mutex // serialises writes; guards conn, hdr, headerSent
	conn       net.Conn
	hdr        stanza.StreamHeader // our header, for a final frame sent before one was written
	headerSent bool

	qmu        sync.Mutex // guards the fields below
	queue      []qitem
	writing    bool
	closing    bool
	closeErr   *stanza.StreamError
	writerDone chan struct{}
	doneOnce   sync.Once

	// amu guards the authentication state, which dialback goroutines change
	// while the reader checks it.
	amu     sync.Mutex
	authed  map[string]bool // peer domains this stream may carry stanzas from
	pending map[string]bool // inbound: dialback verifications in progress, by peer domain
	bidi    bool            // XEP-0288 negotiated: stanzas flow both ways
	routes  []routeKey      // routes this (bidi inbound) stream was registered as

	active atomic.Int64 // unix nanoseconds of the last element read or written
	idle   *time.Timer
}

func newStream(srv *Server, conn net.Conn, dir string, limits stanza.Limits) *stream {
	st := &stream{
		srv:        srv,
		dir:        dir,
		conn:       conn,
		dec:        stanza.NewDecoder(conn, limits),
		writerDone: make(chan struct{}),
		authed:     map[string]bool{},
	}
	st.log = srv.log.With("direction", dir, "addr", conn.RemoteAddr().String())
	st.touch()
	return st
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (st *stream) touch() { st.active.Store(time.Now().UnixNano()) }

// startIdle arms the idle timer: a stream on which nothing was read or
// written for IdleTimeout is closed with </stream:stream> (RFC 6120 §4.4).
func (st *stream) startIdle() {
	d := st.srv.cfg.IdleTimeout
	if d <= 0 {
		return
	}
	st.qmu.Lock()
	defer st.qmu.Unlock()
	if st.closing || st.idle != nil {
		return
	}
	st.idle = time.AfterFunc(d, st.checkIdle)
}

func (st *stream) checkIdle() {
	d := st.srv.cfg.IdleTimeout
	since := time.Since(time.Unix(0, st.active.Load()))
	st.qmu.Lock()
	busy := st.writing || len(st.queue) > 0
	st.qmu.Unlock()
	if since < d || busy {
		st.qmu.Lock()
		if !st.closing {
			st.idle.Reset(max(d-since, time.Millisecond))
		}
		st.qmu.Unlock()
		return
	}
	st.log.Debug("idle: closing", "remote_domain", st.remote)
	st.CloseWithError(nil)
}

// isAuthed reports whether the peer authenticated domain on this stream.
func (st *stream) isAuthed(domain string) bool {
	st.amu.Lock()
	defer st.amu.Unlock()
	return st.authed[domain]
}

func (st *stream) anyAuthed() bool {
	st.amu.Lock()
	defer st.amu.Unlock()
	return len(st.authed) > 0
}

func (st *stream) setAuthed(domain string) {
	st.amu.Lock()
	st.authed[domain] = true
	st.amu.Unlock()
}

func (st *stream) isBidi() bool {
	st.amu.Lock()
	defer st.amu.Unlock()
	return st.bidi
}

// enqueue queues a control element (a dialback answer): it passes the bound.
func (st *stream) enqueue(el *stanza.Element) bool {
	ok, _ := st.enqueueItem(qitem{el: el}, true)
	return ok
}

// enqueueItem queues a stanza for the peer without blocking. full reports a
// queue at QueueSize (the stanza was not taken); !ok && !full a stream that
// is ending. control items pass the bound.
func (st *stream) enqueueItem(it qitem, control bool) (ok, full bool) {
	st.qmu.Lock()
	if st.closing {
		st.qmu.Unlock()
		return false, false
	}
	if !control && len(st.queue) >= st.srv.cfg.QueueSize {
		st.qmu.Unlock()
		return false, true
	}
	st.queue = append(st.queue, it)
	start := !st.writing
	st.writing = true
	st.qmu.Unlock()
	if start {
		go st.flush()
	}
	return true, false
}

// CloseWithError ends the stream: queued stanzas are written, then the stream
// error (if any) and </stream:stream>. Safe from any goroutine, more than once.
func (st *stream) CloseWithError(se *stanza.StreamError) {
	st.qmu.Lock()
	if st.closing {
		st.qmu.Unlock()
		return
	}
	st.closing = true
	st.closeErr = se
	if st.idle != nil {
		st.idle.Stop()
	}
	start := !st.writing
	st.writing = true
	st.qmu.Unlock()
	if start {
		go st.flush()
	}
}

// abort ends the stream without writing (the connection is broken); what
// was queued stays for leftovers.
func (st *stream) abort() {
	st.qmu.Lock()
	st.closing = true
	if st.idle != nil {
		st.idle.Stop()
	}
	running := st.writing
	st.qmu.Unlock()
	if !running {
		st.markWriterDone()
	}
}

// leftovers takes the stanzas that were queued but never written (the
// stream ended under them), for the server to send again or bounce.
func (st *stream) leftovers() []qitem {
	st.qmu.Lock()
	defer st.qmu.Unlock()
	left := st.queue
	st.queue = nil
	return left
}

func (st *stream) isClosing() bool {
	st.qmu.Lock()
	defer st.qmu.Unlock()
	return st.closing
}

func (st *stream) markWriterDone() { st.doneOnce.Do(func() { close(st.writerDone) }) }

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// flush is the writer: it drains the queue in batches, one Write per batch,
// and exits when the queue is empty.
func (st *stream) flush() {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	for {
		st.qmu.Lock()
		batch := st.queue
		st.queue = nil
		closing, se := st.closing, st.closeErr
		if len(batch) == 0 && !closing {
			st.writing = false
			st.qmu.Unlock()
			return
		}
		st.qmu.Unlock()

		b := (*bp)[:0]
		for _, it := range batch {
			el := it.el
			// Stanzas are written in the stream's default namespace: a
			// jabber:client stanza from c2s becomes jabber:server by leaving
			// out its xmlns (children in the same namespace follow it).
			// Other top-level elements keep theirs.
			ns := stanza.NSServer
			if el.Space == stanza.NSClient || el.Space == "" {
				ns = el.Space
			}
			b = el.AppendXML(b, ns)
		}
		if closing {
			st.qmu.Lock()
			more := len(st.queue) > 0
			st.qmu.Unlock()
			if !more {
				if se != nil {
					b = se.AppendXML(b)
				}
				b = append(b, stanza.StreamEnd...)
			} else {
				closing = false // write what came in meanwhile first
			}
		}
		err := st.write(b, closing)
		*bp = b[:0]
		if err != nil {
			// Whatever this batch held may or may not have arrived; what is
			// still queued is handed back by leftovers when the stream ends.
			st.log.Debug("write failed", "err", err)
		}
		if err != nil || closing {
			st.wmu.Lock()
			st.conn.SetReadDeadline(time.Now().Add(time.Second))
			st.wmu.Unlock()
			st.qmu.Lock()
			st.closing = true
			if st.idle != nil {
				st.idle.Stop()
			}
			st.qmu.Unlock()
			st.markWriterDone()
			return
		}
	}
}

// write sends b with a deadline. A final frame gets a stream header first when
// none was sent on this stream yet (RFC 6120 §4.9.1.2).
func (st *stream) write(b []byte, final bool) error {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	if final && !st.headerSent {
		b = append(stanza.AppendStreamHeader(nil, st.hdr), b...)
	}
	st.headerSent = true
	st.conn.SetWriteDeadline(time.Now().Add(st.srv.cfg.WriteTimeout))
	_, err := st.conn.Write(b)
	st.touch()
	return err
}

// writeRaw writes during negotiation, from the reading goroutine.
func (st *stream) writeRaw(b []byte) error {
	if st.isClosing() {
		return io.ErrClosedPipe
	}
	return st.write(b, false)
}

// writeHeader sends our stream header (and what follows it) on a new or restarted stream.
func (st *stream) writeHeader(h stanza.StreamHeader, rest []byte) error {
	st.wmu.Lock()
	st.hdr = h
	st.headerSent = false
	st.wmu.Unlock()
	return st.writeRaw(append(stanza.AppendStreamHeader(nil, h), rest...))
}

// setConn swaps in the TLS connection after a handshake.
func (st *stream) setConn(c net.Conn) {
	st.wmu.Lock()
	st.conn = c
	st.wmu.Unlock()
	st.dec.Reset(c)
}

func (st *stream) netConn() net.Conn {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	return st.conn
}

// endWith turns the reason the read loop ended into the right close, like
// c2s: a stream error is sent, the peer's </stream:stream> answered, a
// read timeout before authentication is connection-timeout, and a broken
// connection is just dropped.
func (st *stream) endWith(err error) {
	var se *stanza.StreamError
	var ne net.Error
	switch {
	case err == nil:
		st.CloseWithError(nil)
	case errors.As(err, &se):
		st.log.Debug("stream error", "condition", se.Condition, "text", se.Text, "remote_domain", st.remote)
		st.CloseWithError(se)
	case errors.Is(err, stanza.ErrStreamClosed):
		st.CloseWithError(nil)
	case errors.As(err, &ne) && ne.Timeout() && !st.isClosing():
		st.CloseWithError(&stanza.StreamError{Condition: "connection-timeout"})
	default:
		st.log.Debug("connection ended", "err", err, "remote_domain", st.remote)
		st.abort()
	}
}

// finish waits (up to WriteTimeout) for the final frame and closes the socket.
func (st *stream) finish() {
	st.CloseWithError(nil)
	select {
	case <-st.writerDone:
	case <-time.After(st.srv.cfg.WriteTimeout):
	}
	st.netConn().Close()
}
