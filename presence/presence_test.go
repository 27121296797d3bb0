package presence

import (
	"fmt"
	"sync"
	"testing"

	"github.com/xmppd/xmppd/stanza"
)

func mustJID(t *testing.T, s string) stanza.JID {
	t.Helper()
	j, err := stanza.ParseJID(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestReachable: offline delivery waits for a non-negative priority
// (XEP-0160), whether the initial presence has it or a later update.
func TestReachable(t *testing.T) {
	m := New()
	a := mustJID(t, "alice@localhost/1")
	prio := func(p string) *stanza.Element {
		return stanza.New(stanza.NSClient, "presence").Append(stanza.New(stanza.NSClient, "priority").AppendText(p))
	}
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
		initial, reached := m.setAvailable(a, prio(tt.prio))
		if initial != tt.initial || reached != tt.reached {
			t.Errorf("step %d priority %s: initial=%v reachable=%v, want %v %v", i, tt.prio, initial, reached, tt.initial, tt.reached)
		}
	}
}

// TestState checks the per-resource bookkeeping: initial vs update,
// directed presence remembered until unavailable, "last" resource.
func TestState(t *testing.T) {
	m := New()
	a1, a2 := mustJID(t, "alice@localhost/1"), mustJID(t, "alice@localhost/2")
	p := stanza.New(stanza.NSClient, "presence")
	if initial, _ := m.setAvailable(a1, p); !initial {
		t.Fatal("first presence must be initial")
	}
	if initial, _ := m.setAvailable(a1, p); initial {
		t.Fatal("the second presence must be an update")
	}
	m.setAvailable(a2, p)
	m.directed(a1, "carol@localhost", true)
	m.directed(a1, "dave@localhost", true)
	m.directed(a1, "dave@localhost", false)
	if got := m.Resources(a1.Bare()); len(got) != 2 || !got[0].JID.Equal(a1) {
		t.Fatalf("resources %v", got)
	}
	was, directed, last := m.setUnavailable(a1)
	if !was || last || fmt.Sprint(directed) != "[carol@localhost]" {
		t.Errorf("unavailable: %v %v %v", was, directed, last)
	}
	if was, _, _ := m.setUnavailable(a1); was {
		t.Error("unavailable twice")
	}
	if was, _, last := m.setUnavailable(a2); !was || !last {
		t.Errorf("last resource: %v %v", was, last)
	}
	if len(m.Resources(a1.Bare())) != 0 {
		t.Error("resources left")
	}
	// Directed presence from a resource that never sent broadcast presence
	// is remembered too, and the resource is not available.
	m.directed(a2, "carol@localhost", true)
	if was, directed, _ := m.setUnavailable(a2); was || len(directed) != 1 {
		t.Errorf("directed only: %v %v", was, directed)
	}
}

func TestStateConcurrent(t *testing.T) {
	m := New()
	p := stanza.New(stanza.NSClient, "presence")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			full := mustJID(t, fmt.Sprintf("u%d@localhost/r", i%3))
			for range 200 {
				m.setAvailable(full, p)
				m.directed(full, "x@localhost", true)
				m.Resources(full.Bare())
				m.setUnavailable(full)
			}
		}()
	}
	wg.Wait()
}

// TestStateLeavesNothing: a user's resources going unavailable in any order
// report "last" only for the final one, and leave no per-user entry behind.
func TestStateLeavesNothing(t *testing.T) {
	p := stanza.New(stanza.NSClient, "presence")
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}, {1, 2, 0}} {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			m := New()
			res := []stanza.JID{mustJID(t, "alice@localhost/1"), mustJID(t, "alice@localhost/2"), mustJID(t, "alice@localhost/3")}
			for _, r := range res {
				m.setAvailable(r, p)
				m.directed(r, "carol@localhost", true)
			}
			// One that only sent directed presence: connected, not available.
			directedOnly := mustJID(t, "alice@localhost/4")
			m.directed(directedOnly, "carol@localhost", true)
			if got := m.Resources(res[0].Bare()); len(got) != 3 {
				t.Fatalf("%d available resources, want 3", len(got))
			}
			for i, k := range order {
				was, directed, last := m.setUnavailable(res[k])
				if !was || len(directed) != 1 || last != (i == len(order)-1) {
					t.Errorf("%s unavailable: was=%v directed=%v last=%v", res[k], was, directed, last)
				}
				if got := len(m.Resources(res[0].Bare())); got != len(order)-i-1 {
					t.Errorf("after %s: %d available resources", res[k], got)
				}
			}
			if n := m.users(); n != 1 {
				t.Errorf("%d users left before the directed-only resource goes, want 1", n)
			}
			if was, directed, last := m.setUnavailable(directedOnly); was || len(directed) != 1 || !last {
				t.Errorf("directed-only unavailable: was=%v directed=%v last=%v", was, directed, last)
			}
			if n := m.users(); n != 0 {
				t.Errorf("%d users left", n)
			}
		})
	}
}

// users counts the users with state, over all shards.
func (m *Module) users() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.users)
		s.mu.Unlock()
	}
	return n
}
