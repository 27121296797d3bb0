// Package stream is the connection machinery c2s and s2s share: the sending
// half of one XML stream (a bounded queue drained by a writer goroutine that
// exists only while there is something to write, and the close that ends the
// stream) and a server's listeners with the set of streams they opened, so
// that Shutdown can reach them all. What a stream says, and to whom, stays
// with c2s and s2s: this package knows stanzas only as elements to write.
package stream

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

// Config is what a Conn needs from its owner. T is what the queue holds:
// c2s queues elements, s2s elements with a retry mark.
type Config[T any] struct {
	// QueueSize bounds the queue for Enqueue(it, true) and DeliverWait,
	// when the Conn makes its own queue (Queue is nil).
	QueueSize int
	// Queue, if set, is the queue the Conn drains instead of one of its own:
	// a c2s session's, which outlives any one connection (docs/design/004).
	Queue *Queue[T]
	// RequeueFailed puts a batch whose write failed back at the front of the
	// queue (with KeepUnwritten): the peer may not have read any of it, and
	// its owner would rather deliver it again elsewhere than lose it.
	RequeueFailed bool
	// WriteTimeout is the deadline of one write.
	WriteTimeout time.Duration
	// Append serializes one queued item into b. Stanzas are written in the
	// stream's default namespace, which is the owner's to know (jabber:client
	// or jabber:server).
	Append func(b []byte, it T) []byte
	// Header returns our stream header, written ahead of a final frame when
	// no header was written on the current stream yet (RFC 6120 §4.9.1.2:
	// errors during setup still open the stream). It runs with the write
	// lock held, so it may read what Restart's f sets.
	Header func() stanza.StreamHeader
	// KeepUnwritten keeps what was queued but never written when the stream
	// ends under it, for Unwritten (s2s sends it again elsewhere). Without
	// it, an aborted stream drops its queue at once and the writer drops
	// what is left when it stops.
	KeepUnwritten bool
	// Wrote, if set, runs after every write, with the write lock held.
	Wrote func()
	// WriteFailed, if set, hears why the writer's write failed (the stream
	// then ends; WriteRaw's failures go to its caller instead).
	WriteFailed func(err error)
	// ParkAfter is how long a reader with nothing to read waits in its read
	// before it parks (see EnableParking): a busy stream keeps its goroutine
	// instead of parking and waking between every two stanzas. A stream woken
	// again soon after it parked waits twice as long the next time, up to
	// ParkAfterMax; one that stayed parked longer than that starts over.
	ParkAfter, ParkAfterMax time.Duration
	// OnClose, if set, runs when the stream is closed or aborted and when
	// its writer stops for good, with no lock held. It may run more than once.
	OnClose func()
	// Taken, if set, runs when the writer takes a batch from the queue,
	// with the queue's lock held (it must not call the Conn): c2s keeps
	// the stanzas it sends until the client acknowledges them (XEP-0198).
	// tail, if its second result is true, is written after the batch (an
	// <r/>). kept means the owner holds the batch now: a failed write does
	// not put it back in the queue (RequeueFailed), which would send it twice.
	Taken func(batch []T) (tail T, hasTail, kept bool)
}

// Conn is the sending half of one XML stream. The goroutine that reads the
// stream writes directly with WriteRaw while it negotiates; afterwards every
// item goes through the queue. Two locks: one serializes writes to the
// connection, the other guards the queue and the closing state; the second
// may be taken under the first (LiftReadDeadline), never the other way.
type Conn[T any] struct {
	cfg Config[T]

	wmu        sync.Mutex // serializes writes; guards conn, headerSent and the deadlines below
	conn       net.Conn
	torn       atomic.Bool // a write failed part-way: the TLS layer must not write again
	headerSent bool
	// The deadlines in force when we set them, for a read that may park
	// (parkUntil) or for our writes (writeUntil); zero when unknown. They
	// are moved on only once half their span has passed: setting a
	// deadline changes a runtime timer, and doing that two or three times
	// for each stanza cost 2–3 % of the server's CPU in a chat.
	parkUntil, writeUntil time.Time

	q          *Queue[T] // its mu guards the fields below
	writing    bool      // a writer goroutine runs
	closing    bool
	broke      bool // a write failed before anyone asked the stream to close
	closeErr   *stanza.StreamError
	writerDone chan struct{} // made only when Close must wait; closed when wdone is set
	wdone      bool          // the final frame is written (or failed)
	detached   bool          // the queue is another stream's now (Detach): take nothing from it
	silent     bool          // AbortDetached: the writer writes nothing more

	park parker // see park.go
}

