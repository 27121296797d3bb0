package xeps

import (
	"context"
	"strings"

	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
)

// What modules know about local users' resources lives on the sessions, in
// the one registry (session.Registry): whether a resource is announced
// (ResourceAvailable ... ResourceUnavailable) and which pushes it asked for.
// These are the Host's shortcuts to it.

// Interest names one kind of push a resource asked for (the roster's, the
// blocklist's, ...): a module takes one with NewInterest when it registers.
type Interest = session.Interest

// SplitJID returns full's string and its bare JID, a prefix of that string
// (the localpart and domainpart cannot hold a '/').
func SplitJID(full stanza.JID) (f, bare string) {
	f = full.String()
	if i := strings.IndexByte(f, '/'); i >= 0 {
		return f, f[:i]
	}
	return f, f
}

// NewInterest returns a new kind of push for SetInterested and Interested.
// Modules call it when they register.
func (h *Host) NewInterest() Interest { return h.cfg.Sessions.NewInterest() }

// SetInterested records that the resource full asked for the pushes of
// interest (RFC 6121 §2.1.6 for the roster: the resource did a roster get).
// It lasts until the session ends.
func (h *Host) SetInterested(full stanza.JID, interest Interest) {
	if s := h.cfg.Sessions.Session(full.String()); s != nil {
		s.SetInterested(interest)
	}
}

// Interested returns the full JIDs, sorted, of user's resources that asked
// for the pushes of interest.
func (h *Host) Interested(user stanza.JID, interest Interest) []string {
	return h.cfg.Sessions.Interested(user.Bare().String(), interest)
}

// Announced returns the full JIDs, sorted, of user's resources that the
// presence module announced available (ResourceAvailable: they sent initial
// presence, with a non-negative priority at some point) and not yet
// unavailable: the resources whose presence contacts see.
func (h *Host) Announced(user stanza.JID) []string {
	return h.cfg.Sessions.Announced(user.Bare().String())
}

// announce and unannounce keep Announced.
func (h *Host) announce(ctx context.Context, full stanza.JID) {
	if s := h.sessionOf(ctx, full); s != nil {
		s.SetAnnounced(true)
	}
}

func (h *Host) unannounce(ctx context.Context, full stanza.JID, last bool) {
	if s := h.sessionOf(ctx, full); s != nil {
		s.SetAnnounced(false)
	}
	if last {
		// The presence module's word is final: a resource it no longer
		// counts must not keep the user announced.
		var buf [8]*session.Session
		for _, s := range h.cfg.Sessions.Sessions(full.Bare().String(), buf[:0]) {
			s.SetAnnounced(false)
		}
	}
}

// sessionOf returns the session of full: the one whose stanza is being
// handled (ctx) if it is full's — it may be out of the registry already,
// closing — else the registered one.
func (h *Host) sessionOf(ctx context.Context, full stanza.JID) *session.Session {
	if s := session.FromContext(ctx); s != nil && s.Full() == full.String() {
		return s
	}
	return h.cfg.Sessions.Session(full.String())
}
