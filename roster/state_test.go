package roster

import (
	"testing"

	"github.com/xmppd/xmppd/xeps"
)

// The nine states of RFC 6121 Appendix A.1, by the RFC's names.
var states = map[string]State{
	"None":                  {},
	"None + Pending Out":    {PendingOut: true},
	"None + Pending In":     {PendingIn: true},
	"None + Pending Out/In": {PendingOut: true, PendingIn: true},
	"To":                    {Sub: To},
	"To + Pending In":       {Sub: To, PendingIn: true},
	"From":                  {Sub: From},
	"From + Pending Out":    {Sub: From, PendingOut: true},
	"Both":                  {Sub: Both},
}

// TestAppendixA walks the tables of RFC 6121 Appendix A.2 (outbound) and A.3
// (inbound) row by row: existing state → new state ("" = no state change),
// and whether the stanza is routed (outbound) or delivered (inbound).
func TestAppendixA(t *testing.T) {
	type row struct {
		from    string
		fwd     bool
		to      string
		reply   string // inbound: the server's answer on the user's behalf
		pres    bool   // the contact gets the user's presence
		unavail bool   // the contact gets unavailable
	}
	tables := []struct {
		dir  xeps.Direction
		typ  string
		rows []row
	}{
		{xeps.Outbound, "subscribe", []row{ // A.2.1
			{from: "None", fwd: true, to: "None + Pending Out"},
			{from: "None + Pending Out", fwd: true},
			{from: "None + Pending In", fwd: true, to: "None + Pending Out/In"},
			{from: "None + Pending Out/In", fwd: true},
			{from: "To", fwd: true},
			{from: "To + Pending In", fwd: true},
			{from: "From", fwd: true, to: "From + Pending Out"},
			{from: "From + Pending Out", fwd: true},
			{from: "Both", fwd: true},
		}},
		{xeps.Outbound, "unsubscribe", []row{ // A.2.2
			{from: "None", fwd: true},
			{from: "None + Pending Out", fwd: true, to: "None"},
			{from: "None + Pending In", fwd: true},
			{from: "None + Pending Out/In", fwd: true, to: "None + Pending In"},
			{from: "To", fwd: true, to: "None"},
			{from: "To + Pending In", fwd: true, to: "None + Pending In"},
			{from: "From", fwd: true},
			{from: "From + Pending Out", fwd: true, to: "From"},
			{from: "Both", fwd: true, to: "From"},
		}},
		{xeps.Outbound, "subscribed", []row{ // A.2.3 (pre-approval rows: see TestPreApproval)
			{from: "None + Pending In", fwd: true, to: "From", pres: true},
			{from: "None + Pending Out/In", fwd: true, to: "From + Pending Out", pres: true},
			{from: "To + Pending In", fwd: true, to: "Both", pres: true},
			{from: "From"},
			{from: "From + Pending Out"},
			{from: "Both"},
		}},
		{xeps.Outbound, "unsubscribed", []row{ // A.2.4
			{from: "None"},
			{from: "None + Pending Out"},
			{from: "None + Pending In", fwd: true, to: "None"},
			{from: "None + Pending Out/In", fwd: true, to: "None + Pending Out"},
			{from: "To"},
			{from: "To + Pending In", fwd: true, to: "To"},
			{from: "From", fwd: true, to: "None", unavail: true},
			{from: "From + Pending Out", fwd: true, to: "None + Pending Out", unavail: true},
			{from: "Both", fwd: true, to: "To", unavail: true},
		}},
		{xeps.Inbound, "subscribe", []row{ // A.3.1
			{from: "None", fwd: true, to: "None + Pending In"},
			{from: "None + Pending Out", fwd: true, to: "None + Pending Out/In"},
			{from: "None + Pending In"},
			{from: "None + Pending Out/In"},
			{from: "To", fwd: true, to: "To + Pending In"},
			{from: "To + Pending In"},
			{from: "From", reply: "subscribed"},
			{from: "From + Pending Out", reply: "subscribed"},
			{from: "Both", reply: "subscribed"},
		}},
		{xeps.Inbound, "unsubscribe", []row{ // A.3.2
			{from: "None"},
			{from: "None + Pending Out"},
			{from: "None + Pending In", fwd: true, to: "None"},
			{from: "None + Pending Out/In", fwd: true, to: "None + Pending Out"},
			{from: "To"},
			{from: "To + Pending In", fwd: true, to: "To"},
			{from: "From", fwd: true, to: "None", unavail: true},
			{from: "From + Pending Out", fwd: true, to: "None + Pending Out", unavail: true},
			{from: "Both", fwd: true, to: "To", unavail: true},
		}},
		{xeps.Inbound, "subscribed", []row{ // A.3.3
			{from: "None"},
			{from: "None + Pending Out", fwd: true, to: "To"},
			{from: "None + Pending In"},
			{from: "None + Pending Out/In", fwd: true, to: "To + Pending In"},
			{from: "To"},
			{from: "To + Pending In"},
			{from: "From"},
			{from: "From + Pending Out", fwd: true, to: "Both"},
			{from: "Both"},
		}},
		{xeps.Inbound, "unsubscribed", []row{ // A.3.4
			{from: "None"},
			{from: "None + Pending Out", fwd: true, to: "None"},
			{from: "None + Pending In"},
			{from: "None + Pending Out/In", fwd: true, to: "None + Pending In"},
			{from: "To", fwd: true, to: "None"},
			{from: "To + Pending In", fwd: true, to: "None + Pending In"},
			{from: "From"},
			{from: "From + Pending Out", fwd: true, to: "From"},
			{from: "Both", fwd: true, to: "From"},
		}},
	}
	for _, tab := range tables {
		dir := map[xeps.Direction]string{xeps.Outbound: "outbound", xeps.Inbound: "inbound"}[tab.dir]
		for _, r := range tab.rows {
			s, ok := states[r.from]
			if !ok {
				t.Fatalf("unknown state %q", r.from)
			}
			want := s
			if r.to != "" {
				want = states[r.to]
			}
			got, act := Transition(s, tab.dir, tab.typ)
			if got != want {
				t.Errorf("%s %s in %q: state %+v, want %q", dir, tab.typ, r.from, got, r.to)
			}
			wantAct := Actions{Forward: r.fwd, Reply: r.reply, SendPresence: r.pres, SendUnavailable: r.unavail}
			if act != wantAct {
				t.Errorf("%s %s in %q: actions %+v, want %+v", dir, tab.typ, r.from, act, wantAct)
			}
		}
	}
}