// New returns the sending half of a stream over c.
func New[T any](c net.Conn, cfg Config[T]) *Conn[T] {
	q := cfg.Queue
	if q == nil {
		q = NewQueue[T](cfg.QueueSize)
	}
	return &Conn[T]{cfg: cfg, conn: c, q: q}
}

// Enqueue queues it for the peer without blocking and starts the writer if
// none runs. ok is false when the stream is closing; full reports, with
// bounded, that QueueSize items wait already (it was not taken). The caller
// decides what a full queue means.
func (c *Conn[T]) Enqueue(it T, bounded bool) (ok, full bool) {
	c.q.mu.Lock()
	if c.closing {
		c.q.mu.Unlock()
		return false, false
	}
	if bounded && len(c.q.items) >= c.q.max {
		c.q.mu.Unlock()
		return false, true
	}
	c.push(it)
	return true, false
}

// push queues it and starts the writer if none runs. It is called with q.mu
// held and releases it.
func (c *Conn[T]) push(it T) {
	c.q.items = append(c.q.items, it)
	start := !c.writing
	c.writing = true
	c.q.mu.Unlock()
	if start {
		go c.flush()
	}
}

// Hold queues it, whatever the bound and the closing state, without
// starting the writer: Start (or the close) writes it. c2s queues its bind
// result this way before the session can be reached, and starts the writer
// once it can.
func (c *Conn[T]) Hold(it T) {
	c.q.mu.Lock()
	c.q.items = append(c.q.items, it)
	c.q.mu.Unlock()
}

// Start starts the writer for what is queued, if none runs. It reports
// false when the stream is closing.
func (c *Conn[T]) Start() bool {
	c.q.mu.Lock()
	if c.closing {
		c.q.mu.Unlock()
		return false
	}
	start := !c.writing && len(c.q.items) > 0
	c.writing = c.writing || start
	c.q.mu.Unlock()
	if start {
		go c.flush()
	}
	return true
}

// DeliverWait queues it like Enqueue(it, true), but when the queue is full
// it waits for the writer to make room (until ctx ends) instead of refusing.
// It reports false when the stream is closing or ctx ended.
func (c *Conn[T]) DeliverWait(ctx context.Context, it T) bool {
	for {
		c.q.mu.Lock()
		if c.closing {
			c.q.mu.Unlock()
			return false
		}
		if len(c.q.items) < c.q.max {
			c.push(it)
			return true
		}
		if c.q.room == nil {
			c.q.room = make(chan struct{})
		}
		room := c.q.room
		c.q.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return false
		}
	}
}

// CloseWithError ends the stream: queued items are written, then the stream
// error (if any) and </stream:stream>. Safe from any goroutine, more than once.
func (c *Conn[T]) CloseWithError(se *stanza.StreamError) {
	c.q.mu.Lock()
	if c.closing {
		c.q.mu.Unlock()
		return
	}
	c.closing = true
	c.closeErr = se
	start := !c.writing
	c.writing = true
	c.q.mu.Unlock()
	c.onClose()
	if start {
		go c.flush()
	}
}

// CloseStuck is CloseWithError for a peer that stopped reading: a write
// blocked on it fails at once rather than after WriteTimeout, so the stream
// ends now. Call it only once the reader is past SetConn (c2s: after bind).
func (c *Conn[T]) CloseStuck(se *stanza.StreamError) {
	c.CloseWithError(se)
	// Not under the write lock: the writer holds it during the stuck Write.
	// Should no Write be stuck, the next one fails the same way: the
	// deadline stays, as writeUntil says it is far off.
	c.conn.SetWriteDeadline(time.Now())
}

// Abort ends the stream without writing anything more of its own: the
// connection is broken. What is queued is dropped, unless KeepUnwritten.
func (c *Conn[T]) Abort() {
	c.q.mu.Lock()
	c.closing = true
	if !c.cfg.KeepUnwritten {
		c.q.items = nil
	}
	running := c.writing
	c.q.mu.Unlock()
	c.onClose()
	if !running {
		c.markWriterDone()
	}
}

// Detach ends the stream with se (nil: only </stream:stream>) without
// draining the queue any further: another stream took it over (a session
// resumed on a new connection, XEP-0198). Once Detach returns, this Conn
// takes nothing more from the queue; a batch it took before is the Taken
// hook's. Nothing else of the queue's is touched.
func (c *Conn[T]) Detach(se *stanza.StreamError) {
	c.q.mu.Lock()
	c.detached = true
	if c.closing {
		c.q.mu.Unlock()
		return
	}
	c.closing = true
	c.closeErr = se
	start := !c.writing
	c.writing = true
	c.q.mu.Unlock()
	c.onClose()
	if start {
		go c.flush()
	}
}

