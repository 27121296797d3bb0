// Package carbons implements XEP-0280: Message Carbons (version 1.0.1,
// urn:xmpp:carbons:2), with XEP-0297: Stanza Forwarding (1.0) for the copies
// and the <no-copy/> hint of XEP-0334: Message Processing Hints (0.3.0).
//
// A resource enables or disables carbons for itself with an iq set of
// <enable/> or <disable/> (§4, §5), or inline at resource binding with an
// <enable/> in Bind 2's <bind/> (XEP-0386); the state lasts for the session
// (a resumed one keeps it, and so does one that stream management saves
// across a restart: it is a session interest bit) and ends with it. Enabling twice, or disabling while disabled, is
// answered with a result (§8.1).
//
// Which messages are copied (§6 gives rules a server MAY use; these are
// those, extended as the clients of XEP-0479 expect, as other servers do):
//   - type chat, or type normal (or none) with a <body/>;
//   - type normal (or none) without a body but with a payload of the
//     conversation: chat states (XEP-0085), receipts (XEP-0184), markers
//     (XEP-0333), an encrypted payload (OMEMO, OpenPGP for XMPP), a
//     correction, retraction or reaction, a Jingle message;
//   - never errors, groupchat or headline messages, nor messages of a MUC
//     (with a muc#user <x/>, private messages from occupants included), nor
//     a message that is itself a carbon, nor one with <private/> (§7) or a
//     <no-copy/> hint.
//
// Received (§6). A message for a local account, after the archive stamped
// its stanza-id (this module's ForAccount hook runs after mam's: the order
// of cmd/xmppd/modules.go), is delivered by the router by RFC 6121 §8.5; a
// <received/> copy goes to each carbons-enabled resource that does not get
// the original: to a full JID whose session exists, every other resource;
// to a bare JID (or a full JID whose resource is gone, which RFC 6121
// §8.5.3.2.1 turns into the bare JID), the resources outside the set of
// available ones of the highest non-negative priority. When no resource
// gets the original (it goes to offline storage), no copy is sent: the
// offline messages reach every resource at its initial presence, and a
// copy now would show the message twice. A <private/> element is removed
// before the message is delivered (§7).
//
// Sent (§7). A message a local client sends gets a <sent/> copy to each of
// the user's other carbons-enabled resources, the sender excluded, whether
// or not the sender enabled carbons; it carries the stanza-id of the
// sender's archive (mam stamps it at FromClient, before this hook). A
// message to the sender's own bare JID or to one of its other resources is
// not copied as sent: it is received by the account, and the received rule
// applies, the sending resource excluded.
package carbons

