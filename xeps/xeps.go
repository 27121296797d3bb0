// Package xeps defines how a protocol extension plugs into the server: the
// Module interface and the Host that modules register on. xeps/ping is the
// reference module; copy it to start a new one.
package xeps

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sort"
	"sync"

	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
)

// A Module is one protocol extension: a XEP, or a part of RFC 6121 such as the roster.
type Module interface {
	// Name is the module's config section and log attribute, e.g. "ping".
	Name() string
	// Register declares what the module handles, advertises and stores.
	// It runs once at startup, before any listener accepts a connection.
	Register(h *Host) error
}

// Target says whom an IQ handler answers for.
type Target int

const (
	// ToServer: IQs addressed to one of our domains (or with no 'to' on s2s).
	ToServer Target = iota
	// ToAccount: IQs addressed to a local user's bare JID, answered by the
	// server on the user's behalf (RFC 6120 §10.3.3), including a client's
	// IQs with no 'to' at all.
	ToAccount
)

func (t Target) String() string {
	if t == ToAccount {
		return "account"
	}
	return "server"
}

// IQHandlerFunc answers one IQ get/set. It returns the result payload (nil for
// an empty result) or an error: a *stanza.Error becomes that error reply, any
// other error becomes internal-server-error and is logged once.
type IQHandlerFunc func(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error)

// Identity is a disco#info identity (XEP-0030 §3.1).
type Identity struct{ Category, Type, Name string }

// Session is a local client session, as hooks see it.
type Session = *session.Session

// The states of a session a module may need to tell apart (a hibernated
// XEP-0198 session is SessionDetached with stream management on).
const (
	SessionDetached = session.Detached
	SessionClosed   = session.Closed
)

// SessionFromContext returns the local session a stanza came from (nil for
// one from elsewhere: a peer server, the server itself).
func SessionFromContext(ctx context.Context) Session { return session.FromContext(ctx) }

// Config is what the server hands the Host at startup.
type Config struct {
	Domains []string
	Logger  *slog.Logger
	DB      *storage.DB
	// Sessions is the registry of bound sessions; nil makes an empty one.
	Sessions *session.Registry
}

type iqKey struct {
	typ, space, local string
	to                Target
}

// Host is the registry modules register on, and the server-side API they call.
// Registration happens once at startup; afterwards the Host is read-only, so
// the stanza path reads it without locks.
type Host struct {
	cfg    Config
	module string // the module registering now, for logs and panics

	iq              map[iqKey]IQHandlerFunc
	features        []string // server disco#info
	accountFeatures []string // bare-JID disco#info
	identities      []Identity
	onBound         []func(context.Context, Session)
	onClosed        []func(context.Context, Session)
	hooks           hooks
	pipe            pipeline // the stanza pipeline's hooks (pipeline.go)
	services        services // the modules' own domains (domains.go)
	accounts        accountHooks
	modules         []Module             // registered, in order, for Start and Stop
	nonzas          map[string]NonzaFunc // client.go
	bind2           []bind2Handler       // client.go

	pending pendingIQs // server-originated IQ requests waiting for an answer

	send    func(context.Context, *stanza.Element)      // set once by SetSender before serving
	deliver func(context.Context, *stanza.Element) bool // set once by SetDeliverer before serving
	backlog func(context.Context, *stanza.Element) bool // set once by SetDeliverer before serving
}

// NewHost returns an empty Host.
func NewHost(cfg Config) *Host {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Sessions == nil {
		cfg.Sessions = session.NewRegistry()
	}
	return &Host{cfg: cfg, iq: map[iqKey]IQHandlerFunc{}}
}

// Register registers modules in order. The order is the order of the slice in
// cmd/xmppd/modules.go, never a map's.
func (h *Host) Register(mods ...Module) error {
	for _, m := range mods {
		h.module = m.Name()
		if err := m.Register(h); err != nil {
			return fmt.Errorf("module %s: %w", m.Name(), err)
		}
		h.modules = append(h.modules, m)
	}
	h.module = ""
	sort.Strings(h.features)
	sort.Strings(h.accountFeatures)
	return nil
}

// HandleIQ routes IQs of this type whose payload is {space}local, addressed to
// target, to fn. Registering the same key twice panics at startup: two
// handlers for one stanza would leave the winner undefined.
func (h *Host) HandleIQ(typ, space, local string, target Target, fn IQHandlerFunc) {
	k := iqKey{typ, space, local, target}
	if _, dup := h.iq[k]; dup {
		panic(fmt.Sprintf("xeps: module %s registers iq %s {%s}%s to %s twice", h.module, typ, space, local, target))
	}
	mod := h.module
	h.iq[k] = func(ctx context.Context, iq *stanza.IQ) (el *stanza.Element, err error) {
		defer func() {
			if p := recover(); p != nil {
				h.cfg.Logger.Error("handler panic", "module", mod, "panic", p, "stack", string(debug.Stack()))
				el, err = nil, stanza.NewError("internal-server-error")
			}
		}()
		return fn(ctx, iq)
	}
}

