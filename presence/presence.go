// Package presence implements presence of RFC 6121 §4: initial presence
// (broadcast to subscribers, probes to the contacts the user subscribes to,
// delivery to the user's other resources, redelivery of pending subscription
// requests), updates, unavailable presence (explicit or after an unclean
// disconnect), directed presence (§4.6) undone when the resource goes
// unavailable, and answers to probes (§4.3.2). Subscription stanzas are
// handed to the roster module (roster.Module.ApplyOutbound/ApplyInbound).
//
// It owns the host's outbound and inbound presence handlers and fires the
// ResourceAvailable/ResourceUnavailable and PresenceAvailable hooks. The
// roster module must be registered before it.
package presence

import (
	"context"
	"log/slog"

	"github.com/xmppd/xmppd/roster"
	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// Module is the presence module. Make it with New. What it knows of each
// resource (its last broadcast presence, where it sent directed presence)
// lives on the resource's session, in the one registry (xeps.Host.Sessions).
type Module struct {
	h interface {
		xeps.Sender
		xeps.Directory
		xeps.StageRunner
		xeps.PresenceEvents
	}
	log    *slog.Logger
	roster *roster.Module
}

var _ xeps.Module = (*Module)(nil)
var _ roster.PresenceSource = (*Module)(nil)

// New returns the presence module, which works with the roster module r
// (subscriptions are its: RFC 6121 §3); r must be registered before it.
func New(r *roster.Module) *Module { return &Module{roster: r} }

// Name implements xeps.Module.
func (*Module) Name() string { return "presence" }

// Register implements xeps.Module.
func (m *Module) Register(h *xeps.Host) error {
	h.ProvidePresence(m)
	m.h, m.log = h, h.Logger()
	m.roster.SetPresence(m)
	h.HandleOutboundPresence(m.outbound)
	h.HandleInboundPresence(m.inbound)
	h.OnSessionClosed(m.closed)
	return nil
}

// ---- state ----

// sessionOf returns the session of the local resource full: the one whose
// stanza is being handled (ctx), which may be out of the registry already
// (closing), else the registered one; nil if there is none.
func (m *Module) sessionOf(ctx context.Context, full stanza.JID) *session.Session {
	f := full.String()
	if s := session.FromContext(ctx); s != nil && s.Full() == f {
		return s
	}
	return m.h.Sessions().Session(f)
}

// isRegistered reports whether the session whose stanza this is (ctx) is
// the one registered under full: not a session that a new connection with
// the same resource replaced, which must not echo to its successor.
func (m *Module) isRegistered(ctx context.Context, full stanza.JID) bool {
	s := m.h.Sessions().Session(full.String())
	origin := session.FromContext(ctx)
	return s != nil && (origin == nil || origin == s)
}

// Available is one available resource with its last presence.
type Available struct {
	JID      stanza.JID
	Presence *stanza.Element
}

// Resources returns the available resources of a user, sorted by full JID,
// with their last presence (shared: copy before changing it).
func (m *Module) Resources(bare stanza.JID) []Available {
	var out []Available
	for _, s := range m.h.Sessions().Broadcasting(bare.Bare().String()) {
		if p := s.Broadcast(); p != nil {
			out = append(out, Available{JID: s.Address(), Presence: p})
		}
	}
	return out
}

// ---- sending ----

// send routes a presence stanza a local user originates, after the
// FromClient stage (blocking), which the router does not run for presence.
func (m *Module) send(ctx context.Context, el *stanza.Element, from, to stanza.JID) {
	if m.h.HasHooks(xeps.FromClient) {
		if v, _ := m.h.Run(ctx, xeps.FromClient, el, from, to); v != xeps.Pass {
			return
		}
	}
	m.h.Send(ctx, el)
}

func addressed(el *stanza.Element, from, to string) *stanza.Element {
	c := el.ShallowCopy()
	c.Set("from", from).Set("to", to)
	return c
}

// SendCurrent implements roster.PresenceSource.
func (m *Module) SendCurrent(ctx context.Context, user, contact stanza.JID) {
	for _, r := range m.Resources(user) {
		m.send(ctx, addressed(r.Presence, r.JID.String(), contact.String()), r.JID, contact)
	}
}

// SendUnavailable implements roster.PresenceSource.
func (m *Module) SendUnavailable(ctx context.Context, user, contact stanza.JID) {
	for _, r := range m.Resources(user) {
		un := stanza.New(stanza.NSClient, "presence").Set("type", "unavailable").
			Set("from", r.JID.String()).Set("to", contact.String())
		m.send(ctx, un, r.JID, contact)
	}
}

// toOwnResources delivers el, a broadcast presence of full, to the user's
// available resources — full itself included: RFC 6121 §4.2.2 and §4.4.2
// (the sender learns that its presence was accepted, and clients such as
// Gajim show their own status only from that echo).
func (m *Module) toOwnResources(ctx context.Context, el *stanza.Element, full stanza.JID) {
	self := false
	for _, r := range m.Resources(full.Bare()) {
		self = self || r.JID.Equal(full)
		m.h.Deliver(ctx, addressed(el, full.String(), r.JID.String()))
	}
	if !self && el.Get("type") == "unavailable" && m.isRegistered(ctx, full) {
		// The resource is no longer among the available ones, but if it is
		// still connected it hears that its unavailable presence took.
		m.h.Deliver(ctx, addressed(el, full.String(), full.String()))
	}
}

// ---- outbound ----

func isSubscription(typ string) bool {
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		return true
	}
	return false
}

