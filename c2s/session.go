package c2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/xmppd/xmppd/c2s/auth"
	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/stream"
)

// Session is one client connection, from the first byte to the close.
//
// One goroutine (serve) reads and owns the negotiation state. Writes before
// binding are made by that goroutine directly; after binding, every stanza
// for the client goes through a bounded queue drained by a writer goroutine
// that exists only while there is something to write (stream.Conn), so an
// idle session costs one goroutine, not two.
type Session struct {
	srv *Server
	out *stream.Conn[*stanza.Element] // the connection (raw, or TLS over it) and its writing half
	dec *stanza.Decoder
	// What the session's log lines say about it (see logAt). No *slog.Logger
	// made With them: that clones the handler for every session, idle or not.
	logID [8]byte  // the first stream ID's first 8 characters
	raddr net.Addr // the client's address
	// base is the server's context, for the TLS handshake's timeout (see
	// startTLS); nil once the stream is negotiated.
	base context.Context

	// Negotiation state, owned by the serve goroutine.
	id            string
	domain        string
	lang          string
	secure        bool
	certDER       []byte // our certificate, for tls-server-end-point
	authenticated bool
	user          string
	failures      int
	triedPlus     bool // a -PLUS attempt failed for want of a shared binding type

	// sess is the session this connection negotiates and then carries: it
	// owns the outbound queue the connection drains (session ≠ connection,
	// docs/design/004-sessions.md).
	sess *session.Session
	// Set once at bind, before the session is visible to others (copies of
	// sess's, for the log lines).
	addr stanza.JID
	full string

	// The session's lifetime: work done for it (handlers, storage calls)
	// stops with ctx; done tells the listener it has ended.
	ctx    context.Context
	cancel context.CancelFunc
	done   func()

	// Stream management (sm.go).
	broken      bool                       // the connection broke (no </stream:stream>): a resumable session hibernates
	resumedAway atomic.Bool                // another connection resumed the session: its end is not ours
	overflowed  atomic.Bool                // closed for too many unacknowledged stanzas
	ackArmed    atomic.Bool                // ackTimer runs
	ackTimer    atomic.Pointer[time.Timer] // asks for an ack once the queue is idle
}

// parkAfter is how long a bound session waits for its client before it
// parks. A client that is logging in, or chatting, sends again within
// milliseconds: parking and waking at each of those costs more CPU (two
// syscalls and a goroutine) than the stack it frees is worth for that long.
const parkAfter = 50 * time.Millisecond

// parkAfterMax bounds how long a session that keeps being woken right after
// it parks waits before parking (stream.Config.ParkAfterMax): a chat with a
// message every second or so keeps its goroutine rather than paying for a
// park and a wake per message (+50 % server CPU at 4 800 msg/s spread over
// 600 sessions, measured).
const parkAfterMax = 2 * time.Second

func newSession(srv *Server, conn net.Conn) *Session {
	s := &Session{
		srv:   srv,
		id:    newID(),
		raddr: conn.RemoteAddr(),
	}
	copy(s.logID[:], s.id)
	s.sess = session.New(s.id, srv.cfg.QueueSize)
	s.out = stream.New(conn, stream.Config[*stanza.Element]{
		Queue: s.sess.Queue(),
		// What the connection could not write stays in the session's
		// queue, for the undeliverable stage (finish).
		KeepUnwritten: true,
		RequeueFailed: true,
		WriteTimeout:  srv.cfg.WriteTimeout,
		Append:        appendClient,
		Header:        s.ourHeader,
		ParkAfter:     parkAfter,
		ParkAfterMax:  parkAfterMax,
		Taken:         s.taken,
	})
	// The decoder reads through s.out, which can park an idle session.
	s.dec = stanza.NewDecoder(s.out, srv.cfg.PreAuthLimits)
	return s
}

// appendClient writes a stanza in the stream's default namespace (a
// jabber:server stanza from federation becomes jabber:client this way);
// other top-level elements keep their own.
func appendClient(b []byte, el *stanza.Element) []byte {
	return stream.AppendStanza(b, el, stanza.NSClient)
}

