package main

// One simulated client: TCP (from a spread of source addresses), STARTTLS or
// Direct TLS, SASL (SCRAM-SHA-256, SCRAM-SHA-1, PLAIN if asked), bind, roster
// get, initial presence (acknowledged by a ping round trip). After login the goroutine that logged in becomes the
// client's only reader; stanzas are written inline by whoever sends them
// (serialised by a mutex), so an idle client costs one goroutine.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

const nsRoster = "jabber:iq:roster"

// clientLimits bound what the server can make one client hold (a big roster
// is the largest thing we expect).
var clientLimits = stanza.Limits{MaxStanza: 4 << 20, MaxDepth: 32, MaxAttrs: 64, MaxHeader: 8192}

// dialer holds what every client of a run shares.
type dialer struct {
	addr      string // host:port of the server
	domain    string // XMPP domain, also the TLS SNI
	directTLS bool
	mech      string // "auto" or a mechanism name
	sasl2     bool   // use SASL2 (XEP-0388) and Bind 2 (XEP-0386) where offered
	fast      bool   // with sasl2: log in with FAST tokens (XEP-0484), kept in cache
	sm        bool   // enable stream management (XEP-0198) with resumption after bind
	smEvery   int    // with sm: ask the server for an ack (<r/>) after this many stanzas sent
	// FAST: logins made with a token, and tokens the server refused.
	fastLogins, fastRefused atomic.Int64
	plain                   bool // PLAIN allowed when no SCRAM is offered
	sources                 []net.IP
	next                    atomic.Uint64
	cache                   *scramCache
	timeout                 time.Duration // whole login
	tlsConf                 *tls.Config
	mechUsed                sync.Map // mechanism name → struct{}
}

func newDialer(addr, domain string, directTLS bool, mech string, plain bool, sources []net.IP, timeout time.Duration) *dialer {
	conf := &tls.Config{
		ServerName:         domain,
		InsecureSkipVerify: true, // a bench tool: servers under test use self-signed certificates
		MinVersion:         tls.VersionTLS12,
	}
	if directTLS {
		conf.NextProtos = []string{"xmpp-client"} // XEP-0368
	}
	return &dialer{addr: addr, domain: domain, directTLS: directTLS, mech: mech, plain: plain,
		sources: sources, cache: newScramCache(), timeout: timeout, tlsConf: conf}
}

func (d *dialer) dialTCP(ctx context.Context) (net.Conn, error) {
	nd := net.Dialer{}
	if len(d.sources) > 0 {
		ip := d.sources[int(d.next.Add(1)%uint64(len(d.sources)))]
		nd.LocalAddr = &net.TCPAddr{IP: ip}
		nd.Control = bindNoPort
	}
	return nd.DialContext(ctx, "tcp", d.addr)
}

// handler gets every message and presence a client receives, on the client's
// reader goroutine (or the login goroutine during login).
type handler func(c *client, el *stanza.Element)

type client struct {
	d        *dialer
	idx      int
	local    string
	bare     string
	full     string
	conn     net.Conn
	raw      net.Conn // the TCP connection under conn (for an abortive close)
	dec      *stanza.Decoder
	handle   handler
	wmu      sync.Mutex
	wbuf     []byte
	wuntil   time.Time // the write deadline sendWith set last
	both     []string  // roster items with subscription='both' (bare JIDs) at login
	closing  atomic.Bool
	dropped  atomic.Bool // the stream ended without us asking
	dropErr  error
	loggedIn time.Duration

	// Scenario state, owned by the reader goroutine except where atomic.
	chat *chatState
	pres *presState
	res  *resState

	// sm is the client's XEP-0198 state once <enabled/> arrived (nil
	// without --sm or before). A resumed session gets a new client with a
	// copy of it; the cut one keeps its own, marked cut.
	sm *smState
	// inlineResume: a <resume/> to send inside SASL2's <authenticate/>
	// (XEP-0388 §2.5) when the server offers it; sasl2Done is the
	// <success/> that answered.
	inlineResume string
	sasl2Done    *stanza.Element
}

// errf wraps an error with the login step it happened in.
func errf(step string, err error) error { return fmt.Errorf("%s: %w", step, err) }

