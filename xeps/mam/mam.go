// Package mam implements XEP-0313: Message Archive Management (version
// 1.1.3, namespaces urn:xmpp:mam:2 and, for older clients, urn:xmpp:mam:1)
// for user archives, with XEP-0359: Unique and Stable Stanza IDs (0.7),
// XEP-0441: Message Archive Management Preferences (0.2), XEP-0431: Full
// Text Search in MAM (0.2) and XEP-0059: Result Set Management (1.0) paging.
//
// What is archived. Every 1:1 message (type chat, normal or none) that
// carries a body or a payload clients keep in their history: OMEMO
// (eu.siacs.conversations.axolotl and urn:xmpp:omemo:2 <encrypted/>),
// XEP-0308 corrections, XEP-0424 retractions, XEP-0444 reactions and
// XEP-0333 markers. Never errors, groupchat or headline messages, nor a
// message with a XEP-0334 <no-store/> or <no-permanent-store/> hint; a
// <store/> hint archives a chat or normal message whatever it carries. Each
// party's own archive gets its copy:
//
//   - the sender's (outgoing), at the FromClient stage, for a local sender;
//   - the recipient's (incoming), at the ForAccount stage, for a local
//     recipient, whether the sender is local or came over s2s.
//
// A message to oneself is archived once, as incoming. The user's
// preferences (XEP-0441: a default of always, roster or never, and lists of
// JIDs always or never archived) decide for each copy.
//
// Durable before delivered. The recipient's entry is appended to the Log,
// which commits it to disk (concurrent appends share a commit) before the
// hook returns, that is before the message fans out to the resources or the
// offline store. When the append fails the message is refused with
// internal-server-error: the sender learns it was not delivered, rather
// than the recipient seeing a message no archive holds.
//
// Stanza ids (XEP-0359). The recipient's copy gets <stanza-id by='the
// account' id='the entry id'/> before it fans out, so every resource and
// the offline store see the same id, the one MAM returns. A stanza-id that
// claims to be by the account (forged by the sender) is removed first;
// <origin-id/> is kept as the sender wrote it. The sender's entry has its
// own id, stamped on the outgoing message at FromClient so that a module
// after this one in that stage (carbons' sent copies) sees it; it is taken
// off again before a local recipient gets the message (it names an entry
// of someone else's archive).
//
// Queries. Only the account itself may query or configure its archive
// (forbidden otherwise). See query.go.
package mam

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// XEP is the number of the extension this package implements.
const XEP = "0313"

// Namespaces.
const (
	NS         = "urn:xmpp:mam:2"
	NS1        = "urn:xmpp:mam:1" // COMPAT: clients that have not moved to :2 (older Gajim, Pidgin plugins)
	NSExtended = "urn:xmpp:mam:2#extended"
	NSSID      = "urn:xmpp:sid:0"
	NSFulltext = "urn:xmpp:fulltext:0"
	NSRSM      = "http://jabber.org/protocol/rsm"
	NSData     = "jabber:x:data"
	NSForward  = "urn:xmpp:forward:0"
	NSHints    = "urn:xmpp:hints"
	NSRetract  = "urn:xmpp:message-retract:1"
	NSRetract0 = "urn:xmpp:message-retract:0"
)

// LogName is the storage Log holding the archives, one owner per account.
const LogName = "archive"

// prefsStore is the KeyValue holding the accounts' XEP-0441 preferences.
const prefsStore = "archive-prefs"

// Archiving policies (XEP-0441 'default').
const (
	PolicyAlways = "always"
	PolicyRoster = "roster"
	PolicyNever  = "never"
)

// Module is the message archive.
type Module struct {
	// ExpireAfter is how long entries are kept; 0 keeps them forever.
	ExpireAfter time.Duration
	// Default is the policy of accounts without preferences; "" is always.
	Default string
	// ExpireEvery is how often the expiry runs; 0 means every hour.
	ExpireEvery time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time

	a      *archive
	cancel context.CancelFunc
	done   sync.WaitGroup
}

var (
	_ xeps.Module  = (*Module)(nil)
	_ xeps.Starter = (*Module)(nil)
	_ xeps.Stopper = (*Module)(nil)
)

// Name implements xeps.Module: the config section.
func (*Module) Name() string { return "archive" }

// archive is the module's state once registered.
type archive struct {
	host interface {
		xeps.Sender
		xeps.Directory
		xeps.Providers
	}
	log      xeps.Log
	kv       xeps.KeyValue
	prefs    *xeps.Cache[*prefs]
	prefsMu  sync.Mutex // serializes preference changes: commit, then cache
	def      string
	now      func() time.Time
	logger   *slog.Logger
	retained time.Duration
}

