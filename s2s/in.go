package s2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"net"
	"strings"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

// maxPendingDialback bounds the dialback verifications one inbound stream
// may have in progress: each costs an outgoing connection.
const maxPendingDialback = 8

// inbound is the receiving side of a stream a peer opened to us. The serve
// goroutine owns the fields below; the embedded stream's authentication
// state is shared with dialback goroutines.
type inbound struct {
	*stream
	id        string // our current stream ID (dialback keys are bound to it)
	dbNS      bool   // the peer declared jabber:server:dialback
	secure    bool
	chainOK   bool      // the peer's certificate chain is trusted
	names     certNames // and the names it presents
	claimed   string    // the 'from' of the peer's header, normalised
	saslDone  bool
	failures  int
	timeSet   bool // the pre-auth read deadline was lifted
	connState tls.ConnectionState
}

func newInbound(s *Server, c net.Conn) *inbound {
	return &inbound{stream: newStream(s, c, "in", s.cfg.PreAuthLimits)}
}

// serve runs the connection to its end.
func (in *inbound) serve(directTLS bool) {
	s := in.srv
	defer func() {
		if r := recover(); r != nil {
			in.log.Error("stream panic", "panic", r)
			in.CloseWithError(&stanza.StreamError{Condition: "internal-server-error"})
		}
		s.unregisterBidi(in.stream)
		in.finish()
		s.requeue(in.leftovers()) // stanzas routed over it (bidi) and never written
	}()
	in.netConn().SetReadDeadline(time.Now().Add(s.cfg.AuthTimeout))
	if directTLS {
		if err := in.startTLS(); err != nil {
			in.log.Debug("direct TLS handshake failed", "err", err)
			in.abort()
			return
		}
	}
	in.endWith(in.run())
}

func (in *inbound) run() error {
	if err := in.openStream(); err != nil {
		return err
	}
	for {
		if !in.timeSet && in.anyAuthed() {
			// Authenticated: the stanza limits apply from the next element on,
			// and idleness, not the auth deadline, ends the stream.
			in.timeSet = true
			in.dec.SetLimits(in.srv.cfg.Limits)
			in.netConn().SetReadDeadline(time.Time{})
			in.startIdle()
		}
		el, err := in.dec.Next()
		if err != nil {
			return err
		}
		in.touch()
		if in.isClosing() {
			continue // draining until the peer closes or the deadline ends the read
		}
		restart, err := in.element(el)
		if err != nil {
			return err
		}
		if restart {
			if err := in.openStream(); err != nil {
				return err
			}
		}
	}
}

// openStream reads the peer's header, checks it (RFC 6120 §4.7, §4.9.3) and
// answers with ours and the features of this stage.
func (in *inbound) openStream() error {
	s := in.srv
	h, err := in.dec.ReadHeader()
	ours := stanza.StreamHeader{NS: stanza.NSServer, ID: newID(), Version: "1.0", Lang: "en"}
	if in.local != "" {
		ours.From = in.local
	} else if len(s.cfg.Domains) > 0 {
		ours.From = s.cfg.Domains[0]
	}
	in.out.Restart(func() { in.hdr = ours }) // for an error sent before our header
	if err != nil {
		return err
	}
	if h.NS != stanza.NSServer {
		return &stanza.StreamError{Condition: "invalid-namespace", Text: "the content namespace must be " + stanza.NSServer}
	}
	local, ok := normDomain(h.To)
	switch {
	case h.To == "":
		return &stanza.StreamError{Condition: "host-unknown", Text: "the stream header needs a 'to' address"}
	case !ok || !s.isLocal(local):
		return &stanza.StreamError{Condition: "host-unknown", Text: "this server does not serve " + h.To}
	case in.local != "" && local != in.local:
		return &stanza.StreamError{Condition: "host-unknown", Text: "the domain changed on stream restart"}
	}
	if major, _, _ := strings.Cut(h.Version, "."); major != "1" {
		return &stanza.StreamError{Condition: "unsupported-version", Text: "xmppd speaks XMPP 1.0"}
	}
	if h.From != "" {
		from, ok := normDomain(h.From)
		if !ok {
			return &stanza.StreamError{Condition: "invalid-from", Text: "the stream header's 'from' is not a domain"}
		}
		if in.claimed != "" && from != in.claimed {
			return &stanza.StreamError{Condition: "invalid-from", Text: "the 'from' changed on stream restart"}
		}
		in.claimed = from
	}
	if in.local == "" {
		// Set once, before any other goroutine looks at this stream.
		in.local, in.remote = local, in.claimed
		in.log = in.log.With("local_domain", local, "remote_domain", in.claimed)
	}
	in.dbNS = false
	for _, x := range h.Extra {
		if x[1] == nsDialback {
			in.dbNS = true
		}
	}
	ours.From, ours.To = local, in.claimed
	if in.dbNS {
		ours.Extra = [][2]string{{"db", nsDialback}}
	}
	in.id = ours.ID
	return in.writeHeader(ours, in.appendFeatures(nil))
}