// login connects and logs in user (localpart) with password. h may be nil.
func (d *dialer) login(ctx context.Context, idx int, user, password string, h handler) (*client, error) {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	raw, err := d.dialTCP(ctx)
	if err != nil {
		return nil, errf("connect", err)
	}
	deadline, _ := ctx.Deadline()
	_ = raw.SetDeadline(deadline)
	c := &client{idx: idx, local: user, bare: user + "@" + d.domain, handle: h, conn: raw, raw: raw, d: d}
	if err := c.negotiate(d, password); err != nil {
		raw.Close()
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	c.loggedIn = time.Since(t0)
	return c, nil
}

func (c *client) negotiate(d *dialer, password string) error {
	after, bound, err := c.connectAuthBind(d, password)
	if err != nil {
		return err
	}
	if !bound {
		if err := c.bind(after); err != nil {
			return err
		}
	}
	if d.sm {
		if err := c.enableSM(after); err != nil {
			return err
		}
	}
	if err := c.fetchRoster(); err != nil {
		return err
	}
	// Initial presence, then a ping to the server: a server handles one
	// session's stanzas in order, so its answer means the presence took
	// effect (before that, a message to our bare JID may go to offline
	// storage because no resource is available yet).
	if err := c.writeStanzas(2, []byte("<presence/><iq type='get' id='p1' to='"+escapeAttr(d.domain)+"'><ping xmlns='urn:xmpp:ping'/></iq>")); err != nil {
		return errf("presence", err)
	}
	for {
		el, err := c.expect("presence")
		if err != nil {
			return err
		}
		if el.Local == "iq" && el.Get("id") == "p1" {
			return nil // a result, or an error from a server without ping: either way, it got there
		}
		c.dispatch(el)
	}
}

// connectAuth is connectAuthBind for a resumption: RFC 6120's SASL and
// a stream restart, nothing bound.
func (c *client) connectAuth(d *dialer, password string) (*stanza.Element, error) {
	after, _, err := c.connectAuthBind(d, password)
	return after, err
}

// connectAuthBind runs TLS and SASL on c.conn and returns the features of
// the authenticated stream, and whether a resource is bound already (SASL2
// with Bind 2).
func (c *client) connectAuthBind(d *dialer, password string) (*stanza.Element, bool, error) {
	var tc *tls.Conn
	if d.directTLS {
		tc = tls.Client(c.conn, d.tlsConf)
		if err := tc.Handshake(); err != nil {
			return nil, false, errf("tls", err)
		}
		c.conn = tc
		c.dec = stanza.NewDecoder(tc, clientLimits)
	} else {
		c.dec = stanza.NewDecoder(c.conn, clientLimits)
	}
	feat, err := c.openStream(d.domain)
	if err != nil {
		return nil, false, err
	}
	if tc == nil {
		if feat.Child(stanza.NSTLS, "starttls") == nil {
			return nil, false, errors.New("starttls: not offered (plain-text login refused)")
		}
		if err := c.write([]byte("<starttls xmlns='" + stanza.NSTLS + "'/>")); err != nil {
			return nil, false, errf("starttls", err)
		}
		el, err := c.expect("starttls")
		if err != nil {
			return nil, false, err
		}
		if !el.Is(stanza.NSTLS, "proceed") {
			return nil, false, fmt.Errorf("starttls: got <%s/>", el.Local)
		}
		tc = tls.Client(c.conn, d.tlsConf)
		if err := tc.Handshake(); err != nil {
			return nil, false, errf("tls", err)
		}
		c.conn = tc
		c.dec.Reset(tc)
		if feat, err = c.openStream(d.domain); err != nil {
			return nil, false, err
		}
	}
	after, bound, err := c.auth(d, feat, password)
	if err != nil {
		return nil, false, err
	}
	if after == nil { // RFC 6120: a new stream after <success/>
		c.dec.Reset(c.conn)
		if after, err = c.openStream(d.domain); err != nil {
			return nil, false, err
		}
	}
	return after, bound, nil
}

// openStream sends a stream header, reads the server's and its features.
func (c *client) openStream(domain string) (*stanza.Element, error) {
	h := stanza.AppendStreamHeader(nil, stanza.StreamHeader{NS: stanza.NSClient, To: domain, Version: "1.0", Lang: "en"})
	if err := c.write(h); err != nil {
		return nil, errf("stream", err)
	}
	if _, err := c.dec.ReadHeader(); err != nil {
		return nil, errf("stream header", err)
	}
	el, err := c.expect("features")
	if err != nil {
		return nil, err
	}
	if !el.Is(stanza.NSStream, "features") {
		return nil, fmt.Errorf("features: got <%s xmlns='%s'/>", el.Local, el.Space)
	}
	return el, nil
}

// expect reads the next element, turning a stream error into an error.
func (c *client) expect(step string) (*stanza.Element, error) {
	el, err := c.next()
	if err != nil {
		return nil, errf(step, err)
	}
	if el.Is(stanza.NSStream, "error") {
		return nil, fmt.Errorf("%s: stream error %s", step, streamErrCond(el))
	}
	return el, nil
}

func streamErrCond(el *stanza.Element) string {
	var parts []string
	for _, ch := range el.Children() {
		if ch.Local == "text" {
			parts = append(parts, strconv.Quote(ch.Text()))
		} else {
			parts = append(parts, ch.Local)
		}
	}
	return strings.Join(parts, " ")
}

// chooseMech picks the SASL mechanism from the server's list.
func (d *dialer) chooseMech(offered []string) (string, error) {
	if d.mech != "auto" {
		if !slices.Contains(offered, d.mech) {
			return "", fmt.Errorf("sasl: server does not offer %s (offers %s)", d.mech, strings.Join(offered, " "))
		}
		return d.mech, nil
	}
	for _, m := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1"} {
		if slices.Contains(offered, m) {
			return m, nil
		}
	}
	if d.plain && slices.Contains(offered, "PLAIN") {
		return "PLAIN", nil
	}
	return "", fmt.Errorf("sasl: no SCRAM mechanism offered (offers %s; use --mech PLAIN to allow PLAIN)", strings.Join(offered, " "))
}

