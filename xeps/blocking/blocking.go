// Package blocking implements XEP-0191: Blocking Command (version 1.3).
//
// A user's blocklist is read and changed with IQs in urn:xmpp:blocking sent
// to their own account (no 'to', or their own bare JID); anyone else gets
// forbidden. Changes are pushed to every resource of the user that asked for
// the blocklist in its session (XEP-0191 §3.3, §3.4: "all of the user's
// resources that have requested the blocklist"), before the IQ result.
//
// Blocking is enforced by two pipeline hooks (FromClient and ToAccount), which see
// what local clients send (outbound) and what is about to reach a local user
// (inbound). A blocklist item matches as in XEP-0016 §2.1, which XEP-0191 §6
// defers to: a full JID matches only itself, a bare JID any of its
// resources, domain/resource only that address, a domain the domain itself
// and every address at it (not its subdomains).
//
//   - Inbound, from a blocked JID to the user (§3.3): presence of every type
//     is dropped without an answer; message of type chat or normal (or none)
//     is answered service-unavailable (the XEP's SHOULD, as Prosody does), other
//     messages are dropped; iq get/set is answered service-unavailable, iq
//     result/error dropped. The user appears offline to the contact.
//   - Outbound, from the user to a blocked JID (§3.3): message and iq
//     get/set are bounced with not-acceptable carrying
//     <blocked xmlns='urn:xmpp:blocking:errors'/>, delivered straight to the
//     sending session (routed, the error from the blocked JID would be
//     dropped by the user's own inbound filter); error stanzas and iq
//     results are dropped silently (an error is never answered with an
//     error). Presence is dropped silently instead of bounced: clients send
//     presence the user did not type (automatic subscription answers,
//     directed presence) and show a presence error as the contact's status;
//     Prosody does the same.
//
// Stanzas between a user and their own account, and from or to the bare
// domain of one of our hosts (the server itself), are never filtered, so a
// user who blocks their own domain still gets the server's answers.
//
// When a block is added for a JID whose bare JID has a subscription of
// "from" or "both" in the user's roster (xeps.Host.Roster), every available
// resource of the user (xeps.Host.Announced) sends that
// JID unavailable presence (§3.3), once, when the item is new. Unblocking
// such a JID sends the user's current presence back (§3.4), through the
// presence module (xeps.Host.Presence).
//
// Storage: KeyValue "blocklist", key = the user's bare JID (removed with the
// account by storage.DB.DeleteUser), value = JSON array of the blocked JIDs,
// sorted. Blocklists are cached in memory (a bounded LRU, CacheSize users),
// so the filter reads storage only on a cache miss; a change replaces the
// cached list after it is committed.
package blocking

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// XEP is the number of the extension this package implements.
const XEP = "0191"

// Namespaces of XEP-0191.
const (
	NS       = "urn:xmpp:blocking"
	NSErrors = "urn:xmpp:blocking:errors"
)

// Defaults for the zero Module.
const (
	DefaultCacheSize = 4096
	DefaultMaxItems  = 1000
)

// Module handles blocklist commands and enforces the blocks.
type Module struct {
	// CacheSize is how many users' blocklists are kept in memory (0: DefaultCacheSize).
	CacheSize int
	// MaxItems bounds one user's blocklist (0: DefaultMaxItems).
	MaxItems int
}

var _ xeps.Module = Module{}

// Name implements xeps.Module.
func (Module) Name() string { return "blocking" }

type service struct {
	h interface {
		xeps.Sender
		xeps.Directory
		xeps.Providers
	}
	log      *slog.Logger
	kv       xeps.KeyValue
	cache    *xeps.Cache[*blocklist]
	maxItems int

	wmu sync.Mutex // serializes blocklist changes: commit, then cache update

	interest xeps.Interest // the resources that requested the blocklist (xeps.Host.SetInterested)

	pushID atomic.Uint64
}

