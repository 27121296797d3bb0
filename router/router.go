// Package router applies the delivery rules of RFC 6120 §10 and RFC 6121 §8
// to every stanza: to one of our domains, to a local bare or full JID, or to a
// remote domain. It knows sessions and federation only through the interfaces
// declared here, so it never imports c2s or s2s.
package router

import (
	"context"
	"log/slog"
	"net"
	"slices"

	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// Session is a bound local client session.
type Session = *session.Session

// LocalSessions finds the bound sessions of local users: *session.Registry.
type LocalSessions interface {
	// Sessions appends the bound sessions of a bare JID to buf and returns it.
	Sessions(bare string, buf []*session.Session) []*session.Session
	// Session returns the session bound to a full JID, or nil.
	Session(full string) *session.Session
}

// Modules is what the router needs of the modules: the handlers and hooks
// they registered, and which domains are served here. *xeps.Host implements it.
type Modules interface {
	Domains() []string
	ServiceDomain(domain string) xeps.DomainHandler
	IQHandler(typ, space, local string, target xeps.Target) xeps.IQHandlerFunc
	IQResponse(el *stanza.Element) bool
	OutboundPresence() xeps.PresenceFunc
	InboundPresence() xeps.PresenceFunc
	HasHooks(stage xeps.Stage) bool
	Run(ctx context.Context, stage xeps.Stage, el *stanza.Element, from, to stanza.JID) (xeps.Verdict, *stanza.Error)
	HasSessionHooks() bool
	RunSession(ctx context.Context, s *session.Session, el *stanza.Element) xeps.Verdict
	// The seams of a bound client's stream (xeps/client.go).
	Nonza(space string) xeps.NonzaFunc
	Bind2Features() []string
	Bind2(space string) xeps.Bind2Func
}

var _ Modules = (*xeps.Host)(nil)

// Remote delivers stanzas to other domains (the s2s layer). It reports false
// when it cannot; the router then bounces the stanza.
type Remote interface {
	Send(ctx context.Context, domain string, el *stanza.Element) bool
}

// Router routes stanzas. It holds no lock of its own: the session registry is
// sharded and the Host is read-only after startup.
type Router struct {
	host     Modules
	sessions LocalSessions
	remote   Remote
	log      *slog.Logger
	own      ownAddresses
	// domains are the server's own domains (Modules.Domains, fixed at
	// startup), kept here so that the check on every stanza's 'to' is a
	// plain slice search: through the Modules interface the domain string
	// would escape, one allocation per stanza.
	domains []string
}

// New returns a router. remote may be nil (no federation): stanzas for other
// domains then bounce with remote-server-not-found.
func New(host Modules, sessions LocalSessions, remote Remote, log *slog.Logger) *Router {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{host: host, sessions: sessions, remote: remote, log: log, own: newOwnAddresses(), domains: host.Domains()}
}

// notOurDomain routes a stanza for a domain without accounts here: a
// module's service domain, one of this machine's IP addresses, or another
// server. (Its own function, so that the domain string it passes on does not
// make route's check allocate.)
func (r *Router) notOurDomain(ctx context.Context, el *stanza.Element, to stanza.JID) {
	domain := to.Domainpart()
	if svc := r.host.ServiceDomain(domain); svc != nil {
		svc(ctx, el, to) // a module's own domain (conference., upload., ...)
		return
	}
	if r.own.has(domain) {
		// Addressed to one of this machine's IP addresses, as a client that
		// connected to one may do for server queries: that is us, never a
		// remote server to dial.
		if to.Localpart() == "" {
			r.toServer(ctx, el, to)
		} else {
			r.bounce(ctx, el, stanza.Errorf("item-not-found", "there are no accounts at an IP address of this server; use its domain"))
		}
		return
	}
	if r.remote != nil && r.remote.Send(ctx, domain, el) {
		return
	}
	r.bounce(ctx, el, stanza.NewError("remote-server-not-found"))
}

// isLocal reports whether domain is one of the server's own.
func (r *Router) isLocal(domain string) bool { return slices.Contains(r.domains, domain) }

// RouteFromClient is the entry for stanzas a local client sent, their 'from'
// stamped with the session's full JID. Presence goes to the presence module's
// outbound processing (RFC 6121 §3, §4); everything else passes the outbound
// filters (blocking) and is routed.
func (r *Router) RouteFromClient(ctx context.Context, el *stanza.Element) {
	if el.Local == "presence" {
		if h := r.host.OutboundPresence(); h != nil {
			from, err := stanza.ParseJID(el.Get("from"))
			if err != nil {
				return
			}
			var to stanza.JID
			if s := el.Get("to"); s != "" {
				if to, err = stanza.ParseJID(s); err != nil {
					r.bounce(ctx, el, stanza.Errorf("jid-malformed", "the 'to' address is not a valid JID"))
					return
				}
			}
			h(ctx, el, from, to)
			return
		}
	}
	if r.host.HasHooks(xeps.FromClient) && el.Get("to") != "" {
		// Parsed once here for both the hooks and the routing.
		if to, err := stanza.ParseJID(el.Get("to")); err == nil {
			if r.pass(ctx, xeps.FromClient, el, to) {
				r.route(ctx, el, to)
			}
			return
		}
	}
	r.Route(ctx, el)
}

// pass runs a stage's hooks on el, addressed to to. False means a hook
// consumed or refused it (and, for a refusal with an error, it bounced).
func (r *Router) pass(ctx context.Context, stage xeps.Stage, el *stanza.Element, to stanza.JID) bool {
	from, err := stanza.ParseJID(el.Get("from"))
	if err != nil {
		return true
	}
	v, serr := r.host.Run(ctx, stage, el, from, to)
	if v == xeps.Refuse && serr != nil {
		r.bounce(ctx, el, serr)
	}
	return v == xeps.Pass
}

// isSubscription reports presence types handled by the inbound presence
// processing of the recipient's server (RFC 6121 §3, §4.3).
func isSubscription(typ string) bool {
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe":
		return true
	}
	return false
}

