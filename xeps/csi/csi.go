// Package csi implements XEP-0352: Client State Indication (version 1.0.0,
// urn:xmpp:csi:0): a client tells the server, with the nonzas <inactive/>
// and <active/>, whether its user is looking at it, and while it is
// inactive the server holds back what is not urgent, so that a phone in a
// pocket is not woken for every presence change or typing notification.
//
// The stream feature <csi xmlns='urn:xmpp:csi:0'/> is advertised after
// authentication, and the feature is also offered inline in Bind 2
// (XEP-0386): an <inactive/> in the client's <bind/> starts the session
// inactive.
//
// While a session is inactive, each stanza on its way to it (the ForSession
// stage) is either urgent — it goes out at once, after everything held, in
// order — or held:
//   - urgent: an iq; a message with a body (in a group chat only when it
//     mentions the user's nick in that room, or references the user's JID);
//     an encrypted payload (OMEMO, OpenPGP); a call (Jingle message); an
//     error; a received carbon of one of those; a presence subscription
//     request or answer;
//   - held: presence (available and unavailable), coalesced per sender: a
//     newer presence from the same full JID replaces the held one, so an
//     unavailable after an available leaves only the unavailable; a
//     chat-state-only message (XEP-0085, no body), superseded per sender
//     (the newer state replaces the held one); every other message
//     (receipts, markers, PEP events, group chat without a mention, sent
//     carbons).
//
// Held stanzas go out in the order they arrived (a replaced one takes the
// place of the newest) when something urgent comes, when the client sends
// <active/>, or when MaxHeld are held (the bound keeps memory per session
// small; the client is then told everything, as if it were active).
//
// The state is kept in this module, per session (keyed by the session, so a
// resumed session keeps it), and released when the session ends; held
// presence and chat states are dropped with it (they are stale). Held
// messages (receipts, markers, group chat) go back into the session's queue
// when it ends, which c2s hands to the router's undeliverable path (the
// user's other resources, offline storage).
package csi

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// XEP is the number of the extension this package implements.
const XEP = "0352"

// Namespaces.
const (
	NS           = "urn:xmpp:csi:0"
	NSChatStates = "http://jabber.org/protocol/chatstates"
	NSMUCUser    = "http://jabber.org/protocol/muc#user"
	NSCarbons    = "urn:xmpp:carbons:2"
	NSForward    = "urn:xmpp:forward:0"
	NSReference  = "urn:xmpp:reference:0" // XEP-0372
)

// urgentPayloads make a message urgent without a body.
var urgentPayloads = []string{
	"eu.siacs.conversations.axolotl", // OMEMO (legacy)
	"urn:xmpp:omemo:2",               // XEP-0384
	"urn:xmpp:openpgp:0",             // XEP-0373
	"urn:xmpp:jingle-message:0",      // XEP-0353: a call
	"urn:xmpp:jingle-message:1",
}

// DefaultMaxHeld is the default bound of held stanzas per session.
const DefaultMaxHeld = 100

// Config is the module's section of the server's config file ([csi]).
type Config struct {
	// MaxHeld is the most stanzas held for one inactive session; reaching
	// it flushes them all.
	MaxHeld int `toml:"max_held"`
}

// DefaultConfig is the module's configuration when the file says nothing.
func DefaultConfig() Config { return Config{MaxHeld: DefaultMaxHeld} }

// Validate checks the section; messages name the key as written in it.
func (c Config) Validate() error {
	if c.MaxHeld < 1 || c.MaxHeld > 10000 {
		return fmt.Errorf("max_held: %d is outside 1..10000", c.MaxHeld)
	}
	return nil
}

// Module is the CSI module.
type Module struct {
	cfg Config
	c   *csi
}

var _ xeps.Module = (*Module)(nil)

// New returns the module configured by c (validated by the caller).
func New(c Config) *Module { return &Module{cfg: c} }

// Name implements xeps.Module.
func (*Module) Name() string { return "csi" }

