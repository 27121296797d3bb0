package stream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

// fakeConn records what is written. With a gate, each Write waits for a
// token (or for the write deadline, which then fails it).
type fakeConn struct {
	net.Conn
	gate chan struct{}

	mu       sync.Mutex
	buf      bytes.Buffer
	writes   int
	deadline time.Time // write deadline
	readDL   time.Time
	closed   bool
}

func (c *fakeConn) Write(b []byte) (int, error) {
	if c.gate != nil {
		for {
			c.mu.Lock()
			dl := c.deadline
			c.mu.Unlock()
			if !dl.IsZero() && !time.Now().Before(dl) {
				return 0, os.ErrDeadlineExceeded
			}
			select {
			case <-c.gate:
			case <-time.After(time.Millisecond):
				continue
			}
			break
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.buf.Write(b)
}
func (c *fakeConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}
func (c *fakeConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}
func (c *fakeConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDL = t
	c.mu.Unlock()
	return nil
}
func (c *fakeConn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

func (c *fakeConn) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

var testHeader = stanza.StreamHeader{NS: stanza.NSClient, ID: "abc", From: "example.org", Version: "1.0", Lang: "en"}

func newTestConn(c net.Conn, queue int) *Conn[*stanza.Element] {
	return New(c, Config[*stanza.Element]{
		QueueSize:    queue,
		WriteTimeout: 5 * time.Second,
		Append: func(b []byte, el *stanza.Element) []byte {
			return el.AppendXML(b, stanza.NSClient)
		},
		Header: func() stanza.StreamHeader { return testHeader },
	})
}

func msg(id string) *stanza.Element { return stanza.New(stanza.NSClient, "message").Set("id", id) }

// waitIdle waits until the writer has stopped.
func waitIdle(t *testing.T, c *Conn[*stanza.Element]) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.Busy() {
		if time.Now().After(deadline) {
			t.Fatal("the writer did not finish")
		}
		time.Sleep(time.Millisecond)
	}
}

func waitDone(t *testing.T, c *Conn[*stanza.Element]) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		c.q.mu.Lock()
		done := c.wdone
		c.q.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the final frame was not written")
		}
	}
}

func TestQueueBound(t *testing.T) {
	fc := &fakeConn{gate: make(chan struct{})}
	c := newTestConn(fc, 2)
	// The first item is taken by the writer, which then waits at the gate.
	if ok, _ := c.Enqueue(msg("0"), true); !ok {
		t.Fatal("first item refused")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.q.mu.Lock()
		taken := len(c.q.items) == 0
		c.q.mu.Unlock()
		if taken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer did not take the first item")
		}
		time.Sleep(time.Millisecond)
	}
	for i := range 2 {
		if ok, full := c.Enqueue(msg("q"), true); !ok || full {
			t.Fatalf("item %d: ok=%v full=%v, want it queued", i, ok, full)
		}
	}
	if ok, full := c.Enqueue(msg("over"), true); ok || !full {
		t.Fatalf("over the bound: ok=%v full=%v, want full", ok, full)
	}
	if c.Closing() {
		t.Fatal("a full queue closed the stream by itself; that is the caller's policy")
	}
	if ok, full := c.Enqueue(msg("control"), false); !ok || full {
		t.Fatalf("unbounded: ok=%v full=%v, want it queued", ok, full)
	}
	close(fc.gate)
	waitIdle(t, c)
	if got := strings.Count(fc.String(), "<message"); got != 4 {
		t.Fatalf("wrote %d messages, want 4:\n%s", got, fc.String())
	}
}

func TestWriterExitsWhenIdle(t *testing.T) {
	fc := &fakeConn{}
	c := newTestConn(fc, 8)
	c.Enqueue(msg("1"), true)
	waitIdle(t, c)
	c.q.mu.Lock()
	writing := c.writing
	c.q.mu.Unlock()
	if writing {
		t.Fatal("the writer still runs with an empty queue")
	}
	// A later item starts a new writer.
	c.Enqueue(msg("2"), true)
	waitIdle(t, c)
	if got := fc.String(); !strings.Contains(got, "id='2'") && !strings.Contains(got, `id="2"`) {
		t.Fatalf("the second item was not written: %s", got)
	}
	if fc.count() != 2 {
		t.Fatalf("%d writes, want 2", fc.count())
	}
	if c.Closing() {
		t.Fatal("an idle stream is closing")
	}
}

