// Package s2s federates with other XMPP servers (RFC 6120 server-to-server
// streams): the inbound listeners (STARTTLS 5269, Direct TLS 5270 per
// XEP-0368), outbound streams found through a Resolver, certificate
// verification per RFC 6125, authentication by SASL EXTERNAL (XEP-0178) or
// Server Dialback (XEP-0220, all three roles), and bidirectional streams
// (XEP-0288). Inbound stanzas are checked against what their stream
// authenticated and handed to the Router; outbound ones queue per domain pair
// while a stream is set up and are bounced to their senders when it fails.
package s2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmppd/xmppd/stanza"
	// Renamed: this package's own type is called stream.
	xmppstream "github.com/xmppd/xmppd/stream"
)

// Router takes inbound stanzas once their addresses are checked. *router.Router implements it.
type Router interface {
	Route(ctx context.Context, el *stanza.Element)
}

// Resolver finds where to connect for a remote domain.
type Resolver interface {
	// Targets lists where to connect for domain, best first (RFC 6120 §3.2:
	// _xmpps-server then _xmpp-server SRV, priority/weight order, else domain:5269).
	Targets(ctx context.Context, domain string) ([]Target, error)
}

// Target is one place to connect to.
type Target struct {
	Host      string
	Port      int
	DirectTLS bool // XEP-0368: TLS from the first byte, ALPN "xmpp-server"
}

// Config is everything a Server needs. cmd/xmppd fills it from the config file.
type Config struct {
	Domains []string // ours
	// IsLocal reports whether a domain (normalised, as stanza.ParseJID gives
	// a domainpart) is served here besides Domains: a service domain a module
	// serves, such as conference.example.org. It decides, on inbound streams,
	// which stream header 'to', stanza 'to' and dialback 'to' we accept, and
	// which 'from' domains Send takes (their streams authenticate as that
	// domain). Called from many goroutines; nil means Domains only.
	IsLocal func(domain string) bool
	// TLS is our certificates (server side; reused for client certificates).
	// A service domain presents its parent's certificate unless one names it,
	// and authenticates with SASL EXTERNAL only with a certificate naming it
	// (else dialback).
	TLS *tls.Config
	// RootCAs is the trust for peers' certificates; nil means the system roots.
	RootCAs *x509.CertPool
	// RequireValidCert refuses peers that cannot authenticate with a valid
	// certificate: no dialback is offered or used.
	RequireValidCert bool
	// DialbackSecret keys the dialback HMAC (XEP-0185); random per process if nil.
	DialbackSecret []byte
	Resolver       Resolver
	Router         Router
	Limits         stanza.Limits // per-stanza caps once authenticated (default 512 KiB stanzas)
	PreAuthLimits  stanza.Limits // before (default 64 KiB stanzas)

	ConnectTimeout time.Duration // one TCP connect (default 10 s)
	AuthTimeout    time.Duration // connect to authenticated, either direction (default 30 s)
	IdleTimeout    time.Duration // a stream with no traffic this long is closed (default 10 min)
	WriteTimeout   time.Duration // one write (default 30 s)
	QueueSize      int           // stanzas queued per remote domain while connecting, and per stream (default DefaultQueueSize)
	Logger         *slog.Logger
}

// Server is the federation layer: it implements router.Remote.
type Server struct {
	cfg     Config
	log     *slog.Logger
	domains map[string]bool
	secret  []byte
	ctx     context.Context // the server's lifetime: cancelled by Shutdown
	cancel  context.CancelFunc

	mu      sync.Mutex // guards the fields below; taken before open's lock and any stream's, never after
	routes  map[routeKey]*route
	closing bool

	open xmppstream.Listeners[*stream] // listeners, open streams, and the goroutines Shutdown waits for

	lmu        sync.Mutex       // guards the two fields below; taken alone
	listeners  []netip.AddrPort // where Serve listens: never a target (self.go)
	selfLogged map[string]bool  // domains logSelf has logged at info

	// forgedLog limits the warnings about forged stanzas, per peer address.
	forgedLog logLimiter

	// Counters, for tests and later for metrics.
	dialed    atomic.Int64 // outbound stream attempts (per target tried)
	accepted  atomic.Int64 // inbound connections
	callbacks atomic.Int64 // dialback verifications we asked an authoritative server for
	verified  atomic.Int64 // db:verify requests we answered as authoritative server
}