// Route delivers one stanza whose 'from' the caller has already stamped (c2s)
// or checked (s2s). An empty 'to' means the sender's own account
// (RFC 6120 §10.3), except for presence, which is then a broadcast.
func (r *Router) Route(ctx context.Context, el *stanza.Element) {
	toAttr := el.Get("to")
	if toAttr == "" {
		r.routeNoTo(ctx, el)
		return
	}
	to, err := stanza.ParseJID(toAttr)
	if err != nil {
		r.bounce(ctx, el, stanza.Errorf("jid-malformed", "the 'to' address is not a valid JID"))
		return
	}
	r.route(ctx, el, to)
}

// route is Route once 'to' is parsed.
func (r *Router) route(ctx context.Context, el *stanza.Element, to stanza.JID) {
	if !r.isLocal(to.Domainpart()) {
		r.notOurDomain(ctx, el, to)
		return
	}
	if to.Localpart() == "" {
		r.toServer(ctx, el, to)
		return
	}
	if r.host.HasHooks(xeps.ForAccount) && !r.pass(ctx, xeps.ForAccount, el, to) {
		return
	}
	if el.Local == "presence" && isSubscription(el.Get("type")) {
		if h := r.host.InboundPresence(); h != nil {
			if from, err := stanza.ParseJID(el.Get("from")); err == nil {
				h(ctx, el, from, to)
			}
			return
		}
	}
	if to.Resourcepart() == "" {
		r.toBare(ctx, el, to)
	} else {
		r.toFull(ctx, el, to)
	}
}

// Deliver hands a stanza straight to a local user's sessions, with none of
// Route's processing (no filters, no presence hooks, no offline storage): to
// a full JID, that session if bound; to a bare JID, presence to every
// available resource and messages by the rules of messageToBare minus
// storage; IQs to a bare JID are not delivered. Modules use it (through
// xeps.Host.Deliver) for what they have already processed: roster pushes,
// subscription requests, presence broadcasts, stored messages.
// It reports whether at least one session took the stanza.
func (r *Router) Deliver(ctx context.Context, el *stanza.Element) bool {
	to, err := stanza.ParseJID(el.Get("to"))
	if err != nil || !r.isLocal(to.Domainpart()) || to.Localpart() == "" {
		return false
	}
	if to.Resourcepart() != "" {
		if s := r.sessions.Session(to.String()); s != nil {
			return r.deliverTo(ctx, s, el)
		}
		return false
	}
	var buf [8]Session
	sessions := r.sessions.Sessions(to.String(), buf[:0])
	delivered := false
	switch el.Local {
	case "presence":
		for _, s := range sessions {
			if ok, _ := s.Available(); ok {
				delivered = r.deliverTo(ctx, s, el) || delivered
			}
		}
	case "message":
		best := -1
		for _, s := range sessions {
			if ok, prio := s.Available(); ok && prio > best {
				best = prio
			}
		}
		for _, s := range sessions {
			if ok, prio := s.Available(); ok && best >= 0 && prio == best {
				delivered = r.deliverTo(ctx, s, el) || delivered
			}
		}
	}
	return delivered
}