// logAt logs msg with the session's attributes (session, remote, and jid
// once bound) ahead of args: the same line a logger made With them writes,
// but built only when something is logged.
func (s *Session) logAt(level slog.Level, msg string, args ...any) {
	l := s.srv.log
	ctx := context.Background()
	if !l.Enabled(ctx, level) {
		return
	}
	attrs := make([]any, 0, 6+len(args))
	remote := ""
	if s.raddr != nil {
		remote = s.raddr.String()
	}
	attrs = append(attrs, "session", string(s.logID[:]), "remote", remote)
	if s.full != "" {
		attrs = append(attrs, "jid", s.full)
	}
	l.Log(ctx, level, msg, append(attrs, args...)...)
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var _ session.Transport = (*Session)(nil)

// serve runs the connection from its first byte. Once bound, an idle
// session parks (stream.Conn.Park): serve returns, and resume reads on, on a
// new goroutine, when the client sends more or the stream is closed.
func (s *Session) serve(ctx context.Context, directTLS bool) {
	s.base = ctx
	// Everything done for the session's stanzas knows where they came from.
	s.ctx, s.cancel = context.WithCancel(session.NewContext(ctx, s.sess))
	parked := false
	defer func() { s.ended(recover(), parked) }()
	s.out.NetConn().SetReadDeadline(time.Now().Add(s.srv.cfg.AuthTimeout))
	if directTLS {
		if err := s.startTLS(s.ctx); err != nil {
			s.logAt(slog.LevelDebug, "direct TLS handshake failed", "err", err)
			return
		}
	}
	err := s.negotiate(s.ctx)
	s.base = nil
	if err == nil {
		// Bound: no more authentication deadline, unless the stream is
		// already closing (its writer's short deadline ends this reader).
		s.out.LiftReadDeadline()
		s.dec.SetLimits(s.srv.cfg.Limits)
		s.out.EnableParking(s.resume)
		// The bound session reads on in a new goroutine: this one's stack
		// grew deep in the TLS handshake, and would stay that size while the
		// session waits (parkAfter) before it parks.
		parked = true
		go s.resume()
		return
	}
	s.endWith(err)
}

// resume is a parked session woken up.
func (s *Session) resume() {
	parked := false
	defer func() { s.ended(recover(), parked) }()
	var err error
	if parked, err = s.readOrPark(); parked {
		return
	}
	s.endWith(err)
}

// readOrPark reads stanzas until the session parks (true: it belongs to
// whoever wakes it now) or the stream ends (the reason).
func (s *Session) readOrPark() (parked bool, err error) {
	for {
		err := s.readStanzas(s.ctx)
		if !errors.Is(err, stream.ErrIdle) {
			return false, err
		}
		s.dec.Compact() // idle for parkAfter already: likely for much longer
		if s.out.Park() {
			return true, nil
		}
	}
}

// ended runs when the reading goroutine returns: unless it parked, the
// session is over (a panic included).
func (s *Session) ended(panicked any, parked bool) {
	if panicked == nil && parked {
		return // the session is not ours to touch any more
	}
	s.finish(panicked)
}

// endWith turns the reason the read loop ended into the right close.
func (s *Session) endWith(err error) {
	var se *stanza.StreamError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		s.logAt(slog.LevelDebug, "stream error", "condition", se.Condition, "text", se.Text)
		s.CloseWithError(se)
	case errors.Is(err, stanza.ErrStreamClosed):
		s.CloseWithError(nil)
	case errors.As(err, &ne) && ne.Timeout() && !s.isClosing():
		if s.addr.Domainpart() == "" {
			s.CloseWithError(&stanza.StreamError{Condition: "connection-timeout", Text: "authentication took too long"})
		} else {
			s.CloseWithError(&stanza.StreamError{Condition: "connection-timeout"})
		}
	default:
		// The connection broke: nothing more can be written. A resumable
		// session waits for its client to come back (smEnd), unless it was
		// us who closed the stream.
		// A write that failed first (the reset met our writer before our
		// reader) closed the stream, but not by our choice: that too is broken.
		s.broken = !s.isClosing() || s.out.Broke()
		s.abort()
	}
}

// endWork bounds what a session does as it ends (see finish).
const endWork = 5 * time.Second

// finish runs after the read loop: unregister, tell the modules, close the socket.
func (s *Session) finish(panicked any) {
	if panicked != nil {
		s.logAt(slog.LevelError, "session panic", "panic", panicked)
		s.CloseWithError(&stanza.StreamError{Condition: "internal-server-error"})
	}
	// The session's context ends with the server's (at shutdown, before
	// the sessions are closed), but what a session does as it ends — the
	// unavailable broadcast, the modules' stores, offline storage of what
	// it never got — must still happen: it gets a while of its own.
	ctx, cancelEnd := context.WithTimeout(context.WithoutCancel(s.ctx), endWork)
	defer cancelEnd()
	if s.full != "" {
		if gone, hibernated := s.smEnd(); gone || hibernated {
			// The session lives on: resumed on another connection, or
			// waiting for one (XEP-0198). Contacts see no change.
			s.out.Close()
			s.sess.Detach(s)
			s.stopAckTimer()
			s.cancel()
			if s.done != nil {
				s.done()
			}
			return
		}
		// Out of the registry first: what is routed to the JID from now on
		// finds no session and goes elsewhere (other resources, offline).
		s.srv.cfg.Sessions.Unbind(s.sess)
		if s.sess.SetUnavailable() {
			// An unclean disconnect must still tell everyone the resource is gone (RFC 6121 §4.6.1).
			un := stanza.New(stanza.NSClient, "presence").Set("type", "unavailable").Set("from", s.full)
			s.srv.cfg.Router.RouteFromClient(ctx, un)
		}
		if s.srv.cfg.OnClosed != nil {
			s.srv.cfg.OnClosed(ctx, s.sess)
		}
	}
	s.out.Close()
	s.sess.Detach(s)
	s.stopAckTimer()
	if s.full != "" {
		// Never silence: what the client did not get (a slow consumer's
		// backlog, a broken connection's, what it did not acknowledge) goes
		// to the undeliverable stage.
		s.srv.undeliver(ctx, s.sess)
	}
	s.cancel()
	if s.done != nil {
		s.done()
	}
}