type routeKey struct{ local, remote string }

// route is the outgoing path for one domain pair: a stream being set up
// (st nil, stanzas in pending) or an established one. A bidirectional inbound
// stream can also be the route. Guarded by Server.mu.
type route struct {
	key     routeKey
	st      *stream
	pending []qitem
}

// qitem is a queued stanza; retried marks one already sent again once
// after its stream broke.
type qitem struct {
	el      *stanza.Element
	retried bool
}

// New returns a server; call Serve for each listener.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Limits.MaxStanza == 0 {
		cfg.Limits = stanza.DefaultLimits
		cfg.Limits.MaxStanza = DefaultMaxStanzaSize
	}
	if cfg.PreAuthLimits.MaxStanza == 0 {
		cfg.PreAuthLimits = cfg.Limits
		cfg.PreAuthLimits.MaxStanza = DefaultPreAuthStanzaSize
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.AuthTimeout == 0 {
		cfg.AuthTimeout = DefaultAuthTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "s2s"),
		domains: map[string]bool{},
		secret:  cfg.DialbackSecret,
		routes:  map[routeKey]*route{},
	}
	s.forgedLog.every = forgedLogInterval
	if len(s.secret) == 0 {
		s.secret = make([]byte, 32)
		rand.Read(s.secret)
	}
	for _, d := range cfg.Domains {
		if n, ok := normDomain(d); ok {
			s.domains[n] = true
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// isLocal reports whether domain (normalised) is served here: one of
// Domains, or one Config.IsLocal accepts.
func (s *Server) isLocal(domain string) bool {
	return s.domains[domain] || s.cfg.IsLocal != nil && s.cfg.IsLocal(domain)
}

// SetRouter connects the server to the router, which needs the server as its
// Remote: build both, then call this before Serve or Send (like c2s.SetRouter).
func (s *Server) SetRouter(r Router) { s.cfg.Router = r }

// Serve accepts connections on ln until ctx ends or Shutdown is called.
// directTLS makes it an XEP-0368 listener (5270): TLS from the first byte.
func (s *Server) Serve(ctx context.Context, ln net.Listener, directTLS bool) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer s.addListener(ln.Addr())()
	err := s.open.Serve(ctx, ln, func(conn net.Conn) (*stream, func(func())) {
		s.accepted.Add(1)
		in := newInbound(s, conn)
		return in.stream, func(done func()) {
			defer done()
			in.serve(directTLS)
		}
	})
	if err != nil {
		return fmt.Errorf("s2s: accept: %w", err)
	}
	return nil
}

// Shutdown stops the listeners and all dialing, sends <system-shutdown/> on
// every stream and waits (until ctx ends) for them to finish. Stanzas still
// waiting for a stream are bounced with remote-server-timeout.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.cancel()
	s.open.Shutdown(ctx)
}

// Send implements router.Remote: it queues el for the remote domain and
// reports true, or false when it cannot take it at all (the domain is not a
// valid remote domain, 'from' is not one of ours, or the server is shutting
// down), in which case the router bounces remote-server-not-found. Every later
// failure is bounced here: remote-server-not-found when the domain cannot be
// resolved, connected to or authenticated with, remote-server-timeout when
// that timed out, resource-constraint when QueueSize stanzas already wait.
func (s *Server) Send(ctx context.Context, domain string, el *stanza.Element) bool {
	remote, ok := normDomain(domain)
	if !ok || s.isLocal(remote) {
		return false
	}
	if s.ownDomain(remote) {
		s.logSelf(remote, "the domain is an address of this machine")
		return false
	}
	from, err := stanza.ParseJID(el.Get("from"))
	if err != nil || !s.isLocal(from.Domainpart()) {
		return false
	}
	// Streams are per (from domain, to domain): a module's service domain
	// authenticates as itself, not as its parent.
	return s.send(routeKey{local: from.Domainpart(), remote: remote}, qitem{el: el})
}