// auth authenticates with RFC 6120's SASL, or, with --sasl2 and a server
// that offers it, with SASL2 (XEP-0388) and an inline bind (XEP-0386) when
// offered. For SASL2 it returns the features that follow <success/> (the
// stream is not restarted) and whether a resource is bound already. With
// --fast it logs in with the account's FAST token (XEP-0484) when it has one
// and the server offers its mechanism, and otherwise asks for one in the
// password login.
func (c *client) auth(d *dialer, feat *stanza.Element, password string) (after *stanza.Element, bound bool, err error) {
	ns, list := stanza.NSSASL, feat.Child(stanza.NSSASL, "mechanisms")
	if a := feat.Child(stanza.NSSASL2, "authentication"); d.sasl2 && a != nil {
		ns, list = stanza.NSSASL2, a
	}
	var offered []string
	for _, m := range list.Children() {
		if m.Local == "mechanism" {
			offered = append(offered, strings.TrimSpace(m.Text()))
		}
	}
	inline := list.Child(ns, "inline")
	bind2 := ns == stanza.NSSASL2 && inline.Child(stanza.NSBind2, "bind") != nil
	requestToken := ""
	if ns == stanza.NSSASL2 && d.fast {
		var fastOffered []string
		for _, m := range inline.Child(stanza.NSFast, "fast").Children() {
			fastOffered = append(fastOffered, strings.TrimSpace(m.Text()))
		}
		if mech, secret, ok := d.cache.token(c.local); ok && slices.Contains(fastOffered, mech) {
			after, bound, err = c.tokenAuth(mech, secret, bind2)
			if !errors.Is(err, errTokenRefused) {
				return after, bound, err
			}
			d.cache.dropToken(c.local) // expired or revoked: the password, and a new token
			d.fastRefused.Add(1)
		}
		for _, m := range fastMechs {
			if slices.Contains(fastOffered, m) {
				requestToken = m
				break
			}
		}
	}
	mech, err := d.chooseMech(offered)
	if err != nil {
		return nil, false, err
	}
	var initial []byte
	var sc *scramClient
	if mech == "PLAIN" {
		initial = []byte("\x00" + c.local + "\x00" + password)
	} else {
		if sc, err = newScramClient(mech, c.local, password, d.cache); err != nil {
			return nil, false, err
		}
		initial = sc.first()
	}
	var msg string
	if ns == stanza.NSSASL2 {
		msg = "<authenticate xmlns='" + ns + "' mechanism='" + mech + "'><initial-response>" + base64.StdEncoding.EncodeToString(initial) + "</initial-response>"
		if requestToken != "" {
			msg += c.userAgent() + "<request-token xmlns='" + stanza.NSFast + "' mechanism='" + requestToken + "'/>"
		}
		if c.inlineResume != "" && inline.Child(nsSM, "sm") != nil {
			msg += c.inlineResume
			d.mechUsed.LoadOrStore(mech+" (SASL2, inline resume)", struct{}{})
		} else if bind2 && c.inlineResume == "" { // (a resumption binds nothing)
			extra, label := c.bind2Extra(inline), " (SASL2, Bind 2)"
			if extra != "" {
				label = " (SASL2, Bind 2, SM inline)"
			}
			msg += "<bind xmlns='" + stanza.NSBind2 + "'><tag>xmppbench</tag>" + extra + "</bind>"
			d.mechUsed.LoadOrStore(mech+label, struct{}{})
		} else {
			d.mechUsed.LoadOrStore(mech+" (SASL2)", struct{}{})
		}
		msg += "</authenticate>"
	} else {
		d.mechUsed.LoadOrStore(mech, struct{}{})
		msg = "<auth xmlns='" + ns + "' mechanism='" + mech + "'>" + base64.StdEncoding.EncodeToString(initial) + "</auth>"
	}
	if err := c.write([]byte(msg)); err != nil {
		return nil, false, errf("sasl", err)
	}
	for step := 0; ; step++ {
		el, err := c.expect("sasl")
		if err != nil {
			return nil, false, err
		}
		text := el.Text()
		if ns == stanza.NSSASL2 && el.Is(ns, "success") {
			text = el.Child(ns, "additional-data").Text()
		}
		data, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
		if derr != nil {
			return nil, false, errf("sasl", derr)
		}
		switch {
		case el.Is(ns, "failure"):
			return nil, false, fmt.Errorf("sasl %s: failure %s", mech, failureCond(el))
		case el.Is(ns, "challenge") && sc != nil && step == 0:
			resp, err := sc.final(data)
			if err != nil {
				return nil, false, err
			}
			if err := c.write([]byte("<response xmlns='" + ns + "'>" + base64.StdEncoding.EncodeToString(resp) + "</response>")); err != nil {
				return nil, false, errf("sasl", err)
			}
		case el.Is(ns, "challenge") && sc != nil && step == 1:
			// Server-final sent as a challenge (RFC 6120 allows it): check it, answer empty.
			if err := sc.verify(data); err != nil {
				return nil, false, err
			}
			sc = nil
			if err := c.write([]byte("<response xmlns='" + ns + "'/>")); err != nil {
				return nil, false, errf("sasl", err)
			}
		case el.Is(ns, "success"):
			if sc != nil {
				if err := sc.verify(data); err != nil {
					return nil, false, err
				}
			}
			if ns == stanza.NSSASL {
				return nil, false, nil // the stream restarts
			}
			return c.sasl2Success(el, requestToken)
		default:
			return nil, false, fmt.Errorf("sasl: unexpected <%s/>", el.Local)
		}
	}
}

