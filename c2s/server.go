// Package c2s serves client connections: the STARTTLS and Direct TLS
// (XEP-0368) listeners, the stream state machine (connected → TLS → SASL →
// bound) and the registry of bound sessions that the router delivers to.
package c2s

import (
	"context"
	"crypto/tls"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/xmppd/xmppd/c2s/auth"
	"github.com/xmppd/xmppd/router"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/stream"
)

// Router is where bound sessions hand their stanzas. *router.Router implements it.
type Router interface {
	RouteFromClient(ctx context.Context, el *stanza.Element)
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
	WriteTimeout    time.Duration // a write that takes longer closes the session

	Credentials auth.CredentialStore
	Throttle    *auth.Throttle // per-account and per-address failure delays; nil = none
	// FastTokens keeps FAST tokens (XEP-0484): SASL2 clients may trade their
	// password for a token and log in with it in one round trip. nil = no FAST.
	FastTokens auth.FastStore
	// FastTokenLifetime is how long a token works (0: auth.DefaultFastTTL).
	// Tokens are rotated once a day old, or half their lifetime if shorter.
	FastTokenLifetime time.Duration

	Router Router
	// Features lists extra <stream:features/> children offered once the
	// stream is authenticated (roster versioning, caps, ...); may be nil.
	Features func() []*stanza.Element
	// OnBound and OnClosed run when a session binds a resource and when a bound session ends.
	OnBound, OnClosed func(ctx context.Context, s *Session)

	Logger *slog.Logger
}

// Server accepts client connections and keeps the registry of bound sessions.
type Server struct {
	cfg    Config
	log    *slog.Logger
	shards [64]shard
	seed   maphash.Seed
	open   stream.Listeners[*Session] // listeners and open connections, for Shutdown
}

type shard struct {
	mu sync.RWMutex
	m  map[string][]*Session // bare JID → bound sessions
}

// New returns a server; call Serve for each listener.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Limits.MaxStanza == 0 {
		cfg.Limits = stanza.DefaultLimits
	}
	if cfg.PreAuthLimits.MaxStanza == 0 {
		cfg.PreAuthLimits = cfg.Limits
		cfg.PreAuthLimits.MaxStanza = 16 << 10
	}
	if cfg.AuthTimeout == 0 {
		cfg.AuthTimeout = 30 * time.Second
	}
	if cfg.MaxAuthFailures == 0 {
		cfg.MaxAuthFailures = 3
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 256
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Logger, seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].m = map[string][]*Session{}
	}
	return s
}

// Serve accepts connections on ln until ctx ends or Shutdown is called.
// directTLS makes it an XEP-0368 listener: TLS from the first byte.
func (s *Server) Serve(ctx context.Context, ln net.Listener, directTLS bool) error {
	err := s.open.Serve(ctx, ln, func(conn net.Conn) (*Session, func(func())) {
		sess := newSession(s, conn)
		return sess, func(done func()) {
			sess.done = done
			sess.serve(ctx, directTLS)
		}
	})
	if err != nil {
		return fmt.Errorf("c2s: accept: %w", err)
	}
	return nil
}

// Shutdown stops the listeners, sends <system-shutdown/> to every open stream
// and waits (until ctx ends) for the sessions to finish.
func (s *Server) Shutdown(ctx context.Context) { s.open.Shutdown(ctx) }

// Kick closes every session of a bare JID with a stream error, for example
// after the account was deleted.
func (s *Server) Kick(bare string, se *stanza.StreamError) int {
	var buf [8]router.Session
	list := s.Sessions(bare, buf[:0])
	for _, rs := range list {
		rs.(*Session).CloseWithError(se)
	}
	return len(list)
}

func (s *Server) shard(bare string) *shard {
	return &s.shards[maphash.String(s.seed, bare)%uint64(len(s.shards))]
}

// Sessions implements router.LocalSessions.
func (s *Server) Sessions(bare string, buf []router.Session) []router.Session {
	sh := s.shard(bare)
	sh.mu.RLock()
	for _, sess := range sh.m[bare] {
		buf = append(buf, sess)
	}
	sh.mu.RUnlock()
	return buf
}

// Session implements router.LocalSessions.
func (s *Server) Session(full string) router.Session {
	bare, _, _ := strings.Cut(full, "/")
	sh := s.shard(bare)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	for _, sess := range sh.m[bare] {
		if sess.full == full {
			return sess
		}
	}
	return nil
}

// bind registers sess under its full JID. A session already bound to that JID
// loses (RFC 6120 §7.7.2.2: the new session wins) and is returned for closing.
func (s *Server) bind(sess *Session) (old *Session) {
	bare := sess.addr.Bare().String()
	sh := s.shard(bare)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	list := sh.m[bare]
	for i, o := range list {
		if o.full == sess.full {
			old = o
			list = slices.Delete(list, i, i+1)
			break
		}
	}
	sh.m[bare] = append(list, sess)
	return old
}

// unbind removes sess, if it is still the one registered under its JID.
func (s *Server) unbind(sess *Session) {
	bare := sess.addr.Bare().String()
	sh := s.shard(bare)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	list := sh.m[bare]
	for i, o := range list {
		if o == sess {
			list = slices.Delete(list, i, i+1)
			break
		}
	}
	if len(list) == 0 {
		delete(sh.m, bare)
	} else {
		sh.m[bare] = list
	}
}

// resourceBound reports whether a full JID is taken.
func (s *Server) resourceBound(full string) bool { return s.Session(full) != nil }

func (s *Server) isLocal(domain string) bool { return slices.Contains(s.cfg.Domains, domain) }

// SetRouter connects the server to the router. The router needs the server's
// session registry and the server needs the router, so one of them is wired
// after construction; call it before Serve.
func (s *Server) SetRouter(r Router) { s.cfg.Router = r }