func (s *Session) isClosing() bool { return s.out.Closing() }

// negotiate runs stream negotiation until a resource is bound.
func (s *Session) negotiate(ctx context.Context) error {
	for {
		if err := s.openStream(); err != nil {
			return err
		}
		for {
			el, err := s.dec.Next()
			if err != nil {
				return err
			}
			restart, err := s.negotiationElement(ctx, el)
			if err != nil {
				return err
			}
			if s.full != "" {
				return nil
			}
			if restart {
				break
			}
		}
	}
}

// openStream reads the client's stream header and answers with ours and the features.
func (s *Session) openStream() error {
	s.out.Restart(nil) // a restarted stream needs its own header, even before an error
	h, err := s.dec.ReadHeader()
	if err != nil {
		return err
	}
	if h.NS != stanza.NSClient {
		return &stanza.StreamError{Condition: "invalid-namespace", Text: "the content namespace must be " + stanza.NSClient}
	}
	domain := strings.ToLower(h.To)
	if d, err := stanza.ParseJID(h.To); err == nil && d.Localpart() == "" && d.Resourcepart() == "" {
		domain = d.Domainpart()
	}
	switch {
	case h.To == "" && s.domain == "":
		return &stanza.StreamError{Condition: "host-unknown", Text: "the stream header needs a 'to' address"}
	case h.To == "":
		domain = s.domain // a restarted stream may omit it
	case !s.srv.isLocal(domain):
		return &stanza.StreamError{Condition: "host-unknown", Text: "this server does not serve " + h.To}
	case s.domain != "" && domain != s.domain:
		return &stanza.StreamError{Condition: "host-unknown", Text: "the domain changed on stream restart"}
	}
	s.domain = domain
	if major, _, _ := strings.Cut(h.Version, "."); h.Version == "" || major == "0" {
		return &stanza.StreamError{Condition: "unsupported-version", Text: "xmppd speaks XMPP 1.0"}
	}
	if h.Lang != "" && len(h.Lang) <= 35 {
		s.lang = h.Lang
	}
	s.id = newID()
	b := stanza.AppendStreamHeader(nil, s.ourHeader())
	b = s.appendFeatures(b)
	return s.writeRaw(b)
}

func (s *Session) ourHeader() stanza.StreamHeader {
	lang := s.lang
	if lang == "" {
		lang = "en"
	}
	d := s.domain
	if d == "" && len(s.srv.cfg.Domains) > 0 {
		d = s.srv.cfg.Domains[0]
	}
	return stanza.StreamHeader{NS: stanza.NSClient, ID: s.id, From: d, Version: "1.0", Lang: lang}
}

// appendFeatures writes <stream:features/> for the current stage (RFC 6120 §4.3.2).
func (s *Session) appendFeatures(b []byte) []byte {
	cfg := &s.srv.cfg
	b = append(b, "<stream:features>"...)
	switch {
	case !s.authenticated:
		if !s.secure && cfg.TLS != nil {
			tlsF := stanza.New(stanza.NSTLS, "starttls")
			if cfg.RequireTLS {
				tlsF.Append(stanza.New(stanza.NSTLS, "required"))
			}
			b = tlsF.AppendXML(b, stanza.NSStream)
		}
		if s.secure || !cfg.RequireTLS {
			state := s.tlsState()
			mechs := stanza.New(stanza.NSSASL, "mechanisms")
			for _, m := range auth.Mechanisms(state, s.certDER, s.secure) {
				mechs.Append(stanza.New(stanza.NSSASL, "mechanism").AppendText(m))
			}
			b = mechs.AppendXML(b, stanza.NSStream)
			// XEP-0388 (SASL2) with the same mechanisms, binding a resource
			// inline (XEP-0386): no stream restart, no bind round trip.
			if mechs.FirstChild() != nil {
				sasl2 := stanza.New(stanza.NSSASL2, "authentication")
				for _, m := range mechs.Children() {
					sasl2.Append(stanza.New(stanza.NSSASL2, "mechanism").AppendText(m.Text()))
				}
				inline := stanza.New(stanza.NSSASL2, "inline").Append(s.bind2Feature())
				if cfg.FastTokens != nil && s.secure {
					// XEP-0484: the token mechanisms are offered here only, not as SASL mechanisms.
					fast := stanza.New(stanza.NSFast, "fast")
					for _, m := range auth.FastMechanisms(state, s.certDER) {
						fast.Append(stanza.New(stanza.NSFast, "mechanism").AppendText(m))
					}
					inline.Append(fast)
				}
				inline.Append(smFeature) // XEP-0198 resumption inline (XEP-0388 §2.5)
				sasl2.Append(inline)
				b = sasl2.AppendXML(b, stanza.NSStream)
			}
			// XEP-0440: which channel bindings this connection supports.
			if cbs := auth.ChannelBindings(state); len(cbs) > 0 && s.certDER != nil {
				cb := stanza.New(stanza.NSCBinding, "sasl-channel-binding")
				for _, t := range cbs {
					cb.Append(stanza.New(stanza.NSCBinding, "channel-binding").Set("type", t))
				}
				b = cb.AppendXML(b, stanza.NSStream)
			}
		}
	default:
		if s.full == "" { // bound already with SASL2's inline bind: nothing to bind
			b = stanza.New(stanza.NSBind, "bind").AppendXML(b, stanza.NSStream)
			// RFC 6121 dropped session establishment; old clients still ask (RFC 6121 §1.4 of 3921bis).
			sess := stanza.New(stanza.NSSession, "session").Append(stanza.New(stanza.NSSession, "optional"))
			b = sess.AppendXML(b, stanza.NSStream)
		}
		// XEP-0198: enable once bound, or resume before binding; not after
		// SASL2 enabled it inline or resumed (xmpp.js would try again, and
		// fail, and forget its session).
		if s.sess.SM() == nil {
			b = smFeature.AppendXML(b, stanza.NSStream)
		}
		if cfg.Features != nil {
			for _, f := range cfg.Features() {
				b = f.AppendXML(b, stanza.NSStream)
			}
		}
	}
	return append(b, "</stream:features>"...)
}