// outbound handles every presence a local client sends (from is its full JID).
func (m *Module) outbound(ctx context.Context, el *stanza.Element, from, to stanza.JID) {
	typ := el.Get("type")
	hasTo := el.Get("to") != ""
	switch {
	case isSubscription(typ):
		// §3: subscription stanzas are about bare JIDs; to oneself they mean nothing.
		if !hasTo || to.Localpart() == "" || to.Bare().Equal(from.Bare()) {
			return
		}
		if err := m.roster.ApplyOutbound(ctx, el, from.Bare(), to.Bare()); err != nil {
			m.log.Error("outbound subscription", "err", err)
		}
	case typ == "probe":
		// Clients should not probe (§4.3); when they do, the server probes for them.
		if hasTo {
			m.send(ctx, addressed(el, from.Bare().String(), to.Bare().String()), from.Bare(), to.Bare())
		}
	case typ == "error":
		if hasTo {
			m.send(ctx, el, from, to)
		}
	case typ != "" && typ != "unavailable":
		// Not a presence type (RFC 6120 §8.3.3.5 asks for bad-request; presence errors are rarely read).
	case hasTo:
		m.directedPresence(ctx, el, from, to, typ == "")
	case typ == "":
		m.available(ctx, el, from)
	default:
		m.unavailable(ctx, el, from)
	}
}

// directedPresence sends presence to one entity (RFC 6121 §4.6) and
// remembers it, so that the entity learns when the resource goes away.
func (m *Module) directedPresence(ctx context.Context, el *stanza.Element, from, to stanza.JID, available bool) {
	if s := m.sessionOf(ctx, from); s != nil && !to.Bare().Equal(from.Bare()) {
		s.Directed(to.String(), available)
	}
	m.send(ctx, el, from, to)
}

// available handles broadcast available presence: initial (§4.2) or an update (§4.4).
func (m *Module) available(ctx context.Context, el *stanza.Element, full stanza.JID) {
	bare := full.Bare()
	s := m.sessionOf(ctx, full)
	if s == nil {
		return // the session is gone already
	}
	initial, reachable := s.SetBroadcast(el)
	items, err := m.roster.Items(ctx, bare)
	if err != nil {
		m.log.Error("presence broadcast: roster", "err", err)
	}
	for _, it := range items {
		if it.Sub&roster.From != 0 {
			m.send(ctx, addressed(el, full.String(), it.JID.String()), full, it.JID)
		}
	}
	if initial {
		for _, it := range items {
			if it.Sub&roster.To != 0 {
				probe := stanza.New(stanza.NSClient, "presence").Set("type", "probe").
					Set("from", bare.String()).Set("to", it.JID.String())
				m.send(ctx, probe, bare, it.JID)
			}
		}
	}
	m.toOwnResources(ctx, el, full)
	if !initial {
		m.h.PresenceAvailable(ctx, full, el)
		if reachable {
			m.h.ResourceAvailable(ctx, full) // priority went from negative to non-negative
		}
		return
	}
	// A user is implicitly subscribed to its own presence (§4.2.2): the new
	// resource learns about the others.
	for _, r := range m.Resources(bare) {
		if !r.JID.Equal(full) {
			m.h.Deliver(ctx, addressed(r.Presence, r.JID.String(), full.String()))
		}
	}
	// §3.1.3: requests the user has not answered are delivered again.
	pending, err := m.roster.PendingIn(ctx, bare)
	if err != nil {
		m.log.Error("pending subscription requests", "err", err)
	}
	for _, req := range pending {
		m.h.Deliver(ctx, req.Set("to", full.String()))
	}
	m.h.PresenceAvailable(ctx, full, el)
	if reachable {
		m.h.ResourceAvailable(ctx, full)
	}
}

