package c2s_test

// Raw-wire tests of SASL (RFC 6120 §6) and SASL2 (XEP-0388) against a real
// c2s.Server on loopback: which condition each malformed, badly encoded or
// wrong message gets, at each step of each mechanism.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"hash"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/c2s"
	"github.com/xmppd/xmppd/c2s/auth"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
)

const authTestDomain = "example.com"

// authUsers is alice (password "pencil"); derived once, PBKDF2 is slow.
var authUsers = sync.OnceValue(func() storage.Credentials {
	c, err := storage.DeriveCredentials("pencil", 0)
	if err != nil {
		panic(err)
	}
	return c
})

type credStore struct{}

func (credStore) UserCredentials(_ context.Context, domain, local string) (storage.Credentials, error) {
	if domain == authTestDomain && local == "alice" {
		return authUsers(), nil
	}
	return storage.Credentials{}, storage.ErrNoSuchUser
}

// fastStore gives alice, for the client id that names an HT-* mechanism,
// one token for that mechanism: "token-" + the mechanism.
type fastStore struct{}

func (fastStore) FastTokens(_ context.Context, domain, local, clientID string) (storage.FastTokens, error) {
	if domain != authTestDomain || local != "alice" || !auth.IsFastMechanism(clientID) {
		return storage.FastTokens{}, nil
	}
	tok := &storage.FastToken{Secret: "token-" + clientID, Mechanism: clientID,
		Issued: time.Now().Unix(), Expires: time.Now().Add(time.Hour).Unix()}
	return storage.FastTokens{Current: tok}, nil
}

func (fastStore) UpdateFastTokens(context.Context, string, string, string, []byte, func(*storage.FastTokens)) error {
	return nil
}

// testCert is a self-signed ECDSA certificate signed with SHA-256, so that
// tls-server-end-point is SHA-256 of it.
func testCert(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: authTestDomain},
		DNSNames: []string{authTestDomain}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// startAuthServer serves cfg (Domains, Credentials and TLS filled in) on a
// loopback listener: direct TLS (XEP-0368) or plain TCP.
func startAuthServer(t testing.TB, cfg c2s.Config, directTLS bool) (addr string, cert tls.Certificate) {
	t.Helper()
	cert = testCert(t)
	cfg.Domains = []string{authTestDomain}
	cfg.Credentials = credStore{}
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv := c2s.New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ctx, ln, directTLS)
	}()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
		cancel()
		<-served
	})
	return ln.Addr().String(), cert
}

// authClient is a raw client that has read the stream features.
type authClient struct {
	t    testing.TB
	conn net.Conn
	dec  *stanza.Decoder
	tls  *tls.ConnectionState
}

func dialAuth(t testing.TB, addr string, directTLS bool) *authClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &authClient{t: t, conn: conn}
	if directTLS {
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: authTestDomain})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		st := tc.ConnectionState()
		c.conn, c.tls = tc, &st
	}
	c.dec = stanza.NewDecoder(c.conn, stanza.Limits{MaxStanza: 1 << 20, MaxDepth: 64, MaxAttrs: 64, MaxHeader: 8192})
	return c
}

