package s2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

// outbound is a stream we opened to a peer: for stanzas (a route), or for
// one dialback verification (XEP-0220 §2.1, the receiving server asking
// the authoritative server). One goroutine negotiates and then reads.
type outbound struct {
	*stream
	id          string // the peer's stream ID: our dialback key is bound to it
	secure      bool
	certOK      bool // the peer's certificate is trusted and names the remote domain
	verifyValid bool // the answer to our db:verify, on a verification stream
}

// refusedErr is a failure of negotiation (as opposed to the network): the
// next target is not tried, and cond, when set, is the bounce condition.
type refusedErr struct{ cond, text string }

func (e *refusedErr) Error() string { return "s2s: " + e.text }

func refused(format string, args ...any) error {
	return &refusedErr{text: fmt.Sprintf(format, args...)}
}

// dialOut connects to remote for local: each of the Resolver's targets in
// order until one connects (RFC 6120 §3.2.1), then negotiates TLS and
// authentication; with verify set, the stream only carries that db:verify.
func (s *Server) dialOut(ctx context.Context, local, remote string, verify *dbElem) (*outbound, error) {
	if s.ownDomain(remote) {
		s.logSelf(remote, "the domain is an address of this machine")
		return nil, errSelf
	}
	if s.cfg.Resolver == nil {
		return nil, refused("no resolver configured")
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	targets, err := s.cfg.Resolver.Targets(rctx, remote)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("s2s: resolving %s: %w", remote, err)
	}
	if len(targets) == 0 {
		return nil, refused("no address for %s", remote)
	}
	others := targets[:0:0]
	for _, t := range targets {
		if !s.ownTarget(t.Host, t.Port) {
			others = append(others, t)
		}
	}
	if len(others) < len(targets) {
		s.logSelf(remote, "the domain resolves to a listener of this server")
		if len(others) == 0 {
			return nil, errSelf
		}
		targets = others
	}
	var last error
	for _, t := range targets {
		out, err := s.tryTarget(ctx, t, local, remote, verify)
		if err == nil {
			return out, nil
		}
		last = err
		var re *refusedErr
		if errors.As(err, &re) || ctx.Err() != nil {
			break
		}
	}
	return nil, last
}

func (s *Server) tryTarget(ctx context.Context, t Target, local, remote string, verify *dbElem) (*outbound, error) {
	s.dialed.Add(1)
	d := net.Dialer{Timeout: s.cfg.ConnectTimeout}
	addr := net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := netip.ParseAddr(t.Host); err != nil {
		// A host name, resolved by the dialer: now we know where it led.
		if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil && s.ownTarget(ap.Addr().String(), int(ap.Port())) {
			conn.Close()
			s.logSelf(remote, "the domain's target "+t.Host+" is this server")
			return nil, errSelf
		}
	}
	out := &outbound{stream: newStream(s, conn, "out", s.cfg.PreAuthLimits)}
	out.local, out.remote = local, remote
	out.log = out.log.With("local_domain", local, "remote_domain", remote)
	if verify != nil {
		out.dir = "verify"
	}
	conn.SetDeadline(time.Now().Add(s.cfg.AuthTimeout))
	stop := context.AfterFunc(ctx, func() { out.netConn().Close() })
	err = out.safeNegotiate(ctx, t.DirectTLS, verify)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("%w: negotiating with %s (%s): %w", errTimeout, remote, addr, err)
		}
		out.log.Debug("outgoing stream failed", "addr", addr, "err", err)
		var re *refusedErr
		if errors.As(err, &re) || errors.Is(err, errTimeout) {
			out.CloseWithError(nil)
		} else {
			out.abort()
		}
		out.finish()
		return nil, err
	}
	out.netConn().SetDeadline(time.Time{})
	out.dec.SetLimits(s.cfg.Limits)
	return out, nil
}

// safeNegotiate turns a panic in negotiation into an error: one bad peer
// must not take the process down.
func (o *outbound) safeNegotiate(ctx context.Context, direct bool, verify *dbElem) (err error) {
	defer func() {
		if r := recover(); r != nil {
			o.log.Error("negotiation panic", "panic", r)
			err = refused("internal error")
		}
	}()
	return o.negotiate(ctx, direct, verify)
}

// next reads one element during negotiation; a stream error from the peer ends it.
func (o *outbound) next() (*stanza.Element, error) {
	el, err := o.dec.Next()
	if err != nil {
		return nil, err
	}
	o.touch()
	if el.Is(stanza.NSStream, "error") {
		// Logged here, with the peer's text; tryTarget closes our side
		// without an error of ours, as for any refusal.
		cond, _ := o.peerStreamError(el)
		return nil, refused("the peer closed the stream with <%s/>", cond)
	}
	return el, nil
}

