package session

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

// NSSM is XEP-0198's namespace.
const NSSM = "urn:xmpp:sm:3"

// SM is a session's stream management state (XEP-0198): what it counts in
// both directions and the stanzas it sent and the client has not yet
// acknowledged. It belongs to the session, not to a connection, so that a
// new connection can resume it (docs/design/009-stream-management.md).
//
// Counters wrap at 2^32 as the XEP says: every comparison is a uint32
// difference.
type SM struct {
	// In is the count of stanzas handled from the client: written by the
	// reading goroutine of the attached connection, read at resumption.
	In atomic.Uint32

	ID         string        // resumption id, "" when the session may not resume
	Timeout    time.Duration // how long the session may stay detached and resumable
	MaxUnacked int           // unacknowledged stanzas before the session is closed

	mu       sync.Mutex
	counting bool              // <enabled/> was written: what follows counts
	out      uint32            // stanzas sent (counted)
	acked    uint32            // the last h the client acknowledged
	unacked  []*stanza.Element // sent and not acknowledged, oldest first
	rAt      uint32            // out when the last <r/> was written
	rPending bool              // an <r/> is unanswered
	// Hibernation: a detached resumable session waits for a <resume/> until
	// expires; timer ends it then. gen tells a timer whether it is stale.
	expires time.Time
	timer   *time.Timer
	gen     uint64
	over    bool // expired or ended: no <resume/> takes it any more
	busy    bool // a resumption holds it (Claim)
}

// NewSM returns the state of a session that just enabled stream management.
func NewSM(id string, timeout time.Duration, maxUnacked int) *SM {
	return &SM{ID: id, Timeout: timeout, MaxUnacked: maxUnacked}
}

// IsCounted reports whether XEP-0198 counts el: stanzas, not the nonzas
// that manage the stream.
func IsCounted(el *stanza.Element) bool {
	if el.Space != "" && el.Space != stanza.NSClient && el.Space != stanza.NSServer {
		return false
	}
	return el.Local == "message" || el.Local == "presence" || el.Local == "iq"
}

// StartCounting makes what is sent from now on count (inline enable in
// Bind 2, where <enabled/> is written outside the queue).
func (m *SM) StartCounting() {
	m.mu.Lock()
	m.counting = true
	m.mu.Unlock()
}

// Taken records a batch the writer takes from the queue: the <enabled/>
// in it starts the count, the stanzas after it are kept until acknowledged.
// It reports whether to ask the client for an ack now (ackEvery stanzas
// unrequested), whether the session holds the batch (counting), and
// whether the unacknowledged stanzas exceed the bound.
func (m *SM) Taken(batch []*stanza.Element, ackEvery uint32) (request, kept, overflow bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, el := range batch {
		switch {
		case el.Space == NSSM && el.Local == "enabled":
			m.counting = true
		case el.Space == NSSM && el.Local == "r":
			m.rAt, m.rPending = m.out, true
		case m.counting && IsCounted(el):
			m.unacked = append(m.unacked, el)
			m.out++
		}
	}
	if m.counting && m.out-m.rAt >= ackEvery {
		m.rAt, m.rPending = m.out, true
		request = true
	}
	return request, m.counting, m.MaxUnacked > 0 && len(m.unacked) > m.MaxUnacked
}

// NeedsRequest reports whether stanzas were sent since the last <r/> and no
// <r/> is unanswered: the queue went idle with stanzas unacknowledged.
func (m *SM) NeedsRequest() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counting && m.out != m.acked && m.out != m.rAt && !m.rPending
}

// Ack applies the client's h: the stanzas it acknowledges are forgotten.
// ok is false when h acknowledges more than was sent (then nothing
// changes); sent is the count of stanzas sent, for the error.
func (m *SM) Ack(h uint32) (ok bool, sent uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := h - m.acked
	if n > uint32(len(m.unacked)) {
		return false, m.out
	}
	clear(m.unacked[:n])
	m.unacked = m.unacked[n:]
	if len(m.unacked) == 0 {
		m.unacked = m.unacked[:0:0] // let the backing array go; the next burst makes one
	}
	m.acked = h
	if m.rAt-h < 1<<31 { // the answer to our last <r/> (or a later one)
		m.rPending = false
	}
	return true, m.out
}

// Unacked returns how many stanzas wait for an ack.
func (m *SM) Unacked() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.unacked)
}

// TakeUnacked removes and returns the unacknowledged stanzas, oldest first,
// and counts them as not sent: a resumed stream sends them again (and
// counts them again), a session that ends hands them on.
func (m *SM) TakeUnacked() []*stanza.Element {
	m.mu.Lock()
	defer m.mu.Unlock()
	left := m.unacked
	m.unacked = nil
	m.out = m.acked
	m.rAt, m.rPending = m.out, false
	return left
}

// Counters returns the count of stanzas sent and the last acknowledged h.
func (m *SM) Counters() (out, acked uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out, m.acked
}

// Restore sets the outbound counters and the unacknowledged stanzas of a
// session saved at shutdown.
func (m *SM) Restore(in, acked uint32, unacked []*stanza.Element) {
	m.In.Store(in)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counting = true
	m.acked = acked
	m.out = acked + uint32(len(unacked))
	m.unacked = unacked
	m.rAt = m.out
}

// Hibernate starts the wait for a <resume/>: after d, expire runs unless
// the session was claimed meanwhile. It reports false when the session is
// over or a resumption holds it (the caller then leaves it alone).
func (m *SM) Hibernate(d time.Duration, expire func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.over || m.busy {
		return false
	}
	m.gen++
	gen := m.gen
	m.expires = time.Now().Add(d)
	if m.timer != nil {
		m.timer.Stop()
	}
	m.timer = time.AfterFunc(d, func() {
		if m.expire(gen) {
			expire()
		}
	})
	return true
}

// expire marks the session over if gen is still the current hibernation.
func (m *SM) expire(gen uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.over || m.busy || m.gen != gen {
		return false
	}
	m.over, m.timer, m.expires = true, nil, time.Time{}
	return true
}

// Claim takes the session for a resumption: a hibernation under way stops
// waiting, and nothing else may claim or end it until Release. It reports
// false when the session is over or another resumption holds it.
func (m *SM) Claim() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.over || m.busy {
		return false
	}
	m.busy = true
	m.stopWaiting()
	return true
}

// stopWaiting ends a hibernation under way, if any (with mu held): its
// timer, once stopped or outdated by gen, expires nothing.
func (m *SM) stopWaiting() {
	m.gen++
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
	m.expires = time.Time{}
}

// Release ends the hold of Claim.
func (m *SM) Release() {
	m.mu.Lock()
	m.busy = false
	m.mu.Unlock()
}

// End marks the session over, for a session that ends without waiting for
// a resumption (a clean close, a full queue, a shutdown without saving).
// It reports false when it was over already or a resumption holds it: the
// caller then leaves the session alone.
func (m *SM) End() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.over || m.busy {
		return false
	}
	m.over = true
	m.stopWaiting()
	return true
}

// Expires is when a hibernated session stops waiting (zero when attached).
func (m *SM) Expires() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.expires
}

// Over reports whether the session can no longer be resumed.
func (m *SM) Over() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.over
}
