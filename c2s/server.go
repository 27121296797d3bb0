// Package c2s serves client connections: the STARTTLS and Direct TLS
// (XEP-0368) listeners, the stream state machine (connected → TLS → SASL →
// bound) and the registry of bound sessions that the router delivers to.
package c2s

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/xmppd/xmppd/c2s/auth"
	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/stream"
)

// Router is where bound sessions hand their stanzas. *router.Router implements it.
type Router interface {
	RouteFromClient(ctx context.Context, el *stanza.Element)
}

// Extensions is what a Router may offer besides routing: the modules'
// handlers for a bound client's own top-level elements and for Bind 2's
// inline features (xeps/client.go). *router.Router implements it; a Router
// without it gets today's answers (unsupported-stanza-type, nothing inline).
type Extensions interface {
	// HandleNonza hands el to the module that claimed its namespace and
	// reports whether one did.
	HandleNonza(ctx context.Context, s *session.Session, el *stanza.Element) bool
	// Bind2Features lists namespaces to advertise in SASL2's inline <bind/>.
	Bind2Features() []string
	// Bind2 runs the modules' inline features of a client's <bind/> once s
	// is bound, and returns the children they add to <bound/>.
	Bind2(ctx context.Context, s *session.Session, req *stanza.Element) []*stanza.Element
}

// Config is everything a c2s Server needs. cmd/xmppd fills it from the config file.
type Config struct {
	Domains    []string
	TLS        *tls.Config
	RequireTLS bool // refuse SASL before TLS (default in the config file: true)

	Limits        stanza.Limits // after authentication
	PreAuthLimits stanza.Limits // before: 16 KiB is plenty for SASL

	AuthTimeout     time.Duration // a stream must bind within this, or it is closed
	MaxAuthFailures int           // then the stream is closed with policy-violation
	QueueSize       int           // stanzas queued for one client before it counts as a slow consumer
	// Stream management (XEP-0198): how long a session whose connection
	// dropped waits for its client to resume it, and how many stanzas it
	// keeps unacknowledged before it is closed.
	ResumeTimeout time.Duration
	MaxUnacked    int
	// SavedSessions keeps the resumable sessions across a restart
	// (Shutdown saves them, Restore puts them back); nil: they end at
	// shutdown as any other.
	SavedSessions storage.KeyValue
	WriteTimeout  time.Duration // a write that takes longer closes the session

	Credentials auth.CredentialStore
	Throttle    *auth.Throttle // per-account and per-address failure delays; nil = none
	// FastTokens keeps FAST tokens (XEP-0484): SASL2 clients may trade their
	// password for a token and log in with it in one round trip. nil = no FAST.
	FastTokens auth.FastStore
	// FastTokenLifetime is how long a token works (0: auth.DefaultFastTTL).
	// Tokens are rotated once a day old, or half their lifetime if shorter.
	FastTokenLifetime time.Duration

	Router Router
	// Sessions is the registry bound sessions join (the router delivers
	// through it); nil makes one of the server's own.
	Sessions *session.Registry
	// Undeliverable takes the stanzas a session could not write to its
	// client before it closed (left in its queue): they go to the
	// undeliverable stage, never nowhere. *router.Router's Undeliverable.
	Undeliverable func(ctx context.Context, s *session.Session, el *stanza.Element)
	// Features lists extra <stream:features/> children offered once the
	// stream is authenticated (roster versioning, caps, ...); may be nil.
	Features func() []*stanza.Element
	// OnBound and OnClosed run when a session binds a resource and when a bound session ends.
	OnBound, OnClosed func(ctx context.Context, s *session.Session)

	Logger *slog.Logger

	// MaxPreAuthConns caps the connections one client address (an IPv4
	// address, an IPv6 /64: auth.ClientKey) may have open that have not
	// authenticated yet; a connection over it gets a policy-violation
	// stream error and is closed. 0: auth.DefaultMaxPreAuthConns; negative:
	// no cap. The connections are counted by Throttle: nil Throttle, no cap.
	MaxPreAuthConns int
}

