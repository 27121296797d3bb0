package xeps

import (
	"context"
	"slices"
	"testing"

	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
)

// bindFor binds a session for j in h's registry, unless one is bound.
func bindFor(h *Host, j stanza.JID) *session.Session {
	if s := h.Sessions().Session(j.String()); s != nil {
		return s
	}
	s := session.New(j.String(), 8)
	s.SetAddress(j)
	h.Sessions().Bind(s)
	return s
}

// gone ends j's session as c2s does: out of the registry, then the hooks.
func gone(ctx context.Context, h *Host, j stanza.JID) {
	if s := h.Sessions().Session(j.String()); s != nil {
		h.Sessions().Unbind(s)
		h.SessionClosed(ctx, s)
	}
}

// TestOnline: what modules record about online resources through the Host
// (interests, announced availability) is kept once per resource, answers
// the modules' questions, and leaves nothing behind once every resource is
// gone, whatever the order.
func TestOnline(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name          string
		ops           []string // "+a@x/1" announce, "-a@x/1" unannounce, "!a@x/1" unannounce (last), "r a@x/1" roster interest, "b a@x/1" blocklist interest, "x a@x/1" session gone
		announced     []string // of a@x
		roster, block []string // interested resources of a@x
	}{
		{"one", []string{"+a@x/1", "r a@x/1", "-a@x/1", "x a@x/1"}, nil, nil, nil},
		{"announced only", []string{"+a@x/1", "+a@x/2"}, []string{"a@x/1", "a@x/2"}, nil, nil},
		{"interest before presence", []string{"r a@x/1", "b a@x/1", "+a@x/1"}, []string{"a@x/1"}, []string{"a@x/1"}, []string{"a@x/1"}},
		{"unavailable keeps the interest", []string{"r a@x/1", "+a@x/1", "-a@x/1"}, nil, []string{"a@x/1"}, nil},
		{"last clears every resource", []string{"+a@x/1", "+a@x/2", "b a@x/2", "!a@x/1"}, nil, nil, []string{"a@x/2"}},
		{"session gone", []string{"+a@x/1", "r a@x/1", "+a@x/2", "x a@x/1"}, []string{"a@x/2"}, nil, nil},
		{"in any order", []string{"+a@x/1", "+a@x/2", "+a@x/3", "r a@x/2", "x a@x/1", "x a@x/3", "x a@x/2"}, nil, nil, nil},
		{"two users", []string{"+a@x/1", "+b@x/1", "r b@x/1", "x a@x/1"}, nil, nil, nil},
		{"resource with a slash", []string{"+a@x/1/2", "+a@x/1", "x a@x/1/2"}, []string{"a@x/1"}, nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHost(Config{})
			roster, block := h.NewInterest(), h.NewInterest()
			for _, op := range tt.ops {
				rest := op[1:] // "+a@x/1", or "r a@x/1"
				if rest[0] == ' ' {
					rest = rest[1:]
				}
				j, err := stanza.ParseJID(rest)
				if err != nil {
					t.Fatal(err)
				}
				if op[0] != 'x' {
					bindFor(h, j)
				}
				switch op[0] {
				case '+':
					h.ResourceAvailable(ctx, j)
				case '-':
					h.ResourceUnavailable(ctx, j, false)
				case '!':
					h.ResourceUnavailable(ctx, j, true)
				case 'r':
					h.SetInterested(j, roster)
				case 'b':
					h.SetInterested(j, block)
				case 'x':
					gone(ctx, h, j)
				}
			}
			a, _ := stanza.ParseJID("a@x")
			if got := h.Announced(a); !slices.Equal(got, tt.announced) {
				t.Errorf("announced %q, want %q", got, tt.announced)
			}
			if got := h.Interested(a, roster); !slices.Equal(got, tt.roster) {
				t.Errorf("roster interest %q, want %q", got, tt.roster)
			}
			if got := h.Interested(a, block); !slices.Equal(got, tt.block) {
				t.Errorf("blocklist interest %q, want %q", got, tt.block)
			}
		})
	}
	t.Run("empty at the end", func(t *testing.T) {
		h := NewHost(Config{})
		r := h.NewInterest()
		for _, s := range []string{"a@x/1", "a@x/2", "b@x/1"} {
			j, _ := stanza.ParseJID(s)
			bindFor(h, j)
			h.ResourceAvailable(ctx, j)
			h.SetInterested(j, r)
		}
		for _, s := range []string{"a@x/2", "b@x/1", "a@x/1"} {
			j, _ := stanza.ParseJID(s)
			h.ResourceUnavailable(ctx, j, s != "a@x/2")
			gone(ctx, h, j)
		}
		if n := h.Sessions().Count(); n != 0 {
			t.Fatalf("%d sessions left", n)
		}
	})
}

func TestNewInterestBound(t *testing.T) {
	h := NewHost(Config{})
	seen := Interest(0)
	for range 32 {
		i := h.NewInterest()
		if i == 0 || seen&i != 0 {
			t.Fatalf("interest %b overlaps %b", i, seen)
		}
		seen |= i
	}
	defer func() {
		if recover() == nil {
			t.Error("a 33rd interest did not panic")
		}
	}()
	h.NewInterest()
}