// Register implements xeps.Module.
func (m Module) Register(h *xeps.Host) error {
	size, maxItems := m.CacheSize, m.MaxItems
	if size <= 0 {
		size = DefaultCacheSize
	}
	if maxItems <= 0 {
		maxItems = DefaultMaxItems
	}
	s := &service{
		h:        h,
		log:      h.Logger(),
		kv:       h.KeyValue("blocklist"),
		cache:    xeps.NewCache[*blocklist](size),
		maxItems: maxItems,
		interest: h.NewInterest(),
	}
	// XEP-0191 §3.1: the server advertises the feature.
	h.AdvertiseFeature(NS)
	h.HandleIQ("get", NS, "blocklist", xeps.ToAccount, s.getBlocklist)
	h.HandleIQ("set", NS, "block", xeps.ToAccount, s.block)
	h.HandleIQ("set", NS, "unblock", xeps.ToAccount, s.unblock)
	// Outgoing stanzas to a blocked JID, and incoming ones from it.
	h.Hook(xeps.FromClient, s.outbound)
	h.Hook(xeps.ForAccount, s.inbound)
	h.OnAccountDeleted(s.forget)
	return nil
}

// forget drops a deleted account's cached blocklist: its stored one went
// with the account (storage deletes the user's keys), and a new account of
// the same name starts with none.
func (s *service) forget(_ context.Context, user stanza.JID) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.cache.Set(user.String(), emptyList)
	return nil
}

// owner returns the account an IQ is about when the sender may manage it:
// only the user themselves, with no 'to' or 'to' their own bare JID.
func owner(iq *stanza.IQ) (stanza.JID, error) {
	user := iq.From.Bare()
	if user.Localpart() == "" || (iq.To.String() != "" && !iq.To.Bare().Equal(user)) {
		return stanza.JID{}, stanza.NewError("forbidden")
	}
	return user, nil
}

func (s *service) getBlocklist(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
	user, err := owner(iq)
	if err != nil {
		return nil, err
	}
	bl, err := s.list(ctx, user.String())
	if err != nil {
		return nil, err
	}
	// The requesting resource is now interested in pushes (§3.2, §3.3).
	if iq.From.Resourcepart() != "" {
		s.h.SetInterested(iq.From, s.interest)
	}
	out := stanza.New(NS, "blocklist")
	for _, j := range bl.sorted {
		out.Append(stanza.New(NS, "item").Set("jid", j))
	}
	return out, nil
}

