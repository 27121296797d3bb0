// Package xeps defines how a protocol extension plugs into the server: the
// Module interface and the Host that modules register on. xeps/ping is the
// reference module; copy it to start a new one.
package xeps

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sort"

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

// Session is what hooks learn about a client session.
type Session interface {
	Address() stanza.JID
}

// Config is what the server hands the Host at startup.
type Config struct {
	Domains []string
	Logger  *slog.Logger
	DB      *storage.DB
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

	send    func(context.Context, *stanza.Element)      // set once by SetSender before serving
	deliver func(context.Context, *stanza.Element) bool // set once by SetDeliverer before serving
	backlog func(context.Context, *stanza.Element) bool // set once by SetDeliverer before serving
}

// NewHost returns an empty Host.
func NewHost(cfg Config) *Host {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
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

// Logger returns the logger scoped to the registering module.
func (h *Host) Logger() *slog.Logger { return h.cfg.Logger.With("module", h.module) }

// Domains lists the domains this server serves.
func (h *Host) Domains() []string { return h.cfg.Domains }

// IsLocal reports whether domain is one of ours.
func (h *Host) IsLocal(domain string) bool { return slices.Contains(h.cfg.Domains, domain) }

// KeyValue returns the named key-value store. Modules ask for it in Register.
func (h *Host) KeyValue(name string) *storage.KeyValue { return h.cfg.DB.KeyValue(name) }

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
