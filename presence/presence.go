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
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/xmppd/xmppd/roster"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// Module is the presence module. Make it with New.
type Module struct {
	h      *xeps.Host
	roster *roster.Module
	shards [64]shard
	seed   maphash.Seed
}

// shard holds the presence state of the users whose bare JID hashes to it.
type shard struct {
	mu sync.Mutex
	// users maps a bare JID to its connected resources' state. A user has
	// one to three resources: a slice searched in order costs far less than
	// a map per user (a map with one entry takes a few hundred bytes). The
	// key is the bare prefix of one of the slice's full JID strings, so the
	// JID is stored once (see xeps.SplitJID).
	users map[string][]resource
}

// resource is one session's presence state.
type resource struct {
	full      string          // full JID
	last      *stanza.Element // last broadcast available presence; nil while unavailable
	directed  map[string]struct{}
	available bool
}

// index returns the position of full in rs, or -1.
func index(rs []resource, full string) int {
	for i := range rs {
		if rs[i].full == full {
			return i
		}
	}
	return -1
}

// lookup returns the index of full's state in s.users[bare], adding an
// unavailable one when add is set; -1 when absent and not added.
func (s *shard) lookup(full, bare string, add bool) int {
	rs := s.users[bare]
	if i := index(rs, full); i >= 0 || !add {
		return i
	}
	s.users[bare] = append(rs, resource{full: full})
	return len(rs)
}

// remove deletes rs[i], the state of one of bare's resources, and the user's
// entry with its last resource.
func (s *shard) remove(bare string, rs []resource, i int) {
	rs = slices.Delete(rs, i, i+1)
	// Deleted and added again, so that the key is a prefix of a string kept
	// in rs, not of the one just removed.
	delete(s.users, bare)
	if len(rs) > 0 {
		s.users[rs[0].full[:len(bare)]] = rs
	}
}

var _ xeps.Module = (*Module)(nil)
var _ roster.PresenceSource = (*Module)(nil)

// New returns the presence module.
func New() *Module {
	m := &Module{seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].users = map[string][]resource{}
	}
	return m
}

// Name implements xeps.Module.
func (*Module) Name() string { return "presence" }

// Register implements xeps.Module.
func (m *Module) Register(h *xeps.Host) error {
	h.ProvidePresence(m)
	r, ok := h.Roster().(*roster.Module)
	if !ok {
		return fmt.Errorf("the roster module must be registered before presence")
	}
	m.h, m.roster = h, r
	r.SetPresence(m)
	h.HandleOutboundPresence(m.outbound)
	h.HandleInboundPresence(m.inbound)
	h.OnSessionClosed(m.closed)
	return nil
}

func (m *Module) shard(bare string) *shard {
	return &m.shards[maphash.String(m.seed, bare)%uint64(len(m.shards))]
}

// ---- state ----

// setAvailable records full's available presence; it reports whether this is
// the resource's initial presence, and whether the resource just became
// reachable for messages to the bare JID (non-negative priority now, and not
// before: XEP-0160 delivers offline messages only then).
func (m *Module) setAvailable(full stanza.JID, el *stanza.Element) (initial, reachable bool) {
	f, bare := xeps.SplitJID(full)
	s := m.shard(bare)
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.lookup(f, bare, true) // may append: index s.users[bare] after it
	r := &s.users[bare][i]
	initial = !r.available
	wasReachable := r.available && priority(r.last) >= 0
	r.available, r.last = true, el
	return initial, priority(el) >= 0 && !wasReachable
}

// priority reads <priority/> (RFC 6121 §4.7.2.3); absent or invalid is 0.
func priority(el *stanza.Element) int {
	if el == nil {
		return 0
	}
	p := el.Child(el.Space, "priority")
	if p == nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(p.Text()))
	if err != nil || n < -128 || n > 127 {
		return 0
	}
	return n
}

// setUnavailable forgets full's presence and returns whether it was
// available, the entities that got directed presence from it, and whether
// the user has no available resource left.
func (m *Module) setUnavailable(full stanza.JID) (was bool, directed []string, last bool) {
	f, bare := xeps.SplitJID(full)
	s := m.shard(bare)
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.users[bare]
	if i := index(rs, f); i >= 0 {
		was = rs[i].available
		for d := range rs[i].directed {
			directed = append(directed, d)
		}
		slices.Sort(directed)
		s.remove(bare, rs, i)
		rs = s.users[bare]
	}
	last = true
	for _, r := range rs {
		if r.available {
			last = false
		}
	}
	return was, directed, last
}

// directed records (or, for unavailable, forgets) directed presence from full to to.
func (m *Module) directed(full stanza.JID, to string, available bool) {
	f, bare := xeps.SplitJID(full)
	s := m.shard(bare)
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.lookup(f, bare, available)
	if i < 0 {
		return
	}
	r := &s.users[bare][i]
	if available {
		// Made on first use: most resources never send directed presence.
		if r.directed == nil {
			r.directed = map[string]struct{}{}
		}
		r.directed[to] = struct{}{}
		return
	}
	delete(r.directed, to)
	if len(r.directed) == 0 {
		r.directed = nil
	}
}

// Available is one available resource with its last presence.
type Available struct {
	JID      stanza.JID
	Presence *stanza.Element
}

// Resources returns the available resources of a user, sorted by full JID,
// with their last presence (shared: copy before changing it).
func (m *Module) Resources(bare stanza.JID) []Available {
	b := bare.Bare().String()
	s := m.shard(b)
	s.mu.Lock()
	var out []Available
	for _, r := range s.users[b] {
		if r.available {
			j, err := stanza.ParseJID(r.full)
			if err == nil {
				out = append(out, Available{JID: j, Presence: r.last})
			}
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Available) int { return strings.Compare(a.JID.String(), b.JID.String()) })
	return out
}

// ---- sending ----

// send routes a presence stanza a local user originates, after the outbound
// filters (blocking), which the router does not run for presence.
func (m *Module) send(ctx context.Context, el *stanza.Element, from, to stanza.JID) {
	if m.h.HasFilters() {
		if drop, _ := m.h.Filter(ctx, el, from, to, xeps.Outbound); drop {
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

// toOwnResources delivers el from full to the user's other available resources.
func (m *Module) toOwnResources(ctx context.Context, el *stanza.Element, full stanza.JID) {
	for _, r := range m.Resources(full.Bare()) {
		if !r.JID.Equal(full) {
			m.h.Deliver(ctx, addressed(el, full.String(), r.JID.String()))
		}
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
			m.h.Logger().Error("outbound subscription", "err", err)
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
	if !to.Bare().Equal(from.Bare()) {
		m.directed(from, to.String(), available)
	}
	m.send(ctx, el, from, to)
}

// available handles broadcast available presence: initial (§4.2) or an update (§4.4).
func (m *Module) available(ctx context.Context, el *stanza.Element, full stanza.JID) {
	bare := full.Bare()
	initial, reachable := m.setAvailable(full, el)
	items, err := m.roster.Items(ctx, bare)
	if err != nil {
		m.h.Logger().Error("presence broadcast: roster", "err", err)
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
		m.h.Logger().Error("pending subscription requests", "err", err)
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
	was, directed, last := m.setUnavailable(full)
	told := map[string]bool{}
	if was {
		items, err := m.roster.Items(ctx, bare)
		if err != nil {
			m.h.Logger().Error("presence broadcast: roster", "err", err)
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
	m.unavailable(ctx, un, full)
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
		m.h.Logger().Error("inbound subscription", "err", err)
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
		m.h.Logger().Error("probe: roster", "err", err)
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
