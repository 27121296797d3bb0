package stream

import (
	"errors"
	"sync"
	"syscall"
)

// poller is the process-wide epoll set of parked sockets. Go's own netpoller
// has every socket registered as well (edge-triggered); a descriptor may be
// in several epoll sets, and ours is level-triggered and one-shot: an event
// comes at most once per park, and at once if data arrived before it.
var poller struct {
	once   sync.Once
	epfd   int
	err    error
	shards [64]pollShard
}

type pollShard struct {
	mu sync.Mutex
	m  map[int32]*parker
}

func pollShardOf(fd int) *pollShard { return &poller.shards[fd%len(poller.shards)] }

func startPoller() {
	poller.epfd, poller.err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if poller.err != nil {
		return
	}
	for i := range poller.shards {
		poller.shards[i].m = map[int32]*parker{}
	}
	go pollLoop(poller.epfd)
}

func pollLoop(epfd int) {
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			// Not expected on a valid epoll descriptor; parked streams would
			// hang, so fail loudly rather than quietly.
			panic("stream: epoll_wait: " + err.Error())
		}
		for _, ev := range events[:n] {
			sh := pollShardOf(int(ev.Fd))
			sh.mu.Lock()
			p := sh.m[ev.Fd]
			sh.mu.Unlock()
			// A stale event (the stream ended and its descriptor now serves
			// another) at worst wakes a stream with nothing to read: it
			// parks again.
			if p != nil {
				p.wake()
			}
		}
	}
}

// arm puts a parked stream's socket in the poller's set, or re-arms it.
// The caller has set state to parked.
func (p *parker) arm() bool {
	poller.once.Do(startPoller)
	if poller.err != nil || p.rc == nil {
		return false
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(p.fd)}
	var err error
	if p.armed {
		if !p.control(func(fd int) { err = syscall.EpollCtl(poller.epfd, syscall.EPOLL_CTL_MOD, fd, &ev) }) {
			return false
		}
		return err == nil
	}
	sh := pollShardOf(p.fd)
	sh.mu.Lock()
	sh.m[int32(p.fd)] = p
	sh.mu.Unlock()
	if !p.control(func(fd int) { err = syscall.EpollCtl(poller.epfd, syscall.EPOLL_CTL_ADD, fd, &ev) }) || err != nil {
		sh.mu.Lock()
		delete(sh.m, int32(p.fd))
		sh.mu.Unlock()
		return false
	}
	p.armed = true
	return true
}

// release takes the socket out of the poller's set; the owner calls it
// before the socket is closed, so its descriptor number can serve another.
func (p *parker) release() {
	if !p.armed {
		return
	}
	p.armed = false
	p.control(func(fd int) { syscall.EpollCtl(poller.epfd, syscall.EPOLL_CTL_DEL, fd, nil) })
	sh := pollShardOf(p.fd)
	sh.mu.Lock()
	if sh.m[int32(p.fd)] == p {
		delete(sh.m, int32(p.fd))
	}
	sh.mu.Unlock()
}

// pending reports whether the kernel holds bytes to read (or an EOF or
// error to report), without waiting.
func (p *parker) pending() bool {
	ready := true
	p.control(func(fd int) {
		var b [1]byte
		for {
			n, _, err := syscall.Recvfrom(fd, b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			ready = n > 0 || err != syscall.EAGAIN
			return
		}
	})
	return ready
}