func (s *Server) send(key routeKey, it qitem) bool {
	for range 3 {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return false
		}
		r := s.routes[key]
		if r == nil {
			r = &route{key: key}
			s.routes[key] = r
			s.open.Go(func() { s.connect(r) })
		}
		if st := r.st; st != nil {
			s.mu.Unlock()
			ok, full := st.enqueueItem(it, false)
			if ok {
				return true
			}
			if full {
				st.log.Warn("queue full: bouncing", "remote_domain", key.remote, "queued", s.cfg.QueueSize)
				s.bounce(it.el, "resource-constraint")
				return true
			}
			s.dropRoute(key, st) // the stream is ending: start a new one
			continue
		}
		if len(r.pending) >= s.cfg.QueueSize {
			s.mu.Unlock()
			s.log.Warn("queue full while connecting: bouncing", "remote_domain", key.remote, "queued", s.cfg.QueueSize)
			s.bounce(it.el, "resource-constraint")
			return true
		}
		r.pending = append(r.pending, it)
		s.mu.Unlock()
		return true
	}
	return false
}

// dropRoute forgets the route of key if st is still its stream.
func (s *Server) dropRoute(key routeKey, st *stream) {
	s.mu.Lock()
	if r := s.routes[key]; r != nil && r.st == st {
		delete(s.routes, key)
	}
	s.mu.Unlock()
}

// connect sets up the outgoing stream of a route and then runs it.
func (s *Server) connect(r *route) {
	log := s.log.With("direction", "out", "local_domain", r.key.local, "remote_domain", r.key.remote)
	out, err := s.dialOut(s.ctx, r.key.local, r.key.remote, nil)
	s.mu.Lock()
	if err == nil && s.closing {
		err = context.Canceled
	}
	if err == nil && !s.open.Track(out.stream) {
		err = context.Canceled
	}
	if err != nil {
		if s.routes[r.key] == r {
			delete(s.routes, r.key)
		}
		pending := r.pending
		r.pending = nil
		s.mu.Unlock()
		if out != nil {
			out.CloseWithError(&stanza.StreamError{Condition: "system-shutdown"})
			out.finish()
		}
		cond := condition(err)
		if errors.Is(err, errSelf) {
			// Said at info once, by logSelf; nothing failed that a retry could fix.
			log.Debug("not federating with ourselves", "bounced", len(pending))
		} else {
			log.Warn("cannot federate", "err", err, "bounced", len(pending), "condition", cond)
		}
		for _, it := range pending {
			s.bounce(it.el, cond)
		}
		return
	}
	if out.isBidi() {
		out.setAuthed(r.key.remote) // XEP-0288: the peer's stanzas come back on this stream
	}
	r.st = out.stream
	for _, it := range r.pending {
		out.enqueueItem(it, true) // fits: the queue is new and pending is bounded by QueueSize
	}
	r.pending = nil
	s.mu.Unlock()
	log.Info("stream established", "auth", out.method, "bidi", out.isBidi())
	out.startIdle()
	err = out.safeRun()
	s.dropRoute(r.key, out.stream)
	s.unregisterBidi(out.stream)
	out.endWith(err)
	out.finish()
	s.open.Untrack(out.stream)
	s.requeue(out.leftovers())
	log.Debug("stream closed")
}

// requeue sends again, once, stanzas a broken stream never wrote; a stanza
// already retried is bounced instead.
func (s *Server) requeue(items []qitem) {
	for _, it := range items {
		if it.retried {
			s.bounce(it.el, "remote-server-timeout")
			continue
		}
		from, err1 := stanza.ParseJID(it.el.Get("from"))
		to, err2 := stanza.ParseJID(it.el.Get("to"))
		if err1 != nil || err2 != nil || !s.send(routeKey{from.Domainpart(), to.Domainpart()}, qitem{el: it.el, retried: true}) {
			s.bounce(it.el, "remote-server-timeout")
		}
	}
}

// registerBidi makes an inbound stream that negotiated XEP-0288 the route
// to the peer domain it authenticated, unless there is one already.
func (s *Server) registerBidi(st *stream, local, remote string) {
	key := routeKey{local, remote}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.routes[key] != nil {
		return
	}
	s.routes[key] = &route{key: key, st: st}
	st.amu.Lock()
	st.routes = append(st.routes, key)
	st.amu.Unlock()
}

