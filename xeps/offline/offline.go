// Package offline implements XEP-0160: Best Practices for Handling Offline
// Messages (version 1.0.1), with XEP-0203: Delayed Delivery (version 2.0) stamps
// and the storage hints of XEP-0334: Message Processing Hints (version 0.3.0).
//
// What is stored. The router offers a message to the Undeliverable stage when a local
// user has no available resource of non-negative priority: only chat and
// normal messages (or no type), never groupchat, headline or error
// (router.messageToBare). The module takes a message, and so stops the
// router's service-unavailable bounce, only when
//   - the account exists (a message for nobody is bounced);
//   - it carries no XEP-0334 <no-store/> or <no-permanent-store/> hint;
//   - the user holds fewer than MaxMessages stored messages: when full, the new
//     message is refused (bounced) and nothing already stored is dropped;
//   - it is committed to disk: Archive.Append fsyncs before it returns, so a
//     SIGKILL after the hook returned true cannot lose it.
//
// A message that is only a chat state notification (XEP-0085: no body, no
// payload but chat states and a thread) is taken and dropped, not stored:
// typing notifications are worthless later, and a bounce for each would only
// make the sender's client report errors (RFC 6121 §8.5.2.2.1 allows silently
// ignoring). A <store/> hint overrides this, and also makes a headline
// storable; the router never offers headlines today, so that part only
// matters if it starts to.
//
// Delivery. When a resource sends initial presence (the presence module fires
// Host.ResourceAvailable), the stored messages are handed to that full JID in
// the order they were stored, each with <delay xmlns='urn:xmpp:delay'
// from='DOMAIN' stamp='...'/> stamped when it was stored, then deleted through
// the last one a session took. If the session stops taking them (it closed),
// the rest stay for the next initial presence. A crash between delivery and
// deletion delivers those messages again: at least once, never lost.
//
// Concurrency. Every delivery of a user's stored messages (a flush) runs under
// that user's lock (a fixed set of striped mutexes), reads the list afresh and
// deletes what it delivered before unlocking, so two initial presences at once
// cannot deliver a message twice. A message stored while a resource was just
// becoming available would otherwise wait for the next login: so after each
// store the module flushes to the bare JID, which delivers only if the user
// now has an available resource of non-negative priority.
package offline

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// XEP is the number of the extension this package implements; it also
// implements XEP-0203 (delay stamps) and the storage hints of XEP-0334.
const XEP = "0160"

// Feature is the XEP-0030 feature advertised in the server's disco#info
// (XEP-0160 §4, the registrar's "msgoffline").
const Feature = "msgoffline"

// Namespaces this module reads or writes.
const (
	NSDelay      = stanza.NSDelay // XEP-0203
	NSHints      = "urn:xmpp:hints"
	NSChatStates = "http://jabber.org/protocol/chatstates"
)

// DefaultMaxMessages is the default per-user limit (config offline.max_messages).
const DefaultMaxMessages = 1000

// ArchiveName is the storage archive holding the messages.
const ArchiveName = "offline"

// stampFormat is XEP-0082 DateTime in UTC with milliseconds, as xeps/entitytime writes it.
const stampFormat = "2006-01-02T15:04:05.000Z"

// Module stores messages for users who are offline.
type Module struct {
	// MaxMessages is the most messages kept per user; 0 or less disables the
	// module (nothing is stored, msgoffline is not advertised, and messages to
	// offline users are bounced by the router).
	MaxMessages int
	// Now is the clock for delay stamps; nil means time.Now.
	Now func() time.Time
}

var _ xeps.Module = Module{}

// Name implements xeps.Module.
func (Module) Name() string { return "offline" }

// Register implements xeps.Module.
func (m Module) Register(h *xeps.Host) error {
	if m.MaxMessages <= 0 {
		return nil
	}
	o := &offline{
		host:    h,
		archive: h.Queue(ArchiveName),
		max:     m.MaxMessages,
		now:     m.Now,
		log:     h.Logger(),
		seed:    maphash.MakeSeed(),
	}
	if o.now == nil {
		o.now = time.Now
	}
	h.AdvertiseFeature(Feature)
	h.Hook(xeps.Undeliverable, o.undeliverable)
	h.OnAvailable(o.available)
	return nil
}

// offline is the module's state once registered.
type offline struct {
	host interface {
		xeps.Sender
		xeps.Directory
	}
	archive xeps.Queue
	max     int
	now     func() time.Time
	log     *slog.Logger
	seed    maphash.Seed
	locks   [64]sync.Mutex // striped per-user locks: a flush holds its user's stripe
}

// lock returns the mutex of the user's stripe.
func (o *offline) lock(bare string) *sync.Mutex {
	return &o.locks[maphash.String(o.seed, bare)%uint64(len(o.locks))]
}

// What decide says about one offered message.
type verdict int

const (
	refuse  verdict = iota // not ours: the router bounces it
	discard                // taken and dropped (a chat state)
	keep                   // store it
)

// decide applies the type rules and the XEP-0334 hints.
func decide(el *stanza.Element) verdict {
	if el.Local != "message" {
		return refuse
	}
	if el.Child(NSHints, "no-store") != nil || el.Child(NSHints, "no-permanent-store") != nil {
		return refuse
	}
	storeHint := el.Child(NSHints, "store") != nil
	switch el.Get("type") {
	case "", "normal", "chat":
	case "headline":
		if !storeHint {
			return refuse
		}
	default: // groupchat, error, or a type RFC 6121 does not define
		return refuse
	}
	if !storeHint && chatStateOnly(el) {
		return discard
	}
	return keep
}