// appendFeatures writes <stream:features/> for the current stage.
func (in *inbound) appendFeatures(b []byte) []byte {
	cfg := &in.srv.cfg
	b = append(b, "<stream:features>"...)
	switch {
	case !in.secure && cfg.TLS != nil:
		// RFC 6120 §5.3.1: STARTTLS is mandatory to negotiate here.
		b = append(b, "<starttls xmlns='"+stanza.NSTLS+"'><required/></starttls>"...)
	case in.saslDone:
		// Authenticated by SASL: nothing more to negotiate (RFC 6120 §6.4.6).
	default:
		if in.chainOK && (in.claimed == "" || in.names.match(in.claimed)) {
			b = append(b, "<mechanisms xmlns='"+stanza.NSSASL+"'><mechanism>EXTERNAL</mechanism></mechanisms>"...)
		}
		if in.dbNS && !cfg.RequireValidCert {
			b = append(b, "<dialback xmlns='"+nsDialbackFeature+"'><errors/></dialback>"...)
		}
		if !in.anyAuthed() {
			b = append(b, "<bidi xmlns='"+nsBidiFeature+"'/>"...)
		}
	}
	return append(b, "</stream:features>"...)
}

// element handles one top-level element from the peer.
func (in *inbound) element(el *stanza.Element) (restart bool, err error) {
	switch {
	case el.Is(stanza.NSStream, "error"):
		// Before anything else: a peer may give up at any stage, even before TLS.
		in.peerStreamError(el)
		return false, errPeerStreamError
	case el.Is(stanza.NSTLS, "starttls"):
		if in.secure || in.srv.cfg.TLS == nil {
			in.writeRaw([]byte("<failure xmlns='" + stanza.NSTLS + "'/>"))
			return false, &stanza.StreamError{Condition: "policy-violation", Text: "STARTTLS is not available now"}
		}
		if err := in.writeRaw([]byte("<proceed xmlns='" + stanza.NSTLS + "'/>")); err != nil {
			return false, err
		}
		return true, in.startTLS()
	case isStanza(el):
		return false, in.stanza(el)
	case !in.secure && in.srv.cfg.TLS != nil:
		return false, &stanza.StreamError{Condition: "policy-violation", Text: "STARTTLS is required"}
	case el.Is(stanza.NSSASL, "auth"):
		return in.external(el)
	case el.Is(nsBidi, "bidi"):
		// XEP-0288: requested before authentication.
		in.amu.Lock()
		in.bidi = true
		in.amu.Unlock()
		return false, nil
	case el.Is(nsDialback, "result"):
		return false, in.dialbackResult(el)
	case el.Is(nsDialback, "verify"):
		return false, in.answerVerify(el)
	default:
		return false, &stanza.StreamError{Condition: "unsupported-stanza-type", Text: "<" + el.Local + "/> is not supported here"}
	}
}