// prefsCacheSize bounds the accounts whose preferences stay in memory.
const prefsCacheSize = 100_000

// Register implements xeps.Module.
func (m *Module) Register(h *xeps.Host) error {
	a := &archive{
		host:     h,
		log:      h.Log(LogName),
		kv:       h.KeyValue(prefsStore),
		prefs:    xeps.NewCache[*prefs](prefsCacheSize),
		def:      m.Default,
		now:      m.Now,
		logger:   h.Logger(),
		retained: m.ExpireAfter,
	}
	if a.def == "" {
		a.def = PolicyAlways
	}
	if a.now == nil {
		a.now = time.Now
	}
	m.a = a
	// Exactly what is implemented, on the account's bare JID (XEP-0313 §7).
	for _, f := range []string{NS, NS1, NSExtended, NSSID, NSFulltext} {
		h.AdvertiseAccountFeature(f)
	}
	h.Hook(xeps.FromClient, a.outgoing)
	h.Hook(xeps.ForAccount, a.incoming)
	for _, ns := range []string{NS, NS1} {
		h.HandleIQ("set", ns, "query", xeps.ToAccount, a.query)
		h.HandleIQ("get", ns, "query", xeps.ToAccount, a.fields)
		h.HandleIQ("get", ns, "prefs", xeps.ToAccount, a.getPrefs)
		h.HandleIQ("set", ns, "prefs", xeps.ToAccount, a.setPrefs)
	}
	h.HandleIQ("get", NS, "metadata", xeps.ToAccount, a.metadata)
	h.OnAccountDeleted(func(_ context.Context, user stanza.JID) error {
		// The entries and preferences went with the account (DeleteUser
		// removes the user's keys from every store); only the cache is ours.
		a.prefs.Delete(user.String())
		return nil
	})
	return nil
}

// payloads are the children that make a message worth archiving without a
// body: what clients show in a conversation's history.
var payloads = [...]struct{ space, local string }{
	{"eu.siacs.conversations.axolotl", "encrypted"}, // OMEMO (legacy)
	{"urn:xmpp:omemo:2", "encrypted"},               // OMEMO 2
	{"urn:xmpp:message-correct:0", "replace"},       // XEP-0308
	{NSRetract, "retract"},                          // XEP-0424
	{NSRetract0, "retract"},
	{"urn:xmpp:reactions:0", "reactions"},       // XEP-0444
	{"urn:xmpp:chat-markers:0", "displayed"},    // XEP-0333
	{"urn:xmpp:chat-markers:0", "received"},     //
	{"urn:xmpp:chat-markers:0", "acknowledged"}, //
}

// archivable reports whether a message is one the archive keeps.
func archivable(el *stanza.Element) bool {
	switch el.Get("type") {
	case "", "chat", "normal":
	default:
		return false
	}
	store := false
	worth := false
	for _, n := range el.Nodes {
		c := n.Elem
		if c == nil {
			continue
		}
		switch {
		case c.Space == NSHints:
			switch c.Local {
			case "no-store", "no-permanent-store":
				return false
			case "store":
				store = true
			}
		case c.Local == "body" && c.Space == el.Space:
			worth = true
		case c.Space == NS || c.Space == NS1 || c.Space == "urn:xmpp:carbons:2":
			// A forwarded archive result or carbon copy: its payload is
			// someone's archive already.
			return false
		default:
			for _, p := range payloads {
				if c.Local == p.local && c.Space == p.space {
					worth = true
					break
				}
			}
		}
	}
	return worth || store
}

// searchText is what the full-text index gets of a message: its body
// (the first, which is what clients show). Encrypted payloads have none.
func searchText(el *stanza.Element) string {
	t := el.Child(el.Space, "body").Text()
	if len(t) > maxIndexedText {
		t = t[:maxIndexedText]
	}
	return t
}

// maxIndexedText bounds the text indexed per message.
const maxIndexedText = 64 << 10

// stanzaID builds the XEP-0359 stamp.
func stanzaID(by string, id xeps.LogID) *stanza.Element {
	return stanza.New(NSSID, "stanza-id").Set("by", by).Set("id", id.String())
}

