package xeps

import (
	"context"

	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
)

// The Host plays several roles. Registration (Register's calls: HandleIQ,
// Hook, ServeDomain, On..., Advertise..., the stores) happens once, on the
// *Host itself; what a module keeps for run time is one or more of the small
// interfaces below, never the whole Host, and the router asks for its own
// (router.Modules). Each is implemented by *Host.

// Sender routes and delivers the stanzas a module originates.
type Sender interface {
	// Send routes el as the router routes any stanza.
	Send(ctx context.Context, el *stanza.Element)
	// Deliver hands el to a local user's sessions, past the routing rules.
	Deliver(ctx context.Context, el *stanza.Element) bool
	// DeliverBacklog hands el to one session, waiting for room in its queue.
	DeliverBacklog(ctx context.Context, el *stanza.Element) bool
	// SendIQAsync sends a request and calls done with its answer.
	SendIQAsync(ctx context.Context, iq *stanza.Element, done func(*stanza.Element, error))
}

// Directory answers which domains and accounts are here, who is online and
// which pushes their resources asked for.
type Directory interface {
	IsLocal(domain string) bool
	UserExists(ctx context.Context, domain, local string) (bool, error)
	Sessions() *session.Registry
	SetInterested(full stanza.JID, interest Interest)
	Interested(user stanza.JID, interest Interest) []string
	Announced(user stanza.JID) []string
}

// Providers gives what other modules provide: the roster reader, the
// presence sender, the capabilities reader (never nil).
type Providers interface {
	Roster() RosterReader
	Presence() PresenceSender
	Caps() CapsReader
}

// StageRunner runs a stage of the pipeline, for a module that originates
// stanzas on a user's behalf (presence runs FromClient on what it sends).
type StageRunner interface {
	HasHooks(stage Stage) bool
	Run(ctx context.Context, stage Stage, el *stanza.Element, from, to stanza.JID) (Verdict, *stanza.Error)
}

// PresenceEvents is how the presence module reports resources coming and
// going, for the modules that hooked OnAvailable, OnUnavailable, OnPresence.
type PresenceEvents interface {
	ResourceAvailable(ctx context.Context, full stanza.JID)
	ResourceUnavailable(ctx context.Context, full stanza.JID, last bool)
	PresenceAvailable(ctx context.Context, full stanza.JID, el *stanza.Element)
}

var (
	_ Sender         = (*Host)(nil)
	_ Directory      = (*Host)(nil)
	_ Providers      = (*Host)(nil)
	_ StageRunner    = (*Host)(nil)
	_ PresenceEvents = (*Host)(nil)
)