func TestHoldWaitsForStart(t *testing.T) {
	fc := &fakeConn{}
	c := newTestConn(fc, 8)
	c.Hold(msg("bind"))
	time.Sleep(20 * time.Millisecond)
	if fc.String() != "" {
		t.Fatalf("Hold wrote before Start: %s", fc.String())
	}
	if !c.Start() {
		t.Fatal("Start on an open stream reported false")
	}
	waitIdle(t, c)
	if !strings.Contains(fc.String(), "bind") {
		t.Fatalf("Start did not write the held item: %q", fc.String())
	}
}

func TestDeliverWait(t *testing.T) {
	// The peer reads one batch at a time, slowly, so the queue of one is full most of the time.
	fc := &fakeConn{gate: make(chan struct{})}
	go func() {
		for {
			select {
			case fc.gate <- struct{}{}:
				time.Sleep(time.Millisecond)
			case <-t.Context().Done():
				return
			}
		}
	}()
	c := newTestConn(fc, 1)
	for i := range 10 {
		if !c.DeliverWait(t.Context(), msg(string(rune('a'+i)))) {
			t.Fatalf("item %d refused", i)
		}
	}
	waitIdle(t, c)
	if c.Closing() {
		t.Fatal("DeliverWait closed the stream")
	}
	out := fc.String()
	last := -1
	for i := range 10 {
		at := strings.Index(out, "id='"+string(rune('a'+i))+"'")
		if at <= last {
			t.Fatalf("item %d missing or out of order:\n%s", i, out)
		}
		last = at
	}

	// On a full queue, DeliverWait gives up when ctx ends.
	fc2 := &fakeConn{gate: make(chan struct{})}
	c2 := newTestConn(fc2, 1)
	c2.Enqueue(msg("taken"), true)
	for c2.Busy() {
		c2.q.mu.Lock()
		taken := len(c2.q.items) == 0
		c2.q.mu.Unlock()
		if taken {
			break
		}
		time.Sleep(time.Millisecond)
	}
	c2.Enqueue(msg("queued"), true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if c2.DeliverWait(ctx, msg("waits")) {
		t.Fatal("DeliverWait on a full queue did not wait")
	}
	close(fc2.gate)
}

func TestCloseWithoutError(t *testing.T) {
	fc := &fakeConn{}
	c := newTestConn(fc, 8)
	c.WriteRaw([]byte("<hello/>")) // the header and features, during negotiation
	c.Enqueue(msg("1"), true)
	c.CloseWithError(nil)
	waitDone(t, c)
	got := fc.String()
	if !strings.HasPrefix(got, "<hello/>") || !strings.HasSuffix(got, "</stream:stream>") {
		t.Fatalf("got %q, want the queued stanza then </stream:stream>", got)
	}
	if strings.Contains(got, "<stream:stream") || strings.Contains(got, "error") {
		t.Fatalf("a header or an error where none belongs: %q", got)
	}
	if !strings.Contains(got, "<message") {
		t.Fatalf("the queued stanza was not written before the close: %q", got)
	}
	if ok, _ := c.Enqueue(msg("late"), true); ok {
		t.Fatal("Enqueue after the close was taken")
	}
	if err := c.WriteRaw([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("WriteRaw after the close: %v, want io.ErrClosedPipe", err)
	}
	fc.mu.Lock()
	readDL := fc.readDL
	fc.mu.Unlock()
	if readDL.IsZero() || time.Until(readDL) > time.Second {
		t.Fatalf("after the final frame the read deadline is %v, want about a second away", readDL)
	}
	c.Close()
	if !fc.closed {
		t.Fatal("Close did not close the connection")
	}
}

func TestCloseWithError(t *testing.T) {
	fc := &fakeConn{}
	c := newTestConn(fc, 8)
	c.WriteRaw([]byte("<hello/>"))
	c.CloseWithError(&stanza.StreamError{Condition: "conflict"})
	c.CloseWithError(&stanza.StreamError{Condition: "system-shutdown"}) // too late: the first one wins
	waitDone(t, c)
	got := fc.String()
	if !strings.Contains(got, "conflict") || strings.Contains(got, "system-shutdown") {
		t.Fatalf("got %q, want the first error only", got)
	}
	if !strings.HasSuffix(got, "</stream:error></stream:stream>") {
		t.Fatalf("got %q, want the error then </stream:stream>", got)
	}
}

// An error before any header was written on the stream gets our header
// first (RFC 6120 §4.9.1.2); after Restart, the new stream needs its own.
func TestHeaderBeforeError(t *testing.T) {
	fc := &fakeConn{}
	c := newTestConn(fc, 8)
	c.CloseWithError(&stanza.StreamError{Condition: "host-unknown"})
	waitDone(t, c)
	got := fc.String()
	if !strings.HasPrefix(got, "<?xml version='1.0'?><stream:stream") || !strings.Contains(got, "host-unknown") {
		t.Fatalf("got %q, want our header, then the error", got)
	}

	fc2 := &fakeConn{}
	c2 := newTestConn(fc2, 8)
	c2.WriteRaw([]byte("<header/>"))
	var hdrSet bool
	c2.Restart(func() { hdrSet = true }) // say, after SASL success
	if !hdrSet {
		t.Fatal("Restart did not run f")
	}
	c2.CloseWithError(&stanza.StreamError{Condition: "policy-violation"})
	waitDone(t, c2)
	got = fc2.String()
	if !strings.HasPrefix(got, "<header/><?xml version='1.0'?><stream:stream") {
		t.Fatalf("got %q, want a new header after the restart", got)
	}
}

func TestAbort(t *testing.T) {
	fc := &fakeConn{}
	var closed int
	c := New(fc, Config[*stanza.Element]{
		QueueSize: 8, WriteTimeout: time.Second,
		Append:  func(b []byte, el *stanza.Element) []byte { return el.AppendXML(b, stanza.NSClient) },
		Header:  func() stanza.StreamHeader { return testHeader },
		OnClose: func() { closed++ },
	})
	c.Hold(msg("never"))
	c.Abort()
	waitDone(t, c) // with no writer running, the stream is done at once
	if closed == 0 {
		t.Fatal("OnClose did not run")
	}
	if c.Start() {
		t.Fatal("Start after Abort reported true")
	}
	c.Close()
	if got := fc.String(); got != "" {
		t.Fatalf("an aborted stream wrote %q", got)
	}
	if left := c.Unwritten(); len(left) != 0 {
		t.Fatalf("without KeepUnwritten, %d items were kept", len(left))
	}

	fc2 := &fakeConn{}
	c2 := New(fc2, Config[*stanza.Element]{
		QueueSize: 8, WriteTimeout: time.Second, KeepUnwritten: true,
		Append: func(b []byte, el *stanza.Element) []byte { return el.AppendXML(b, stanza.NSClient) },
		Header: func() stanza.StreamHeader { return testHeader },
	})
	c2.Hold(msg("kept"))
	c2.Abort()
	c2.Close()
	if left := c2.Unwritten(); len(left) != 1 {
		t.Fatalf("with KeepUnwritten, %d items left, want 1", len(left))
	}
}

// CloseStuck fails a Write the peer does not read, instead of waiting for WriteTimeout.
func TestCloseStuck(t *testing.T) {
	fc := &fakeConn{gate: make(chan struct{})} // never opens
	c := New(fc, Config[*stanza.Element]{
		QueueSize: 8,
		// Far longer than any machine takes to run this test: a writer that
		// ends before it was failed by CloseStuck, not by the timeout.
		WriteTimeout: time.Hour,
		Append:       func(b []byte, el *stanza.Element) []byte { return el.AppendXML(b, stanza.NSClient) },
		Header:       func() stanza.StreamHeader { return testHeader },
	})
	c.Enqueue(msg("stuck"), true)
	time.Sleep(10 * time.Millisecond)
	c.CloseStuck(&stanza.StreamError{Condition: "policy-violation"})
	waitDone(t, c)
	if !c.Closing() {
		t.Fatal("not closing")
	}
}

// The writer writes the whole queue as one batch, one Write.
func TestBatch(t *testing.T) {
	fc := &fakeConn{gate: make(chan struct{})}
	c := newTestConn(fc, 64)
	c.Hold(msg("1"))
	c.Hold(msg("2"))
	c.Hold(msg("3"))
	c.Start()
	fc.gate <- struct{}{}
	waitIdle(t, c)
	if fc.count() != 1 || strings.Count(fc.String(), "<message") != 3 {
		t.Fatalf("%d writes for %q, want one with three messages", fc.count(), fc.String())
	}
}

// TestRequeueFailed: with KeepUnwritten and RequeueFailed, a batch whose
// write failed goes back to the front of the queue, ahead of what came
// after it, for the owner to deliver elsewhere; the queue is the one the
// owner handed in (a session's, which outlives the connection).
func TestRequeueFailed(t *testing.T) {
	fc := &fakeConn{gate: make(chan struct{})} // never opens: the write fails at the deadline
	q := NewQueue[*stanza.Element](8)
	c := New(fc, Config[*stanza.Element]{
		Queue: q, KeepUnwritten: true, RequeueFailed: true,
		WriteTimeout: time.Hour,
		Append:       func(b []byte, el *stanza.Element) []byte { return el.AppendXML(b, stanza.NSClient) },
		Header:       func() stanza.StreamHeader { return testHeader },
	})
	c.Enqueue(msg("1"), true)
	c.Enqueue(msg("2"), true)
	time.Sleep(10 * time.Millisecond)
	c.CloseStuck(&stanza.StreamError{Condition: "policy-violation"})
	waitDone(t, c)
	var ids []string
	for _, el := range q.TakeAll() {
		ids = append(ids, el.Get("id"))
	}
	if len(ids) != 2 || ids[0] != "1" || ids[1] != "2" {
		t.Fatalf("left in the queue: %v, want [1 2]", ids)
	}
}

// failConn fails every Write, as a connection reset under the writer does.
type failConn struct{ fakeConn }

func (c *failConn) Write([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

// TestBroke: a write that fails with nobody having asked for a close is a
// broken connection (a resumable c2s session hibernates), even though the
// stream is closing afterwards; a close we asked for, whose write then
// fails, is not.
func TestBroke(t *testing.T) {
	cases := []struct {
		name  string
		run   func(c *Conn[*stanza.Element])
		conn  net.Conn
		broke bool
	}{
		{"write fails on its own", func(c *Conn[*stanza.Element]) { c.Enqueue(msg("1"), true) }, &failConn{}, true},
		{"our close, then the write fails", func(c *Conn[*stanza.Element]) {
			c.Enqueue(msg("1"), true)
			time.Sleep(10 * time.Millisecond)
			c.CloseStuck(&stanza.StreamError{Condition: "policy-violation"})
		}, &fakeConn{gate: make(chan struct{})}, false},
		{"our close, written", func(c *Conn[*stanza.Element]) { c.CloseWithError(nil) }, &fakeConn{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := New(tc.conn, Config[*stanza.Element]{
				QueueSize: 8, WriteTimeout: time.Hour,
				Append: func(b []byte, el *stanza.Element) []byte { return el.AppendXML(b, stanza.NSClient) },
				Header: func() stanza.StreamHeader { return testHeader },
			})
			tc.run(c)
			waitDone(t, c)
			if !c.Closing() {
				t.Fatal("not closing")
			}
			if got := c.Broke(); got != tc.broke {
				t.Fatalf("Broke() = %v, want %v", got, tc.broke)
			}
		})
	}
}