// items parses the <item jid='...'/> children of a block or unblock command.
func items(payload *stanza.Element) ([]string, error) {
	var out []string
	for _, c := range payload.Children() {
		if !c.Is(NS, "item") {
			continue
		}
		j, err := stanza.ParseJID(c.Get("jid"))
		if err != nil {
			return nil, stanza.Errorf("jid-malformed", "not a JID: %q", c.Get("jid"))
		}
		if s := j.String(); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (s *service) block(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
	user, err := owner(iq)
	if err != nil {
		return nil, err
	}
	add, err := items(iq.Payload)
	if err != nil {
		return nil, err
	}
	if len(add) == 0 {
		// §3.3: a block without an item is bad-request.
		return nil, stanza.Errorf("bad-request", "a block command needs at least one item")
	}
	added, err := s.change(ctx, user.String(), func(cur []string) ([]string, []string, error) {
		var added []string
		next := slices.Clone(cur)
		for _, j := range add {
			if !slices.Contains(next, j) {
				next = append(next, j)
				added = append(added, j)
			}
		}
		if len(next) > s.maxItems {
			return nil, nil, stanza.Errorf("policy-violation", "a blocklist holds at most %d items", s.maxItems)
		}
		return next, added, nil
	})
	if err != nil {
		return nil, err
	}
	s.sendUnavailable(ctx, user, added)
	s.push(ctx, user, "block", add)
	return nil, nil
}

func (s *service) unblock(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
	user, err := owner(iq)
	if err != nil {
		return nil, err
	}
	remove, err := items(iq.Payload)
	if err != nil {
		return nil, err
	}
	unblocked, err := s.change(ctx, user.String(), func(cur []string) ([]string, []string, error) {
		if len(remove) == 0 {
			return nil, cur, nil // §3.5: an empty unblock unblocks everyone
		}
		gone := slices.DeleteFunc(slices.Clone(cur), func(j string) bool { return !slices.Contains(remove, j) })
		return slices.DeleteFunc(slices.Clone(cur), func(j string) bool { return slices.Contains(remove, j) }), gone, nil
	})
	if err != nil {
		return nil, err
	}
	s.push(ctx, user, "unblock", remove)
	s.sendCurrent(ctx, user, unblocked)
	return nil, nil
}

// sendCurrent gives unblocked contacts who may see the user's presence
// (subscription from or both) its current presence again (§3.4).
func (s *service) sendCurrent(ctx context.Context, user stanza.JID, unblocked []string) {
	for _, j := range unblocked {
		contact, err := stanza.ParseJID(j)
		if err != nil || contact.Localpart() == "" {
			continue
		}
		sub, err := s.h.Roster().Subscription(ctx, user, contact.Bare())
		if err != nil || sub != "from" && sub != "both" {
			continue
		}
		s.h.Presence().SendCurrent(ctx, user, contact.Bare())
	}
}

// change applies fn to the user's stored blocklist in one transaction and
// then replaces the cached copy. fn returns the new list and what to report.
func (s *service) change(ctx context.Context, user string, fn func(cur []string) (next, report []string, err error)) ([]string, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	cur, err := s.load(ctx, user)
	if err != nil {
		return nil, err
	}
	next, report, err := fn(cur.sorted)
	if err != nil {
		return nil, err
	}
	bl := newBlocklist(next)
	if len(bl.sorted) == 0 {
		err = s.kv.Delete(ctx, []byte(user))
	} else {
		var b []byte
		if b, err = json.Marshal(bl.sorted); err == nil {
			err = s.kv.Put(ctx, []byte(user), b)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("blocking: save %s: %w", user, err)
	}
	s.cache.Set(user, bl)
	return report, nil
}

// sendUnavailable makes the user appear offline to newly blocked JIDs that
// may see the user's presence (§3.3): each available resource of the user
// sends them unavailable presence. Domain items are skipped: the roster can
// only be asked about one contact at a time.
func (s *service) sendUnavailable(ctx context.Context, user stanza.JID, added []string) {
	from := s.h.Announced(user)
	if len(from) == 0 {
		return
	}
	for _, j := range added {
		contact, err := stanza.ParseJID(j)
		if err != nil || contact.Localpart() == "" {
			continue
		}
		sub, err := s.h.Roster().Subscription(ctx, user, contact.Bare())
		if err != nil {
			s.log.Warn("roster lookup failed", "err", err)
			continue
		}
		if sub != "from" && sub != "both" {
			continue
		}
		for _, f := range from {
			s.h.Send(ctx, stanza.New(stanza.NSClient, "presence").
				Set("from", f).Set("to", j).Set("type", "unavailable"))
		}
	}
}

// push sends a block or unblock push to the user's interested resources.
func (s *service) push(ctx context.Context, user stanza.JID, action string, jids []string) {
	for _, full := range s.h.Interested(user, s.interest) {
		cmd := stanza.New(NS, action)
		for _, j := range jids {
			cmd.Append(stanza.New(NS, "item").Set("jid", j))
		}
		iq := stanza.New(stanza.NSClient, "iq").Set("type", "set").Set("to", full).
			Set("id", "block-push-"+strconv.FormatUint(s.pushID.Add(1), 10)).Append(cmd)
		s.h.Deliver(ctx, iq)
	}
}

// list returns the user's blocklist, from the cache when it is there.
func (s *service) list(ctx context.Context, user string) (*blocklist, error) {
	if bl, ok := s.cache.Get(user); ok {
		return bl, nil
	}
	gen := s.cache.Generation(user)
	bl, err := s.load(ctx, user)
	if err != nil {
		return nil, err
	}
	// Cache what was read only if no change was committed meanwhile.
	s.cache.Add(user, bl, gen)
	return bl, nil
}

// load reads the user's blocklist from storage.
func (s *service) load(ctx context.Context, user string) (*blocklist, error) {
	b, err := s.kv.Get(ctx, []byte(user))
	if err != nil {
		return nil, fmt.Errorf("blocking: load %s: %w", user, err)
	}
	if b == nil {
		return emptyList, nil
	}
	var jids []string
	if err := json.Unmarshal(b, &jids); err != nil {
		return nil, fmt.Errorf("blocking: decode %s: %w", user, err)
	}
	return newBlocklist(jids), nil
}

// direction says which way a filtered stanza travels relative to the user.
type direction int

const (
	outbound direction = iota // sent by the user (FromClient)
	inbound                   // for the user (ForAccount)
)

// outbound and inbound are the pipeline hooks.
func (s *service) outbound(ctx context.Context, el *stanza.Element, from, to stanza.JID) (xeps.Verdict, *stanza.Error) {
	return verdict(s.filter(ctx, el, from, to, outbound))
}

func (s *service) inbound(ctx context.Context, el *stanza.Element, from, to stanza.JID) (xeps.Verdict, *stanza.Error) {
	return verdict(s.filter(ctx, el, from, to, inbound))
}

func verdict(drop bool, bounce *stanza.Error) (xeps.Verdict, *stanza.Error) {
	if drop {
		return xeps.Refuse, bounce
	}
	return xeps.Pass, nil
}

// filter enforces the blocks (see the package comment for the rules).
func (s *service) filter(ctx context.Context, el *stanza.Element, from, to stanza.JID, dir direction) (bool, *stanza.Error) {
	user, other := to, from
	if dir == outbound {
		user, other = from, to
	}
	if user.Localpart() == "" || !s.h.IsLocal(user.Domainpart()) {
		return false, nil
	}
	if other.Localpart() == "" && other.Resourcepart() == "" && s.h.IsLocal(other.Domainpart()) {
		return false, nil // the server itself
	}
	if other.Localpart() == user.Localpart() && other.Domainpart() == user.Domainpart() {
		return false, nil // the user's own account
	}
	bl, err := s.list(ctx, user.Bare().String())
	if err != nil {
		// Storage failed: deliver rather than lose the stanza; say so.
		s.log.Error("blocklist unavailable, not filtering", "user", user.Bare().String(), "err", err)
		return false, nil
	}
	if !bl.matches(other) {
		return false, nil
	}
	typ := el.Get("type")
	if dir == outbound {
		if typ == "error" || el.Local == "presence" || (el.Local == "iq" && typ == "result") {
			return true, nil
		}
		// The error goes straight to the sending session: bounced through
		// the router, it would meet the user's own inbound filter, which
		// drops errors from the blocked JID it claims to come from.
		s.h.Deliver(ctx, stanza.ErrorReply(el, blockedError()))
		return true, nil
	}
	switch el.Local {
	case "iq":
		if typ == "get" || typ == "set" {
			return true, stanza.NewError("service-unavailable")
		}
	case "message":
		if typ == "" || typ == "chat" || typ == "normal" {
			return true, stanza.NewError("service-unavailable")
		}
	}
	return true, nil
}

// blockedError is the answer to a stanza the user sends to a JID they
// blocked (§3.3, with the XEP's example's error type).
func blockedError() *stanza.Error {
	return &stanza.Error{Type: stanza.Cancel, Condition: "not-acceptable", Text: "you have blocked this contact; unblock them to send to them", App: stanza.New(NSErrors, "blocked")}
}

// blocklist is one user's list; it is never changed once built.
type blocklist struct {
	set    map[string]struct{}
	sorted []string
}

var emptyList = &blocklist{}

func newBlocklist(jids []string) *blocklist {
	if len(jids) == 0 {
		return emptyList
	}
	bl := &blocklist{set: make(map[string]struct{}, len(jids)), sorted: slices.Clone(jids)}
	slices.Sort(bl.sorted)
	bl.sorted = slices.Compact(bl.sorted)
	for _, j := range bl.sorted {
		bl.set[j] = struct{}{}
	}
	return bl
}

// matches applies the JID matching rules of XEP-0016 §2.1.
func (bl *blocklist) matches(j stanza.JID) bool {
	if len(bl.set) == 0 {
		return false
	}
	if _, ok := bl.set[j.String()]; ok { // full JID, or domain/resource
		return true
	}
	if j.Localpart() != "" && j.Resourcepart() != "" {
		if _, ok := bl.set[j.Bare().String()]; ok {
			return true
		}
	}
	_, ok := bl.set[j.Domainpart()]
	return ok
}
