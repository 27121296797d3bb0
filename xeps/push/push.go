// Package push implements XEP-0357: Push Notifications (version 0.4.1,
// urn:xmpp:push:0), the user's server side: a client registers an app
// server (its JID, a node, a publish-options form with its secret), and
// when a message arrives that none of the account's sessions can take now,
// the server publishes a notification to that app server, which wakes the
// device through its platform's push service.
//
// Registrations. <enable/> and <disable/> (§5, §6) are iq sets a client
// sends to its own account. A registration is keyed by (app server JID,
// node): enabling the same pair again replaces it; an account holds at
// most MaxRegistrations. They are stored in the KeyValue "push" under the
// account's key prefix (storage.DeleteUser removes them with the account),
// so they survive restarts. <disable/> with a node removes that one,
// without, every registration with that app server.
//
// When a notification goes out. For a message of type chat or normal (or
// none) with a <body/> or an end-to-end encrypted payload (OMEMO, OpenPGP
// for XMPP), or a received carbon of one, never groupchat, headline or
// error:
//   - offered to the Undeliverable stage: no session of the account took it
//     (it goes to offline storage next: this module's hook runs before
//     offline's and passes);
//   - delivered to a session that is detached (XEP-0198 hibernation: its
//     client is gone and the stanza waits in the session's queue): the
//     ForSession stage. Only the registrations that session made are
//     woken (each is stored with the resource that enabled it): the
//     laptop's app server is not told of the phone's hibernation.
//
// Rate. One notification per registration at a time and at most one per
// MinInterval: what arrives meanwhile is counted and sent in the next one
// (message-count is the number of messages since the account last had an
// available resource). A burst of 100 messages is one or two notifications.
//
// The notification (§7) is an iq set from the account's bare JID to the app
// server, <pubsub><publish node=...><item><notification><x type='submit'>
// with FORM_TYPE urn:xmpp:push:summary and message-count, plus
// last-message-sender and last-message-body only when the config says so
// (IncludeSender, IncludeBody: off by default, the privacy the app servers
// of Conversations and Monal expect), and the registration's
// publish-options. It is routed like any stanza: over s2s to an app server
// on another domain. An app server that answers with an error or does not
// answer within Timeout MaxFailures times in a row loses the registration
// (logged).
package push

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// XEP is the number of the extension this package implements.
const XEP = "0357"

// Namespaces.
const (
	NS               = "urn:xmpp:push:0"
	NSSummary        = "urn:xmpp:push:summary"
	NSPubSub         = "http://jabber.org/protocol/pubsub"
	NSPublishOptions = "http://jabber.org/protocol/pubsub#publish-options"
	NSData           = "jabber:x:data"
	nsCarbons        = "urn:xmpp:carbons:2"
	nsForward        = "urn:xmpp:forward:0"
)

// StoreName is the KeyValue holding the registrations.
const StoreName = "push"

// MaxRegistrations is the most app servers+nodes one account may register:
// a few devices each, and no way to fill the disk.
const MaxRegistrations = 32

// maxBody bounds the body text put in a notification when IncludeBody is on.
const maxBody = 512

// encrypted are the namespaces of end-to-end encrypted payloads: a message
// carrying one without a body still deserves a notification.
var encrypted = []string{
	"eu.siacs.conversations.axolotl", // OMEMO (legacy)
	"urn:xmpp:omemo:2",               // XEP-0384
	"urn:xmpp:openpgp:0",             // XEP-0373
}

// Module is the push module.
type Module struct {
	cfg Config
	p   *pusher
}

var (
	_ xeps.Module  = (*Module)(nil)
	_ xeps.Starter = (*Module)(nil)
	_ xeps.Stopper = (*Module)(nil)
)

// New returns the module configured by c (validated by the caller).
func New(c Config) *Module { return &Module{cfg: c} }

// Name implements xeps.Module.
func (*Module) Name() string { return "push" }

// Register implements xeps.Module.
func (m *Module) Register(h *xeps.Host) error {
	timeout, interval, err := m.cfg.durations()
	if err != nil {
		return err
	}
	p := &pusher{
		host:     h,
		store:    h.KeyValue(StoreName),
		log:      h.Logger(),
		cfg:      m.cfg,
		timeout:  timeout,
		interval: interval,
		now:      time.Now,
		regs:     map[string]*regState{},
		counts:   map[string]int{},
		ctx:      context.Background(),
	}
	m.p = p
	h.AdvertiseAccountFeature(NS)
	h.HandleIQ("set", NS, "enable", xeps.ToAccount, p.enable)
	h.HandleIQ("set", NS, "disable", xeps.ToAccount, p.disable)
	h.Hook(xeps.Undeliverable, p.undeliverable)
	h.HookSession(p.forSession)
	h.OnAvailable(p.available)
	h.OnAccountDeleted(p.accountDeleted)
	return nil
}