// AbortDetached ends the stream at once, writing nothing more (not even
// </stream:stream> or a TLS close_notify), leaves the queue alone (the
// session is kept for later: a restart saves it) and closes the socket
// under any TLS layer, which also fails a write stuck on a client that
// does not read. Call it only once the reader is past SetConn (c2s: bound).
func (c *Conn[T]) AbortDetached() {
	c.q.mu.Lock()
	c.detached, c.silent = true, true
	c.closing = true
	running := c.writing
	c.q.mu.Unlock()
	c.onClose()
	if !running {
		c.markWriterDone()
	}
	// Not under the write lock, as in CloseStuck: a stuck Write holds it.
	nc := c.conn
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	nc.Close()
}

// SetQueue makes the Conn drain q instead of the queue it was made with:
// a connection that resumes a session takes over the session's queue. Only
// the reading goroutine may call it, before anything is queued on the
// stream (while it negotiates).
func (c *Conn[T]) SetQueue(q *Queue[T]) { c.q = q }

// Broke reports that a write failed while nobody had asked the stream to
// close: the connection broke under the writer (a reset, a dead peer), which
// is not a close of ours even though the stream is closing now.
func (c *Conn[T]) Broke() bool {
	c.q.mu.Lock()
	defer c.q.mu.Unlock()
	return c.broke
}

// Closing reports whether the stream is closing (or closed).
func (c *Conn[T]) Closing() bool {
	c.q.mu.Lock()
	defer c.q.mu.Unlock()
	return c.closing
}

// Busy reports whether items are queued or being written.
func (c *Conn[T]) Busy() bool {
	c.q.mu.Lock()
	defer c.q.mu.Unlock()
	return c.writing || len(c.q.items) > 0
}

// Unwritten takes what was queued and never written (with KeepUnwritten).
func (c *Conn[T]) Unwritten() []T {
	c.q.mu.Lock()
	defer c.q.mu.Unlock()
	left := c.q.items
	c.q.items = nil
	return left
}

// Close ends the stream for its reader, once the read loop is over: it
// closes the stream (CloseWithError(nil) if nothing closed it yet), waits up
// to WriteTimeout for the final frame and closes the connection. Only the
// reading goroutine, the one that calls SetConn, may call it.
func (c *Conn[T]) Close() {
	c.CloseWithError(nil)
	c.q.mu.Lock()
	if !c.wdone {
		if c.writerDone == nil {
			c.writerDone = make(chan struct{})
		}
		done := c.writerDone
		c.q.mu.Unlock()
		select {
		case <-done:
		case <-time.After(c.cfg.WriteTimeout):
		}
	} else {
		c.q.mu.Unlock()
	}
	c.park.release()
	// Not under the write lock: it breaks a Write still stuck there.
	if tc, ok := c.conn.(*tls.Conn); ok && c.torn.Load() {
		// A TLS close would write a close_notify alert after the record the
		// failed write left half-sent, which the peer reads as a corrupt
		// record ("bad record MAC") instead of an ended connection.
		tc.NetConn().Close()
		return
	}
	c.conn.Close()
}

// Restart begins a new stream on the connection (the first, or one after
// STARTTLS or SASL): no header was written on it yet. f, if set, runs under
// the write lock, where Header reads what it sets.
func (c *Conn[T]) Restart(f func()) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if f != nil {
		f()
	}
	c.headerSent = false
}

// WriteRaw writes b at once, from the reading goroutine while it negotiates.
// It fails with io.ErrClosedPipe once the stream is closing.
func (c *Conn[T]) WriteRaw(b []byte) error {
	if c.Closing() {
		return io.ErrClosedPipe
	}
	return c.write(b, false)
}

// LiftReadDeadline clears the read deadline, unless the stream is closing:
// then its writer set a short one to end the reader, and that one stays.
// Under the write lock, the writer either set it before (closing is seen
// here) or sets it after (and wins).
func (c *Conn[T]) LiftReadDeadline() {
	c.wmu.Lock()
	if !c.Closing() {
		c.conn.SetReadDeadline(time.Time{})
		c.parkUntil = time.Time{}
	}
	c.wmu.Unlock()
}