func (s *Session) tlsState() *tls.ConnectionState {
	if tc, ok := s.out.NetConn().(*tls.Conn); ok {
		st := tc.ConnectionState()
		return &st
	}
	return nil
}

// negotiationElement handles one element before binding. restart reports
// that the stream restarts (after STARTTLS or SASL success).
func (s *Session) negotiationElement(ctx context.Context, el *stanza.Element) (restart bool, err error) {
	switch {
	case el.Is(stanza.NSTLS, "starttls"):
		if s.secure || s.srv.cfg.TLS == nil || s.authenticated {
			s.writeRaw([]byte("<failure xmlns='" + stanza.NSTLS + "'/>"))
			return false, &stanza.StreamError{Condition: "policy-violation", Text: "STARTTLS is not available now"}
		}
		if err := s.writeRaw([]byte("<proceed xmlns='" + stanza.NSTLS + "'/>")); err != nil {
			return false, err
		}
		return true, s.startTLS(ctx)
	case el.Is(stanza.NSSASL, "auth"), el.Is(stanza.NSSASL2, "authenticate"):
		if s.authenticated {
			return false, &stanza.StreamError{Condition: "policy-violation", Text: "already authenticated"}
		}
		if !s.secure && s.srv.cfg.RequireTLS {
			return false, s.saslFailure(el.Space, &auth.Failure{Condition: "encryption-required", Text: "use STARTTLS first"}, false, "")
		}
		if el.Get("upgrade") != "" { // XEP-0388 §2.3: only upgrades we announced, and we announce none
			return false, s.saslFailure(el.Space, &auth.Failure{Condition: "invalid-mechanism", Text: "no upgrade tasks are offered"}, false, "")
		}
		return s.authenticate(ctx, el)
	case el.Local == "iq" && el.Space == stanza.NSClient && s.authenticated:
		return false, s.bindIQ(ctx, el)
	case el.Space == session.NSSM:
		return false, s.smNegotiation(ctx, el)
	case el.Space == stanza.NSClient && (el.Local == "message" || el.Local == "presence" || el.Local == "iq"):
		return false, &stanza.StreamError{Condition: "not-authorized", Text: "authenticate and bind a resource first"}
	default:
		return false, &stanza.StreamError{Condition: "unsupported-stanza-type", Text: "unexpected <" + el.Local + "/> during negotiation"}
	}
}

// startTLS upgrades the connection. Bytes the client sent after <starttls/>
// and before the handshake are discarded with the old reader (CVE-2011-0411 style injection).
func (s *Session) startTLS(ctx context.Context) error {
	tc := tls.Server(s.out.NetConn(), s.srv.cfg.TLS)
	// The timeout hangs on the server's context, not the session's: a child
	// leaves a map behind in its parent, which the session would keep.
	base := s.base
	if base == nil {
		base = ctx
	}
	hctx, cancel := context.WithTimeout(base, s.srv.cfg.AuthTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return err
	}
	s.out.SetConn(tc)
	s.dec.Reset(s.out)
	s.secure = true
	s.certDER = s.servedCert(tc.ConnectionState().ServerName)
	return nil
}

// servedCert finds the leaf certificate the handshake presented, for tls-server-end-point.
func (s *Session) servedCert(sni string) []byte {
	cfg := s.srv.cfg.TLS
	var cert *tls.Certificate
	if cfg.GetCertificate != nil {
		cert, _ = cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
	}
	if cert == nil && len(cfg.Certificates) > 0 {
		cert = &cfg.Certificates[0]
	}
	if cert == nil || len(cert.Certificate) == 0 {
		return nil
	}
	// Leaf is parsed once when the certificate is loaded; parsing again for
	// every session cost ~20 µs of each login.
	if cert.Leaf == nil {
		if _, err := x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil
		}
	}
	return cert.Certificate[0]
}

