// Package roster implements the roster and presence subscriptions of RFC 6121
// (§2 and §3, Appendix A) and XEP-0237 Roster Versioning (version 1.3):
// jabber:iq:roster get/set/remove with roster pushes to every interested
// resource, pre-approval (§3.4), and the subscription state machine
// (Transition) applied to every subscription stanza a user sends or receives.
//
// The presence module calls ApplyOutbound and ApplyInbound for the
// subscription types and reads Items and PendingIn; in return it gives the
// roster a PresenceSource (SetPresence) so that approving, cancelling or
// removing a contact can send that contact the user's presence or unavailable.
//
// Storage: KeyValue store "roster". Items live under
// storage.UserKeyPrefix(domain, local) + contact bare JID (JSON); the roster
// version under the same prefix + "\x00ver" (big-endian uint64). An item and
// the version change in one transaction. Entries with Listed false are not in
// the user's roster: they only hold a pending inbound request (None + Pending
// In from a contact the user never added, §3.1.3).
package roster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xeps"
)

// XEP is the number of the extension this package implements besides RFC 6121.
const XEP = "0237"

// Namespaces.
const (
	NS            = "jabber:iq:roster"
	NSVer         = "urn:xmpp:features:rosterver"
	NSPreApproval = "urn:xmpp:features:pre-approval"
)

// Limits on what a client may store (RFC 6121 §2.3.3: not-acceptable beyond them).
const (
	MaxNameBytes  = 1023
	MaxGroupBytes = 1023
)

// Item is one entry of a user's roster.
type Item struct {
	JID    stanza.JID // the contact's bare JID
	Name   string
	Groups []string
	State
	// Listed: the item is in the roster (clients see it). An unlisted entry
	// only remembers a pending inbound request.
	Listed bool
	// Request is the stored inbound subscribe stanza while PendingIn.
	Request *stanza.Element
}

// Element renders the item as a jabber:iq:roster <item/>.
func (it *Item) Element() *stanza.Element {
	el := stanza.New(NS, "item").Set("jid", it.JID.String()).Set("name", it.Name).Set("subscription", it.Sub.String())
	if it.PendingOut {
		el.Set("ask", "subscribe")
	}
	if it.PreApproved {
		el.Set("approved", "true")
	}
	for _, g := range it.Groups {
		el.Append(stanza.New(NS, "group").AppendText(g))
	}
	return el
}

// PresenceSource is what the roster needs from the presence module.
type PresenceSource interface {
	// SendCurrent sends contact the last presence of each of user's
	// available resources (after the contact got a subscription, §3.1.5).
	SendCurrent(ctx context.Context, user, contact stanza.JID)
	// SendUnavailable sends contact unavailable presence from each of user's
	// available resources (after the contact lost its subscription, §3.2.2).
	SendUnavailable(ctx context.Context, user, contact stanza.JID)
}

// Module is the roster module. Make it with New.
type Module struct {
	h interface {
		xeps.Sender
		xeps.Directory
	}
	kv       xeps.KeyValue
	presence PresenceSource

	interest xeps.Interest // the resources that did a roster get (xeps.Host.SetInterested)

	// writers serialises, per user, a roster change with its push: two
	// sessions changing the same roster at once (a user's own approval and
	// the contact's answer) must push in commit order, or a client is left
	// with an older item than the stored one. Striped, so users do not
	// wait for each other.
	writers [64]sync.Mutex

	// cache keeps the rosters read for presence (every broadcast and every
	// probe answer reads one): a roster change drops its user's entry after
	// the commit, under the writer lock (xeps.Cache's generations keep a
	// read that raced the change from caching the old roster).
	cache *xeps.Cache[[]*Item]
}

// CacheSize is how many users' rosters are kept in memory.
const CacheSize = 2048

func (m *Module) writer(user stanza.JID) *sync.Mutex {
	return &m.writers[maphash.String(writerSeed, user.String())%uint64(len(m.writers))]
}

