package session

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/xmppd/xmppd/stanza"
)

func bound(t *testing.T, r *Registry, full string) *Session {
	t.Helper()
	j, err := stanza.ParseJID(full)
	if err != nil {
		t.Fatal(err)
	}
	s := New(full, 4)
	s.SetAddress(j)
	if old := r.Bind(s); old != nil {
		t.Fatalf("%s replaced a session", full)
	}
	return s
}

func prio(p string) *stanza.Element {
	return stanza.New(stanza.NSClient, "presence").Append(stanza.New(stanza.NSClient, "priority").AppendText(p))
}

// TestReachable: offline delivery waits for a non-negative priority
// (XEP-0160), whether the initial presence has it or a later update.
func TestReachable(t *testing.T) {
	s := bound(t, NewRegistry(), "alice@localhost/1")
	for i, tt := range []struct {
		prio             string
		initial, reached bool
	}{
		{"-1", true, false}, // initial, negative: not yet
		{"-5", false, false},
		{"3", false, true},  // now reachable
		{"4", false, false}, // already was
		{"-1", false, false},
		{"0", false, true},
	} {
		initial, reached := s.SetBroadcast(prio(tt.prio))
		if initial != tt.initial || reached != tt.reached {
			t.Errorf("step %d priority %s: initial=%v reachable=%v, want %v %v", i, tt.prio, initial, reached, tt.initial, tt.reached)
		}
	}
}

// TestPresenceState: initial vs update, directed presence remembered until
// unavailable, the broadcasting resources of a user.
func TestPresenceState(t *testing.T) {
	r := NewRegistry()
	a1, a2 := bound(t, r, "alice@localhost/1"), bound(t, r, "alice@localhost/2")
	p := stanza.New(stanza.NSClient, "presence")
	if initial, _ := a1.SetBroadcast(p); !initial {
		t.Fatal("first presence must be initial")
	}
	if initial, _ := a1.SetBroadcast(p); initial {
		t.Fatal("the second presence must be an update")
	}
	a2.SetBroadcast(p)
	a1.Directed("carol@localhost", true)
	a1.Directed("dave@localhost", true)
	a1.Directed("dave@localhost", false)
	if got := r.Broadcasting("alice@localhost"); len(got) != 2 || got[0] != a1 {
		t.Fatalf("broadcasting %v", got)
	}
	was, directed := a1.ClearBroadcast()
	if !was || fmt.Sprint(directed) != "[carol@localhost]" {
		t.Errorf("unavailable: %v %v", was, directed)
	}
	if was, _ := a1.ClearBroadcast(); was {
		t.Error("unavailable twice")
	}
	if got := r.Broadcasting("alice@localhost"); len(got) != 1 || got[0] != a2 {
		t.Fatalf("broadcasting %v", got)
	}
	// Directed presence from a resource that never sent broadcast presence
	// is remembered too, and the resource is not available.
	a1.Directed("carol@localhost", true)
	if was, directed := a1.ClearBroadcast(); was || len(directed) != 1 {
		t.Errorf("directed only: %v %v", was, directed)
	}
}

