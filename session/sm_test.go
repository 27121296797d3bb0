package session

import (
	"testing"

	"github.com/xmppd/xmppd/stanza"
)

func msg(id string) *stanza.Element {
	return stanza.New(stanza.NSClient, "message").Set("id", id)
}

// TestSMCountersWrap: h counts modulo 2^32 (XEP-0198 §4): acks across the
// wrap forget exactly the stanzas they acknowledge, and an h beyond what
// was sent is refused on either side of it.
func TestSMCountersWrap(t *testing.T) {
	cases := []struct {
		name       string
		acked      uint32 // where the count starts
		send       int
		ack        uint32
		ok         bool
		leftUnsent int
	}{
		{"plain", 0, 5, 3, true, 2},
		{"all", 0, 5, 5, true, 0},
		{"too high", 0, 5, 6, false, 5},
		{"across the wrap", 1<<32 - 2, 5, 2, true, 1},
		{"to the wrap", 1<<32 - 2, 5, 1<<32 - 1, true, 4},
		{"too high across the wrap", 1<<32 - 2, 5, 4, false, 5},
		{"behind (an old h)", 10, 5, 9, false, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := NewSM("id", 0, 0)
			m.Restore(0, tc.acked, nil)
			batch := []*stanza.Element{stanza.New(NSSM, "a")} // nonzas do not count
			for i := range tc.send {
				batch = append(batch, msg(string(rune('a'+i))))
			}
			m.Taken(batch, 100)
			out, _ := m.Counters()
			if want := tc.acked + uint32(tc.send); out != want {
				t.Fatalf("sent count %d, want %d", out, want)
			}
			ok, _ := m.Ack(tc.ack)
			if ok != tc.ok || m.Unacked() != tc.leftUnsent {
				t.Fatalf("Ack(%d) = %v with %d unacked, want %v with %d", tc.ack, ok, m.Unacked(), tc.ok, tc.leftUnsent)
			}
			left := m.TakeUnacked()
			if len(left) > 0 && left[len(left)-1].Get("id") != string(rune('a'+tc.send-1)) {
				t.Fatalf("the newest unacked is %s", left[len(left)-1])
			}
		})
	}
}

// TestSMCountsFromEnabled: only what follows <enabled/> in the written
// order counts; an ack is asked for every ackEvery stanzas.
func TestSMCountsFromEnabled(t *testing.T) {
	m := NewSM("", 0, 3)
	req, kept, over := m.Taken([]*stanza.Element{msg("before"), stanza.New(NSSM, "enabled"), msg("1"), msg("2")}, 2)
	if !req || !kept || over {
		t.Fatalf("Taken = %v %v %v", req, kept, over)
	}
	if out, _ := m.Counters(); out != 2 {
		t.Fatalf("counted %d, want 2", out)
	}
	if _, _, over := m.Taken([]*stanza.Element{msg("3"), msg("4")}, 2); !over {
		t.Fatal("4 unacked over a bound of 3 is not an overflow")
	}
}

// TestSMClaims: a claimed session cannot be claimed again, hibernated or
// ended until released; an ended one never again.
func TestSMClaims(t *testing.T) {
	m := NewSM("x", 0, 0)
	if !m.Claim() || m.Claim() || m.End() || m.Hibernate(1, func() {}) {
		t.Fatal("a claim does not exclude the others")
	}
	m.Release()
	if !m.End() || m.Claim() || m.Hibernate(1, func() {}) {
		t.Fatal("an ended session can be taken")
	}
}

func TestClearInterested(t *testing.T) {
	s := New("x", 1)
	s.SetInterested(1 | 4)
	s.ClearInterested(4)
	if !s.Interested(1) || s.Interested(4) {
		t.Fatalf("interests %b", s.Interests())
	}
}
