// Package session holds local client sessions and the one registry of them
// that the router, presence and every module read.
//
// A session is not a connection (docs/design/004-sessions.md). It is the
// bound full JID and what belongs to it: its presence, which pushes it asked
// for, its outbound queue. A transport — a TCP stream today, a WebSocket or
// a resumed stream later — attaches to a session, drains its queue, and
// detaches; while none is attached, stanzas for the session wait in the
// queue, within its bound.
//
//	negotiating ──bind──▶ bound ◀──attach── detached
//	                        │  └──detach──▶    │
//	                        └──────close──▶ closed ◀──expire┘
package session

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/stream"
)

// State is where a session is in its life cycle.
type State uint32

const (
	// Negotiating: a transport is authenticating; nothing is bound yet.
	Negotiating State = iota
	// Bound: a resource is bound and a transport drains the queue.
	Bound
	// Detached: bound, but no transport is attached; stanzas wait in the queue.
	Detached
	// Closed: the session is over and out of the registry.
	Closed
)

func (s State) String() string {
	switch s {
	case Negotiating:
		return "negotiating"
	case Bound:
		return "bound"
	case Detached:
		return "detached"
	case Closed:
		return "closed"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Transport is a connection attached to a session. It drains the session's
// queue (the one it was handed when it attached) and writes to the client.
type Transport interface {
	// Deliver queues el on the session's queue for writing. It applies the
	// transport's policy for a full queue (c2s: wait a moment, then drop
	// the client as a slow consumer) and reports false when el was not
	// taken: the transport is closing or gave up on the client.
	Deliver(el *stanza.Element) bool
	// DeliverWait is Deliver for a backlog the client asked for: it waits
	// for room (until ctx ends) instead of dropping the client.
	DeliverWait(ctx context.Context, el *stanza.Element) bool
	// Start starts writing what waits in the queue.
	Start()
	// Close ends the transport with a stream error (nil: a clean close).
	Close(se *stanza.StreamError)
}

// Interest names one kind of push a resource asked for (the roster's, the
// blocklist's, ...): a bit of a mask, handed out by NewInterests.
type Interest uint32

// Session is one local client session.
type Session struct {
	id string // random, for logs and, later, resumption

	// Set once at Bind, before the session is in the registry.
	addr stanza.JID
	full string

	q *stream.Queue[*stanza.Element]

	state     atomic.Uint32
	presence  atomic.Int32 // 0 = unavailable; otherwise priority+1000 (for routing)
	interests atomic.Uint32
	transport atomic.Pointer[attachment]
	sm        atomic.Pointer[SM] // nil until the client enables XEP-0198

	// What the presence module knows of the resource (RFC 6121 §4), under mu.
	mu        sync.Mutex
	broadcast *stanza.Element     // last broadcast available presence; nil while unavailable
	directed  map[string]struct{} // entities that got directed available presence
	announced bool                // announced available to contacts (see Registry.Announced)
}

type attachment struct{ t Transport }

// New returns a negotiating session whose queue holds up to queueSize stanzas.
func New(id string, queueSize int) *Session {
	return &Session{id: id, q: stream.NewQueue[*stanza.Element](queueSize)}
}

// ID is the session's random identifier.
func (s *Session) ID() string { return s.id }

// Queue is the session's outbound queue, for the transport that drains it.
func (s *Session) Queue() *stream.Queue[*stanza.Element] { return s.q }

// Address is the bound full JID (zero before Bind).
func (s *Session) Address() stanza.JID { return s.addr }

// Full is the bound full JID's string.
func (s *Session) Full() string { return s.full }

// State reports where the session is in its life cycle.
func (s *Session) State() State { return State(s.state.Load()) }

// SetAddress gives a negotiating session its full JID, before Bind.
func (s *Session) SetAddress(addr stanza.JID) {
	s.addr, s.full = addr, addr.String()
}

// Attach makes t the session's transport and starts it on what waited.
func (s *Session) Attach(t Transport) {
	s.transport.Store(&attachment{t})
	s.state.CompareAndSwap(uint32(Detached), uint32(Bound))
	t.Start()
}

// Detach removes t, if it is still the session's transport: stanzas wait
// in the queue until another transport attaches or the session closes.
func (s *Session) Detach(t Transport) {
	if a := s.transport.Load(); a != nil && a.t == t {
		s.transport.CompareAndSwap(a, nil)
		s.state.CompareAndSwap(uint32(Bound), uint32(Detached))
	}
}

// Transport returns the attached transport, or nil.
func (s *Session) Transport() Transport {
	if a := s.transport.Load(); a != nil {
		return a.t
	}
	return nil
}

// Deliver queues el for the client. Attached, the transport's policy
// applies; detached, el waits in the queue if there is room. False means el
// was not taken: the caller hands it to the undeliverable stage.
func (s *Session) Deliver(el *stanza.Element) bool {
	if a := s.transport.Load(); a != nil {
		return a.t.Deliver(el)
	}
	// A hibernated session (XEP-0198) keeps up to its unacknowledged bound:
	// what does not fit goes to offline storage, which a client that
	// resumes instead of logging in does not read.
	bound := s.q.Max()
	if m := s.SM(); m != nil && m.MaxUnacked > bound {
		bound = m.MaxUnacked
	}
	if s.State() == Closed || !s.q.PushUpTo(el, bound) {
		return false
	}
	// A transport that attached meanwhile may have started before the push.
	if a := s.transport.Load(); a != nil {
		a.t.Start()
	}
	return true
}

// DeliverWait queues el like Deliver, but waits (until ctx ends) for room in
// a full queue instead of dropping the client: for a backlog the client
// asked for, such as its offline messages.
func (s *Session) DeliverWait(ctx context.Context, el *stanza.Element) bool {
	if a := s.transport.Load(); a != nil {
		return a.t.DeliverWait(ctx, el)
	}
	return s.Deliver(el)
}

// Close ends the session's transport with a stream error (nil: clean).
func (s *Session) Close(se *stanza.StreamError) {
	if a := s.transport.Load(); a != nil {
		a.t.Close(se)
	}
}

// ---- presence, for routing (RFC 6121 §8.5) ----

// Available reports whether the client sent available presence, and its priority.
func (s *Session) Available() (ok bool, priority int) {
	p := s.presence.Load()
	return p != 0, int(p) - 1000
}

// TrackPresence records the session's own broadcast presence for routing
// (RFC 6121 §4.2, §4.7.2.3 priority): the transport calls it for every
// presence without 'to' the client sends, before routing it.
func (s *Session) TrackPresence(el *stanza.Element) {
	switch el.Get("type") {
	case "":
		s.presence.Store(int32(Priority(el) + 1000))
	case "unavailable":
		s.presence.Store(0)
	}
}

// SetUnavailable marks the session unavailable for routing and reports
// whether it was available.
func (s *Session) SetUnavailable() (was bool) { return s.presence.Swap(0) != 0 }

// Priority reads <priority/> (RFC 6121 §4.7.2.3); absent or invalid is 0.
func Priority(el *stanza.Element) int {
	if el == nil {
		return 0
	}
	p := el.Child(el.Space, "priority")
	if p == nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(p.Text()))
	if err != nil || n < -128 || n > 127 {
		return 0
	}
	return n
}

// ---- what the presence module keeps ----

// SetBroadcast records el as the resource's broadcast available presence.
// initial reports that the resource was not available before (its initial
// presence); reachable that it just became reachable for messages to the
// bare JID (non-negative priority now, and not before).
func (s *Session) SetBroadcast(el *stanza.Element) (initial, reachable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	initial = s.broadcast == nil
	wasReachable := !initial && Priority(s.broadcast) >= 0
	s.broadcast = el
	return initial, Priority(el) >= 0 && !wasReachable
}

// Broadcast returns the last broadcast available presence (shared: copy
// before changing it), or nil while the resource is unavailable.
func (s *Session) Broadcast() *stanza.Element {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.broadcast
}

// ClearBroadcast forgets the resource's presence: it reports whether it was
// available, and the entities that got directed presence from it, sorted.
func (s *Session) ClearBroadcast() (was bool, directed []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	was = s.broadcast != nil
	for d := range s.directed {
		directed = append(directed, d)
	}
	slices.Sort(directed)
	s.broadcast, s.directed, s.announced = nil, nil, false
	return was, directed
}

// Directed records (available) or forgets directed presence to 'to'.
func (s *Session) Directed(to string, available bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !available {
		delete(s.directed, to)
		return
	}
	if s.directed == nil { // made on first use: most resources never send any
		s.directed = map[string]struct{}{}
	}
	s.directed[to] = struct{}{}
}

// SetAnnounced records whether contacts see the resource as available.
func (s *Session) SetAnnounced(on bool) {
	s.mu.Lock()
	s.announced = on
	s.mu.Unlock()
}

// Announced reports whether contacts see the resource as available.
func (s *Session) Announced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.announced
}