// AdvertiseFeature adds a feature to the server's disco#info.
func (h *Host) AdvertiseFeature(ns string) {
	if !slices.Contains(h.features, ns) {
		h.features = append(h.features, ns)
	}
}

// AdvertiseAccountFeature adds a feature to every account's (bare JID's) disco#info.
func (h *Host) AdvertiseAccountFeature(ns string) {
	if !slices.Contains(h.accountFeatures, ns) {
		h.accountFeatures = append(h.accountFeatures, ns)
	}
}

// AdvertiseIdentity adds an identity to the server's disco#info.
func (h *Host) AdvertiseIdentity(id Identity) { h.identities = append(h.identities, id) }

// Features lists the server's disco#info features, sorted.
func (h *Host) Features() []string { return h.features }

// AccountFeatures lists the features of an account's bare JID, sorted.
func (h *Host) AccountFeatures() []string { return h.accountFeatures }

// Identities lists the server's identities in registration order.
func (h *Host) Identities() []Identity { return h.identities }

// OnSessionBound runs fn after a client session binds a resource.
func (h *Host) OnSessionBound(fn func(context.Context, Session)) { h.onBound = append(h.onBound, fn) }

// OnSessionClosed runs fn after a bound client session ends, cleanly or not.
func (h *Host) OnSessionClosed(fn func(context.Context, Session)) {
	h.onClosed = append(h.onClosed, fn)
}

// Logger returns the logger scoped to the registering module. Call it in
// Register and keep it: afterwards no module is registering.
func (h *Host) Logger() *slog.Logger { return h.cfg.Logger.With("module", h.module) }

// Domains lists the domains this server serves.
func (h *Host) Domains() []string { return h.cfg.Domains }

// IsLocal reports whether domain is one of ours: a domain with accounts,
// not a module's service domain (see Serves).
func (h *Host) IsLocal(domain string) bool { return slices.Contains(h.cfg.Domains, domain) }

// Send routes a stanza a module originates (a push, a reply sent later).
func (h *Host) Send(ctx context.Context, el *stanza.Element) {
	if h.send != nil {
		h.send(ctx, el)
	}
}

// Deliver hands a stanza straight to a local user's sessions, skipping the
// routing hooks (see router.Router.Deliver). It reports whether a session took it.
func (h *Host) Deliver(ctx context.Context, el *stanza.Element) bool {
	if h.deliver == nil {
		return false
	}
	return h.deliver(ctx, el)
}

// DeliverBacklog hands a stanza to the session of its full 'to' JID and, when
// that session's queue is full, waits for room (until ctx ends) instead of
// dropping the client: for a backlog the client asked for, delivered on its
// own goroutine (offline messages after its initial presence).
func (h *Host) DeliverBacklog(ctx context.Context, el *stanza.Element) bool {
	if h.backlog == nil {
		return h.Deliver(ctx, el)
	}
	return h.backlog(ctx, el)
}

// SetDeliverer connects Deliver to the router, before serving.
func (h *Host) SetDeliverer(deliver func(context.Context, *stanza.Element) bool) { h.deliver = deliver }

// SetBacklogDeliverer connects DeliverBacklog to the router, before serving;
// without it DeliverBacklog is Deliver.
func (h *Host) SetBacklogDeliverer(backlog func(context.Context, *stanza.Element) bool) {
	h.backlog = backlog
}

// SetSender connects Send to the router. cmd/xmppd wires it once, before any
// listener starts, so the stanza path reads it without a lock.
func (h *Host) SetSender(send func(context.Context, *stanza.Element)) { h.send = send }

// IQHandler finds the handler for an IQ get/set, or nil.
func (h *Host) IQHandler(typ, space, local string, target Target) IQHandlerFunc {
	return h.iq[iqKey{typ, space, local, target}]
}

// SessionBound runs the OnSessionBound hooks.
func (h *Host) SessionBound(ctx context.Context, s Session) {
	for _, fn := range h.onBound {
		fn(ctx, s)
	}
}

// SessionClosed runs the OnSessionClosed hooks.
func (h *Host) SessionClosed(ctx context.Context, s Session) {
	for _, fn := range h.onClosed {
		fn(ctx, s)
	}
}

// Sessions is the registry of bound sessions, for modules that read it.
func (h *Host) Sessions() *session.Registry { return h.cfg.Sessions }

// ---- server-originated IQ requests ----

// MaxPendingIQs bounds the IQ requests the server has sent and still waits
// for (SendIQ, SendIQAsync); past it a new request fails at once with
// ErrTooManyIQs.
const MaxPendingIQs = 4096

// ErrTooManyIQs: MaxPendingIQs requests are already waiting for an answer.
var ErrTooManyIQs = errors.New("xeps: too many iq requests waiting for an answer")

// pendingIQ is one request waiting for its answer.
type pendingIQ struct {
	to, from stanza.JID // the request's addresses: the answer comes from 'to'
	done     func(*stanza.Element, error)
	stop     func() bool // stops the context.AfterFunc
}

type pendingIQs struct {
	mu sync.Mutex
	m  map[string]*pendingIQ // id →
}