func (s *Server) unregisterBidi(st *stream) {
	st.amu.Lock()
	keys := st.routes
	st.routes = nil
	st.amu.Unlock()
	for _, k := range keys {
		s.dropRoute(k, st)
	}
}

// bounce answers el to its sender with a stanza error, unless el is an error.
func (s *Server) bounce(el *stanza.Element, cond string) {
	reply := stanza.ErrorReply(el, stanza.NewError(cond))
	if reply == nil || reply.Get("to") == "" || s.cfg.Router == nil {
		return
	}
	s.cfg.Router.Route(s.ctx, reply)
}

// errTimeout marks a negotiation that ran out of time.
var errTimeout = errors.New("s2s: timed out")

// condition picks the bounce for a failed outgoing stream.
func condition(err error) string {
	var ne net.Error
	var re *refusedErr
	if errors.As(err, &re) && re.cond != "" {
		return re.cond
	}
	switch {
	case errors.Is(err, errTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.As(err, &ne) && ne.Timeout():
		return "remote-server-timeout"
	}
	return "remote-server-not-found"
}

// serverTLS is the configuration of our side of an inbound handshake: the
// peer's certificate is requested but checked by us (verifyChain,
// certMatches), since an invalid one only means dialback instead of EXTERNAL.
func (s *Server) serverTLS() *tls.Config {
	c := s.cfg.TLS.Clone()
	c.ClientAuth = tls.RequestClientCert
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	c.NextProtos = append([]string{"xmpp-server"}, c.NextProtos...)
	return c
}

// clientTLS is the configuration of an outbound handshake to remote: SNI is
// the remote domain (RFC 6120 §13.7.2.1, XEP-0368), our certificate for local
// is offered as client certificate, and the peer's is checked by us afterwards.
func (s *Server) clientTLS(local, remote string, direct bool) *tls.Config {
	c := &tls.Config{
		ServerName: toASCII(remote),
		// Verified by verifyChain and certMatches after the handshake, so an
		// invalid certificate can still lead to dialback where policy allows.
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := s.ourCert(local); c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil
		},
	}
	if direct {
		c.NextProtos = []string{"xmpp-server"}
	}
	return c
}

// ourCertFor is ourCert when that certificate names local: only then can
// we authenticate as local with SASL EXTERNAL (a service domain's parent
// certificate rarely names it).
func (s *Server) ourCertFor(local string) *tls.Certificate {
	c := s.ourCert(local)
	if c == nil {
		return nil
	}
	leaf := c.Leaf
	if leaf == nil && len(c.Certificate) > 0 {
		leaf, _ = x509.ParseCertificate(c.Certificate[0])
	}
	if leaf == nil || !certMatches(leaf, local) {
		return nil
	}
	return c
}

// ourCert finds our certificate for a local domain: the one naming it, else
// the first (which still serves for TLS, and for dialback over it).
func (s *Server) ourCert(local string) *tls.Certificate {
	cfg := s.cfg.TLS
	if cfg == nil {
		return nil
	}
	name := toASCII(local)
	if cfg.GetCertificate != nil {
		if c, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: name}); err == nil && c != nil {
			return c
		}
	}
	for i := range cfg.Certificates {
		c := &cfg.Certificates[i]
		leaf := c.Leaf
		if leaf == nil && len(c.Certificate) > 0 {
			leaf, _ = x509.ParseCertificate(c.Certificate[0])
		}
		if leaf != nil && certMatches(leaf, local) {
			return c
		}
	}
	if len(cfg.Certificates) > 0 {
		return &cfg.Certificates[0]
	}
	return nil
}

// peerCertValid reports whether a handshake's peer chain is trusted and names domain.
func (s *Server) peerCertValid(state tls.ConnectionState, domain string) bool {
	if verifyChain(state.PeerCertificates, s.cfg.RootCAs, time.Now()) != nil {
		return false
	}
	return certMatches(state.PeerCertificates[0], domain)
}