// ---- pushes the resource asked for ----

// SetInterested records that the resource asked for the pushes of i (RFC
// 6121 §2.1.6 for the roster: it did a roster get). It lasts for the session.
func (s *Session) SetInterested(i Interest) { s.interests.Or(uint32(i)) }

// ClearInterested forgets that the resource asked for the pushes of i (a
// client that turns a push off again: carbons' <disable/>).
func (s *Session) ClearInterested(i Interest) { s.interests.And(^uint32(i)) }

// Interested reports whether the resource asked for the pushes of i.
func (s *Session) Interested(i Interest) bool { return s.interests.Load()&uint32(i) != 0 }

// ---- the origin of a stanza ----

type ctxKey struct{}

// NewContext returns ctx carrying s: the session whose stanza is being
// handled (Prosody's "origin"), for modules that act on it.
func NewContext(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, ctxKey{}, s)
}

// FromContext returns the session ctx carries, or nil.
func FromContext(ctx context.Context) *Session {
	s, _ := ctx.Value(ctxKey{}).(*Session)
	return s
}

// ---- stream management (XEP-0198, sm.go) ----

// SM returns the session's stream management state, or nil.
func (s *Session) SM() *SM { return s.sm.Load() }

// SetSM gives the session its stream management state (once, at enable).
func (s *Session) SetSM(m *SM) { s.sm.Store(m) }

// ---- what a saved session is made of (restart without clients noticing) ----

// Interests returns the mask of pushes the resource asked for.
func (s *Session) Interests() Interest { return Interest(s.interests.Load()) }

// DirectedTo returns the entities that got directed available presence, sorted.
func (s *Session) DirectedTo() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.directed))
	for d := range s.directed {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}