// stripStanzaIDs removes the stanza-ids claiming to be by one of these
// entities: only the entity itself may stamp its ids (XEP-0359 §5).
func stripStanzaIDs(el *stanza.Element, by ...string) {
	n := 0
	for _, c := range el.Nodes {
		if e := c.Elem; e != nil && e.Local == "stanza-id" && e.Space == NSSID {
			drop := false
			for _, b := range by {
				if e.Get("by") == b {
					drop = true
					break
				}
			}
			if drop {
				continue
			}
		}
		el.Nodes[n] = c
		n++
	}
	clear(el.Nodes[n:])
	el.Nodes = el.Nodes[:n]
}

// isAccount reports whether j is an account of one of our domains.
func (a *archive) isAccount(j stanza.JID) bool {
	return j.Localpart() != "" && a.host.IsLocal(j.Domainpart())
}

// outgoing is the FromClient hook: the sender's copy.
func (a *archive) outgoing(ctx context.Context, el *stanza.Element, from, to stanza.JID) (xeps.Verdict, *stanza.Error) {
	if el.Local != "message" || !a.isAccount(from) {
		return xeps.Pass, nil
	}
	owner := from.Bare()
	ownerS := owner.String()
	if hasStanzaID(el, ownerS) {
		stripStanzaIDs(el, ownerS) // forged by the client
	}
	if !archivable(el) {
		return xeps.Pass, nil
	}
	with := to.Bare()
	if with.Equal(owner) {
		return xeps.Pass, nil // archived once, as incoming, at ForAccount
	}
	if !a.shouldArchive(ctx, owner, to) {
		return xeps.Pass, nil
	}
	id, err := a.log.Append(ctx, ownerS, xeps.LogEntry{With: with.String(), Data: el.AppendXML(nil, ""), Text: searchText(el)})
	if err != nil {
		// The message still goes: the sender's own copy is what is lost,
		// and refusing would lose the recipient's as well.
		a.logger.Error("archiving an outgoing message", "owner", ownerS, "err", err)
		return xeps.Pass, nil
	}
	el.Append(stanzaID(ownerS, id))
	if rid := retractedID(el); rid != "" {
		a.tombstone(ctx, owner, with, owner, rid)
	}
	return xeps.Pass, nil
}

// hasStanzaID reports whether el carries a stanza-id by this entity.
func hasStanzaID(el *stanza.Element, by string) bool {
	for _, n := range el.Nodes {
		if e := n.Elem; e != nil && e.Local == "stanza-id" && e.Space == NSSID && e.Get("by") == by {
			return true
		}
	}
	return false
}

// incoming is the ForAccount hook: the recipient's copy, durable before the
// message goes anywhere, and its stanza-id.
func (a *archive) incoming(ctx context.Context, el *stanza.Element, from, to stanza.JID) (xeps.Verdict, *stanza.Error) {
	if el.Local != "message" {
		return xeps.Pass, nil
	}
	owner := to.Bare()
	ownerS := owner.String()
	sender := from.Bare()
	if hasStanzaID(el, ownerS) {
		stripStanzaIDs(el, ownerS) // forged
	}
	if !sender.Equal(owner) && a.isAccount(sender) && hasStanzaID(el, sender.String()) {
		// The sender's own entry id (outgoing): not the recipient's business.
		stripStanzaIDs(el, sender.String())
	}
	if !archivable(el) {
		return xeps.Pass, nil
	}
	if !a.exists(ctx, owner) {
		return xeps.Pass, nil // the router bounces it
	}
	if !a.shouldArchive(ctx, owner, from) {
		return xeps.Pass, nil
	}
	id, err := a.log.Append(ctx, ownerS, xeps.LogEntry{With: sender.String(), Data: el.AppendXML(nil, ""), Text: searchText(el)})
	if err != nil {
		a.logger.Error("archiving an incoming message", "owner", ownerS, "err", err)
		return xeps.Refuse, stanza.Errorf("internal-server-error", "the message could not be stored")
	}
	el.Append(stanzaID(ownerS, id))
	if rid := retractedID(el); rid != "" {
		a.tombstone(ctx, owner, sender, sender, rid)
	}
	return xeps.Pass, nil
}

// exists reports whether owner is an account: one with a session is, else
// the accounts store says.
func (a *archive) exists(ctx context.Context, owner stanza.JID) bool {
	var buf [1]xeps.Session
	if len(a.host.Sessions().Sessions(owner.String(), buf[:0])) > 0 {
		return true
	}
	ok, err := a.host.UserExists(ctx, owner.Domainpart(), owner.Localpart())
	if err != nil {
		a.logger.Error("checking an archive's owner", "owner", owner.String(), "err", err)
	}
	return ok
}