// startTLS upgrades the connection; bytes sent ahead of the handshake are
// dropped with the old reader (STARTTLS command injection).
func (in *inbound) startTLS() error {
	tc := tls.Server(in.netConn(), in.srv.serverTLS())
	ctx, cancel := context.WithTimeout(in.srv.ctx, in.srv.cfg.AuthTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	in.setConn(tc)
	in.secure = true
	in.connState = tc.ConnectionState()
	if certs := in.connState.PeerCertificates; len(certs) > 0 {
		in.chainOK = verifyChain(certs, in.srv.cfg.RootCAs, time.Now()) == nil
		in.names = namesOf(certs[0])
	}
	in.log.Debug("TLS established", "peer_cert_trusted", in.chainOK)
	return nil
}

// certFor reports whether the TLS peer proved, by certificate, to be domain.
func (in *inbound) certFor(domain string) bool { return in.chainOK && in.names.match(domain) }

// external runs SASL EXTERNAL (XEP-0178, RFC 6120 §6.4): the authzid, or
// else the header's 'from', names the domain the certificate must match.
func (in *inbound) external(el *stanza.Element) (bool, error) {
	if in.saslDone {
		return false, &stanza.StreamError{Condition: "policy-violation", Text: "already authenticated"}
	}
	fail := func(cond string) (bool, error) {
		in.failures++
		if err := in.writeRaw([]byte("<failure xmlns='" + stanza.NSSASL + "'><" + cond + "/></failure>")); err != nil {
			return false, err
		}
		if in.failures >= 3 {
			return false, &stanza.StreamError{Condition: "policy-violation", Text: "too many failed authentication attempts"}
		}
		return false, nil
	}
	if el.Get("mechanism") != "EXTERNAL" {
		return fail("invalid-mechanism")
	}
	domain := in.claimed
	if t := strings.TrimSpace(el.Text()); t != "" && t != "=" {
		raw, err := base64.StdEncoding.Strict().DecodeString(t)
		if err != nil {
			return fail("incorrect-encoding")
		}
		d, ok := normDomain(string(raw))
		if !ok || in.claimed != "" && d != in.claimed {
			return fail("invalid-authzid")
		}
		domain = d
	}
	if domain == "" || !in.certFor(domain) {
		in.log.Info("SASL EXTERNAL refused", "claimed", domain)
		return fail("not-authorized")
	}
	if err := in.writeRaw([]byte("<success xmlns='" + stanza.NSSASL + "'/>")); err != nil {
		return false, err
	}
	in.saslDone = true
	in.authenticate(in.local, domain)
	in.log.Info("peer authenticated", "auth", "EXTERNAL", "peer", domain)
	return true, nil
}

// authenticate records that the peer is domain (for stanzas to local) and,
// with bidi, offers this stream as our route to it.
func (in *inbound) authenticate(local, domain string) {
	in.setAuthed(domain)
	if in.isBidi() {
		in.srv.registerBidi(in.stream, local, domain)
	}
}

// dialbackResult is the receiving server's part of XEP-0220 §2.1: a peer
// asks to be accepted as 'from' for our domain 'to' and gives a key, which
// its authoritative server must confirm, unless its certificate already
// proves it (XEP-0344, "dialback without dialback"). Several pairs may
// be asked for on one stream (XEP-0220's multiplexing): each is checked on
// its own.
func (in *inbound) dialbackResult(el *stanza.Element) error {
	s := in.srv
	d, err := parseDialback(el)
	if err != nil {
		return &stanza.StreamError{Condition: "improper-addressing", Text: "a dialback request needs bare domains in 'from' and 'to' and a key"}
	}
	if d.typ != "" {
		return nil // an answer: we never send db:result on streams we receive
	}
	reply := dbElem{from: d.to, to: d.from}
	switch {
	case !s.isLocal(d.to):
		// A dialback error (our feature advertises <errors/>).
		reply.typ, reply.errCond = "error", "item-not-found"
		in.enqueue(reply.element())
		return nil
	case s.cfg.RequireValidCert && !in.certFor(d.from):
		return &stanza.StreamError{Condition: "not-authorized", Text: "this server accepts only peers with a valid certificate"}
	case in.isAuthed(d.from) || in.certFor(d.from):
		reply.typ = "valid"
		in.authenticate(d.to, d.from)
		in.log.Info("peer authenticated", "auth", "dialback", "peer", d.from, "callback", false)
		in.enqueue(reply.element())
		return nil
	}
	in.amu.Lock()
	if in.pending == nil {
		in.pending = map[string]bool{}
	}
	if in.pending[d.from+" "+d.to] {
		in.amu.Unlock()
		return nil // already being verified
	}
	if len(in.pending) >= maxPendingDialback {
		in.amu.Unlock()
		return &stanza.StreamError{Condition: "policy-violation", Text: "too many dialback requests at once"}
	}
	in.pending[d.from+" "+d.to] = true
	in.amu.Unlock()
	id := in.id
	s.open.Go(func() { in.callback(d, id) })
	return nil
}

// callback asks the authoritative server of d.from whether the key is its
// own for this stream, and answers the peer (XEP-0220 §2.1).
func (in *inbound) callback(d dbElem, streamID string) {
	s := in.srv
	s.callbacks.Add(1)
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.AuthTimeout)
	defer cancel()
	valid, err := s.verifyKey(ctx, d.to, d.from, streamID, d.key)
	reply := dbElem{from: d.to, to: d.from}
	switch {
	case err != nil:
		reply.typ, reply.errCond = "error", condition(err)
		in.log.Info("dialback verification failed", "peer", d.from, "err", err)
	case valid:
		reply.typ = "valid"
		in.authenticate(d.to, d.from)
		in.netConn().SetReadDeadline(time.Time{}) // the serve loop may be waiting with the auth deadline
		in.log.Info("peer authenticated", "auth", "dialback", "peer", d.from, "callback", true)
	default:
		reply.typ = "invalid"
		in.log.Info("dialback key refused by the authoritative server", "peer", d.from)
	}
	in.amu.Lock()
	delete(in.pending, d.from+" "+d.to)
	in.amu.Unlock()
	in.enqueue(reply.element())
}