// fastMechs are the FAST token mechanisms the tool uses, best first: bound
// to the TLS connection (tls-exporter) as Conversations prefers, else none.
var fastMechs = []string{"HT-SHA-256-EXPR", "HT-SHA-256-NONE"}

// errTokenRefused: the server refused the token (expired, revoked, unknown).
var errTokenRefused = errors.New("FAST token refused")

// userAgent is the SASL2 <user-agent/> of the account's simulated client: a
// stable id per account, so its FAST token is found again.
func (c *client) userAgent() string {
	h := sha256.Sum256([]byte("xmppbench " + c.local))
	return fmt.Sprintf("<user-agent id='%x-%x-%x-%x-%x'><software>xmppbench</software></user-agent>", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// tokenAuth logs in with a FAST token in one round trip:
// HT-SHA-256-*: username NUL HMAC-SHA-256(token, "Initiator" || cb-data),
// and the server answers HMAC-SHA-256(token, "Responder" || cb-data).
func (c *client) tokenAuth(mech, secret string, bind2 bool) (*stanza.Element, bool, error) {
	var cb []byte
	if mech == "HT-SHA-256-EXPR" {
		tc, ok := c.conn.(*tls.Conn)
		if !ok {
			return nil, false, errors.New("fast: tls-exporter without TLS")
		}
		st := tc.ConnectionState()
		var err error
		if cb, err = st.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32); err != nil {
			return nil, false, errf("fast", err)
		}
	}
	proof := func(who string) []byte {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(who))
		m.Write(cb)
		return m.Sum(nil)
	}
	msg := "<authenticate xmlns='" + stanza.NSSASL2 + "' mechanism='" + mech + "'><initial-response>" +
		base64.StdEncoding.EncodeToString(append([]byte(c.local+"\x00"), proof("Initiator")...)) + "</initial-response>" +
		c.userAgent() + "<fast xmlns='" + stanza.NSFast + "'/>"
	if bind2 {
		msg += "<bind xmlns='" + stanza.NSBind2 + "'><tag>xmppbench</tag></bind>"
	}
	if err := c.write([]byte(msg + "</authenticate>")); err != nil {
		return nil, false, errf("fast", err)
	}
	el, err := c.expect("fast")
	if err != nil {
		return nil, false, err
	}
	switch {
	case el.Is(stanza.NSSASL2, "failure"):
		return nil, false, fmt.Errorf("%w: %s", errTokenRefused, failureCond(el))
	case !el.Is(stanza.NSSASL2, "success"):
		return nil, false, fmt.Errorf("fast: unexpected <%s/>", el.Local)
	}
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Child(stanza.NSSASL2, "additional-data").Text()))
	if err != nil || !hmac.Equal(got, proof("Responder")) {
		return nil, false, errors.New("fast: the server's proof is wrong")
	}
	c.d.mechUsed.LoadOrStore(mech+" (SASL2, FAST, Bind 2)", struct{}{})
	c.d.fastLogins.Add(1)
	return c.sasl2Success(el, mech)
}

