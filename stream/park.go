package stream

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// Parking an idle stream (issue 5: memory per idle session).
//
// Most client streams are idle most of the time, and a goroutine blocked in
// a TLS read keeps a stack of several KiB for nothing. So once a reader finds
// nothing to read — not in the decoder, not in crypto/tls's buffers (ReadIdle
// asks without waiting), not in the kernel — it parks: the socket is handed
// to a process-wide poller (epoll on Linux) and the goroutine returns. When
// the socket turns readable, or the stream is closed from our side, the
// poller (or the closer) starts a fresh goroutine that reads on. An idle
// stream then costs its heap objects and no goroutine at all.
//
// Only one goroutine reads a stream at a time: the one that parks gives up
// the stream with its last step, and exactly one waker wins unpark.

// ErrIdle is what ReadIdle returns when there is nothing to read now and
// the reader should park.
var ErrIdle = errors.New("stream: idle")

const (
	running int32 = iota
	parked
)

// parker is a stream's parking state.
type parker struct {
	state  atomic.Int32
	resume func()          // runs on a new goroutine when a parked stream wakes
	rc     syscall.RawConn // the socket (nil: parking is not possible)
	fd     int             // its descriptor, the poller's key
	off    bool            // arming failed once: read as if parking were not possible
	armed  bool            // the socket is in the poller's set (owner only)

	// How long the reader waits before it parks (owner only): see wait.
	linger   time.Duration
	parkedAt int64 // UnixNano of the last park; 0 once the wake is accounted for
}

// wait returns how long the reader waits for input before it parks, now
// (UnixNano). A stream that parks and is woken again within max of parking
// does not gain by parking: each such wake doubles the wait, up to max, so a
// chat that goes back and forth every few hundred milliseconds keeps its
// goroutine (parking and waking cost a few system calls each time). After a
// longer quiet spell the wait starts over at base, so the sessions that stay
// idle park soon after each burst of activity.
func (p *parker) wait(base, max time.Duration, now int64) time.Duration {
	if p.parkedAt != 0 {
		if max > base && time.Duration(now-p.parkedAt) < max {
			p.linger = min(2*p.linger, max)
		} else {
			p.linger = base
		}
		p.parkedAt = 0
	}
	if p.linger < base {
		p.linger = base
	}
	return p.linger
}

// parkedStreams counts the streams parked now, for ParkedStreams.
var parkedStreams atomic.Int64

// ParkedStreams reports how many streams are parked now: idle, with no
// goroutine of their own.
func ParkedStreams() int64 { return parkedStreams.Load() }

// park marks the stream parked; the caller arms it next.
func (p *parker) park() {
	p.state.Store(parked)
	parkedStreams.Add(1)
}

// unpark claims a parked stream for whoever calls it (the poller or a
// closer): true means the caller must resume it.
func (p *parker) unpark() bool {
	if p.state.CompareAndSwap(parked, running) {
		parkedStreams.Add(-1)
		return true
	}
	return false
}

// wake resumes a parked stream on a new goroutine, if it is parked.
func (p *parker) wake() {
	if p.unpark() {
		go p.resume()
	}
}

// setConn finds the socket under c (through TLS).
func (p *parker) setConn(c net.Conn) {
	type netConner interface{ NetConn() net.Conn }
	for {
		nc, ok := c.(netConner)
		if !ok {
			break
		}
		c = nc.NetConn()
	}
	p.rc, p.fd = nil, -1
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	if rc.Control(func(fd uintptr) { p.fd = int(fd) }) == nil {
		p.rc = rc
	}
}

// control runs f on the descriptor, unless the socket is closed already:
// then its number may be another socket's, and f must not touch it.
func (p *parker) control(f func(fd int)) bool {
	return p.rc.Control(func(fd uintptr) { f(int(fd)) }) == nil
}