// open sends the stream header and returns the server's first element
// after its header (the features, or a stream error).
func (c *authClient) open() *stanza.Element {
	c.t.Helper()
	c.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='` + authTestDomain + `' version='1.0'>`)
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.dec.ReadHeader(); err != nil {
		c.t.Fatalf("reading the stream header: %v", err)
	}
	return c.next()
}

func (c *authClient) send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *authClient) next() *stanza.Element {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	el, err := c.dec.Next()
	if err != nil {
		c.t.Fatalf("reading: %v", err)
	}
	return el
}

// exchange is one authentication's client state, for the messages to build
// on what the server said.
type exchange struct {
	c    *authClient
	mech string
	gs2  string // SCRAM's gs2 header, as sent
	bare string // SCRAM's client-first-message-bare
}

// A message returns the text content of the next <auth/>, <initial-response/>
// or <response/>, built from the server's last challenge (decoded).
type message func(ex *exchange, challenge []byte) string

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// raw sends text as is: bad base64, "=" for an empty response.
func raw(text string) message { return func(*exchange, []byte) string { return text } }

// encoded sends s base64-encoded.
func encoded(s string) message { return func(*exchange, []byte) string { return b64(s) } }

func (ex *exchange) plus() bool { return strings.HasSuffix(ex.mech, "-PLUS") }

func (ex *exchange) hash() func() hash.Hash {
	if strings.HasPrefix(ex.mech, "SCRAM-SHA-1") {
		return sha1.New
	}
	return sha256.New
}

// cbData is the tls-exporter binding data (the TLS 1.3 connection's).
func (ex *exchange) cbData() []byte {
	b, err := ex.c.tls.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		ex.c.t.Fatal(err)
	}
	return b
}

// scramFirst is client-first-message for user.
func scramFirst(user string) message {
	return func(ex *exchange, _ []byte) string {
		ex.gs2 = "n,,"
		if ex.plus() {
			ex.gs2 = "p=tls-exporter,,"
		}
		ex.bare = "n=" + user + ",r=fyko+d2lbbFgONRv9qkxdawL"
		return b64(ex.gs2 + ex.bare)
	}
}

// scramFinal is client-final-message proving password; edit, if set,
// rewrites the whole message (after the proof is computed).
func scramFinal(password string, edit func(string) string) message {
	return func(ex *exchange, serverFirst []byte) string {
		attrs := map[string]string{}
		for a := range strings.SplitSeq(string(serverFirst), ",") {
			k, v, _ := strings.Cut(a, "=")
			attrs[k] = v
		}
		salt, err := base64.StdEncoding.DecodeString(attrs["s"])
		iters, err2 := strconv.Atoi(attrs["i"])
		if err != nil || err2 != nil {
			ex.c.t.Fatalf("server-first %q", serverFirst)
		}
		cb := []byte(ex.gs2)
		if ex.plus() {
			cb = append(cb, ex.cbData()...)
		}
		without := "c=" + base64.StdEncoding.EncodeToString(cb) + ",r=" + attrs["r"]
		h := ex.hash()
		salted, err := pbkdf2.Key(h, password, salt, iters, h().Size())
		if err != nil {
			ex.c.t.Fatal(err)
		}
		clientKey := hmacOf(h, salted, "Client Key")
		stored := h()
		stored.Write(clientKey)
		sig := hmacOf(h, stored.Sum(nil), ex.bare+","+string(serverFirst)+","+without)
		for i := range sig {
			sig[i] ^= clientKey[i]
		}
		msg := without + ",p=" + base64.StdEncoding.EncodeToString(sig)
		if edit != nil {
			msg = edit(msg)
		}
		return b64(msg)
	}
}

func hmacOf(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// htAuth is an HT-* message for alice with token secret.
func htAuth(secret string) message {
	return func(ex *exchange, _ []byte) string {
		var cb []byte
		switch ex.mech {
		case "HT-SHA-256-EXPR":
			cb = ex.cbData()
		case "HT-SHA-256-ENDP":
			s := sha256.Sum256(ex.c.tls.PeerCertificates[0].Raw)
			cb = s[:]
		}
		return b64("alice\x00" + string(hmacOf(sha256.New, []byte(secret), "Initiator"+string(cb))))
	}
}

// run sends msgs (the first as the initial response, nil: none) and returns
// the outcome: "success" or the failure's condition.
func (ex *exchange) run(ns string, msgs []message) string {
	c := ex.c
	c.t.Helper()
	var challenge []byte
	for i, m := range msgs {
		var text string
		if m != nil {
			text = m(ex, challenge)
		}
		switch {
		case i > 0:
			c.send(fmt.Sprintf("<response xmlns='%s'>%s</response>", ns, text))
		case ns == stanza.NSSASL && m == nil:
			c.send(fmt.Sprintf("<auth xmlns='%s' mechanism='%s'/>", ns, ex.mech))
		case ns == stanza.NSSASL:
			c.send(fmt.Sprintf("<auth xmlns='%s' mechanism='%s'>%s</auth>", ns, ex.mech, text))
		default:
			ir, fast := "", ""
			if m != nil {
				ir = "<initial-response>" + text + "</initial-response>"
			}
			if auth.IsFastMechanism(ex.mech) {
				fast = "<fast xmlns='" + stanza.NSFast + "'/>"
			}
			c.send(fmt.Sprintf("<authenticate xmlns='%s' mechanism='%s'>%s<user-agent id='%s'/>%s</authenticate>",
				ns, ex.mech, ir, ex.mech, fast))
		}
		el := c.next()
		switch {
		case el.Is(ns, "challenge") && i < len(msgs)-1:
			var err error
			if challenge, err = base64.StdEncoding.DecodeString(el.Text()); err != nil {
				c.t.Fatalf("challenge %s: %v", el, err)
			}
		case el.Is(ns, "success"):
			return "success"
		case el.Is(ns, "failure") && el.FirstChild() != nil:
			return el.FirstChild().Local
		default:
			c.t.Fatalf("after message %d: unexpected %s", i, el)
		}
	}
	c.t.Fatal("the exchange did not end")
	return ""
}

// TestSASLConditions runs every mechanism, in SASL and SASL2, through
// good and bad exchanges: bad base64 at any step is incorrect-encoding,
// a message that does not parse malformed-request, a wrong proof
// not-authorized (RFC 6120 §6.5).
func TestSASLConditions(t *testing.T) {
	addr, _ := startAuthServer(t, c2s.Config{FastTokens: fastStore{}, MaxAuthFailures: 10}, true)
	type row struct {
		name string
		msgs []message
		want string
	}
	plain := []row{
		{"ok", []message{encoded("\x00alice\x00pencil")}, "success"},
		{"ok in a response", []message{nil, encoded("\x00alice\x00pencil")}, "success"},
		{"bad base64", []message{raw("AGFsaWNl!!!")}, "incorrect-encoding"},
		{"bad base64 in a response", []message{nil, raw("@@@")}, "incorrect-encoding"},
		{"no NULs", []message{encoded("alice pencil")}, "malformed-request"},
		{"wrong password", []message{encoded("\x00alice\x00crayon")}, "not-authorized"},
		{"unknown user", []message{encoded("\x00mallory\x00pencil")}, "not-authorized"},
	}
	scram := []row{
		{"ok", []message{scramFirst("alice"), scramFinal("pencil", nil)}, "success"},
		{"bad base64 first", []message{raw("biws!")}, "incorrect-encoding"},
		// The regression: the final message's decoding error was lost, and
		// the exchange went on with no data ("missing proof").
		{"bad base64 final", []message{scramFirst("alice"), raw("Yz1iaXdz*")}, "incorrect-encoding"},
		{"malformed first", []message{encoded("garbage")}, "malformed-request"},
		{"malformed final", []message{scramFirst("alice"), encoded("garbage")}, "malformed-request"},
		{"proof not base64", []message{scramFirst("alice"), scramFinal("pencil", func(m string) string {
			i := strings.LastIndex(m, ",p=")
			return m[:i] + ",p=***"
		})}, "malformed-request"},
		{"empty final", []message{scramFirst("alice"), raw("=")}, "malformed-request"},
		{"wrong password", []message{scramFirst("alice"), scramFinal("crayon", nil)}, "not-authorized"},
		{"unknown user", []message{scramFirst("mallory"), scramFinal("pencil", nil)}, "not-authorized"},
		{"wrong channel binding", []message{scramFirst("alice"), scramFinal("pencil", func(m string) string {
			return "c=" + b64("p=tls-exporter,,"+strings.Repeat("x", 32)) + m[strings.Index(m, ",r="):]
		})}, "not-authorized"},
	}
	ht := []row{
		{"ok", nil, "success"}, // filled in per mechanism
		{"bad base64", []message{raw("YWxpY2U%")}, "incorrect-encoding"},
		{"no NUL", []message{encoded("alice")}, "malformed-request"},
		{"wrong token", []message{htAuth("guess")}, "not-authorized"},
	}
	tests := map[string][]row{
		"PLAIN":              plain,
		"SCRAM-SHA-1":        scram[:len(scram)-1], // no channel binding to get wrong
		"SCRAM-SHA-256":      scram[:len(scram)-1],
		"SCRAM-SHA-1-PLUS":   scram,
		"SCRAM-SHA-256-PLUS": scram,
		"HT-SHA-256-NONE":    ht,
		"HT-SHA-256-EXPR":    ht,
		"HT-SHA-256-ENDP":    ht,
	}
	for mech, rows := range tests {
		for _, ns := range []string{stanza.NSSASL, stanza.NSSASL2} {
			if ns == stanza.NSSASL && auth.IsFastMechanism(mech) {
				continue // FAST is SASL2 only
			}
			profile := map[string]string{stanza.NSSASL: "SASL", stanza.NSSASL2: "SASL2"}[ns]
			for _, tt := range rows {
				t.Run(profile+"/"+mech+"/"+tt.name, func(t *testing.T) {
					msgs := tt.msgs
					if msgs == nil {
						msgs = []message{htAuth("token-" + mech)}
					}
					c := dialAuth(t, addr, true)
					if f := c.open(); !f.Is(stanza.NSStream, "features") {
						t.Fatalf("got %s, want the features", f)
					}
					ex := &exchange{c: c, mech: mech}
					if got := ex.run(ns, msgs); got != tt.want {
						t.Errorf("got %s, want %s", got, tt.want)
					}
				})
			}
		}
	}
}