// sasl2Success reads what follows a SASL2 <success/>: the bound JID, a FAST
// token (for the mechanism asked for, or a rotated one for the mechanism
// used) and the features of the authenticated stream.
func (c *client) sasl2Success(el *stanza.Element, tokenMech string) (*stanza.Element, bool, error) {
	c.sasl2Done = el
	if en := el.Child(stanza.NSBind2, "bound").Child(nsSM, "enabled"); en != nil {
		// Enabled inline (XEP-0386 §2.3): counting starts with <success/>.
		if err := c.smEnabled(en); err != nil {
			return nil, false, err
		}
	}
	bound := false
	if el.Child(stanza.NSBind2, "bound") != nil {
		c.full = strings.TrimSpace(el.Child(stanza.NSSASL2, "authorization-identifier").Text())
		bound = true
	}
	if t := el.Child(stanza.NSFast, "token").Get("token"); t != "" && tokenMech != "" {
		c.d.cache.setToken(c.local, tokenMech, t)
	}
	// XEP-0388: the authenticated stream's features follow, no restart.
	after, err := c.expect("features after SASL2")
	if err != nil {
		return nil, false, err
	}
	if !after.Is(stanza.NSStream, "features") {
		return nil, false, fmt.Errorf("sasl2: got <%s/> after success, want features", after.Local)
	}
	return after, bound, nil
}