// answerVerify is the authoritative server's part (XEP-0220 §2.1): is this
// key one we generated for an outgoing stream from 'to' to 'from' with this ID?
// Answered on any stream, authenticated or not; the key proves itself.
func (st *stream) answerVerify(el *stanza.Element) error {
	s := st.srv
	d, err := parseDialback(el)
	if err != nil {
		return &stanza.StreamError{Condition: "improper-addressing", Text: "a dialback verification needs bare domains in 'from' and 'to', an id and a key"}
	}
	if d.typ != "" {
		return nil // an answer to a request we never made on this stream
	}
	reply := dbElem{verify: true, from: d.to, to: d.from, id: d.id}
	switch {
	case !s.isLocal(d.to):
		reply.typ, reply.errCond = "error", "item-not-found"
	case checkKey(s.secret, d.from, d.to, d.id, d.key):
		reply.typ = "valid"
	default:
		reply.typ = "invalid"
	}
	s.verified.Add(1)
	st.log.Debug("answered dialback verification", "receiving", d.from, "originating", d.to, "type", reply.typ)
	st.enqueue(reply.element())
	return nil
}

func isStanza(el *stanza.Element) bool {
	return el.Space == stanza.NSServer && (el.Local == "message" || el.Local == "presence" || el.Local == "iq")
}

// stanza checks an incoming stanza's addresses against what this stream
// authenticated (RFC 6120 §4.9.3.9 invalid-from, §4.9.3.6 host-unknown)
// and routes it.
func (st *stream) stanza(el *stanza.Element) error {
	if err := st.checkAddresses(el); err != nil {
		return err
	}
	st.log.Debug("stanza", "kind", el.Local, "type", el.Get("type"))
	st.srv.cfg.Router.Route(st.srv.ctx, el)
	return nil
}

func (st *stream) checkAddresses(el *stanza.Element) error {
	fromAttr, toAttr := el.Get("from"), el.Get("to")
	if fromAttr == "" || toAttr == "" {
		// RFC 6120 §4.9.3.7 improper-addressing: a server-to-server stanza must carry both.
		return &stanza.StreamError{Condition: "improper-addressing", Text: "a stanza between servers needs 'from' and 'to'"}
	}
	if !st.anyAuthed() {
		// RFC 6120 §4.9.3.12: stanzas before the stream is authenticated.
		return &stanza.StreamError{Condition: "not-authorized", Text: "authenticate first"}
	}
	from, err := stanza.ParseJID(fromAttr)
	if err != nil {
		return &stanza.StreamError{Condition: "invalid-from", Text: "'from' is not a valid address"}
	}
	to, err := stanza.ParseJID(toAttr)
	if err != nil {
		return &stanza.StreamError{Condition: "improper-addressing", Text: "'to' is not a valid address"}
	}
	if !st.srv.isLocal(to.Domainpart()) {
		return &stanza.StreamError{Condition: "host-unknown", Text: "this server does not serve " + to.Domainpart()}
	}
	if !st.isAuthed(from.Domainpart()) {
		st.warnForged(fromAttr)
		return &stanza.StreamError{Condition: "invalid-from", Text: "this stream is not authenticated for " + from.Domainpart()}
	}
	return nil
}

// forgedLogInterval is how often one peer address may cause a warning about
// a forged stanza.
const forgedLogInterval = 5 * time.Second

// warnForged logs a stanza whose 'from' the stream did not authenticate. At
// warn level: it is an impersonation attempt or a peer's misconfiguration
// (a domain it serves but never authenticated), either worth an operator's
// look. The stream ends with invalid-from, but a peer can reconnect and do
// it again at will, so the lines are limited per peer address.
func (st *stream) warnForged(claimed string) {
	ok, suppressed := st.srv.forgedLog.allow(st.peerIP, time.Now())
	if !ok {
		return
	}
	args := []any{"claimed_from", truncate(claimed, maxLoggedText), "authenticated", st.authedDomains()}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	st.log.Warn("refused a stanza from a domain the stream did not authenticate", args...)
}