import (
	"context"
	"slices"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// XEP is the number of the extension this package implements.
const XEP = "0280"

// Namespaces.
const (
	NS        = "urn:xmpp:carbons:2"
	NSForward = "urn:xmpp:forward:0" // XEP-0297
	NSHints   = "urn:xmpp:hints"     // XEP-0334
	NSMUCUser = "http://jabber.org/protocol/muc#user"
)

// payloads are the namespaces of conversation payloads that make a message
// without a body eligible (type normal): what modern clients send alone.
var payloads = []string{
	"http://jabber.org/protocol/chatstates", // XEP-0085
	"urn:xmpp:receipts",                     // XEP-0184
	"urn:xmpp:chat-markers:0",               // XEP-0333
	"eu.siacs.conversations.axolotl",        // OMEMO (legacy namespace)
	"urn:xmpp:omemo:2",                      // XEP-0384
	"urn:xmpp:openpgp:0",                    // XEP-0373
	"urn:xmpp:message-correct:0",            // XEP-0308
	"urn:xmpp:message-retract:1",            // XEP-0424
	"urn:xmpp:message-retract:0",
	"urn:xmpp:reactions:0",      // XEP-0444
	"urn:xmpp:jingle-message:0", // XEP-0353
	"urn:xmpp:jingle-message:1",
}

// Module is the carbons module.
type Module struct{ c *carbons }

var _ xeps.Module = (*Module)(nil)

// New returns the module.
func New() *Module { return &Module{} }

// Name implements xeps.Module.
func (*Module) Name() string { return "carbons" }

// Enable turns carbons on for session s, as an <enable/> from it would:
// for carbons enabled inline at resource binding (XEP-0386 Bind 2).
func (m *Module) Enable(s xeps.Session) {
	if m.c != nil {
		m.c.set(s, true)
	}
}

// Enabled reports whether session s has carbons on.
func (m *Module) Enabled(s xeps.Session) bool { return m.c != nil && m.c.isEnabled(s) }

// Register implements xeps.Module.
func (m *Module) Register(h *xeps.Host) error {
	c := &carbons{host: h, on: h.NewInterest()}
	m.c = c
	h.AdvertiseFeature(NS)
	h.HandleIQ("set", NS, "enable", xeps.ToAccount, c.enable)
	h.HandleIQ("set", NS, "disable", xeps.ToAccount, c.disable)
	h.Hook(xeps.FromClient, c.sent)
	h.Hook(xeps.ForAccount, c.received)
	// Bind 2 (XEP-0386 §5): <enable xmlns='urn:xmpp:carbons:2'/> in the
	// client's <bind/> enables carbons for the new session before it can
	// miss a message.
	h.HandleBind2(NS, func(_ context.Context, s xeps.Session, req *stanza.Element) *stanza.Element {
		if req.Local == "enable" {
			c.set(s, true)
		}
		return nil
	})
	return nil
}

// carbons is the module's state once registered.
type carbons struct {
	host interface {
		xeps.Sender
		xeps.Directory
	}
	// on is the session interest bit that says carbons are enabled: kept
	// on the session itself, so a session resumed (XEP-0198), and one that
	// stream management saves at shutdown and restores at the next start
	// (its interests are saved), keeps carbons on.
	on xeps.Interest
}

func (c *carbons) set(s xeps.Session, on bool) {
	if on {
		s.SetInterested(c.on)
	} else {
		s.ClearInterested(c.on)
	}
}

// isEnabled reports whether session s enabled carbons.
func (c *carbons) isEnabled(s xeps.Session) bool {
	return s.Interested(c.on)
}

// origin returns the session that sent iq, when it asks for itself: no
// 'to', or its own bare JID. Another entity gets forbidden.
func origin(ctx context.Context, iq *stanza.IQ) (xeps.Session, error) {
	s := xeps.SessionFromContext(ctx)
	if s == nil || !iq.From.Bare().Equal(s.Address().Bare()) {
		return nil, stanza.Errorf("forbidden", "carbons are enabled by a resource for itself")
	}
	if iq.Get("to") != "" && !iq.To.Equal(s.Address().Bare()) {
		return nil, stanza.Errorf("forbidden", "carbons are enabled by a resource for itself")
	}
	return s, nil
}

func (c *carbons) enable(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
	s, err := origin(ctx, iq)
	if err != nil {
		return nil, err
	}
	c.set(s, true)
	return nil, nil
}

func (c *carbons) disable(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
	s, err := origin(ctx, iq)
	if err != nil {
		return nil, err
	}
	c.set(s, false)
	return nil, nil
}

// Eligible reports whether a message is copied at all (the package comment
// lists the rules). <private/> is checked by the caller: it is removed on
// the received side.
func Eligible(el *stanza.Element) bool {
	if el.Local != "message" {
		return false
	}
	body := false
	payload := false
	for _, n := range el.Nodes {
		e := n.Elem
		if e == nil {
			continue
		}
		switch e.Space {
		case NS:
			if e.Local == "received" || e.Local == "sent" || e.Local == "private" {
				return false // a carbon itself, or private
			}
		case NSHints:
			if e.Local == "no-copy" {
				return false
			}
		case NSMUCUser:
			return false // from or to a MUC, its private messages too
		case el.Space:
			if e.Local == "body" {
				body = true
			}
		default:
			if !payload && slices.Contains(payloads, e.Space) {
				payload = true
			}
		}
	}
	switch el.Get("type") {
	case "chat":
		return true
	case "", "normal":
		return body || payload
	}
	return false // groupchat, error, headline, or not a type RFC 6121 defines
}

// forwarded wraps a copy of el as XEP-0297 forwards it, in a message from
// the user's bare JID to the resource: <message><kind><forwarded>el. The
// copy has its own list of children: el itself is delivered too and a later
// hook may change it (mam takes the sender's stanza-id off before a local
// recipient gets it), which must not reach the copy still in a queue.
func forwarded(kind string, el *stanza.Element, bare, to string) *stanza.Element {
	inner := el.ShallowCopy()
	inner.Space = stanza.NSClient // a message from s2s arrives as jabber:server
	inner.Nodes = slices.Clone(el.Nodes)
	w := stanza.New(stanza.NSClient, "message").Set("from", bare).Set("to", to)
	if t := el.Get("type"); t != "" {
		w.Set("type", t)
	}
	return w.Append(stanza.New(NS, kind).Append(stanza.New(NSForward, "forwarded").Append(inner)))
}

// sent is the FromClient hook: <sent/> copies for the sender's other
// resources.
func (c *carbons) sent(ctx context.Context, el *stanza.Element, from, to stanza.JID) (xeps.Verdict, *stanza.Error) {
	if el.Local != "message" || from.Resourcepart() == "" || !Eligible(el) {
		return xeps.Pass, nil
	}
	bare := from.Bare()
	if to.Bare().Equal(bare) {
		return xeps.Pass, nil // to the account itself: the received rule copies it
	}
	if !c.host.IsLocal(bare.Domainpart()) {
		return xeps.Pass, nil
	}
	bareS := bare.String()
	var buf [8]xeps.Session
	for _, s := range c.host.Sessions().Sessions(bareS, buf[:0]) {
		if s.Address().Equal(from) || !c.isEnabled(s) {
			continue
		}
		c.host.Deliver(ctx, forwarded("sent", el, bareS, s.Full()))
	}
	return xeps.Pass, nil
}

// received is the ForAccount hook: <private/> removed, and <received/>
// copies for the resources that do not get the original.
func (c *carbons) received(ctx context.Context, el *stanza.Element, from, to stanza.JID) (xeps.Verdict, *stanza.Error) {
	if el.Local != "message" {
		return xeps.Pass, nil
	}
	if el.Child(NS, "private") != nil {
		removePrivate(el)
		return xeps.Pass, nil
	}
	if !Eligible(el) {
		return xeps.Pass, nil
	}
	bare := to.Bare()
	bareS := bare.String()
	var buf [8]xeps.Session
	sessions := c.host.Sessions().Sessions(bareS, buf[:0])
	if len(sessions) < 2 {
		return xeps.Pass, nil // nobody besides the recipient to copy to
	}
	// Who gets the original (RFC 6121 §8.5, as router.toFull and
	// messageToBare decide).
	var direct xeps.Session
	if to.Resourcepart() != "" {
		for _, s := range sessions {
			if s.Address().Equal(to) && s.State() != xeps.SessionClosed {
				direct = s
				break
			}
		}
	}
	best := -1
	if direct == nil {
		for _, s := range sessions {
			if ok, prio := s.Available(); ok && prio > best {
				best = prio
			}
		}
		if best < 0 {
			return xeps.Pass, nil // offline storage: see the package comment
		}
	}
	for _, s := range sessions {
		if direct != nil && s == direct {
			continue
		}
		if direct == nil {
			if ok, prio := s.Available(); ok && prio == best {
				continue // gets the original
			}
		}
		if s.Address().Equal(from) || !c.isEnabled(s) {
			continue // the sender of a message to its own account
		}
		c.host.Deliver(ctx, forwarded("received", el, bareS, s.Full()))
	}
	return xeps.Pass, nil
}

// removePrivate takes <private/> off a message before it is delivered
// (§7). The list of children is rebuilt, never filtered in place: the
// sender's carbons may share its backing array.
func removePrivate(el *stanza.Element) {
	nodes := make([]stanza.Node, 0, len(el.Nodes))
	for _, n := range el.Nodes {
		if n.Elem != nil && n.Elem.Space == NS && n.Elem.Local == "private" {
			continue
		}
		nodes = append(nodes, n)
	}
	el.Nodes = nodes
}