// negotiate runs the initiating side: header, STARTTLS (required), then
// SASL EXTERNAL (XEP-0178) if offered, else dialback (XEP-0220) if offered.
func (o *outbound) negotiate(ctx context.Context, direct bool, verify *dbElem) error {
	s := o.srv
	if direct {
		if err := o.startTLS(ctx, true); err != nil {
			return err
		}
	}
	triedExternal, saslDone := false, false
	for {
		hdr := stanza.StreamHeader{NS: stanza.NSServer, From: o.local, To: o.remote, Version: "1.0",
			Extra: [][2]string{{"db", nsDialback}}}
		if err := o.writeHeader(hdr, nil); err != nil {
			return err
		}
		h, err := o.dec.ReadHeader()
		if err != nil {
			return err
		}
		if h.NS != stanza.NSServer {
			return refused("the peer's content namespace is %q", h.NS)
		}
		if major, _, _ := strings.Cut(h.Version, "."); major != "1" {
			return refused("the peer does not speak XMPP 1.0")
		}
		o.id = h.ID
		feats, err := o.next()
		if err != nil {
			return err
		}
		if !feats.Is(stanza.NSStream, "features") {
			return refused("expected <stream:features/>, got <%s/>", feats.Local)
		}
		if saslDone {
			return nil // RFC 6120 §6.4.6: authenticated; the features after the restart hold nothing we need
		}
		if !o.secure && s.cfg.TLS != nil {
			if feats.Child(stanza.NSTLS, "starttls") == nil {
				return refused("the peer does not offer STARTTLS")
			}
			if err := o.writeRaw([]byte("<starttls xmlns='" + stanza.NSTLS + "'/>")); err != nil {
				return err
			}
			el, err := o.next()
			if err != nil {
				return err
			}
			if !el.Is(stanza.NSTLS, "proceed") {
				return refused("STARTTLS refused")
			}
			if err := o.startTLS(ctx, false); err != nil {
				return err
			}
			continue
		}
		if verify != nil {
			return o.sendVerify(verify)
		}
		if s.cfg.RequireValidCert && !o.certOK {
			return refused("the certificate of %s is not valid and policy requires one", o.remote)
		}
		if feats.Child(nsBidiFeature, "bidi") != nil && !o.isBidi() {
			// XEP-0288: asked for before authentication.
			if err := o.writeRaw([]byte("<bidi xmlns='" + nsBidi + "'/>")); err != nil {
				return err
			}
			o.amu.Lock()
			o.bidi = true
			o.amu.Unlock()
		}
		if !triedExternal && offersExternal(feats) && s.ourCertFor(o.local) != nil {
			triedExternal = true
			// XEP-0178: the authorization identity is our domain.
			b := []byte("<auth xmlns='" + stanza.NSSASL + "' mechanism='EXTERNAL'>")
			b = base64.StdEncoding.AppendEncode(b, []byte(o.local))
			b = append(b, "</auth>"...)
			if err := o.writeRaw(b); err != nil {
				return err
			}
			el, err := o.next()
			if err != nil {
				return err
			}
			if el.Is(stanza.NSSASL, "success") {
				saslDone = true
				o.method = "EXTERNAL"
				o.dec.Reset(o.netConn()) // the stream restarts after <success/>
				continue
			}
			o.log.Info("SASL EXTERNAL refused, trying dialback", "response", firstLocal(el))
		}
		if feats.Child(nsDialbackFeature, "dialback") != nil || declares(h, nsDialback) {
			return o.dialback()
		}
		return refused("%s offers no authentication we can use", o.remote)
	}
}

func offersExternal(feats *stanza.Element) bool {
	mechs := feats.Child(stanza.NSSASL, "mechanisms")
	if mechs == nil {
		return false
	}
	for _, m := range mechs.Children() {
		if m.Is(stanza.NSSASL, "mechanism") && strings.TrimSpace(m.Text()) == "EXTERNAL" {
			return true
		}
	}
	return false
}

func declares(h stanza.StreamHeader, ns string) bool {
	for _, x := range h.Extra {
		if x[1] == ns {
			return true
		}
	}
	return false
}