// chatStateOnly reports a message with no body whose only payloads are chat
// state notifications (XEP-0085) and a thread.
func chatStateOnly(el *stanza.Element) bool {
	states := 0
	for _, c := range el.Children() {
		switch {
		case c.Space == NSChatStates:
			states++
		case c.Local == "thread" && c.Space == el.Space:
		default:
			return false
		}
	}
	return states > 0
}

// store reports whether the message was taken (stored, or discarded by its hints).
// undeliverable is the Undeliverable stage's hook: a message kept (or
// discarded by its hints) is consumed; one refused passes on, to bounce.
func (o *offline) undeliverable(ctx context.Context, el *stanza.Element, _, to stanza.JID) (xeps.Verdict, *stanza.Error) {
	if o.store(ctx, el, to) {
		return xeps.Consume, nil
	}
	return xeps.Pass, nil
}

func (o *offline) store(ctx context.Context, el *stanza.Element, to stanza.JID) bool {
	v := decide(el)
	if v == refuse {
		return false
	}
	bare := to.Bare()
	exists, err := o.host.UserExists(ctx, bare.Domainpart(), bare.Localpart())
	if err != nil {
		o.log.Error("checking the recipient", "to", bare.String(), "err", err)
		return false
	}
	if !exists {
		return false
	}
	if v == discard {
		return true
	}
	if _, err := o.archive.Append(ctx, bare.Domainpart(), bare.Localpart(), o.encode(el, bare.Domainpart()), o.max); err != nil {
		// Append refuses with xeps.ErrFull at the limit, a normal
		// event; anything else is a storage failure.
		if n, cerr := o.archive.Count(ctx, bare.Domainpart(), bare.Localpart()); cerr == nil && n >= o.max {
			// Debug: a flood to a full mailbox would otherwise write one
			// line per refused message (seen under load: 339k lines).
			o.log.Debug("offline storage full", "to", bare.String(), "max", o.max)
		} else {
			o.log.Error("storing an offline message", "to", bare.String(), "err", err)
		}
		return false
	}
	// The user may have become available between the router's check and the
	// commit: deliver now if so (nothing happens while they are offline).
	o.flush(ctx, bare, bare)
	return true
}

// encode serializes a copy of el with a delay stamp from our domain added,
// unless it already has one from us.
func (o *offline) encode(el *stanza.Element, domain string) []byte {
	for _, d := range el.Children() {
		if d.Is(NSDelay, "delay") && d.Get("from") == domain {
			return el.AppendXML(nil, "")
		}
	}
	delay := stanza.New(NSDelay, "delay").Set("from", domain).Set("stamp", o.now().UTC().Format(stampFormat))
	cp := el.ShallowCopy()
	// Clip so the append never writes into a backing array the original shares.
	cp.Nodes = append(slices.Clip(el.Nodes), stanza.Node{Elem: delay})
	return cp.AppendXML(nil, "")
}

// available is the OnAvailable hook: a resource sent initial presence.
func (o *offline) available(ctx context.Context, full stanza.JID, _ bool) {
	o.flush(ctx, full.Bare(), full)
}

var errStop = errors.New("enough for one batch")

// batchSize is how many stored messages are read per database transaction:
// delivery may wait for the client to read (DeliverBacklog), and a read
// transaction must not stay open that long, nor a whole backlog sit in memory.
const batchSize = 64

type stored struct {
	seq uint64
	el  *stanza.Element
}

// flush delivers the user's stored messages in order to target (a full JID,
// or the bare JID for the router's delivery rules) and deletes those a
// session took. It stops at the first one no session takes. To a full JID it
// waits for room in the session's queue, so a backlog larger than the queue
// reaches the client instead of disconnecting it as a slow consumer.
func (o *offline) flush(ctx context.Context, bare, target stanza.JID) {
	mu := o.lock(bare.String())
	mu.Lock()
	defer mu.Unlock()
	domain, local := bare.Domainpart(), bare.Localpart()
	delivered := 0
	for {
		var batch []stored
		err := o.archive.List(ctx, domain, local, func(seq uint64, value []byte) error {
			if len(batch) == batchSize {
				return errStop
			}
			el, err := stanza.ParseElement(value)
			if err != nil {
				// Kept in the batch as nil, so it is deleted in its turn.
				o.log.Error("dropping a damaged offline message", "to", bare.String(), "seq", seq, "err", err)
			}
			batch = append(batch, stored{seq, el})
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			o.log.Error("reading offline messages", "to", bare.String(), "err", err)
			return
		}
		var last uint64
		complete := true
		for _, m := range batch {
			if m.el == nil {
				last = m.seq
				continue
			}
			m.el.Set("to", target.String())
			ok := false
			if target.Resourcepart() != "" {
				ok = o.host.DeliverBacklog(ctx, m.el)
			} else {
				ok = o.host.Deliver(ctx, m.el)
			}
			if !ok {
				complete = false
				break
			}
			last, delivered = m.seq, delivered+1
		}
		if last == 0 {
			break
		}
		if err := o.archive.DeleteThrough(ctx, domain, local, last); err != nil {
			// They stay stored and will be delivered again: at least once.
			o.log.Error("deleting delivered offline messages", "to", bare.String(), "err", err)
			return
		}
		if !complete || len(batch) < batchSize {
			break
		}
	}
	if delivered > 0 {
		o.log.Debug("offline messages delivered", "to", target.String(), "count", delivered)
	}
}
