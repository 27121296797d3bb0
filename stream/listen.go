package stream

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

// Closer is a stream a server keeps open until Shutdown: c2s's sessions,
// s2s's streams.
type Closer interface {
	comparable
	CloseWithError(se *stanza.StreamError)
}

// Listeners is a server's listeners, its open streams and the goroutines
// that serve them, so that Shutdown reaches them all. The zero value is ready.
type Listeners[S Closer] struct {
	mu      sync.Mutex // guards the fields below (never on the stanza path)
	lns     []net.Listener
	open    map[S]struct{}
	closing bool
	wg      sync.WaitGroup
}

// Serve accepts connections on ln until Shutdown is called (or, once
// accepting fails, ctx has ended). For each one, accept returns the stream
// and the function that runs it, on a goroutine of its own; the stream is
// tracked until run calls done, once, when the stream has ended (from any
// goroutine: a parked stream ends on another one).
// A failure to accept is returned as is, except a
// timeout (out of file descriptors), which is waited out.
func (l *Listeners[S]) Serve(ctx context.Context, ln net.Listener, accept func(net.Conn) (S, func(done func()))) error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		ln.Close()
		return nil
	}
	l.lns = append(l.lns, ln)
	l.mu.Unlock()
	for {
		conn, err := ln.Accept()
		if err != nil {
			l.mu.Lock()
			closing := l.closing
			l.mu.Unlock()
			if closing || ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond) // out of file descriptors: back off
				continue
			}
			return err
		}
		st, run := accept(conn)
		if !l.Track(st) {
			conn.Close()
			continue
		}
		l.wg.Add(1)
		go run(func() {
			l.Untrack(st)
			l.wg.Done()
		})
	}
}

// Track adds st to the open streams, unless Shutdown has begun (false).
func (l *Listeners[S]) Track(st S) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return false
	}
	if l.open == nil {
		l.open = map[S]struct{}{}
	}
	l.open[st] = struct{}{}
	return true
}

// Untrack removes st from the open streams.
func (l *Listeners[S]) Untrack(st S) {
	l.mu.Lock()
	delete(l.open, st)
	l.mu.Unlock()
}

// Len reports how many streams are open.
func (l *Listeners[S]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open)
}

// Go runs f on a goroutine that Shutdown waits for.
func (l *Listeners[S]) Go(f func()) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f()
	}()
}

// Shutdown stops the listeners, sends <system-shutdown/> on every open
// stream and waits (until ctx ends) for the goroutines of Serve and Go.
func (l *Listeners[S]) Shutdown(ctx context.Context) {
	l.mu.Lock()
	l.closing = true
	for _, ln := range l.lns {
		ln.Close()
	}
	open := make([]S, 0, len(l.open))
	for st := range l.open {
		open = append(open, st)
	}
	l.mu.Unlock()
	for _, st := range open {
		st.CloseWithError(&stanza.StreamError{Condition: "system-shutdown", Text: "the server is shutting down"})
	}
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
