package roster

import "github.com/xmppd/xmppd/xeps"

// Sub is the subscription part of a roster item's state (RFC 6121 §2.1.2.5):
// To means the user receives the contact's presence, From that the contact
// receives the user's.
type Sub uint8

const (
	None Sub = 0
	To   Sub = 1
	From Sub = 2
	Both Sub = To | From
)

func (s Sub) String() string {
	switch s {
	case To:
		return "to"
	case From:
		return "from"
	case Both:
		return "both"
	}
	return "none"
}

// parseSub is the inverse of Sub.String; anything unknown is None.
func parseSub(s string) Sub {
	switch s {
	case "to":
		return To
	case "from":
		return From
	case "both":
		return Both
	}
	return None
}

// State is the subscription state of one contact in one user's roster: the
// nine states of RFC 6121 Appendix A plus the pre-approval flag of §3.4.
type State struct {
	Sub Sub
	// PendingOut: the user asked to subscribe to the contact and has no
	// answer yet (shown to clients as ask='subscribe').
	PendingOut bool
	// PendingIn: the contact asked to subscribe to the user and the user has
	// not answered; the request is stored and redelivered (§3.1.3).
	PendingIn bool
	// PreApproved: the user approved a subscription request that has not
	// come yet (§3.4, shown as approved='true').
	PreApproved bool
}

// Actions says what the server does with one subscription stanza besides
// changing the state.
type Actions struct {
	// Forward: an outbound stanza is routed to the contact (stamped with the
	// user's bare JID); an inbound one is delivered to the user's available
	// resources.
	Forward bool
	// Reply is the presence type the server answers the contact with on the
	// user's behalf, without bothering the user ("subscribed" when the
	// contact is already approved or pre-approved), or "".
	Reply string
	// SendPresence: the contact just got a subscription from the user; send
	// it the current presence of each of the user's available resources.
	SendPresence bool
	// SendUnavailable: the contact just lost its subscription to the user;
	// send it unavailable presence from each of the user's available resources.
	SendUnavailable bool
}

// Transition is RFC 6121 Appendix A as a pure function: the new state of the
// user's roster item for a contact and what to do, when a presence stanza of
// type typ (subscribe, subscribed, unsubscribe, unsubscribed) goes from the
// user to the contact (xeps.Outbound, A.2) or comes from the contact to the
// user (xeps.Inbound, A.3). Unknown types change nothing.
//
// Outbound subscribe and unsubscribe are routed in every state (§3.1.2,
// §3.3.2: the contact's server ignores what changes nothing, and a resent
// request repairs a contact whose server lost state); outbound subscribed and
// unsubscribed are routed only when they answer something (a pending request
// or an existing subscription, A.2.3/A.2.4). A subscribed with no request
// pending and no subscription given is a pre-approval (§3.4); unsubscribed
// cancels a pre-approval.
func Transition(s State, dir xeps.Direction, typ string) (State, Actions) {
	n, a := s, Actions{}
	if dir == xeps.Outbound {
		switch typ {
		case "subscribe": // A.2.1
			if s.Sub&To == 0 {
				n.PendingOut = true
			}
			a.Forward = true
		case "unsubscribe": // A.2.2
			n.Sub &^= To
			n.PendingOut = false
			a.Forward = true
		case "subscribed": // A.2.3
			switch {
			case s.PendingIn:
				n.Sub |= From
				n.PendingIn, n.PreApproved = false, false
				a.Forward, a.SendPresence = true, true
			case s.Sub&From == 0:
				n.PreApproved = true
			}
		case "unsubscribed": // A.2.4
			n.PreApproved = false
			if s.Sub&From != 0 || s.PendingIn {
				n.Sub &^= From
				n.PendingIn = false
				a.Forward = true
				a.SendUnavailable = s.Sub&From != 0
			}
		}
		return n, a
	}
	switch typ {
	case "subscribe": // A.3.1
		switch {
		case s.Sub&From != 0:
			a.Reply = "subscribed"
		case s.PreApproved:
			n.Sub |= From
			n.PreApproved, n.PendingIn = false, false
			a.Reply, a.SendPresence = "subscribed", true
		case !s.PendingIn:
			n.PendingIn = true
			a.Forward = true
		}
	case "unsubscribe": // A.3.2
		if s.Sub&From != 0 || s.PendingIn {
			n.Sub &^= From
			n.PendingIn = false
			a.Forward = true
			a.SendUnavailable = s.Sub&From != 0
		}
	case "subscribed": // A.3.3
		if s.PendingOut {
			n.Sub |= To
			n.PendingOut = false
			a.Forward = true
		}
	case "unsubscribed": // A.3.4
		if s.Sub&To != 0 || s.PendingOut {
			n.Sub &^= To
			n.PendingOut = false
			a.Forward = true
		}
	}
	return n, a
}
