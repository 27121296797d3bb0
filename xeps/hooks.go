package xeps

import (
	"context"
	"fmt"

	"github.com/xmppd/xmppd/stanza"
)

// The hooks are a closed, typed set: one Go func type each, run in
// registration order. The router and the presence module fire them; modules
// register in Register.

// Direction says which way a stanza travels relative to a local user: the
// roster's subscription state machine reads it (RFC 6121 Appendix A).
type Direction int

const (
	// Outbound: sent by the local user.
	Outbound Direction = iota
	// Inbound: for the local user.
	Inbound
)

// PresenceFunc handles a presence stanza. For outbound presence, to is the
// zero JID when the client sent no 'to' (a broadcast).
type PresenceFunc func(ctx context.Context, el *stanza.Element, from, to stanza.JID)

// ResourceFunc is told about a resource of a local user: on OnAvailable when
// it sent its initial presence, on OnUnavailable when it became unavailable
// (last is true when the user has no available resource left).
type ResourceFunc func(ctx context.Context, full stanza.JID, last bool)

// AvailablePresenceFunc sees every broadcast available presence of a local
// resource (initial presence and each update), from its full JID. el is
// shared: read it, never change it.
type AvailablePresenceFunc func(ctx context.Context, full stanza.JID, el *stanza.Element)

type hooks struct {
	presence       []AvailablePresenceFunc
	outPresence    PresenceFunc
	inPresence     PresenceFunc
	available      []ResourceFunc
	unavailable    []ResourceFunc
	streamFeatures []*stanza.Element
	roster         RosterReader
	presenceSender PresenceSender
	caps           CapsReader
}

// HandleOutboundPresence makes fn the handler of all presence local clients
// send (RFC 6121 outbound processing: broadcast, directed presence,
// subscription requests). There is one: registering a second panics.
func (h *Host) HandleOutboundPresence(fn PresenceFunc) {
	if h.hooks.outPresence != nil {
		panic(fmt.Sprintf("xeps: module %s registers a second outbound presence handler", h.module))
	}
	h.hooks.outPresence = fn
}

// HandleInboundPresence makes fn the handler of presence stanzas of the
// subscription types and probes addressed to local users (RFC 6121 inbound
// processing). There is one: registering a second panics.
func (h *Host) HandleInboundPresence(fn PresenceFunc) {
	if h.hooks.inPresence != nil {
		panic(fmt.Sprintf("xeps: module %s registers a second inbound presence handler", h.module))
	}
	h.hooks.inPresence = fn
}

// OnAvailable runs fn when a resource sends its initial presence.
func (h *Host) OnAvailable(fn ResourceFunc) { h.hooks.available = append(h.hooks.available, fn) }

// OnUnavailable runs fn when a resource stops being available.
func (h *Host) OnUnavailable(fn ResourceFunc) {
	h.hooks.unavailable = append(h.hooks.unavailable, fn)
}

// OnPresence runs fn for every broadcast available presence of a local
// resource: its initial presence and every update, whatever its priority.
// fn runs on the sender's reader goroutine: it must not block.
func (h *Host) OnPresence(fn AvailablePresenceFunc) {
	h.hooks.presence = append(h.hooks.presence, fn)
}

// StreamFeature adds an element to the <stream:features/> of authenticated
// streams (roster versioning, pre-approval, entity capabilities).
func (h *Host) StreamFeature(el *stanza.Element) {
	h.hooks.streamFeatures = append(h.hooks.streamFeatures, el)
}

// StreamFeatures lists what modules added with StreamFeature, in order.
func (h *Host) StreamFeatures() []*stanza.Element { return h.hooks.streamFeatures }

// OutboundPresence returns the outbound presence handler, or nil.
func (h *Host) OutboundPresence() PresenceFunc { return h.hooks.outPresence }

// InboundPresence returns the inbound presence handler, or nil.
func (h *Host) InboundPresence() PresenceFunc { return h.hooks.inPresence }

// ResourceAvailable records full as announced (Announced) and runs the
// OnAvailable hooks (the presence module calls it).
func (h *Host) ResourceAvailable(ctx context.Context, full stanza.JID) {
	h.announce(ctx, full)
	for _, fn := range h.hooks.available {
		fn(ctx, full, false)
	}
}

// ResourceUnavailable records full as no longer announced (with last, none
// of the user's resources is) and runs the OnUnavailable hooks (the
// presence module calls it).
func (h *Host) ResourceUnavailable(ctx context.Context, full stanza.JID, last bool) {
	h.unannounce(ctx, full, last)
	for _, fn := range h.hooks.unavailable {
		fn(ctx, full, last)
	}
}

// PresenceAvailable runs the OnPresence hooks (the presence module calls it
// for each broadcast available presence).
func (h *Host) PresenceAvailable(ctx context.Context, full stanza.JID, el *stanza.Element) {
	for _, fn := range h.hooks.presence {
		fn(ctx, full, el)
	}
}

// RosterReader answers questions about users' rosters for modules that need
// them (last activity and vCard visibility, blocking). The roster module
// provides it; without one every subscription is "none".
type RosterReader interface {
	// Subscription returns the state of user's roster item for contact:
	// "none", "to", "from" or "both" (bare JIDs).
	Subscription(ctx context.Context, user, contact stanza.JID) (string, error)
}

type noRoster struct{}

func (noRoster) Subscription(context.Context, stanza.JID, stanza.JID) (string, error) {
	return "none", nil
}

// ProvideRoster makes r the answer to Roster(); the roster module calls it.
func (h *Host) ProvideRoster(r RosterReader) { h.hooks.roster = r }

// Roster returns the roster reader, never nil.
func (h *Host) Roster() RosterReader {
	if h.hooks.roster == nil {
		return noRoster{}
	}
	return h.hooks.roster
}

// PresenceSender sends a user's current presence on request, for modules
// that must restore it (XEP-0191 §3.4: unblocking a contact). The presence
// module provides it; without one nothing is sent.
type PresenceSender interface {
	// SendCurrent sends the current presence of each of user's available
	// resources to contact.
	SendCurrent(ctx context.Context, user, contact stanza.JID)
}

type noPresence struct{}

func (noPresence) SendCurrent(context.Context, stanza.JID, stanza.JID) {}

// ProvidePresence makes p the answer to Presence(); the presence module calls it.
func (h *Host) ProvidePresence(p PresenceSender) { h.hooks.presenceSender = p }

// Presence returns the presence sender, never nil.
func (h *Host) Presence() PresenceSender {
	if h.hooks.presenceSender == nil {
		return noPresence{}
	}
	return h.hooks.presenceSender
}

// CapsReader answers what a local client supports, from the entity
// capabilities (XEP-0115) in its presence, verified and cached by the caps
// module. Without one nothing is known.
type CapsReader interface {
	// Supports reports whether the available resource full advertised
	// feature in verified capabilities. Unknown (no caps, not verified yet,
	// not available) is false.
	Supports(full stanza.JID, feature string) bool
	// Features returns full's verified disco#info features, sorted, or nil
	// when they are unknown. The caller must not change the slice.
	Features(full stanza.JID) []string
}

type noCaps struct{}

func (noCaps) Supports(stanza.JID, string) bool { return false }
func (noCaps) Features(stanza.JID) []string     { return nil }

// ProvideCaps makes c the answer to Caps(); the caps module calls it.
func (h *Host) ProvideCaps(c CapsReader) { h.hooks.caps = c }

// Caps returns the capabilities reader, never nil.
func (h *Host) Caps() CapsReader {
	if h.hooks.caps == nil {
		return noCaps{}
	}
	return h.hooks.caps
}