// Start implements xeps.Starter: notifications live as long as ctx.
func (m *Module) Start(ctx context.Context) error {
	m.p.mu.Lock()
	m.p.ctx = ctx
	m.p.mu.Unlock()
	return nil
}

// Stop implements xeps.Stopper: pending timers are stopped.
func (m *Module) Stop(context.Context) error {
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	m.p.stopped = true
	for _, r := range m.p.regs {
		if r.timer != nil {
			r.timer.Stop()
		}
	}
	return nil
}

// pusher is the module's state once registered.
type pusher struct {
	host interface {
		xeps.Sender
		xeps.Directory
	}
	store    xeps.KeyValue
	log      *slog.Logger
	cfg      Config
	timeout  time.Duration
	interval time.Duration
	now      func() time.Time

	// mu guards what follows: the notification state of each registration
	// and the message count of each account. Held only to read and update
	// these maps, never across a send or a store access.
	mu      sync.Mutex
	ctx     context.Context
	stopped bool
	regs    map[string]*regState // storage key →
	counts  map[string]int       // bare JID → messages since last available
}

// regState is what one registration's notifications need between messages.
type regState struct {
	reg      Registration
	owner    stanza.JID
	inflight bool        // a notification waits for its answer
	pending  bool        // a message came while rate-limited or in flight
	last     time.Time   // when the last notification went out
	timer    *time.Timer // sends the pending notification at last+interval
	failures int         // errors and timeouts in a row
	sender   string      // last message's sender (bare), for the summary
	body     string      // last message's body, for the summary
}

// key is the storage key of a registration: the account's prefix (removed
// with the account), the app server's JID, NUL, the node.
func key(owner stanza.JID, appJID, node string) []byte {
	k := xeps.UserKeyPrefix(owner.Domainpart(), owner.Localpart())
	k = append(k, appJID...)
	k = append(k, 0)
	return append(k, node...)
}

// owner returns the account an iq set is for, when its sender is that
// account: iq sets to another user's account are forbidden.
func owner(iq *stanza.IQ) (stanza.JID, error) {
	acct := iq.From.Bare()
	if iq.Get("to") != "" && !iq.To.Bare().Equal(acct) {
		return stanza.JID{}, stanza.Errorf("forbidden", "push notifications are enabled by the account itself")
	}
	if acct.Localpart() == "" {
		return stanza.JID{}, stanza.Errorf("forbidden", "push notifications are for accounts")
	}
	return acct, nil
}

func (p *pusher) enable(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
	acct, err := owner(iq)
	if err != nil {
		return nil, err
	}
	reg, err := ParseEnable(iq.Payload)
	if err != nil {
		return nil, err
	}
	reg.Resource = iq.From.Resourcepart()
	k := key(acct, reg.JID.String(), reg.Node)
	val := reg.Element().AppendXML(nil, "")
	err = p.store.Update(ctx, func(t xeps.Txn) error {
		if t.Get(k) == nil {
			n := 0
			prefix := xeps.UserKeyPrefix(acct.Domainpart(), acct.Localpart())
			if err := t.Scan(prefix, func(_, _ []byte) error {
				n++
				return nil
			}); err != nil {
				return err
			}
			if n >= MaxRegistrations {
				return stanza.Errorf("resource-constraint", "an account may register at most %d push services", MaxRegistrations)
			}
		}
		return t.Put(k, val)
	})
	if err != nil {
		var se *stanza.Error
		if errors.As(err, &se) {
			return nil, se
		}
		return nil, err
	}
	p.mu.Lock()
	delete(p.regs, string(k)) // a new secret or form: start afresh
	p.mu.Unlock()
	p.log.Debug("push enabled", "jid", acct.String(), "app", reg.JID.String())
	return nil, nil
}