// Read reads from the connection: a Conn is its stream's decoder source.
// Only the reading goroutine reads, and only it swaps the connection
// (SetConn), so no lock is needed.
func (c *Conn[T]) Read(p []byte) (int, error) {
	n, err := c.conn.Read(p)
	if n == 0 && isTimeout(err) && c.liftParkDeadline() {
		// The deadline of an earlier ReadIdle was still set: a read in
		// the middle of a stanza waits as long as it takes, as always.
		n, err = c.conn.Read(p)
	}
	return n, err
}

// liftParkDeadline clears the read deadline when it is the one ReadIdle set
// (not the writer's, at the close), and reports whether it did.
func (c *Conn[T]) liftParkDeadline() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.parkUntil.IsZero() || c.Closing() {
		return false
	}
	c.conn.SetReadDeadline(time.Time{})
	c.parkUntil = time.Time{}
	return true
}

func isTimeout(err error) bool {
	var ne net.Error
	return err != nil && errors.As(err, &ne) && ne.Timeout()
}

// EnableParking lets the reader give up its goroutine while the stream is
// idle (park.go): from now on ReadIdle may return ErrIdle, and resume is
// what a parked stream runs, on a new goroutine, when it wakes. The reader
// calls it once the stream is set up (c2s: after bind).
func (c *Conn[T]) EnableParking(resume func()) {
	c.park.resume = resume
	c.park.setConn(c.conn)
}

// aLongTimeAgo is a read deadline that makes a read return at once with
// what is buffered, or a timeout.
var aLongTimeAgo = time.Unix(1, 0)

// ReadIdle implements stanza.IdleReader. With parking enabled it waits up
// to ParkAfter for the peer, as a plain read would, and returns ErrIdle when
// nothing came — nothing in crypto/tls's buffers, nothing in the kernel: the
// reader should then Park. A closing stream is read as usual, so its reader
// ends in the writer's deadline.
func (c *Conn[T]) ReadIdle(p []byte) (int, error) {
	if c.park.rc == nil || c.park.off {
		return c.conn.Read(p)
	}
	// The wait is a read with a deadline. crypto/tls treats the timeout as
	// temporary and keeps a partial record for the next read (net/http
	// aborts reads the same way); with no wait at all (ParkAfter 0), the
	// expired deadline makes the read return what TLS has buffered, or the
	// timeout, without touching the socket. The deadline stays set after a
	// read that brought data, and is moved on only when less than half the
	// wait is left (see parkUntil): the stream parks after between half the
	// wait and all of it without news.
	now := time.Now()
	c.wmu.Lock()
	if c.Closing() {
		c.wmu.Unlock()
		return c.conn.Read(p)
	}
	if c.cfg.ParkAfter <= 0 {
		c.parkUntil = aLongTimeAgo
		c.conn.SetReadDeadline(c.parkUntil)
	} else if wait := c.park.wait(c.cfg.ParkAfter, c.cfg.ParkAfterMax, now.UnixNano()); c.parkUntil.Sub(now) < wait/2 {
		c.parkUntil = now.Add(wait)
		c.conn.SetReadDeadline(c.parkUntil)
	}
	c.wmu.Unlock()
	n, err := c.conn.Read(p)
	if n > 0 || !isTimeout(err) {
		return n, err
	}
	c.wmu.Lock()
	closing := c.Closing()
	if closing {
		c.conn.SetReadDeadline(time.Now().Add(closeGrace)) // as the writer does
	} else {
		c.conn.SetReadDeadline(time.Time{})
	}
	c.parkUntil = time.Time{}
	c.wmu.Unlock()
	if closing || c.park.pending() {
		return c.conn.Read(p) // returns soon: data is there, or the deadline ends it
	}
	return 0, ErrIdle
}

// Park gives up the reading goroutine after ReadIdle returned ErrIdle. True
// means parked: the caller returns at once and touches the stream no more;
// the stream's resume runs on a new goroutine when the socket turns readable
// or the stream is closed. False means read on (parking is not possible
// here, or the stream is closing).
func (c *Conn[T]) Park() bool {
	p := &c.park
	p.parkedAt = time.Now().UnixNano()
	p.park()
	if !p.arm() {
		if !p.unpark() {
			return true // a closer woke it meanwhile and resumes it
		}
		p.off = true // read as before from now on
		p.parkedAt = 0
		return false
	}
	// A closer that set closing before we stored parked found nothing to
	// wake; one that came after wakes us itself.
	if c.Closing() && p.unpark() {
		p.parkedAt = 0 // not parked after all: no wake to count in wait
		return false
	}
	return true
}

// SetConn swaps in a new connection (the TLS one after a handshake).
func (c *Conn[T]) SetConn(nc net.Conn) {
	c.wmu.Lock()
	c.conn = nc
	c.parkUntil, c.writeUntil = time.Time{}, time.Time{}
	c.wmu.Unlock()
}