var writerSeed = maphash.MakeSeed()

var _ xeps.Module = (*Module)(nil)
var _ xeps.RosterReader = (*Module)(nil)

// New returns the roster module.
func New() *Module { return &Module{cache: xeps.NewCache[[]*Item](CacheSize)} }

// Name implements xeps.Module.
func (*Module) Name() string { return "roster" }

// Register implements xeps.Module.
func (m *Module) Register(h *xeps.Host) error {
	m.h = h
	m.kv = h.KeyValue("roster")
	h.HandleIQ("get", NS, "query", xeps.ToAccount, m.handleGet)
	h.HandleIQ("set", NS, "query", xeps.ToAccount, m.handleSet)
	h.StreamFeature(stanza.New(NSVer, "ver"))
	h.StreamFeature(stanza.New(NSPreApproval, "sub"))
	m.interest = h.NewInterest() // the host forgets it with the session
	h.ProvideRoster(m)
	h.OnAccountDeleted(func(_ context.Context, user stanza.JID) error {
		m.cache.Delete(user.Bare().String())
		return nil
	})
	return nil
}

// SetPresence connects the presence module; it calls this in its Register.
func (m *Module) SetPresence(p PresenceSource) { m.presence = p }

// ---- storage ----

type record struct {
	Name        string   `json:"name,omitempty"`
	Groups      []string `json:"groups,omitempty"`
	Sub         string   `json:"sub"`
	PendingOut  bool     `json:"out,omitempty"`
	PendingIn   bool     `json:"in,omitempty"`
	PreApproved bool     `json:"approved,omitempty"`
	Hidden      bool     `json:"hidden,omitempty"`
	Request     string   `json:"request,omitempty"`
}

func userPrefix(user stanza.JID) []byte {
	return storage.UserKeyPrefix(user.Domainpart(), user.Localpart())
}

func itemKey(user, contact stanza.JID) []byte {
	return append(userPrefix(user), contact.Bare().String()...)
}

func verKey(user stanza.JID) []byte { return append(userPrefix(user), "\x00ver"...) }

func encodeItem(it *Item) ([]byte, error) {
	r := record{Name: it.Name, Groups: it.Groups, Sub: it.Sub.String(), PendingOut: it.PendingOut,
		PendingIn: it.PendingIn, PreApproved: it.PreApproved, Hidden: !it.Listed}
	if it.PendingIn && it.Request != nil {
		r.Request = it.Request.String()
	}
	return json.Marshal(r)
}

func decodeItem(contact string, b []byte) (*Item, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	j, err := stanza.ParseJID(contact)
	if err != nil {
		return nil, err
	}
	it := &Item{JID: j, Name: r.Name, Groups: r.Groups, Listed: !r.Hidden,
		State: State{Sub: parseSub(r.Sub), PendingOut: r.PendingOut, PendingIn: r.PendingIn, PreApproved: r.PreApproved}}
	if r.Request != "" {
		it.Request = parseElement(r.Request)
	}
	return it, nil
}