// authenticate runs one SASL exchange: RFC 6120 §6.4 (<auth/>, then a
// stream restart) or XEP-0388's SASL2 (<authenticate/>: the stream goes on,
// and a resource may be bound in the same step, XEP-0386). Both profiles
// share the mechanisms, the checks and the throttling; only the XML differs.
func (s *Session) authenticate(ctx context.Context, el *stanza.Element) (restart bool, err error) {
	ns := el.Space // stanza.NSSASL or stanza.NSSASL2
	cfg := auth.Config{
		Domain:          s.domain,
		Store:           s.srv.cfg.Credentials,
		TLS:             s.tlsState(),
		ServerCertDER:   s.certDER,
		AllowPlain:      s.secure,
		ClientTriedPlus: s.triedPlus,
		// Guesses are limited per client address and per account across
		// all connections (auth.Throttle), not per connection.
		Throttle: s.srv.cfg.Throttle,
		Client:   auth.ClientKey(s.raddr),
	}
	mech := el.Get("mechanism")
	if ns == stanza.NSSASL2 && s.secure && s.srv.cfg.FastTokens != nil {
		// XEP-0484: a token login says so with <fast/>; any SASL2 login may
		// ask for a token. Both need the client's stable id.
		fast := el.Child(stanza.NSFast, "fast")
		if fast != nil || !auth.IsFastMechanism(mech) {
			inv := fast.Get("invalidate")
			cfg.Fast = &auth.FastConfig{
				Store:       s.srv.cfg.FastTokens,
				ClientID:    el.Child(stanza.NSSASL2, "user-agent").Get("id"),
				Invalidate:  inv == "true" || inv == "1",
				TTL:         s.srv.cfg.FastTokenLifetime,
				RotateAfter: min(auth.DefaultFastRotate, s.srv.cfg.FastTokenLifetime/2),
			}
		}
	}
	srv, err := auth.NewServer(ctx, mech, cfg)
	if err != nil {
		return false, s.saslFailure(ns, err, false, "")
	}
	var data []byte
	if ns == stanza.NSSASL2 {
		// SASL2: no <initial-response/> means no initial response.
		if ir := el.Child(ns, "initial-response"); ir != nil {
			data, err = saslData(ir)
		}
	} else {
		data, err = saslData(el)
	}
	for {
		// err is saslData's: bad base64 is incorrect-encoding (RFC 6120
		// §6.5.2), whichever step it comes in.
		if err != nil {
			return false, s.saslFailure(ns, err, true, srv.AttemptedUsername())
		}
		var out []byte
		var done bool
		if out, done, err = srv.Step(data); err != nil {
			return false, s.saslFailure(ns, err, true, srv.AttemptedUsername())
		}
		if done {
			s.authenticated = true
			s.user = srv.Username()
			// No longer counted under its address's cap on connections
			// that have not authenticated (Server.Serve).
			auth.ConnSlotFrom(ctx).Release()
			s.logAt(slog.LevelInfo, "authenticated", "user", s.user+"@"+s.domain, "mechanism", el.Get("mechanism"))
			if ns == stanza.NSSASL2 {
				return false, s.sasl2Success(ctx, el, out, srv)
			}
			b := []byte("<success xmlns='" + stanza.NSSASL + "'")
			if len(out) > 0 {
				b = append(b, '>')
				b = base64.StdEncoding.AppendEncode(b, out)
				b = append(b, "</success>"...)
			} else {
				b = append(b, "/>"...)
			}
			if err := s.writeRaw(b); err != nil {
				return false, err
			}
			// The new stream may only come after <success/>: keep what is buffered.
			return true, nil
		}
		b := []byte("<challenge xmlns='" + ns + "'>")
		b = base64.StdEncoding.AppendEncode(b, out)
		b = append(b, "</challenge>"...)
		if err := s.writeRaw(b); err != nil {
			return false, err
		}
		next, rerr := s.dec.Next()
		if rerr != nil {
			return false, rerr
		}
		switch {
		case next.Is(ns, "response"):
			data, err = saslData(next)
		case next.Is(ns, "abort"):
			return false, s.saslFailure(ns, &auth.Failure{Condition: "aborted"}, false, "")
		default:
			return false, &stanza.StreamError{Condition: "policy-violation", Text: "expected a SASL response"}
		}
	}
}