// NetConn returns the connection.
func (c *Conn[T]) NetConn() net.Conn {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.conn
}

// AppendStanza writes el as a top-level element of a stream whose default
// namespace is ns (jabber:client or jabber:server): a stanza in either of
// those namespaces is written without its xmlns, so it takes the stream's
// (children in its namespace follow it); other elements keep theirs.
func AppendStanza(b []byte, el *stanza.Element, ns string) []byte {
	if el.Space == "" || el.Space == stanza.NSClient || el.Space == stanza.NSServer {
		ns = el.Space
	}
	return el.AppendXML(b, ns)
}

func (c *Conn[T]) onClose() {
	if c.cfg.OnClose != nil {
		c.cfg.OnClose()
	}
	// A parked reader must see the close: it reads on, into the deadline
	// the writer sets after the final frame.
	c.park.wake()
}

func (c *Conn[T]) markWriterDone() {
	c.q.mu.Lock()
	if !c.wdone {
		c.wdone = true
		if c.writerDone != nil {
			close(c.writerDone)
		}
	}
	c.q.mu.Unlock()
}

// closeGrace is how long the reader waits for the peer's </stream:stream>
// after our final frame.
const closeGrace = time.Second

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// flush is the writer: it drains the queue in batches, one Write per batch,
// and exits when the queue is empty, so an idle stream keeps no writer goroutine.
func (c *Conn[T]) flush() {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	for {
		c.q.mu.Lock()
		var batch []T
		if !c.detached {
			batch = c.q.items
			c.q.items = nil
		}
		var tail T
		hasTail, kept := false, false
		if len(batch) > 0 && c.cfg.Taken != nil {
			tail, hasTail, kept = c.cfg.Taken(batch)
		}
		if c.q.room != nil {
			close(c.q.room) // DeliverWait callers may go on
			c.q.room = nil
		}
		closing, se := c.closing, c.closeErr
		if c.silent {
			c.writing = false
			c.q.mu.Unlock()
			c.markWriterDone()
			return
		}
		if len(batch) == 0 && !closing {
			c.writing = false
			c.q.mu.Unlock()
			return
		}
		c.q.mu.Unlock()

		b := (*bp)[:0]
		for _, it := range batch {
			b = c.cfg.Append(b, it)
		}
		if hasTail {
			b = c.cfg.Append(b, tail)
		}
		if closing {
			c.q.mu.Lock()
			more := len(c.q.items) > 0 && !c.detached
			c.q.mu.Unlock()
			if !more {
				if se != nil {
					b = se.AppendXML(b)
				}
				b = append(b, stanza.StreamEnd...)
			} else {
				closing = false // write what came in meanwhile first
			}
		}
		err := c.write(b, closing)
		*bp = b[:0]
		if err != nil {
			c.torn.Store(true)
		}
		if err != nil && c.cfg.WriteFailed != nil {
			c.cfg.WriteFailed(err)
		}
		if err != nil || closing {
			// After the final frame, or a write that failed (nothing more can
			// be written), give the peer a moment to send its own
			// </stream:stream>; then the reader's deadline ends the stream.
			c.wmu.Lock()
			c.conn.SetReadDeadline(time.Now().Add(closeGrace))
			c.parkUntil = time.Time{}
			c.wmu.Unlock()
			c.q.mu.Lock()
			if !c.cfg.KeepUnwritten && !c.detached {
				c.q.items = nil
			} else if err != nil && c.cfg.RequeueFailed && !kept && !c.detached {
				c.q.items = append(batch, c.q.items...)
			}
			c.broke = c.broke || (err != nil && !c.closing)
			c.closing = true
			c.q.mu.Unlock()
			c.onClose()
			c.markWriterDone()
			return
		}
	}
}

// write sends b with a deadline. A final frame gets our stream header first
// when none was written on this stream yet.
func (c *Conn[T]) write(b []byte, final bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if final && !c.headerSent {
		b = append(stanza.AppendStreamHeader(nil, c.cfg.Header()), b...)
	}
	c.headerSent = true
	if now := time.Now(); c.writeUntil.Sub(now) < c.cfg.WriteTimeout/2 {
		c.writeUntil = now.Add(c.cfg.WriteTimeout)
		c.conn.SetWriteDeadline(c.writeUntil)
	}
	_, err := c.conn.Write(b)
	if c.cfg.Wrote != nil {
		c.cfg.Wrote()
	}
	return err
}