// startTLS upgrades an outgoing connection: SNI is the remote domain, and the
// peer's certificate is checked for it (RFC 6120 §13.7.2, RFC 6125).
func (o *outbound) startTLS(ctx context.Context, direct bool) error {
	tc := tls.Client(o.netConn(), o.srv.clientTLS(o.local, o.remote, direct))
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	o.setConn(tc)
	o.secure = true
	o.certOK = o.srv.peerCertValid(tc.ConnectionState(), o.remote)
	o.log.Debug("TLS established", "peer_cert_valid", o.certOK)
	return nil
}

// dialback is the originating server's part (XEP-0220 §2.1): send our
// key for this stream and wait for the receiving server's verdict.
func (o *outbound) dialback() error {
	key := dialbackKey(o.srv.secret, o.remote, o.local, o.id)
	req := dbElem{from: o.local, to: o.remote, key: key}
	if err := o.writeRaw(req.element().AppendXML(nil, stanza.NSServer)); err != nil {
		return err
	}
	for {
		el, err := o.next()
		if err != nil {
			return err
		}
		switch {
		case el.Is(nsDialback, "result"):
			d, err := parseDialback(el)
			if err != nil || d.from != o.remote || d.to != o.local {
				continue
			}
			switch d.typ {
			case "valid":
				o.method = "dialback"
				return nil
			case "invalid":
				return refused("%s refused our dialback key", o.remote)
			case "error":
				return &refusedErr{cond: dialbackBounce(d.errCond), text: "dialback error <" + d.errCond + "/> from " + o.remote}
			}
		case el.Is(nsDialback, "verify"):
			if err := o.answerVerify(el); err != nil {
				return err
			}
		}
	}
}

// dialbackBounce maps a dialback error to the condition our senders see.
func dialbackBounce(cond string) string {
	if cond == "remote-server-timeout" {
		return cond
	}
	return "remote-server-not-found"
}

// sendVerify asks the authoritative server about a key (XEP-0220 §2.1)
// and records its answer.
func (o *outbound) sendVerify(v *dbElem) error {
	if err := o.writeRaw(v.element().AppendXML(nil, stanza.NSServer)); err != nil {
		return err
	}
	for {
		el, err := o.next()
		if err != nil {
			return err
		}
		if !el.Is(nsDialback, "verify") {
			continue
		}
		d, err := parseDialback(el)
		if err != nil || d.typ == "" || d.id != v.id || d.from != v.to || d.to != v.from {
			continue
		}
		if d.typ == "error" {
			return &refusedErr{cond: dialbackBounce(d.errCond), text: "dialback verification error <" + d.errCond + "/>"}
		}
		o.verifyValid = d.typ == "valid"
		return nil
	}
}

// safeRun is run with a panic turned into internal-server-error.
func (o *outbound) safeRun() (err error) {
	defer func() {
		if r := recover(); r != nil {
			o.log.Error("stream panic", "panic", r)
			err = &stanza.StreamError{Condition: "internal-server-error"}
		}
	}()
	return o.run()
}

// run reads an established outgoing stream: the peer's close, dialback
// verifications it asks of us, and with XEP-0288 its stanzas.
func (o *outbound) run() error {
	for {
		el, err := o.dec.Next()
		if err != nil {
			return err
		}
		o.touch()
		if o.isClosing() {
			continue
		}
		switch {
		case el.Is(stanza.NSStream, "error"):
			o.peerStreamError(el)
			return errPeerStreamError
		case el.Is(nsDialback, "verify"):
			if err := o.answerVerify(el); err != nil {
				return err
			}
		case el.Is(nsDialback, "result"):
			// A late answer; nothing to do.
		case isStanza(el):
			if !o.isBidi() {
				return &stanza.StreamError{Condition: "unsupported-stanza-type", Text: "stanzas on a stream we opened need XEP-0288"}
			}
			if err := o.stanza(el); err != nil {
				return err
			}
		default:
			return &stanza.StreamError{Condition: "unsupported-stanza-type", Text: "<" + el.Local + "/> is not supported here"}
		}
	}
}

// verifyKey asks the authoritative server of originating, over a connection
// of its own, whether key is its dialback key for our domain receiving and
// the stream streamID.
func (s *Server) verifyKey(ctx context.Context, receiving, originating, streamID, key string) (bool, error) {
	v := &dbElem{verify: true, from: receiving, to: originating, id: streamID, key: key}
	out, err := s.dialOut(ctx, receiving, originating, v)
	if err != nil {
		return false, err
	}
	valid := out.verifyValid
	out.CloseWithError(nil)
	out.finish()
	return valid, nil
}

func firstLocal(el *stanza.Element) string {
	if c := el.FirstChild(); c != nil {
		return c.Local
	}
	return ""
}