// unavailable handles broadcast unavailable presence (§4.5), sent by the
// client or by the server for a session that ended.
func (m *Module) unavailable(ctx context.Context, el *stanza.Element, full stanza.JID) {
	bare := full.Bare()
	var was bool
	var directed []string
	if s := m.sessionOf(ctx, full); s != nil {
		was, directed = s.ClearBroadcast()
	}
	last := len(m.h.Sessions().Broadcasting(bare.String())) == 0
	told := map[string]bool{}
	if was {
		items, err := m.roster.Items(ctx, bare)
		if err != nil {
			m.log.Error("presence broadcast: roster", "err", err)
		}
		for _, it := range items {
			if it.Sub&roster.From != 0 {
				told[it.JID.String()] = true
				m.send(ctx, addressed(el, full.String(), it.JID.String()), full, it.JID)
			}
		}
	}
	// §4.6.3: everyone who got directed presence learns the resource is gone.
	for _, d := range directed {
		if told[d] {
			continue
		}
		if j, err := stanza.ParseJID(d); err == nil {
			m.send(ctx, addressed(el, full.String(), d), full, j)
		}
	}
	if was {
		m.toOwnResources(ctx, el, full)
		m.h.ResourceUnavailable(ctx, full, last)
	}
}

// closed cleans up after a session: if it never went unavailable (it was
// not available but sent directed presence), the recipients are told now.
func (m *Module) closed(ctx context.Context, s xeps.Session) {
	full := s.Address()
	un := stanza.New(stanza.NSClient, "presence").Set("type", "unavailable").Set("from", full.String())
	m.unavailable(session.NewContext(ctx, s), un, full)
}

// ---- inbound ----

// inbound handles subscription stanzas and probes addressed to local users.
func (m *Module) inbound(ctx context.Context, el *stanza.Element, from, to stanza.JID) {
	typ := el.Get("type")
	if typ == "probe" {
		m.probe(ctx, el, from, to)
		return
	}
	if !isSubscription(typ) || from.Bare().Equal(to.Bare()) {
		return
	}
	if err := m.roster.ApplyInbound(ctx, el, from.Bare(), to.Bare()); err != nil {
		m.log.Error("inbound subscription", "err", err)
	}
}

// probe answers a presence probe (RFC 6121 §4.3.2) for the local user 'to'.
func (m *Module) probe(ctx context.Context, el *stanza.Element, from, to stanza.JID) {
	user := to.Bare()
	if from.Bare().Equal(user) {
		return
	}
	sub, err := m.roster.Subscription(ctx, user, from.Bare())
	if err != nil {
		m.log.Error("probe: roster", "err", err)
		return
	}
	if sub != "from" && sub != "both" {
		// Not authorised to see the user's presence: say so (§4.3.2), which
		// also repairs a prober whose server thinks it is subscribed.
		m.h.Send(ctx, stanza.New(stanza.NSClient, "presence").Set("type", "unsubscribed").
			Set("from", user.String()).Set("to", from.Bare().String()))
		return
	}
	res := m.Resources(user)
	if len(res) == 0 {
		m.send(ctx, stanza.New(stanza.NSClient, "presence").Set("type", "unavailable").
			Set("from", user.String()).Set("to", from.String()), user, from)
		return
	}
	for _, r := range res {
		m.send(ctx, addressed(r.Presence, r.JID.String(), from.String()), r.JID, from)
	}
}