// sasl2Success ends a successful SASL2 exchange (XEP-0388 §2.6.1): the
// mechanism's final data, the identity (the full JID when the client asked
// for a resource inline, XEP-0386), then the authenticated stream's
// features, with no restart.
//
// Left out of XEP-0386 for now: closing an earlier session of the same
// <user-agent/>, and clearing offline messages at bind (that presumes a
// message archive, which xmppd does not have yet: they are delivered at
// initial presence as for any other client).
func (s *Session) sasl2Success(ctx context.Context, el *stanza.Element, final []byte, srv *auth.Server) error {
	success := stanza.New(stanza.NSSASL2, "success")
	if len(final) > 0 {
		success.Append(stanza.New(stanza.NSSASL2, "additional-data").AppendText(base64.StdEncoding.EncodeToString(final)))
	}
	id := stanza.New(stanza.NSSASL2, "authorization-identifier")
	success.Append(id)
	// XEP-0484: a token asked for, or one replacing a token due for rotation.
	// Without it the login still succeeds: the client keeps its password or
	// the token it has.
	token, err := srv.FinishFast(el.Child(stanza.NSFast, "request-token").Get("mechanism"))
	if err != nil {
		s.logAt(slog.LevelWarn, "cannot issue a FAST token", "err", err)
	}
	if token != nil {
		success.Append(stanza.New(stanza.NSFast, "token").
			Set("expiry", time.Unix(token.Expires, 0).UTC().Format(time.RFC3339)).
			Set("token", token.Secret))
	}
	// XEP-0198 resumption inline (XEP-0388 §2.5): <resumed/> in <success/>
	// and no bind; a failed one says so in <success/> and binds as asked.
	if r := el.Child(session.NSSM, "resume"); r != nil {
		resumed, failed, m := s.resumeSM(r)
		if failed != nil {
			success.Append(failed)
		} else {
			defer m.Release()
			id.AppendText(s.full)
			success.Append(resumed)
			if err := s.writeRaw(s.appendFeatures(success.AppendXML(nil, stanza.NSClient))); err != nil {
				s.sess.Detach(s)
				return err
			}
			s.sess.Attach(s)
			s.logAt(slog.LevelInfo, "resumed")
			return nil
		}
	}
	req := el.Child(stanza.NSBind2, "bind")
	if req == nil {
		id.AppendText(s.user + "@" + s.domain)
		return s.writeRaw(s.appendFeatures(success.AppendXML(nil, stanza.NSClient)))
	}
	addr, err := stanza.NewJID(s.user, s.domain, bind2Resource(req))
	if err != nil {
		return err // the parts were checked at authentication; a random resource is valid
	}
	s.addr, s.full = addr, addr.String()
	id.AppendText(s.full)
	bound := stanza.New(stanza.NSBind2, "bound")
	success.Append(bound)
	// Registered before <success/> is written, so a stanza routed to the
	// new JID the moment the client sees it finds the session; it waits in
	// the session's queue until the connection attaches, after <success/>.
	old := s.bindSession()
	// The modules' inline features (carbons, CSI) act on the bound session
	// before the client can send on it, and may say so in <bound/>.
	if ext := s.srv.ext; ext != nil {
		for _, c := range ext.Bind2(ctx, s.sess, req) {
			bound.Append(c)
		}
	}
	// XEP-0198 enabled inline (XEP-0386 §2.3, as Conversations and Monal
	// do): counting starts with <success/>, written before anything queued.
	if e := req.Child(session.NSSM, "enable"); e != nil {
		bound.Append(s.enableSM(e))
		s.sess.SM().StartCounting()
	}
	if err := s.writeRaw(s.appendFeatures(success.AppendXML(nil, stanza.NSClient))); err != nil {
		return err
	}
	s.attach(ctx, old)
	return nil
}

// bind2Feature is SASL2's inline <bind/> (XEP-0386 §2.2): the inline
// features the modules handle, as <feature var=.../>.
func (s *Session) bind2Feature() *stanza.Element {
	inline := stanza.New(stanza.NSBind2, "inline").
		Append(stanza.New(stanza.NSBind2, "feature").Set("var", session.NSSM))
	if ext := s.srv.ext; ext != nil {
		for _, v := range ext.Bind2Features() {
			inline.Append(stanza.New(stanza.NSBind2, "feature").Set("var", v))
		}
	}
	return stanza.New(stanza.NSBind2, "bind").Append(inline)
}

// bind2Resource makes the resource of an inline bind: the client's <tag/>
// (XEP-0386 §3.2.1: "[client tag]/[server generated identifier]"), if it is
// a short valid resourcepart, and a random part.
func bind2Resource(req *stanza.Element) string {
	random := newID()[:12]
	tag := strings.TrimSpace(req.Child(stanza.NSBind2, "tag").Text())
	if tag == "" || len(tag) > 64 {
		return "xmppd-" + random
	}
	if _, err := stanza.NewJID("", "localhost", tag); err != nil {
		return "xmppd-" + random
	}
	return tag + "/" + random
}

// saslData decodes the base64 content of <auth/> or <response/> ("=" is an empty response).
func saslData(el *stanza.Element) ([]byte, error) {
	t := el.Text()
	if t == "" || t == "=" {
		return nil, nil
	}
	b, err := base64.StdEncoding.Strict().DecodeString(t)
	if err != nil {
		return nil, &auth.Failure{Condition: "incorrect-encoding"}
	}
	return b, nil
}