func failureCond(el *stanza.Element) string {
	if ch := el.FirstChild(); ch != nil {
		return ch.Local
	}
	return "unknown"
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (c *client) bind(feat *stanza.Element) error {
	if feat.Child(stanza.NSBind, "bind") == nil {
		return errors.New("bind: not offered")
	}
	msg := "<iq type='set' id='b1'><bind xmlns='" + stanza.NSBind + "'><resource>xb-" + randomID() + "</resource></bind></iq>"
	if err := c.write([]byte(msg)); err != nil {
		return errf("bind", err)
	}
	el, err := c.awaitIQ("bind", "b1")
	if err != nil {
		return err
	}
	c.full = el.Child(stanza.NSBind, "bind").Child(stanza.NSBind, "jid").Text()
	if c.full == "" {
		return errors.New("bind: no JID in the result")
	}
	// RFC 3921 session establishment, for servers that still require it.
	if s := feat.Child(stanza.NSSession, "session"); s != nil && s.Child(stanza.NSSession, "optional") == nil {
		if err := c.write([]byte("<iq type='set' id='s1'><session xmlns='" + stanza.NSSession + "'/></iq>")); err != nil {
			return errf("session", err)
		}
		if _, err := c.awaitIQ("session", "s1"); err != nil {
			return err
		}
	}
	return nil
}

func (c *client) fetchRoster() error {
	if err := c.writeStanzas(1, []byte("<iq type='get' id='r1'><query xmlns='"+nsRoster+"'/></iq>")); err != nil {
		return errf("roster", err)
	}
	el, err := c.awaitIQ("roster", "r1")
	if err != nil {
		return err
	}
	c.both = c.both[:0]
	for _, it := range el.Child(nsRoster, "query").Children() {
		if it.Get("subscription") == "both" {
			c.both = append(c.both, it.Get("jid"))
		}
	}
	return nil
}

// awaitIQ reads until the IQ result with id, handling whatever comes before it.
func (c *client) awaitIQ(step, id string) (*stanza.Element, error) {
	for {
		el, err := c.expect(step)
		if err != nil {
			return nil, err
		}
		if el.Local == "iq" && el.Get("id") == id {
			if el.Get("type") != "result" {
				return nil, fmt.Errorf("%s: iq type=%s %s", step, el.Get("type"), stanzaErrCond(el))
			}
			return el, nil
		}
		c.dispatch(el)
	}
}

func stanzaErrCond(el *stanza.Element) string {
	if e := el.Child(stanza.NSClient, "error"); e != nil {
		if ch := e.FirstChild(); ch != nil {
			return ch.Local
		}
	}
	return ""
}

// write sends b whole, under the write lock.
func (c *client) write(b []byte) error {
	c.wmu.Lock()
	_, err := c.conn.Write(b)
	c.wmu.Unlock()
	return err
}

// sendTimeout bounds one write of sendWith.
const sendTimeout = 30 * time.Second

// sendWith appends n stanzas with fn into the client's buffer and writes
// them (with stream management, followed by an <r/> when one is due).
func (c *client) sendWith(n int, fn func(b []byte) []byte) error {
	c.wmu.Lock()
	c.wbuf = fn(c.wbuf[:0])
	if s := c.sm; s != nil {
		c.wbuf = s.sent(c.wbuf, n)
	}
	// A deadline change is a runtime timer change: move it on only once
	// half of it has passed, not for every message.
	if now := time.Now(); c.wuntil.Sub(now) < sendTimeout/2 {
		c.wuntil = now.Add(sendTimeout)
		_ = c.conn.SetWriteDeadline(c.wuntil)
	}
	_, err := c.conn.Write(c.wbuf)
	c.wmu.Unlock()
	return err
}

// readLoop reads until the stream ends, answering IQs and passing messages
// and presence to the handler. It runs on the login goroutine.
func (c *client) readLoop() {
	for {
		el, err := c.next()
		if err != nil {
			if !c.closing.Load() {
				if errors.Is(err, stanza.ErrStreamClosed) || errors.Is(err, io.EOF) {
					err = errors.New("server closed the stream")
				}
				c.dropErr = err
				c.dropped.Store(true)
			}
			c.conn.Close()
			return
		}
		if el.Is(stanza.NSStream, "error") {
			if !c.closing.Load() {
				c.dropErr = fmt.Errorf("stream error %s", streamErrCond(el))
				c.dropped.Store(true)
			}
			c.conn.Close()
			return
		}
		c.dispatch(el)
	}
}

// dispatch answers IQ gets and sets (pings, roster pushes: result; anything
// else: feature-not-implemented) and hands messages and presence on.
func (c *client) dispatch(el *stanza.Element) {
	switch el.Local {
	case "iq":
		t := el.Get("type")
		if t == "result" && el.Child(nsRoster, "query") != nil && c.handle != nil {
			c.handle(c, el) // a roster the scenario asked for
			return
		}
		if t != "get" && t != "set" {
			return
		}
		p := el.FirstChild()
		ok := p.Is("urn:xmpp:ping", "ping") || p.Is(nsRoster, "query") && t == "set"
		reply := stanza.New(stanza.NSClient, "iq").Set("id", el.Get("id")).Set("to", el.Get("from"))
		if ok {
			reply.Set("type", "result")
		} else {
			reply.Set("type", "error").Append(stanza.New(stanza.NSClient, "error").Set("type", "cancel").
				Append(stanza.New(stanza.NSStanzas, "feature-not-implemented")))
		}
		_ = c.sendWith(1, func(b []byte) []byte { return reply.AppendXML(b, stanza.NSClient) })
		if ok && t == "set" && c.handle != nil {
			c.handle(c, el) // a roster push
		}
	case "message", "presence":
		if c.handle != nil {
			c.handle(c, el)
		}
	}
}

// close ends the stream politely and closes the connection; the reader (if
// any) then returns.
func (c *client) close() {
	if c.closing.Swap(true) {
		return
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	if s := c.sm; s != nil && !s.cut.Load() {
		// Ack what was handled before leaving, as clients do: the server
		// treats stanzas unacknowledged at the end as undelivered (and
		// stores them offline, or bounces them).
		_ = c.write([]byte("<a xmlns='" + nsSM + "' h='" + strconv.FormatUint(uint64(s.h.Load()), 10) + "'/>"))
	}
	_ = c.write([]byte(stanza.StreamEnd))
	c.conn.Close()
}