// Register implements xeps.Module.
func (m *Module) Register(h *xeps.Host) error {
	c := &csi{max: m.cfg.MaxHeld, log: h.Logger()}
	if c.max <= 0 {
		c.max = DefaultMaxHeld
	}
	m.c = c
	h.StreamFeature(stanza.New(NS, "csi"))
	h.HandleNonza(NS, c.nonza)
	h.HandleBind2(NS, c.bind2)
	h.HookSession(c.filter)
	h.OnSessionClosed(c.closed)
	return nil
}

// Inactive reports whether session s is inactive (for tests).
func (m *Module) Inactive(s xeps.Session) bool {
	st := m.c.get(s)
	if st == nil {
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.inactive
}

type csi struct {
	max int
	log *slog.Logger
	// states holds a state for each session that went inactive once or
	// joined a room (its nick is tracked for mentions).
	states sync.Map // xeps.Session → *state
	// inactive counts the inactive sessions: with none, the filter is a
	// load and a compare.
	inactive atomic.Int64
}

// state is one session's. mu is held while deciding about a stanza and
// while flushing, so that what is flushed keeps its order against what
// arrives meanwhile.
type state struct {
	mu       sync.Mutex
	inactive bool
	held     []held
	nicks    map[string]string // room bare JID → the user's nick in it
}

// held is one stanza held back, with its coalescing key.
type held struct {
	el   *stanza.Element
	kind kind
	from string
}

type kind int

const (
	urgent    kind = iota
	presence       // coalesced per sender
	chatState      // superseded per sender
	other          // kept
)

func (c *csi) get(s xeps.Session) *state {
	if v, ok := c.states.Load(s); ok {
		return v.(*state)
	}
	return nil
}

func (c *csi) getOrMake(s xeps.Session) *state {
	v, _ := c.states.LoadOrStore(s, &state{})
	return v.(*state)
}

// nonza handles <active/> and <inactive/> from a bound client (§5). Any
// other element in the namespace is ignored, as the XEP defines none.
func (c *csi) nonza(_ context.Context, s xeps.Session, el *stanza.Element) {
	switch el.Local {
	case "inactive":
		c.setInactive(s, true)
	case "active":
		c.setInactive(s, false)
	}
}

// bind2 starts the session inactive when the client's <bind/> says
// <inactive/> (XEP-0386 §5; <active/> is the default).
func (c *csi) bind2(_ context.Context, s xeps.Session, req *stanza.Element) *stanza.Element {
	if req.Local == "inactive" {
		c.setInactive(s, true)
	}
	return nil
}

func (c *csi) setInactive(s xeps.Session, on bool) {
	st := c.getOrMake(s)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.inactive == on {
		return
	}
	st.inactive = on
	if on {
		c.inactive.Add(1)
		return
	}
	c.inactive.Add(-1)
	c.flush(s, st)
}

// flush delivers what st holds, in order (st.mu held).
func (c *csi) flush(s xeps.Session, st *state) {
	for i, h := range st.held {
		// A session that stops taking stanzas is closing: what is left
		// is dropped with its state (see the package comment).
		s.Deliver(h.el)
		st.held[i] = held{}
	}
	st.held = st.held[:0]
}

func (c *csi) closed(_ context.Context, s xeps.Session) {
	v, ok := c.states.LoadAndDelete(s)
	if !ok {
		return
	}
	st := v.(*state)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.inactive {
		st.inactive = false
		c.inactive.Add(-1)
	}
	// Held messages are put back in the session's queue: c2s hands what
	// its queue still holds after OnSessionClosed to the router's
	// undeliverable path (other resources, offline storage), so nothing
	// accepted is lost. Held presence and chat states are stale: dropped.
	lost := 0
	for _, h := range st.held {
		if h.kind != other || h.el.Local != "message" {
			continue
		}
		if !s.Queue().Push(h.el) {
			lost++
		}
	}
	if lost > 0 {
		c.log.Warn("held messages dropped at the end of a session: its queue is full", "session", s.ID(), "dropped", lost)
	}
	st.held = nil
}

// filter is the ForSession hook.
func (c *csi) filter(_ context.Context, s xeps.Session, el *stanza.Element) xeps.Verdict {
	if el.Local == "presence" && el.Child(NSMUCUser, "x") != nil {
		c.trackNick(s, el)
	}
	if c.inactive.Load() == 0 {
		return xeps.Pass
	}
	st := c.get(s)
	if st == nil {
		return xeps.Pass
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.inactive {
		return xeps.Pass
	}
	k := classify(el, st.nicks, s.Address().Bare().String())
	if k == urgent {
		c.flush(s, st)
		return xeps.Pass // delivered by the router, after what was held
	}
	from := el.Get("from")
	if k == presence || k == chatState {
		st.held = slices.DeleteFunc(st.held, func(h held) bool { return h.kind == k && h.from == from })
	}
	st.held = append(st.held, held{el: el, kind: k, from: from})
	if len(st.held) >= c.max {
		c.flush(s, st)
	}
	return xeps.Consume
}

// trackNick records the user's nick in a room from the room's self-presence
// (XEP-0045 §7.2.2: status 110), and forgets it when the user leaves.
func (c *csi) trackNick(s xeps.Session, el *stanza.Element) {
	x := el.Child(NSMUCUser, "x")
	self := false
	for _, st := range x.Children() {
		if st.Is(NSMUCUser, "status") && st.Get("code") == "110" {
			self = true
		}
	}
	if !self {
		return
	}
	from, err := stanza.ParseJID(el.Get("from"))
	if err != nil || from.Resourcepart() == "" {
		return
	}
	st := c.getOrMake(s)
	st.mu.Lock()
	defer st.mu.Unlock()
	room := from.Bare().String()
	if el.Get("type") == "unavailable" {
		delete(st.nicks, room)
		return
	}
	if st.nicks == nil {
		st.nicks = map[string]string{}
	}
	st.nicks[room] = from.Resourcepart()
}

// classify decides whether a stanza is urgent or held, and how (the
// package comment lists the rules).
func classify(el *stanza.Element, nicks map[string]string, bare string) kind {
	switch el.Local {
	case "iq":
		return urgent
	case "presence":
		switch el.Get("type") {
		case "", "unavailable":
			return presence
		}
		return urgent // subscription requests and answers, errors
	case "message":
		return classifyMessage(el, nicks, bare, true)
	}
	return urgent
}

func classifyMessage(el *stanza.Element, nicks map[string]string, bare string, outer bool) kind {
	typ := el.Get("type")
	if typ == "error" {
		return urgent
	}
	var body *stanza.Element
	states, others := 0, 0
	for _, c := range el.Children() {
		switch {
		case c.Local == "body" && c.Space == el.Space:
			body = c
		case c.Space == NSChatStates:
			states++
		case c.Local == "thread" && c.Space == el.Space:
		case outer && c.Space == NSCarbons && c.Local == "received":
			if inner := c.Child(NSForward, "forwarded").Child(stanza.NSClient, "message"); inner != nil {
				if classifyMessage(inner, nicks, bare, false) == urgent {
					return urgent
				}
			}
			others++
		case slices.Contains(urgentPayloads, c.Space):
			return urgent
		default:
			others++
		}
	}
	if body != nil {
		switch typ {
		case "groupchat":
			if mentions(el, body.Text(), nicks, bare) {
				return urgent
			}
			return other
		case "headline":
			return other
		}
		return urgent
	}
	if states > 0 && others == 0 {
		return chatState
	}
	return other
}

// mentions reports a group chat message that names the user: its nick in
// the room, or a XEP-0372 mention of the user's JID.
func mentions(el *stanza.Element, body string, nicks map[string]string, bare string) bool {
	for _, r := range el.Children() {
		if r.Is(NSReference, "reference") && r.Get("type") == "mention" && strings.TrimPrefix(r.Get("uri"), "xmpp:") == bare {
			return true
		}
	}
	from, err := stanza.ParseJID(el.Get("from"))
	if err != nil {
		return false
	}
	nick := nicks[from.Bare().String()]
	if nick == "" || from.Resourcepart() == nick {
		return false // not in the room as far as we know, or the user's own message
	}
	return strings.Contains(strings.ToLower(body), strings.ToLower(nick))
}