// deliverTo hands el to one session, through the ForSession stage. False
// means the session did not take it (it is closing, or was just dropped as
// a slow consumer): the caller decides where el goes instead.
func (r *Router) deliverTo(ctx context.Context, s Session, el *stanza.Element) bool {
	if r.host.HasSessionHooks() && r.host.RunSession(ctx, s, el) != xeps.Pass {
		return true // held back or consumed by a hook, which now owns it
	}
	return s.Deliver(el)
}

// Undeliverable takes a stanza that the session s did not take or never
// wrote to its client (left in its queue when it closed), so that it is
// never silently lost (RFC 6121 §8): a message goes to the user's other
// resources, else to the undeliverable stage (offline storage), else it
// bounces; a request bounces; results, errors and presence are dropped, as
// for a resource that is gone (RFC 6121 §8.5.3.2).
func (r *Router) Undeliverable(ctx context.Context, s Session, el *stanza.Element) {
	to, err := stanza.ParseJID(el.Get("to"))
	if err != nil {
		return
	}
	switch el.Local {
	case "iq":
		if t := el.Get("type"); t == "get" || t == "set" {
			r.bounce(ctx, el, stanza.Errorf("service-unavailable", "the recipient disconnected before the request reached it"))
		}
	case "message":
		switch el.Get("type") {
		case "error", "headline":
			return // never stored, never bounced
		case "groupchat":
			r.bounce(ctx, el, stanza.Errorf("service-unavailable", "the recipient disconnected before the message reached it"))
			return
		}
		if to.Resourcepart() == "" && r.othersTook(to, s) {
			return // a copy of a bare-JID message: the other resources have it
		}
		r.messageToBare(ctx, el, to.Bare(), s)
	}
}

// othersTook reports whether a message to bare went to another available
// resource than s as well: one of non-negative priority.
func (r *Router) othersTook(bare stanza.JID, s Session) bool {
	var buf [8]Session
	for _, o := range r.sessions.Sessions(bare.String(), buf[:0]) {
		if ok, prio := o.Available(); ok && prio >= 0 && o != s {
			return true
		}
	}
	return false
}

// DeliverBacklog hands a stanza to one local full JID's session, waiting for
// room in its queue instead of disconnecting it (see Session.DeliverWait):
// for a backlog the session asked for, such as its offline messages.
func (r *Router) DeliverBacklog(ctx context.Context, el *stanza.Element) bool {
	if s := r.sessions.Session(el.Get("to")); s != nil {
		if r.host.HasSessionHooks() && r.host.RunSession(ctx, s, el) != xeps.Pass {
			return true
		}
		return s.DeliverWait(ctx, el)
	}
	return false
}

// routeNoTo handles a stanza without 'to' (RFC 6120 §10.3): it is for the sender's account.
func (r *Router) routeNoTo(ctx context.Context, el *stanza.Element) {
	from, err := stanza.ParseJID(el.Get("from"))
	if err != nil {
		return // only our own sessions route without 'to', and they stamp a valid from
	}
	switch el.Local {
	case "presence":
		// Broadcast presence: the user's other available resources get it
		// (RFC 6121 §4.2.2, §4.4.2); contacts are the presence module's job.
		if el.Get("type") == "" || el.Get("type") == "unavailable" {
			r.toOwnResources(ctx, el, from)
		}
	case "iq":
		r.toAccount(ctx, el, from.Bare())
	case "message":
		r.toBare(ctx, el, from.Bare())
	}
}

// ownAddresses are this machine's IP addresses, as domains: a stanza to
// one of them is for this server.
type ownAddresses map[string]bool

func newOwnAddresses() ownAddresses {
	own := ownAddresses{"127.0.0.1": true, "::1": true}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			own[n.IP.String()] = true
		}
	}
	return own
}