// saslFailure sends <failure/>. Counted failures are limited: after
// MaxAuthFailures on this stream it is closed. Guessing speed is not this
// function's business: the mechanisms wait for the throttle before they check
// a proof (auth.Throttle), per client address and per account across all
// connections; waiting here, per connection, let parallel connections guess
// in parallel.
func (s *Session) saslFailure(ns string, err error, counted bool, attempted string) error {
	var f *auth.Failure
	if !errors.As(err, &f) {
		s.logAt(slog.LevelError, "authentication failed internally", "err", err)
		f = &auth.Failure{Condition: "temporary-auth-failure"}
	}
	if f.ChannelBindingMismatch {
		// Refused before any password check: nothing was guessed, so it
		// neither counts nor waits, and the client may retry without binding.
		s.triedPlus = true
		counted = false
	}
	if counted {
		s.failures++
		s.logAt(slog.LevelInfo, "authentication failed", "condition", f.Condition, "account", attempted, "failures", s.failures)
	}
	// SASL2's <failure/> carries RFC 6120's condition element (XEP-0388 §2.6.2).
	fail := stanza.New(ns, "failure").Append(stanza.New(stanza.NSSASL, f.Condition))
	if f.Text != "" {
		text := stanza.New(ns, "text").AppendText(f.Text)
		text.Attr = append(text.Attr, stanza.Attr{Space: stanza.NSXML, Local: "lang", Value: "en"})
		fail.Append(text)
	}
	b := fail.AppendXML(nil, stanza.NSClient)
	if err := s.writeRaw(b); err != nil {
		return err
	}
	if s.failures >= s.srv.cfg.MaxAuthFailures {
		return &stanza.StreamError{Condition: "policy-violation", Text: "too many failed authentication attempts"}
	}
	return nil
}

// bindIQ handles IQs between authentication and binding: bind and the legacy session.
func (s *Session) bindIQ(ctx context.Context, el *stanza.Element) error {
	iq, err := stanza.ParseIQ(el)
	if err != nil {
		return s.replyNow(stanza.ErrorReply(el, stanza.AsError(err)))
	}
	switch {
	case iq.Type == "set" && iq.Payload.Is(stanza.NSSession, "session"):
		return s.replyNow(iq.Result(nil))
	case iq.Type == "set" && iq.Payload.Is(stanza.NSBind, "bind"):
	default:
		return &stanza.StreamError{Condition: "not-authorized", Text: "bind a resource first"}
	}
	resource := strings.TrimSpace(iq.Payload.Child(stanza.NSBind, "resource").Text())
	if resource == "" {
		resource = "xmppd-" + newID()[:12]
	}
	addr, err := stanza.NewJID(s.user, s.domain, resource)
	if err != nil {
		return s.replyNow(stanza.ErrorReply(el, stanza.Errorf("bad-request", "invalid resource")))
	}
	s.addr = addr
	s.full = addr.String()
	res := iq.Result(stanza.New(stanza.NSBind, "bind").Append(stanza.New(stanza.NSBind, "jid").AppendText(s.full)))
	res.Set("from", "")
	// The result is queued before the session is registered, so it goes out
	// ahead of anything others route to the new JID; and it is written only
	// after registration, so a client that acts on it can already be reached.
	s.out.Hold(res)
	s.attach(ctx, s.bindSession())
	return nil
}

// bindSession puts the session in the registry under s.addr, detached: what
// is routed to it waits in its queue until attach. It returns the session
// the new one replaces, if any.
func (s *Session) bindSession() *session.Session {
	s.sess.SetAddress(s.addr)
	return s.srv.cfg.Sessions.Bind(s.sess)
}

// attach makes this connection the bound session's transport, starting its
// writer on what waits, and closes the session it replaced.
func (s *Session) attach(ctx context.Context, old *session.Session) {
	s.sess.Attach(s)
	if old != nil {
		// The replaced session goes unavailable now, before this one can
		// send its initial presence, as Prosody orders it: left to the old
		// session's own ending, later, its unavailable presence could reach
		// the contacts after the new session's available one, and show a
		// user who reconnected with the same resource as offline.
		if old.SetUnavailable() {
			un := stanza.New(stanza.NSClient, "presence").Set("type", "unavailable").Set("from", s.full)
			s.srv.cfg.Router.RouteFromClient(session.NewContext(ctx, old), un)
		}
		old.Close(&stanza.StreamError{Condition: "conflict", Text: "replaced by a new connection"})
		s.srv.replaced(ctx, old)
	}
	s.logAt(slog.LevelInfo, "bound")
	if s.srv.cfg.OnBound != nil {
		s.srv.cfg.OnBound(ctx, s.sess)
	}
}

// replyNow writes a stanza directly (before binding only).
func (s *Session) replyNow(el *stanza.Element) error {
	if el == nil {
		return nil
	}
	return s.writeRaw(el.AppendXML(nil, stanza.NSClient))
}

