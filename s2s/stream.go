package s2s

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/xmppd/xmppd/stanza"
	// Renamed: this package's own type is called stream.
	xmppstream "github.com/xmppd/xmppd/stream"
)

// stream is one server-to-server connection, inbound or outbound. One
// goroutine reads and owns the negotiation state; during negotiation it
// writes directly (writeRaw); afterwards everything goes through the bounded
// queue of out, drained by a writer goroutine that exists only while there
// is something to write.
type stream struct {
	srv *Server
	dir string // "in" or "out", for logs
	log *slog.Logger
	dec *stanza.Decoder
	// peerIP is the peer's address without the port: what limits the
	// warnings a peer can provoke, across its connections.
	peerIP string

	// local is our domain on this stream (the 'to' of an inbound header, the
	// 'from' of an outbound one); remote the peer's domain as claimed or dialed.
	// Set by the reader before the stream is shared.
	local, remote string
	method        string // outbound: how we authenticated, "EXTERNAL" or "dialback"

	out *xmppstream.Conn[qitem] // the connection and its writing half
	hdr stanza.StreamHeader     // our header, for a final frame sent before one was written; guarded by out's write lock (set in out.Restart)

	// amu guards the authentication state, which dialback goroutines change
	// while the reader checks it.
	amu     sync.Mutex
	authed  map[string]bool // peer domains this stream may carry stanzas from
	pending map[string]bool // inbound: dialback verifications in progress, by peer domain
	bidi    bool            // XEP-0288 negotiated: stanzas flow both ways
	routes  []routeKey      // routes this (bidi inbound) stream was registered as

	active      atomic.Int64 // unix nanoseconds of the last element read or written
	imu         sync.Mutex   // guards idle and idleStopped
	idle        *time.Timer
	idleStopped bool // the stream is closing: no idle timer any more
}

func newStream(srv *Server, conn net.Conn, dir string, limits stanza.Limits) *stream {
	st := &stream{
		srv:    srv,
		dir:    dir,
		dec:    stanza.NewDecoder(conn, limits),
		authed: map[string]bool{},
	}
	st.out = xmppstream.New(conn, xmppstream.Config[qitem]{
		QueueSize:     srv.cfg.QueueSize,
		WriteTimeout:  srv.cfg.WriteTimeout,
		Append:        appendServer,
		Header:        func() stanza.StreamHeader { return st.hdr },
		KeepUnwritten: true, // for leftovers
		Wrote:         st.touch,
		// Whatever the failed batch held may or may not have arrived; what is
		// still queued is handed back by leftovers when the stream ends.
		WriteFailed: func(err error) { st.log.Debug("write failed", "err", err) },
		OnClose:     st.stopIdle,
	})
	addr := conn.RemoteAddr().String()
	st.log = srv.log.With("direction", dir, "addr", addr)
	st.peerIP = addr
	if host, _, err := net.SplitHostPort(addr); err == nil {
		st.peerIP = host
	}
	st.touch()
	return st
}

// appendServer writes a stanza in the stream's default namespace: a
// jabber:client stanza from c2s becomes jabber:server by leaving out its
// xmlns. Other top-level elements (db:result, db:verify) keep theirs.
func appendServer(b []byte, it qitem) []byte {
	return xmppstream.AppendStanza(b, it.el, stanza.NSServer)
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
	st.imu.Lock()
	defer st.imu.Unlock()
	if st.idleStopped || st.idle != nil {
		return
	}
	st.idle = time.AfterFunc(d, st.checkIdle)
}

func (st *stream) checkIdle() {
	d := st.srv.cfg.IdleTimeout
	since := time.Since(time.Unix(0, st.active.Load()))
	if since < d || st.out.Busy() {
		st.imu.Lock()
		if !st.idleStopped {
			st.idle.Reset(max(d-since, time.Millisecond))
		}
		st.imu.Unlock()
		return
	}
	st.log.Debug("idle: closing", "remote_domain", st.remote)
	st.CloseWithError(nil)
}