// TestRegistry: bind, replace (the new session wins), unbind in any order,
// interests and announcements read back, nothing left behind.
func TestRegistry(t *testing.T) {
	r := NewRegistry()
	roster, block := r.NewInterest(), r.NewInterest()
	a1, a2 := bound(t, r, "alice@localhost/1"), bound(t, r, "alice@localhost/2")
	slash := bound(t, r, "alice@localhost/1/2")
	b := bound(t, r, "bob@localhost/1")
	a1.SetInterested(roster)
	a2.SetInterested(block)
	slash.SetInterested(roster)
	a2.SetAnnounced(true)
	if got := r.Interested("alice@localhost", roster); !slices.Equal(got, []string{"alice@localhost/1", "alice@localhost/1/2"}) {
		t.Errorf("roster interest: %v", got)
	}
	if got := r.Announced("alice@localhost"); !slices.Equal(got, []string{"alice@localhost/2"}) {
		t.Errorf("announced: %v", got)
	}
	if r.Session("alice@localhost/1") != a1 || r.Session("alice@localhost/1/2") != slash {
		t.Error("lookup by full JID")
	}
	again := New("x", 4)
	again.SetAddress(a1.Address())
	if old := r.Bind(again); old != a1 {
		t.Fatalf("a second bind of alice@localhost/1 replaced %v", old)
	}
	r.Unbind(a1) // the replaced one: the new one stays
	if r.Session("alice@localhost/1") != again || a1.State() != Closed {
		t.Error("unbinding the replaced session removed the new one")
	}
	for _, s := range []*Session{a2, again, b, slash} {
		r.Unbind(s)
	}
	if n := r.Count(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
}

// fakeTransport is an in-memory transport: it drains the session's queue
// into a slice when started.
type fakeTransport struct {
	s       *Session
	mu      sync.Mutex
	written []string
	closed  bool
}

func (f *fakeTransport) Deliver(el *stanza.Element) bool {
	if f.closed || !f.s.Queue().Push(el) {
		return false
	}
	f.Start()
	return true
}
func (f *fakeTransport) DeliverWait(_ context.Context, el *stanza.Element) bool {
	return f.Deliver(el)
}
func (f *fakeTransport) Start() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, el := range f.s.Queue().TakeAll() {
		f.written = append(f.written, el.Get("id"))
	}
}
func (f *fakeTransport) Close(*stanza.StreamError) { f.closed = true }

// TestDetachedQueue: what is delivered while no transport is attached waits
// in the session's queue, within its bound, and the next transport that
// attaches gets it first, in order (the seam stream resumption builds on).
func TestDetachedQueue(t *testing.T) {
	r := NewRegistry()
	s := bound(t, r, "alice@localhost/1") // bound, detached: queue of 4
	msg := func(id string) *stanza.Element { return stanza.New(stanza.NSClient, "message").Set("id", id) }
	for _, id := range []string{"1", "2", "3", "4"} {
		if !s.Deliver(msg(id)) {
			t.Fatalf("detached session refused %s", id)
		}
	}
	if s.Deliver(msg("5")) {
		t.Fatal("a full detached queue took a fifth stanza")
	}
	t1 := &fakeTransport{s: s}
	s.Attach(t1)
	if s.State() != Bound {
		t.Errorf("state %s after attach", s.State())
	}
	s.Deliver(msg("6"))
	s.Detach(t1)
	s.Deliver(msg("7"))
	if got := fmt.Sprint(t1.written); got != "[1 2 3 4 6]" {
		t.Errorf("first transport wrote %s", got)
	}
	t2 := &fakeTransport{s: s}
	s.Attach(t2)
	if got := fmt.Sprint(t2.written); got != "[7]" {
		t.Errorf("second transport wrote %s", got)
	}
	r.Unbind(s)
	s.Detach(t2)
	if s.Deliver(msg("8")) {
		t.Error("a closed session took a stanza")
	}
}

func TestOrigin(t *testing.T) {
	s := New("x", 1)
	if FromContext(context.Background()) != nil || FromContext(NewContext(context.Background(), s)) != s {
		t.Error("the origin session does not round-trip through a context")
	}
}

func TestRegistryConcurrent(t *testing.T) {
	r := NewRegistry()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 200 {
				full := fmt.Sprintf("u%d@localhost/r%d", i%3, k%4)
				j, _ := stanza.ParseJID(full)
				s := New(full, 4)
				s.SetAddress(j)
				r.Bind(s)
				s.SetBroadcast(stanza.New(stanza.NSClient, "presence"))
				r.Broadcasting(j.Bare().String())
				r.Unbind(s)
			}
		}()
	}
	wg.Wait()
}