// readStanzas is the loop of a bound session: check, stamp, route.
func (s *Session) readStanzas(ctx context.Context) error {
	for {
		el, err := s.dec.Next()
		if err != nil {
			return err
		}
		if s.isClosing() {
			continue // draining until the peer closes or the deadline ends the read
		}
		if el.Space != stanza.NSClient || el.Local != "message" && el.Local != "presence" && el.Local != "iq" {
			// A nonza in a namespace a module claimed (XEP-0352's
			// <active/>, ...) goes to that module with this session.
			if el.Space == session.NSSM {
				if err := s.smElement(el); err != nil {
					return err
				}
				continue
			}
			if el.Space != stanza.NSClient {
				if ext := s.srv.ext; ext != nil && ext.HandleNonza(ctx, s.sess, el) {
					continue
				}
			}
			return &stanza.StreamError{Condition: "unsupported-stanza-type", Text: "<" + el.Local + "/> is not supported here"}
		}
		// RFC 6120 §8.1.2.1: 'from' must be this session's full or bare JID; we stamp the full one.
		if from := el.Get("from"); from != "" && from != s.full {
			bare := s.addr.Bare().String()
			if j, err := stanza.ParseJID(from); from != bare && (err != nil || (j.String() != s.full && j.String() != bare)) {
				return &stanza.StreamError{Condition: "invalid-from", Text: "'from' is not your address"}
			}
		}
		el.Set("from", s.full)
		if el.Local == "iq" && el.Get("type") == "set" && el.Get("to") == "" {
			if p := el.FirstChild(); p != nil && p.Is(stanza.NSSession, "session") {
				s.Deliver(sessionResult(el))
				s.handled()
				continue
			}
		}
		if el.Local == "presence" && el.Get("to") == "" {
			s.sess.TrackPresence(el)
		}
		s.logAt(slog.LevelDebug, "stanza", "kind", el.Local, "type", el.Get("type"))
		s.srv.cfg.Router.RouteFromClient(ctx, el)
		s.handled()
	}
}

// handled counts a stanza from the client as handled (XEP-0198's h).
func (s *Session) handled() {
	if m := s.sess.SM(); m != nil {
		m.In.Add(1)
	}
}

func (s *Session) stopAckTimer() {
	if t := s.ackTimer.Load(); t != nil {
		t.Stop()
	}
}

func sessionResult(el *stanza.Element) *stanza.Element {
	return stanza.New(stanza.NSClient, "iq").Set("type", "result").Set("id", el.Get("id")).Set("to", el.Get("from"))
}

// Deliver implements session.Transport: queue el on the session's queue.
// A client that lets QueueSize stanzas pile up gets slowConsumerGrace to
// make room (the sender waits, as TCP's back-pressure would make it);
// then it is a slow consumer and is disconnected, so it can never stall the
// router or hold unbounded memory.
func (s *Session) Deliver(el *stanza.Element) bool {
	ok, full := s.out.Enqueue(el, true)
	if full {
		// A client that reads, only slower than others write to it, gets a
		// moment: the sender waits (back-pressure, as TCP would apply) for
		// the writer to make room. Only a client that does not drain its
		// queue within slowConsumerGrace is a slow consumer and is closed,
		// so a burst never costs a reading client its session.
		ctx, cancel := context.WithTimeout(context.Background(), slowConsumerGrace)
		ok = s.out.DeliverWait(ctx, el)
		cancel()
		if ok {
			return true
		}
		s.logAt(slog.LevelWarn, "slow consumer: closing", "queued", s.srv.cfg.QueueSize)
		// The writer may be stuck in a Write the client does not read: fail
		// it now rather than after WriteTimeout, so the session ends at once.
		s.out.CloseStuck(&stanza.StreamError{Condition: "policy-violation", Text: "too many stanzas waiting for you"})
		return false
	}
	return ok
}

// slowConsumerGrace is how long a sender waits for room in a full queue
// before the receiving client counts as a slow consumer.
const slowConsumerGrace = 2 * time.Second

// Start implements session.Transport: write what waits in the queue.
func (s *Session) Start() { s.out.Start() }

// Close implements session.Transport.
func (s *Session) Close(se *stanza.StreamError) { s.out.CloseWithError(se) }

// DeliverWait queues el like Deliver, but when the queue is full it waits for
// the writer to make room (until ctx ends) instead of treating the client as
// slow. It is for bulk deliveries the client itself caused, run on its own
// reader goroutine (offline messages after its initial presence), where
// waiting only holds back that client.
func (s *Session) DeliverWait(ctx context.Context, el *stanza.Element) bool {
	return s.out.DeliverWait(ctx, el)
}

// CloseWithError ends the stream: queued stanzas are written, then the stream
// error (if any) and </stream:stream>. Safe to call from any goroutine, more than once.
func (s *Session) CloseWithError(se *stanza.StreamError) { s.out.CloseWithError(se) }

// abort closes without writing anything (the connection is already broken).
func (s *Session) abort() { s.out.Abort() }

// writeRaw writes during negotiation, from the serve goroutine.
func (s *Session) writeRaw(b []byte) error { return s.out.WriteRaw(b) }