func (p *pusher) disable(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
	acct, err := owner(iq)
	if err != nil {
		return nil, err
	}
	app, err := stanza.ParseJID(iq.Payload.Get("jid"))
	if err != nil || iq.Payload.Get("jid") == "" {
		return nil, stanza.Errorf("jid-malformed", "the app server's 'jid' is missing or not a JID")
	}
	node := iq.Payload.Get("node")
	var keys [][]byte
	if node != "" {
		keys = append(keys, key(acct, app.String(), node))
	} else {
		prefix := key(acct, app.String(), "")
		if err := p.store.Scan(ctx, prefix, func(k, _ []byte) error {
			keys = append(keys, bytes.Clone(k))
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if err := p.store.Update(ctx, func(t xeps.Txn) error {
		for _, k := range keys {
			if err := t.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	p.forget(keys)
	return nil, nil
}

func (p *pusher) forget(keys [][]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range keys {
		if r := p.regs[string(k)]; r != nil && r.timer != nil {
			r.timer.Stop()
		}
		delete(p.regs, string(k))
	}
}

// Registrations returns the account's registrations, in key order.
func (p *pusher) registrations(ctx context.Context, acct stanza.JID) ([][]byte, []Registration, error) {
	var keys [][]byte
	var regs []Registration
	err := p.store.Scan(ctx, xeps.UserKeyPrefix(acct.Domainpart(), acct.Localpart()), func(k, v []byte) error {
		el, err := stanza.ParseElement(bytes.Clone(v)) // v is only valid during fn
		if err != nil {
			return nil // unreadable: skipped, never fatal to the message
		}
		r, err := ParseEnable(el)
		if err != nil {
			return nil
		}
		keys = append(keys, bytes.Clone(k))
		regs = append(regs, r)
		return nil
	})
	return keys, regs, err
}

// worthNotifying reports a message a user wants to be woken for: chat or
// normal, with a body or an encrypted payload.
func worthNotifying(el *stanza.Element) bool {
	if el.Local != "message" {
		return false
	}
	switch el.Get("type") {
	case "", "normal", "chat":
	default:
		return false
	}
	for _, n := range el.Nodes {
		c := n.Elem
		if c == nil {
			continue
		}
		if c.Local == "body" && c.Space == el.Space {
			return true
		}
		if c.Space == nsCarbons && c.Local == "received" {
			// A copy of a message another resource got (XEP-0280) wakes a
			// hibernated phone as the message itself would.
			if inner := c.Child(nsForward, "forwarded").Child(stanza.NSClient, "message"); inner != nil && inner.Child(nsCarbons, "received") == nil {
				return worthNotifying(inner)
			}
		}
		for _, ns := range encrypted {
			if c.Space == ns && c.Local == "encrypted" || c.Space == ns && c.Local == "openpgp" {
				return true
			}
		}
	}
	return false
}

// undeliverable is the Undeliverable hook: no session took the message.
// It passes: offline storage, after this module, keeps the message.
func (p *pusher) undeliverable(ctx context.Context, el *stanza.Element, from, to stanza.JID) (xeps.Verdict, *stanza.Error) {
	if worthNotifying(el) {
		p.notify(ctx, to.Bare(), from, el, "")
	}
	return xeps.Pass, nil
}

// forSession is the ForSession hook: a message queued for a hibernated
// session (detached, XEP-0198) wakes its client.
func (p *pusher) forSession(ctx context.Context, s xeps.Session, el *stanza.Element) xeps.Verdict {
	if s.State() != xeps.SessionDetached || !worthNotifying(el) {
		return xeps.Pass
	}
	from, _ := stanza.ParseJID(el.Get("from"))
	p.notify(ctx, s.Address().Bare(), from, el, s.Address().Resourcepart())
	return xeps.Pass
}

// available is the OnAvailable hook: the user is back, the count restarts.
func (p *pusher) available(_ context.Context, full stanza.JID, _ bool) {
	p.mu.Lock()
	delete(p.counts, full.Bare().String())
	p.mu.Unlock()
}

func (p *pusher) accountDeleted(_ context.Context, user stanza.JID) error {
	prefix := string(xeps.UserKeyPrefix(user.Domainpart(), user.Localpart()))
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.counts, user.Bare().String())
	for k, r := range p.regs {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			if r.timer != nil {
				r.timer.Stop()
			}
			delete(p.regs, k)
		}
	}
	return nil
}

// notify counts a message for acct and notifies its registrations now or,
// when rate-limited, later: all of them, or with resource set (a hibernated
// session) those that session registered (and any whose resource is not
// known).
func (p *pusher) notify(ctx context.Context, acct, from stanza.JID, el *stanza.Element, resource string) {
	keys, regs, err := p.registrations(ctx, acct)
	if err != nil {
		p.log.Error("reading push registrations", "jid", acct.String(), "err", err)
		return
	}
	if resource != "" {
		n := 0
		for i := range regs {
			if regs[i].Resource == "" || regs[i].Resource == resource {
				keys[n], regs[n] = keys[i], regs[i]
				n++
			}
		}
		keys, regs = keys[:n], regs[:n]
	}
	if len(regs) == 0 {
		return
	}
	body := ""
	if p.cfg.IncludeBody {
		body = el.Child(el.Space, "body").Text()
		if len(body) > maxBody {
			body = truncate(body, maxBody)
		}
	}
	sender := from.Bare().String()
	now := p.now()
	var send []*regState
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.counts[acct.String()]++
	for i, k := range keys {
		r := p.regs[string(k)]
		if r == nil {
			r = &regState{reg: regs[i], owner: acct}
			p.regs[string(k)] = r
		}
		r.sender, r.body = sender, body
		switch {
		case r.inflight:
			r.pending = true
		case !r.last.IsZero() && now.Sub(r.last) < p.interval:
			r.pending = true
			if r.timer == nil {
				kk := string(k)
				r.timer = time.AfterFunc(p.interval-now.Sub(r.last), func() { p.fire(kk) })
			}
		default:
			r.inflight, r.pending, r.last = true, false, now
			send = append(send, r)
		}
	}
	var msgs []*stanza.Element
	for _, r := range send {
		msgs = append(msgs, p.notification(r))
	}
	p.mu.Unlock()
	for i, r := range send {
		p.publish(string(keyOf(r)), r, msgs[i])
	}
}

func keyOf(r *regState) []byte { return key(r.owner, r.reg.JID.String(), r.reg.Node) }

// truncate cuts s to at most n bytes, at a rune boundary.
func truncate(s string, n int) string {
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// fire sends the notification a rate-limited registration holds back.
func (p *pusher) fire(k string) {
	p.mu.Lock()
	r := p.regs[k]
	if r == nil || p.stopped {
		p.mu.Unlock()
		return
	}
	r.timer = nil
	if !r.pending || r.inflight {
		p.mu.Unlock()
		return
	}
	r.inflight, r.pending, r.last = true, false, p.now()
	msg := p.notification(r)
	p.mu.Unlock()
	p.publish(k, r, msg)
}

// notification builds the publish iq for r (under p.mu).
func (p *pusher) notification(r *regState) *stanza.Element {
	form := stanza.New(NSData, "x").Set("type", "submit").
		Append(field("FORM_TYPE", NSSummary)).
		Append(field("message-count", strconv.Itoa(max(p.counts[r.owner.String()], 1))))
	if p.cfg.IncludeSender && r.sender != "" {
		form.Append(field("last-message-sender", r.sender))
	}
	if p.cfg.IncludeBody && r.body != "" {
		form.Append(field("last-message-body", r.body))
	}
	pubsub := stanza.New(NSPubSub, "pubsub").Append(
		stanza.New(NSPubSub, "publish").Set("node", r.reg.Node).Append(
			stanza.New(NSPubSub, "item").Append(
				stanza.New(NS, "notification").Append(form))))
	if r.reg.Options != nil {
		pubsub.Append(stanza.New(NSPubSub, "publish-options").Append(r.reg.optionsForm()))
	}
	return stanza.New(stanza.NSClient, "iq").Set("type", "set").
		Set("from", r.owner.String()).Set("to", r.reg.JID.String()).Append(pubsub)
}

// publish sends one notification and records the answer: an error or no
// answer within the timeout counts as a failure; MaxFailures in a row
// remove the registration.
func (p *pusher) publish(k string, r *regState, iq *stanza.Element) {
	p.mu.Lock()
	base := p.ctx
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(base, p.timeout)
	p.host.SendIQAsync(ctx, iq, func(res *stanza.Element, err error) {
		cancel()
		p.answered(k, r, err)
	})
}

func (p *pusher) answered(k string, r *regState, err error) {
	p.mu.Lock()
	if p.regs[k] != r {
		p.mu.Unlock()
		return // disabled or replaced meanwhile
	}
	r.inflight = false
	if err == nil {
		r.failures = 0
	} else {
		r.failures++
	}
	failures := r.failures // for the logs, after the lock
	drop := err != nil && failures >= p.cfg.MaxFailures
	again := !drop && r.pending && r.timer == nil && !p.stopped
	if drop {
		delete(p.regs, k)
		if r.timer != nil {
			r.timer.Stop()
		}
	}
	if again {
		// What came while this one was in flight goes at last+interval.
		wait := max(p.interval-p.now().Sub(r.last), 0)
		r.timer = time.AfterFunc(wait, func() { p.fire(k) })
	}
	p.mu.Unlock()
	if err != nil {
		p.log.Warn("push notification failed", "jid", r.owner.String(), "app", r.reg.JID.String(), "failures", failures, "err", err)
	}
	if drop {
		p.log.Warn("push registration disabled after repeated failures", "jid", r.owner.String(), "app", r.reg.JID.String(), "node", r.reg.Node, "failures", failures)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.store.Delete(ctx, []byte(k)); err != nil {
			p.log.Error("removing a failing push registration", "jid", r.owner.String(), "err", err)
		}
	}
}
