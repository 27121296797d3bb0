package stream

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

// fakeStream records the error it was closed with and ends its serve
// function when closed.
type fakeStream struct {
	mu     sync.Mutex
	err    *stanza.StreamError
	closed chan struct{}
}

func (f *fakeStream) CloseWithError(se *stanza.StreamError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = se
		close(f.closed)
	}
}

func TestListenersShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var l Listeners[*fakeStream]
	accepted := make(chan *fakeStream, 1)
	served := make(chan error, 1)
	go func() {
		served <- l.Serve(context.Background(), ln, func(c net.Conn) (*fakeStream, func(func())) {
			st := &fakeStream{closed: make(chan struct{})}
			return st, func(done func()) {
				accepted <- st
				// The stream ends on another goroutine, as a parked one does.
				go func() {
					defer done()
					<-st.closed
					c.Close()
				}()
			}
		})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := <-accepted
	if l.Len() != 1 {
		t.Fatalf("%d open streams, want 1", l.Len())
	}
	other := make(chan struct{})
	l.Go(func() { <-st.closed; close(other) })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l.Shutdown(ctx)
	if ctx.Err() != nil {
		t.Fatal("Shutdown did not see the streams end")
	}
	if st.err == nil || st.err.Condition != "system-shutdown" {
		t.Fatalf("closed with %v, want system-shutdown", st.err)
	}
	select {
	case <-other:
	default:
		t.Fatal("Shutdown did not wait for Go's goroutine")
	}
	if l.Len() != 0 {
		t.Fatalf("%d streams still open", l.Len())
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve after Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
	if l.Track(&fakeStream{closed: make(chan struct{})}) {
		t.Fatal("Track after Shutdown succeeded")
	}
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := l.Serve(context.Background(), ln2, nil); err != nil {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", ln2.Addr().String()); err == nil {
		t.Fatal("Serve after Shutdown left its listener open")
	}
}