// has reports whether domain is an IP literal of this machine (a JID's
// IPv6 domain is written in brackets, RFC 7622 §3.2).
func (o ownAddresses) has(domain string) bool {
	if len(domain) > 2 && domain[0] == '[' && domain[len(domain)-1] == ']' {
		domain = domain[1 : len(domain)-1]
	}
	ip := net.ParseIP(domain)
	return ip != nil && (ip.IsLoopback() || o[ip.String()])
}

// toOwnResources delivers a user's broadcast presence to the user's
// available resources, the sender included (RFC 6121 §4.2.2, §4.4.2).
func (r *Router) toOwnResources(ctx context.Context, el *stanza.Element, from stanza.JID) {
	var buf [8]Session
	for _, s := range r.sessions.Sessions(from.Bare().String(), buf[:0]) {
		if ok, _ := s.Available(); ok || s.Address().Equal(from) {
			r.deliverTo(ctx, s, el)
		}
	}
}

// toServer handles stanzas to one of our domains.
func (r *Router) toServer(ctx context.Context, el *stanza.Element, to stanza.JID) {
	if el.Local == "iq" {
		r.dispatchIQ(ctx, el, xeps.ToServer)
	}
	// Messages and presence to the server itself have no handler yet; RFC 6120
	// §10.3 lets the server ignore them.
}

// toAccount handles an IQ answered by the server for an account's bare JID.
func (r *Router) toAccount(ctx context.Context, el *stanza.Element, to stanza.JID) {
	r.dispatchIQ(ctx, el, xeps.ToAccount)
}

// dispatchIQ runs the module registered for an IQ get/set and routes its
// answer. A result or error is offered to the Host, which wakes the request
// it answers (xeps.Host.SendIQ: the server's own requests, to whose 'from'
// the answer is addressed); those nobody waits for are dropped (RFC 6120 §8.2.3).
func (r *Router) dispatchIQ(ctx context.Context, el *stanza.Element, target xeps.Target) {
	iq, err := stanza.ParseIQ(el)
	if err != nil {
		r.bounce(ctx, el, stanza.AsError(err))
		return
	}
	if iq.Type != "get" && iq.Type != "set" {
		r.host.IQResponse(el)
		return
	}
	h := r.host.IQHandler(iq.Type, iq.Payload.Space, iq.Payload.Local, target)
	if h == nil {
		r.bounce(ctx, el, stanza.NewError("service-unavailable"))
		return
	}
	payload, err := h(ctx, iq)
	if err != nil {
		se := stanza.AsError(err)
		if se.Condition == "internal-server-error" {
			r.log.Error("iq handler failed", "payload", iq.Payload.Space, "err", err)
		}
		r.bounce(ctx, el, se)
		return
	}
	res := iq.Result(payload)
	if res.Get("from") == "" && target == xeps.ToAccount {
		// The iq had no 'to': the answer comes from the user's bare JID (RFC 6120 §10.3.3).
		if from, err := stanza.ParseJID(el.Get("from")); err == nil {
			res.Set("from", from.Bare().String())
		}
	}
	r.Route(ctx, res)
}

// toBare handles stanzas to a local user's bare JID (RFC 6121 §8.5.2).
func (r *Router) toBare(ctx context.Context, el *stanza.Element, to stanza.JID) {
	switch el.Local {
	case "iq":
		r.toAccount(ctx, el, to)
	case "message":
		r.messageToBare(ctx, el, to, nil)
	case "presence":
		// Presence to a bare JID goes to every available resource (RFC 6121 §8.5.2.1.1).
		var buf [8]Session
		for _, s := range r.sessions.Sessions(to.String(), buf[:0]) {
			if ok, _ := s.Available(); ok {
				r.deliverTo(ctx, s, el)
			}
		}
	}
}