// parseElement reads back a stored stanza (nil if it does not parse).
func parseElement(s string) *stanza.Element {
	const header = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`
	d := stanza.NewDecoder(strings.NewReader(header+s), stanza.DefaultLimits)
	if _, err := d.ReadHeader(); err != nil {
		return nil
	}
	el, err := d.Next()
	if err != nil {
		return nil
	}
	return el
}

func getVer(t xeps.Txn, user stanza.JID) uint64 {
	if b := t.Get(verKey(user)); len(b) == 8 {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// bumpVer increments the user's roster version inside t and returns it.
func bumpVer(t xeps.Txn, user stanza.JID) (string, error) {
	v := getVer(t, user) + 1
	if err := t.Put(verKey(user), binary.BigEndian.AppendUint64(nil, v)); err != nil {
		return "", err
	}
	return strconv.FormatUint(v, 10), nil
}

func putItem(t xeps.Txn, user stanza.JID, it *Item) error {
	if !it.Listed && it.State == (State{}) {
		return t.Delete(itemKey(user, it.JID))
	}
	b, err := encodeItem(it)
	if err != nil {
		return err
	}
	return t.Put(itemKey(user, it.JID), b)
}

func getItem(t xeps.Txn, user, contact stanza.JID) (*Item, error) {
	b := t.Get(itemKey(user, contact))
	if b == nil {
		return nil, nil
	}
	return decodeItem(contact.Bare().String(), b)
}

// scan calls fn for each entry of user's roster, listed or not, in JID order.
func (m *Module) scan(ctx context.Context, user stanza.JID, fn func(*Item) error) (ver string, err error) {
	prefix := userPrefix(user)
	var v uint64
	err = m.kv.Scan(ctx, prefix, func(k, val []byte) error {
		rest := string(k[len(prefix):])
		if rest == "\x00ver" {
			if len(val) == 8 {
				v = binary.BigEndian.Uint64(val)
			}
			return nil
		}
		it, err := decodeItem(rest, val)
		if err != nil {
			return fmt.Errorf("roster item %q: %w", rest, err)
		}
		return fn(it)
	})
	return strconv.FormatUint(v, 10), err
}

// ---- the API other modules use ----

// Items returns the items of user's roster (listed ones only), in JID order.
// The items are shared with other callers: read them, never change them.
func (m *Module) Items(ctx context.Context, user stanza.JID) ([]*Item, error) {
	all, err := m.cached(ctx, user.Bare())
	if err != nil {
		return nil, err
	}
	items := make([]*Item, 0, len(all))
	for _, it := range all {
		if it.Listed {
			items = append(items, it)
		}
	}
	return items, nil
}

// cached returns all of user's entries (listed or not), from the cache when
// they are there.
func (m *Module) cached(ctx context.Context, user stanza.JID) ([]*Item, error) {
	key := user.String()
	if all, ok := m.cache.Get(key); ok {
		return all, nil
	}
	gen := m.cache.Generation(key)
	var all []*Item
	if _, err := m.scan(ctx, user, func(it *Item) error { all = append(all, it); return nil }); err != nil {
		return nil, err
	}
	m.cache.Add(key, all, gen)
	return all, nil
}

func (m *Module) items(ctx context.Context, user stanza.JID) ([]*Item, string, error) {
	var items []*Item
	ver, err := m.scan(ctx, user, func(it *Item) error {
		if it.Listed {
			items = append(items, it)
		}
		return nil
	})
	return items, ver, err
}

// Item returns user's entry for contact (listed or not), or nil.
func (m *Module) Item(ctx context.Context, user, contact stanza.JID) (*Item, error) {
	b, err := m.kv.Get(ctx, itemKey(user.Bare(), contact))
	if err != nil || b == nil {
		return nil, err
	}
	return decodeItem(contact.Bare().String(), b)
}

// Subscription implements xeps.RosterReader.
func (m *Module) Subscription(ctx context.Context, user, contact stanza.JID) (string, error) {
	all, err := m.cached(ctx, user.Bare())
	if err != nil {
		return "none", err
	}
	var it *Item
	c := contact.Bare()
	for _, x := range all {
		if x.JID.Equal(c) {
			it = x
			break
		}
	}
	if it == nil {
		return "none", nil
	}
	return it.Sub.String(), nil
}

// PendingIn returns the stored subscription requests user has not answered,
// to be delivered again to a resource that becomes available (§3.1.3).
func (m *Module) PendingIn(ctx context.Context, user stanza.JID) ([]*stanza.Element, error) {
	var out []*stanza.Element
	_, err := m.scan(ctx, user.Bare(), func(it *Item) error {
		if it.PendingIn {
			req := it.Request
			if req == nil {
				req = stanza.New(stanza.NSClient, "presence").Set("type", "subscribe")
			}
			req.Set("from", it.JID.String()).Set("to", user.Bare().String())
			out = append(out, req)
		}
		return nil
	})
	return out, err
}

// change runs one read-modify-write of user's entry for contact in a
// transaction. fn gets the current item (a fresh unlisted one if none) and
// reports whether anything changed and whether clients must be told (push);
// the version is bumped only for a push. It returns the item as stored and
// the new version ("" when no push).
// The push happens here too, under the user's writer lock, so pushes leave
// in the order their changes were committed.
func (m *Module) change(ctx context.Context, user, contact stanza.JID, fn func(it *Item) (changed, push bool, err error)) (*Item, string, error) {
	var (
		out *Item
		ver string
	)
	mu := m.writer(user)
	mu.Lock()
	defer mu.Unlock()
	err := m.kv.Update(ctx, func(t xeps.Txn) error {
		it, err := getItem(t, user, contact)
		if err != nil {
			return err
		}
		if it == nil {
			it = &Item{JID: contact.Bare()}
		}
		changed, push, err := fn(it)
		if err != nil || !changed {
			out = it
			return err
		}
		if push {
			if ver, err = bumpVer(t, user); err != nil {
				return err
			}
		}
		out = it
		return putItem(t, user, it)
	})
	m.cache.Delete(user.Bare().String()) // after the commit (or its failure), under the writer lock
	if err == nil && ver != "" {
		m.push(ctx, user, out.Element(), ver)
	}
	return out, ver, err
}

// visible is the part of the state clients see in a roster item.
func visible(s State) State { s.PendingIn = false; return s }

// ApplyOutbound processes a subscription stanza (subscribe, subscribed,
// unsubscribe, unsubscribed) the user sends to contact (RFC 6121 §3,
// Appendix A.2): the state change, the roster push, routing the stanza
// stamped with the user's bare JID, and the user's presence or unavailable
// to the contact when it gains or loses a subscription.
func (m *Module) ApplyOutbound(ctx context.Context, el *stanza.Element, user, contact stanza.JID) error {
	user, contact = user.Bare(), contact.Bare()
	typ := el.Get("type")
	var act Actions
	_, _, err := m.change(ctx, user, contact, func(it *Item) (bool, bool, error) {
		n, a := Transition(it.State, xeps.Outbound, typ)
		act = a
		wasListed := it.Listed
		// Asking, approving or pre-approving puts the contact in the roster
		// (§3.1.2, §3.1.5, §3.4).
		if typ == "subscribe" || typ == "subscribed" && n != it.State {
			it.Listed = true
		}
		push := it.Listed && (visible(n) != visible(it.State) || !wasListed)
		changed := n != it.State || it.Listed != wasListed
		if !n.PendingIn {
			it.Request = nil
		}
		it.State = n
		return changed, push, nil
	})
	if err != nil {
		return err
	}
	if act.Forward {
		out := el.ShallowCopy()
		out.Set("from", user.String()).Set("to", contact.String())
		m.h.Send(ctx, out)
	}
	if m.presence != nil {
		if act.SendPresence {
			m.presence.SendCurrent(ctx, user, contact)
		}
		if act.SendUnavailable {
			m.presence.SendUnavailable(ctx, user, contact)
		}
	}
	return nil
}

// ApplyInbound processes a subscription stanza from contact to the local user
// (RFC 6121 §3, Appendix A.3): the state change and roster push, delivery to
// the user's available resources (a subscribe is also stored until answered),
// and the answers the server gives on the user's behalf.
func (m *Module) ApplyInbound(ctx context.Context, el *stanza.Element, contact, user stanza.JID) error {
	user, contact = user.Bare(), contact.Bare()
	typ := el.Get("type")
	if typ == "subscribe" {
		// §3.1.3: a request for an account that does not exist is refused.
		if ok, err := m.h.UserExists(ctx, user.Domainpart(), user.Localpart()); err != nil {
			return err
		} else if !ok {
			m.reply(ctx, user, contact, "unsubscribed")
			return nil
		}
	}
	in := el.ShallowCopy()
	in.Set("from", contact.String()).Set("to", user.String())
	var act Actions
	_, _, err := m.change(ctx, user, contact, func(it *Item) (bool, bool, error) {
		n, a := Transition(it.State, xeps.Inbound, typ)
		act = a
		if n == it.State {
			return false, false, nil
		}
		if n.PendingIn && !it.PendingIn {
			it.Request = in
		}
		if !n.PendingIn {
			it.Request = nil
		}
		push := it.Listed && visible(n) != visible(it.State)
		it.State = n
		return true, push, nil
	})
	if err != nil {
		return err
	}
	if act.Forward {
		m.h.Deliver(ctx, in)
	}
	if act.Reply != "" {
		m.reply(ctx, user, contact, act.Reply)
	}
	if m.presence != nil {
		if act.SendPresence {
			m.presence.SendCurrent(ctx, user, contact)
		}
		if act.SendUnavailable {
			m.presence.SendUnavailable(ctx, user, contact)
		}
	}
	return nil
}

// reply sends a subscription answer from user's bare JID to contact.
func (m *Module) reply(ctx context.Context, user, contact stanza.JID, typ string) {
	m.h.Send(ctx, stanza.New(stanza.NSClient, "presence").Set("type", typ).
		Set("from", user.String()).Set("to", contact.String()))
}

// ---- jabber:iq:roster ----

// account returns the roster an IQ is about, or forbidden when the sender
// asks about someone else's (RFC 6121 §2.1.5, §2.3.3).
func account(iq *stanza.IQ) (stanza.JID, error) {
	user := iq.From.Bare()
	if iq.Get("to") != "" && !iq.To.Bare().Equal(user) {
		return stanza.JID{}, stanza.NewError("forbidden")
	}
	if user.Localpart() == "" {
		return stanza.JID{}, stanza.NewError("forbidden")
	}
	return user, nil
}

func (m *Module) handleGet(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
	user, err := account(iq)
	if err != nil {
		return nil, err
	}
	if iq.From.Resourcepart() != "" {
		m.h.SetInterested(iq.From, m.interest)
	}
	items, ver, err := m.items(ctx, user)
	if err != nil {
		return nil, err
	}
	// XEP-0237 §2.3 / RFC 6121 §2.6.3: the client's version is current, so
	// an empty result; otherwise the whole roster (never a diff).
	if cv, ok := iq.Payload.Lookup("ver"); ok && cv != "" && cv == ver {
		return nil, nil
	}
	q := stanza.New(NS, "query").Set("ver", ver)
	for _, it := range items {
		q.Append(it.Element())
	}
	return q, nil
}

// setRequest is a validated roster set.
type setRequest struct {
	JID    stanza.JID
	Name   string
	Groups []string
	Remove bool
}

// ParseSet validates the payload of a roster set (RFC 6121 §2.3.3, §2.4.3,
// §2.5.3) for user: exactly one item with a valid bare JID other than the
// user's own; name and groups within limits; no empty or duplicate group.
// The 'subscription' attribute is ignored unless it is "remove"; 'ask' and
// 'approved' are always ignored.
func ParseSet(q *stanza.Element, user stanza.JID) (setRequest, error) {
	var req setRequest
	items := q.Children()
	if len(items) != 1 || !items[0].Is(NS, "item") {
		return req, stanza.Errorf("bad-request", "a roster set holds exactly one item")
	}
	item := items[0]
	js := item.Get("jid")
	if js == "" {
		return req, stanza.Errorf("bad-request", "the item has no jid")
	}
	j, err := stanza.ParseJID(js)
	if err != nil {
		return req, stanza.NewError("jid-malformed")
	}
	if j.Resourcepart() != "" {
		return req, stanza.Errorf("bad-request", "a roster item is a bare JID")
	}
	req.JID = j
	if item.Get("subscription") == "remove" {
		req.Remove = true
		return req, nil
	}
	if j.Equal(user.Bare()) {
		return req, stanza.Errorf("not-allowed", "you are always subscribed to your own presence")
	}
	req.Name = item.Get("name")
	if len(req.Name) > MaxNameBytes {
		return req, stanza.Errorf("not-acceptable", "the name is longer than %d bytes", MaxNameBytes)
	}
	for _, g := range item.Children() {
		if !g.Is(NS, "group") {
			continue
		}
		name := g.Text()
		switch {
		case name == "":
			return req, stanza.Errorf("not-acceptable", "a group name is empty")
		case len(name) > MaxGroupBytes:
			return req, stanza.Errorf("not-acceptable", "a group name is longer than %d bytes", MaxGroupBytes)
		case slices.Contains(req.Groups, name):
			return req, stanza.Errorf("bad-request", "group %q is listed twice", name)
		}
		req.Groups = append(req.Groups, name)
	}
	return req, nil
}

func (m *Module) handleSet(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
	user, err := account(iq)
	if err != nil {
		return nil, err
	}
	req, err := ParseSet(iq.Payload, user)
	if err != nil {
		return nil, err
	}
	if req.Remove {
		return nil, m.remove(ctx, user, req.JID)
	}
	_, _, err = m.change(ctx, user, req.JID, func(it *Item) (bool, bool, error) {
		it.Name, it.Groups, it.Listed = req.Name, req.Groups, true
		return true, true, nil
	})
	return nil, err
}

var errNotFound = stanza.NewError("item-not-found")

// remove deletes contact from user's roster and cancels both subscriptions
// (RFC 6121 §2.5.2): unsubscribe if the user was subscribed or asking,
// unsubscribed if the contact was subscribed or asking.
func (m *Module) remove(ctx context.Context, user, contact stanza.JID) error {
	var old *Item
	var ver string
	mu := m.writer(user)
	mu.Lock()
	err := m.kv.Update(ctx, func(t xeps.Txn) error {
		it, err := getItem(t, user, contact)
		if err != nil {
			return err
		}
		if it == nil || !it.Listed {
			return errNotFound
		}
		old = it
		if ver, err = bumpVer(t, user); err != nil {
			return err
		}
		return t.Delete(itemKey(user, contact))
	})
	m.cache.Delete(user.Bare().String())
	if err == nil {
		m.push(ctx, user, stanza.New(NS, "item").Set("jid", old.JID.String()).Set("subscription", "remove"), ver)
	}
	mu.Unlock()
	if errors.Is(err, errNotFound) {
		return errNotFound
	}
	if err != nil {
		return err
	}
	if old.Sub&To != 0 || old.PendingOut {
		m.reply(ctx, user, old.JID, "unsubscribe")
	}
	if old.Sub&From != 0 || old.PendingIn {
		m.reply(ctx, user, old.JID, "unsubscribed")
	}
	if old.Sub&From != 0 && m.presence != nil {
		m.presence.SendUnavailable(ctx, user, old.JID)
	}
	return nil
}

// ---- interested resources and pushes ----

// Interested lists the full JIDs of user's interested resources (those
// that asked for the roster in this session), sorted.
func (m *Module) Interested(user stanza.JID) []string { return m.h.Interested(user, m.interest) }

// push sends a roster push with item and version ver to every interested
// resource of user (RFC 6121 §2.1.6), each with its own fresh id.
func (m *Module) push(ctx context.Context, user stanza.JID, item *stanza.Element, ver string) {
	for _, full := range m.Interested(user) {
		iq := stanza.New(stanza.NSClient, "iq").Set("type", "set").Set("id", pushID()).Set("to", full).
			Append(stanza.New(NS, "query").Set("ver", ver).Append(item))
		m.h.Deliver(ctx, iq)
	}
}

func pushID() string {
	var b [8]byte
	rand.Read(b[:])
	return "push-" + hex.EncodeToString(b[:])
}