// stopIdle runs when the stream closes: it stops the idle timer for good.
func (st *stream) stopIdle() {
	st.imu.Lock()
	st.idleStopped = true
	if st.idle != nil {
		st.idle.Stop()
	}
	st.imu.Unlock()
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

// authedDomains lists the peer domains this stream authenticated, sorted, for logs.
func (st *stream) authedDomains() []string {
	st.amu.Lock()
	defer st.amu.Unlock()
	ds := make([]string, 0, len(st.authed))
	for d := range st.authed {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds
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
	return st.out.Enqueue(it, !control)
}

// CloseWithError ends the stream: queued stanzas are written, then the stream
// error (if any) and </stream:stream>. Safe from any goroutine, more than once.
func (st *stream) CloseWithError(se *stanza.StreamError) { st.out.CloseWithError(se) }

// abort ends the stream without writing (the connection is broken); what
// was queued stays for leftovers.
func (st *stream) abort() { st.out.Abort() }

// leftovers takes the stanzas that were queued but never written (the
// stream ended under them), for the server to send again or bounce.
func (st *stream) leftovers() []qitem { return st.out.Unwritten() }

func (st *stream) isClosing() bool { return st.out.Closing() }

// writeRaw writes during negotiation, from the reading goroutine.
func (st *stream) writeRaw(b []byte) error { return st.out.WriteRaw(b) }

// writeHeader sends our stream header (and what follows it) on a new or restarted stream.
func (st *stream) writeHeader(h stanza.StreamHeader, rest []byte) error {
	st.out.Restart(func() { st.hdr = h })
	return st.writeRaw(append(stanza.AppendStreamHeader(nil, h), rest...))
}

// setConn swaps in the TLS connection after a handshake.
func (st *stream) setConn(c net.Conn) {
	st.out.SetConn(c)
	st.dec.Reset(c)
}

func (st *stream) netConn() net.Conn { return st.out.NetConn() }

// errPeerStreamError ends a read loop when the peer sent <stream:error/>:
// the stream is over (RFC 6120 §4.9.1.1), and answering the peer's error with
// one of ours would only be noise, so our side closes with </stream:stream>.
var errPeerStreamError = errors.New("s2s: the peer sent a stream error")

// peerStreamError logs a <stream:error/> the peer sent. At warn level: the
// peer gave up on us, and its reason usually names a problem on our side
// (our certificate, our dialback answers, a policy) that an operator can fix.
func (st *stream) peerStreamError(el *stanza.Element) (cond, text string) {
	cond, text = streamErrorOf(el)
	st.log.Warn("the peer closed the stream with a stream error",
		"condition", cond, "text", text, "peer", st.remote, "authenticated", st.authedDomains())
	return cond, text
}

// maxLoggedText bounds what we log of a text a peer chose.
const maxLoggedText = 256

// streamErrorOf reads the defined condition and the <text/> of a
// <stream:error/> (RFC 6120 §4.9.2), the text cut to maxLoggedText bytes.
func streamErrorOf(el *stanza.Element) (cond, text string) {
	for _, c := range el.Children() {
		if c.Space != stanza.NSStreams {
			continue
		}
		if c.Local == "text" {
			text = truncate(c.Text(), maxLoggedText)
		} else if cond == "" {
			cond = c.Local
		}
	}
	if cond == "" {
		cond = "undefined-condition"
	}
	return cond, text
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
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
	case errors.Is(err, stanza.ErrStreamClosed), errors.Is(err, errPeerStreamError):
		st.CloseWithError(nil)
	case errors.As(err, &ne) && ne.Timeout() && !st.isClosing():
		st.CloseWithError(&stanza.StreamError{Condition: "connection-timeout"})
	default:
		st.log.Debug("connection ended", "err", err, "remote_domain", st.remote)
		st.abort()
	}
}

// finish waits (up to WriteTimeout) for the final frame and closes the socket.
func (st *stream) finish() { st.out.Close() }