// messageToBare implements RFC 6121 §8.5.2.1.1 and §8.5.2.2.1. skip, if
// set, is a session that must not get the message (it failed to take it).
func (r *Router) messageToBare(ctx context.Context, el *stanza.Element, to stanza.JID, skip Session) {
	typ := el.Get("type")
	var buf [8]Session
	sessions := r.sessions.Sessions(to.String(), buf[:0])
	best := -1
	for _, s := range sessions {
		if ok, prio := s.Available(); ok && prio > best && s != skip {
			best = prio
		}
	}
	if typ == "error" {
		return // RFC 6121 §8.5.2.1.1: an error to a bare JID is silently ignored
	}
	if best >= 0 {
		if typ == "groupchat" {
			r.bounce(ctx, el, stanza.NewError("service-unavailable"))
			return
		}
		// Chat and normal messages go to every available resource of the
		// highest non-negative priority; headline to all non-negative ones.
		took := false
		for _, s := range sessions {
			if ok, prio := s.Available(); ok && s != skip && (prio == best || typ == "headline" && prio >= 0) {
				took = r.deliverTo(ctx, s, el) || took
			}
		}
		if took {
			return
		}
		// Every session it went to failed to take it (dropped as slow
		// consumers, closing): as if none were available.
	}
	if typ == "headline" {
		return // never bounced, never stored
	}
	// No available resource: chat and normal messages are offered for
	// storage (XEP-0160); what nobody takes is refused (§8.5.2.2.1).
	if typ != "groupchat" && r.undeliverable(ctx, el, to) {
		return
	}
	r.bounce(ctx, el, stanza.Errorf("service-unavailable", "the recipient is not available and the message could not be stored"))
}

// undeliverable offers a message for a local user that no session took to
// the Undeliverable stage; true when a hook took it (stored it offline).
func (r *Router) undeliverable(ctx context.Context, el *stanza.Element, to stanza.JID) bool {
	from, err := stanza.ParseJID(el.Get("from"))
	if err != nil {
		return false
	}
	v, _ := r.host.Run(ctx, xeps.Undeliverable, el, from, to)
	return v == xeps.Consume
}

// toFull handles stanzas to a local full JID (RFC 6121 §8.5.3).
func (r *Router) toFull(ctx context.Context, el *stanza.Element, to stanza.JID) {
	s := r.sessions.Session(to.String())
	if s != nil && r.deliverTo(ctx, s, el) {
		return
	}
	// No such resource, or it did not take the stanza (RFC 6121 §8.5.3.2).
	switch el.Local {
	case "iq":
		// A request to a resource that is gone fails; a result or error for
		// one has nobody to tell (RFC 6121 §8.5.3.2.2 and §8.2.3 of RFC 6120).
		if t := el.Get("type"); t == "get" || t == "set" {
			r.bounce(ctx, el, stanza.NewError("service-unavailable"))
		}
	case "message":
		switch el.Get("type") {
		case "error":
			return
		case "groupchat":
			r.bounce(ctx, el, stanza.NewError("service-unavailable"))
		default:
			// Chat, normal and headline messages fall back to the bare JID (§8.5.3.2.1).
			r.messageToBare(ctx, el, to.Bare(), s)
		}
	case "presence":
		// Presence to an unknown resource is dropped (§8.5.3.2.3); subscription
		// types are the presence module's to redirect to the bare JID.
	}
}

// bounce answers el with a stanza error, unless el is an error itself.
func (r *Router) bounce(ctx context.Context, el *stanza.Element, err *stanza.Error) {
	reply := stanza.ErrorReply(el, err)
	if reply == nil {
		return
	}
	if reply.Get("to") == "" {
		return // nobody to tell
	}
	if reply.Get("from") == "" {
		// The stanza had no 'to': the error comes from the sender's account.
		if from, perr := stanza.ParseJID(el.Get("from")); perr == nil {
			reply.Set("from", from.Bare().String())
		}
	}
	r.Route(ctx, reply)
}

// ---- a client stream's own elements (xeps/client.go) ----

// HandleNonza hands a top-level element a bound client sent in a namespace a
// module claimed to that module, with the session it came on. It reports
// false when no module claims the namespace (c2s then answers as before).
func (r *Router) HandleNonza(ctx context.Context, s Session, el *stanza.Element) bool {
	fn := r.host.Nonza(el.Space)
	if fn == nil {
		return false
	}
	fn(ctx, s, el)
	return true
}

// Bind2Features lists the namespaces modules advertise in SASL2's inline
// <bind/> (XEP-0386).
func (r *Router) Bind2Features() []string { return r.host.Bind2Features() }

// Bind2 runs, after an inline bind bound s, the module of each child of the
// client's <bind/> whose namespace one claimed, in the order of the
// request, and returns what they add to <bound/>.
func (r *Router) Bind2(ctx context.Context, s Session, req *stanza.Element) []*stanza.Element {
	var out []*stanza.Element
	for _, c := range req.Children() {
		if fn := r.host.Bind2(c.Space); fn != nil {
			if el := fn(ctx, s, c); el != nil {
				out = append(out, el)
			}
		}
	}
	return out
}