// Server accepts client connections; the sessions they bind join the
// registry (Config.Sessions).
type Server struct {
	cfg  Config
	ext  Extensions // cfg.Router's, if it has them
	log  *slog.Logger
	open stream.Listeners[*Session] // listeners and open connections, for Shutdown
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
	if cfg.AuthTimeout == 0 {
		cfg.AuthTimeout = DefaultAuthTimeout
	}
	if cfg.MaxAuthFailures == 0 {
		cfg.MaxAuthFailures = DefaultMaxAuthFailures
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.ResumeTimeout == 0 {
		cfg.ResumeTimeout = DefaultResumeTimeout
	}
	if cfg.MaxUnacked == 0 {
		cfg.MaxUnacked = DefaultMaxUnacked
	}
	if cfg.Sessions == nil {
		cfg.Sessions = session.NewRegistry()
	}
	srv := &Server{cfg: cfg, log: cfg.Logger}
	srv.ext, _ = cfg.Router.(Extensions)
	return srv
}

// Serve accepts connections on ln until ctx ends or Shutdown is called.
// directTLS makes it an XEP-0368 listener: TLS from the first byte.
func (s *Server) Serve(ctx context.Context, ln net.Listener, directTLS bool) error {
	err := s.open.Serve(ctx, ln, func(conn net.Conn) (*Session, func(func())) {
		sess := newSession(s, conn)
		// One address may hold only so many connections that have not
		// authenticated: each costs a goroutine, buffers and a TLS
		// handshake, and guessing passwords over many of them at once is
		// what the cap (with auth.Throttle) is there to stop. A connection
		// holds its slot until it authenticates (authenticate releases the
		// slot the context carries) or ends.
		limit := s.cfg.MaxPreAuthConns
		if limit == 0 {
			limit = auth.DefaultMaxPreAuthConns
		}
		slot, ok := (*auth.ConnSlot)(nil), true
		if limit > 0 {
			slot, ok = s.cfg.Throttle.Connect(auth.ClientKey(conn.RemoteAddr()), limit)
		}
		if !ok {
			return sess, func(done func()) {
				defer done()
				s.log.Debug("too many unauthenticated connections", "addr", auth.ClientKey(conn.RemoteAddr()))
				if directTLS {
					// A client that expects a TLS handshake cannot read why:
					// a handshake is what the cap saves.
					conn.Close()
					return
				}
				// Our header and the stream error (RFC 6120 §4.9.1.2), then
				// a moment for the client to read them and close before we
				// do: closing with its header unread would reset the
				// connection, and could lose the error.
				conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				sess.CloseWithError(&stanza.StreamError{Condition: "policy-violation",
					Text: "too many connections from your address are not authenticated yet"})
				buf := make([]byte, 512)
				for n := 0; n < 16<<10; {
					m, err := conn.Read(buf)
					if n += m; err != nil {
						break
					}
				}
				sess.out.Close()
			}
		}
		return sess, func(done func()) {
			sess.done = func() {
				slot.Release()
				done()
			}
			sess.serve(auth.WithConnSlot(ctx, slot), directTLS)
		}
	})
	if err != nil {
		return fmt.Errorf("c2s: accept: %w", err)
	}
	return nil
}

// Shutdown stops the listeners, sends <system-shutdown/> to every open stream
// and waits (until ctx ends) for the sessions to finish.
//
// With SavedSessions, resumable sessions are not ended: their connections
// are dropped first (as a network would drop them: the clients resume),
// the other streams are closed (their goodbyes may still reach the
// suspended sessions' queues), then the suspended sessions are saved.
func (s *Server) Shutdown(ctx context.Context) {
	if s.cfg.SavedSessions == nil {
		s.open.Shutdown(ctx)
		return
	}
	list := s.suspend()
	s.open.Shutdown(ctx)
	if err := s.save(ctx, list); err != nil {
		s.log.Error("saving sessions", "err", err)
	}
}

// ServeConn serves one connection that did not come from a listener of
// the server (an in-memory pipe in tests, a connection handed over by a
// proxy) until it ends. directTLS: TLS from the first byte (XEP-0368).
func (s *Server) ServeConn(ctx context.Context, conn net.Conn, directTLS bool) {
	newSession(s, conn).serve(ctx, directTLS)
}

// Kick closes every session of a bare JID with a stream error, for example
// after the account was deleted.
func (s *Server) Kick(bare string, se *stanza.StreamError) int {
	var buf [8]*session.Session
	list := s.cfg.Sessions.Sessions(bare, buf[:0])
	for _, sess := range list {
		sess.Close(se)
		// A hibernated session has no connection to close: it ends now
		// rather than at its resume timeout.
		if m := sess.SM(); m != nil && sess.Transport() == nil && m.End() {
			s.expire(sess)
		}
	}
	return len(list)
}

// Sessions is the registry the server's bound sessions join.
func (s *Server) Sessions() *session.Registry { return s.cfg.Sessions }

func (s *Server) isLocal(domain string) bool { return slices.Contains(s.cfg.Domains, domain) }

// SetUndeliverable connects Config.Undeliverable (the router's), before Serve.
func (s *Server) SetUndeliverable(fn func(context.Context, *session.Session, *stanza.Element)) {
	s.cfg.Undeliverable = fn
}

// SetRouter connects the server to the router. The router needs the server's
// session registry and the server needs the router, so one of them is wired
// after construction; call it before Serve.
func (s *Server) SetRouter(r Router) {
	s.cfg.Router = r
	s.ext, _ = r.(Extensions)
}