// take removes and returns the request with this id.
func (p *pendingIQs) take(id string) *pendingIQ {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.m[id]
	delete(p.m, id)
	return w
}

// SendIQ sends an iq get or set the server originates (for example a
// disco#info query to a client) and waits for the answer or the end of ctx;
// give ctx a timeout. See SendIQAsync for the addressing and the answer.
func (h *Host) SendIQ(ctx context.Context, iq *stanza.Element) (*stanza.Element, error) {
	ch := make(chan struct{})
	var res *stanza.Element
	var rerr error
	h.SendIQAsync(ctx, iq, func(el *stanza.Element, err error) {
		res, rerr = el, err
		close(ch)
	})
	<-ch
	return res, rerr
}

// SendIQAsync sends an iq get or set the server originates and returns at
// once; done gets the answer later. iq needs a 'to'; a missing 'from' becomes
// the domain of 'to' when it is ours, else our first domain. The iq's id is
// replaced with a fresh random one.
//
// Only an iq result or error with that id coming FROM the request's 'to'
// (and addressed to its 'from', or with no 'to') is the answer: an answer
// with the right id from anyone else is dropped and the request keeps
// waiting. done runs exactly once: with the answer (a result and nil, or an
// error stanza and its *stanza.Error), on the goroutine that routed it, so
// what done records is in place before the answering session's next stanza
// is read; or with ctx's error when ctx ends first, on a goroutine of its
// own; or at once, on the caller's goroutine, with an error when the request
// cannot be sent. done must not block.
func (h *Host) SendIQAsync(ctx context.Context, iq *stanza.Element, done func(*stanza.Element, error)) {
	if t := iq.Get("type"); iq.Local != "iq" || t != "get" && t != "set" {
		done(nil, fmt.Errorf("xeps: SendIQ needs an iq get or set, not %s type %q", iq.Local, t))
		return
	}
	to, err := stanza.ParseJID(iq.Get("to"))
	if err != nil {
		done(nil, fmt.Errorf("xeps: SendIQ: 'to' %q: %w", iq.Get("to"), err))
		return
	}
	if iq.Get("from") == "" {
		from := to.Domainpart()
		if !h.IsLocal(from) && len(h.cfg.Domains) > 0 {
			from = h.cfg.Domains[0]
		}
		iq.Set("from", from)
	}
	from, err := stanza.ParseJID(iq.Get("from"))
	if err != nil {
		done(nil, fmt.Errorf("xeps: SendIQ: 'from' %q: %w", iq.Get("from"), err))
		return
	}
	if err := ctx.Err(); err != nil {
		done(nil, err)
		return
	}
	id := "xmppd-" + rand.Text() // 128 random bits (crypto/rand)
	iq.Set("id", id)
	w := &pendingIQ{to: to, from: from, done: done}

	h.pending.mu.Lock()
	if len(h.pending.m) >= MaxPendingIQs {
		h.pending.mu.Unlock()
		done(nil, ErrTooManyIQs)
		return
	}
	if h.pending.m == nil {
		h.pending.m = map[string]*pendingIQ{}
	}
	h.pending.m[id] = w
	// Set stop under the lock: IQResponse reads it only after taking w
	// from the map, under the same lock.
	w.stop = context.AfterFunc(ctx, func() {
		if h.pending.take(id) != nil {
			done(nil, ctx.Err())
		}
	})
	h.pending.mu.Unlock()

	h.Send(ctx, iq)
}

// IQResponse hands the router an iq result or error addressed to one of our
// domains (or with no 'to'). When it answers a request of SendIQ from the
// JID that request went to, the request's done runs (here, on the caller's
// goroutine) and IQResponse reports true; anything else (no such request,
// the right id from another JID) is left for the router to drop.
func (h *Host) IQResponse(el *stanza.Element) bool {
	if t := el.Get("type"); el.Local != "iq" || t != "result" && t != "error" {
		return false
	}
	id := el.Get("id")
	from, err := stanza.ParseJID(el.Get("from"))
	if err != nil || id == "" {
		return false
	}
	h.pending.mu.Lock()
	w := h.pending.m[id]
	ok := w != nil && from.Equal(w.to)
	if ok && el.Get("to") != "" {
		to, err := stanza.ParseJID(el.Get("to"))
		ok = err == nil && to.Equal(w.from)
	}
	if !ok {
		h.pending.mu.Unlock()
		return false // never trust the id alone (a spoofed answer)
	}
	delete(h.pending.m, id)
	stop := w.stop
	h.pending.mu.Unlock()
	// If ctx ended at the same moment, its AfterFunc finds nothing to take:
	// done still runs once, with the answer.
	stop()
	if el.Get("type") == "error" {
		se := stanza.ParseError(el)
		if se == nil {
			se = stanza.NewError("undefined-condition")
		}
		w.done(el, se)
		return true
	}
	w.done(el, nil)
	return true
}

// PendingIQs reports how many SendIQ requests wait for an answer (for tests
// and metrics).
func (h *Host) PendingIQs() int {
	h.pending.mu.Lock()
	defer h.pending.mu.Unlock()
	return len(h.pending.m)
}