// TestPreApproval covers RFC 6121 §3.4: a subscribed with no request pending
// is remembered (not routed) and answers the next request automatically; an
// unsubscribed cancels it.
func TestPreApproval(t *testing.T) {
	for _, name := range []string{"None", "None + Pending Out", "To"} {
		s := states[name]
		n, act := Transition(s, xeps.Outbound, "subscribed")
		if !n.PreApproved || act != (Actions{}) {
			t.Errorf("pre-approving in %q: %+v %+v", name, n, act)
		}
		c, act := Transition(n, xeps.Outbound, "unsubscribed")
		if c != s || act != (Actions{}) {
			t.Errorf("cancelling a pre-approval in %q: %+v %+v", name, c, act)
		}
		a, act := Transition(n, xeps.Inbound, "subscribe")
		want := s
		want.Sub |= From
		if a != want || act != (Actions{Reply: "subscribed", SendPresence: true}) {
			t.Errorf("request after pre-approval in %q: %+v %+v, want %+v", name, a, act, want)
		}
	}
	// Nothing to pre-approve once the contact is subscribed.
	for _, name := range []string{"From", "From + Pending Out", "Both"} {
		if n, _ := Transition(states[name], xeps.Outbound, "subscribed"); n.PreApproved {
			t.Errorf("pre-approval recorded in %q", name)
		}
	}
}
