package s2s

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "xmppd test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a leaf certificate for dnsNames (signed by ca, or self-signed when ca is nil).
func issue(t testing.TB, ca *testCA, dnsNames ...string) tls.Certificate {
	t.Helper()
	return issueWith(t, ca, func(c *x509.Certificate) { c.DNSNames = dnsNames })
}

func issueWith(t testing.TB, ca *testCA, edit func(*x509.Certificate)) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	edit(tmpl)
	parent, signer := tmpl, any(key)
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// sanExtension builds a subjectAltName with dNSNames and XMPP otherNames.
func sanExtension(t testing.TB, dns, srv, xmpp []string) pkix.Extension {
	t.Helper()
	var names []asn1.RawValue
	for _, d := range dns {
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(d)})
	}
	other := func(oid asn1.ObjectIdentifier, tag int, v string) {
		str, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: tag, Bytes: []byte(v)})
		explicit, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: str})
		o, _ := asn1.Marshal(oid)
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(o, explicit...)})
	}
	for _, s := range srv {
		other(oidDNSSRV, asn1.TagIA5String, s)
	}
	for _, x := range xmpp {
		other(oidXMPPAddr, asn1.TagUTF8String, x)
	}
	v, err := asn1.Marshal(names)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidSubjectAltName, Value: v}
}

// recorder is a Router that records what it is given.
type recorder struct {
	ch chan *stanza.Element
}

func newRecorder() *recorder { return &recorder{ch: make(chan *stanza.Element, 100)} }

func (r *recorder) Route(_ context.Context, el *stanza.Element) { r.ch <- el }

func (r *recorder) next(t testing.TB) *stanza.Element {
	t.Helper()
	select {
	case el := <-r.ch:
		return el
	case <-time.After(5 * time.Second):
		t.Fatal("nothing routed within 5 s")
		return nil
	}
}

func (r *recorder) none(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case el := <-r.ch:
		t.Fatalf("unexpected stanza routed: %s", el)
	case <-time.After(d):
	}
}

// staticResolver maps domains to targets.
type staticResolver struct {
	mu sync.Mutex
	m  map[string][]Target
}

func (r *staticResolver) set(domain string, addr net.Addr, direct bool) {
	host, port, _ := net.SplitHostPort(addr.String())
	p, _ := strconv.Atoi(port)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string][]Target{}
	}
	r.m[domain] = []Target{{Host: host, Port: p, DirectTLS: direct}}
}

func (r *staticResolver) Targets(_ context.Context, domain string) ([]Target, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.m[domain]; ok {
		return t, nil
	}
	return nil, errors.New("no such domain")
}

type testServer struct {
	*Server
	domain string
	router *recorder
	addr   net.Addr // STARTTLS listener
	direct net.Addr // Direct TLS listener
}

func testLogger() *slog.Logger {
	if os.Getenv("XMPPD_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startServer runs an s2s.Server for domain on 127.0.0.1, registered in res.
func startServer(t testing.TB, res *staticResolver, domain string, cert tls.Certificate, roots *x509.CertPool, edit func(*Config)) *testServer {
	t.Helper()
	rec := newRecorder()
	cfg := Config{
		Domains:        []string{domain},
		TLS:            &tls.Config{Certificates: []tls.Certificate{cert}},
		RootCAs:        roots,
		Resolver:       res,
		Router:         rec,
		ConnectTimeout: 2 * time.Second,
		AuthTimeout:    5 * time.Second,
		Logger:         testLogger().With("server", domain),
	}
	if edit != nil {
		edit(&cfg)
	}
	s := New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lnd, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	go s.Serve(ctx, ln, false)
	go s.Serve(ctx, lnd, true)
	res.set(domain, ln.Addr(), false)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return &testServer{Server: s, domain: domain, router: rec, addr: ln.Addr(), direct: lnd.Addr()}
}

func message(from, to, body string) *stanza.Element {
	return stanza.New(stanza.NSClient, "message").Set("from", from).Set("to", to).Set("type", "chat").Set("id", body).
		Append(stanza.New(stanza.NSClient, "body").AppendText(body))
}

// routeOf returns the established route stream of a domain pair, if any.
func (s *testServer) routeOf(local, remote string) *stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.routes[routeKey{local, remote}]; r != nil {
		return r.st
	}
	return nil
}

// raw is a raw-wire peer: the XML it exchanges is written out in the tests.
type raw struct {
	t    testing.TB
	conn net.Conn
	dec  *stanza.Decoder
}

func dialRaw(t testing.TB, addr net.Addr) *raw {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &raw{t: t, conn: conn, dec: stanza.NewDecoder(conn, stanza.Limits{MaxStanza: 1 << 20, MaxDepth: 64, MaxAttrs: 64, MaxHeader: 8192})}
}

func (c *raw) send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *raw) header() stanza.StreamHeader {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, err := c.dec.ReadHeader()
	if err != nil {
		c.t.Fatalf("reading stream header: %v", err)
	}
	return h
}

func (c *raw) next() *stanza.Element {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	el, err := c.dec.Next()
	if err != nil {
		c.t.Fatalf("reading: %v", err)
	}
	return el
}

// expectStreamError reads until <stream:error/> and checks its condition and the close after it.
func (c *raw) expectStreamError(cond string) {
	c.t.Helper()
	for {
		el := c.next()
		if !el.Is(stanza.NSStream, "error") {
			continue
		}
		if got := firstLocal(el); got != cond {
			c.t.Fatalf("stream error <%s/>, want <%s/>: %s", got, cond, el)
		}
		c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.dec.Next(); !errors.Is(err, stanza.ErrStreamClosed) {
			c.t.Fatalf("after the stream error: %v, want </stream:stream>", err)
		}
		return
	}
}

// expectClose reads the end of the stream: </stream:stream> with nothing
// before it, in particular no <stream:error/>.
func (c *raw) expectClose() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	el, err := c.dec.Next()
	if err == nil {
		c.t.Fatalf("got %s, want </stream:stream>", el)
	}
	if !errors.Is(err, stanza.ErrStreamClosed) {
		c.t.Fatalf("%v, want </stream:stream>", err)
	}
}

func (c *raw) startTLS(cert *tls.Certificate) {
	c.t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.dec.Reset(tc)
}

func serverHeader(from, to string) string {
	return fmt.Sprintf(`<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='%s' to='%s' version='1.0'>`, from, to)
}

// openTLS runs the raw peer "from" through the header and STARTTLS with cert
// and returns the features offered on the secured stream.
func (c *raw) openTLS(from, to string, cert *tls.Certificate) *stanza.Element {
	c.t.Helper()
	c.send(serverHeader(from, to))
	c.header()
	f := c.next()
	if f.Child(stanza.NSTLS, "starttls").Child(stanza.NSTLS, "required") == nil {
		c.t.Fatalf("expected <starttls><required/></starttls>, got %s", f)
	}
	c.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	if p := c.next(); !p.Is(stanza.NSTLS, "proceed") {
		c.t.Fatalf("expected <proceed/>, got %s", p)
	}
	c.startTLS(cert)
	c.send(serverHeader(from, to))
	c.header()
	return c.next()
}

func hasMechanism(f *stanza.Element, name string) bool {
	mechs := f.Child(stanza.NSSASL, "mechanisms")
	if mechs == nil {
		return false
	}
	for _, m := range mechs.Children() {
		if strings.TrimSpace(m.Text()) == name {
			return true
		}
	}
	return false
}

// logBuf is a server's log as text, for tests of what is logged.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// captureLog makes cfg log (everything, as text) into the returned logBuf.
func captureLog(cfg *Config) *logBuf {
	l := &logBuf{}
	cfg.Logger = slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return l
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the lines logged so far that contain every one of parts.
func (l *logBuf) lines(parts ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for line := range strings.Lines(l.b.String()) {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			out = append(out, strings.TrimSuffix(line, "\n"))
		}
	}
	return out
}

// expectLine fails unless exactly one line logged so far contains every one of parts.
func (l *logBuf) expectLine(t testing.TB, parts ...string) string {
	t.Helper()
	got := l.lines(parts...)
	if len(got) != 1 {
		l.mu.Lock()
		all := l.b.String()
		l.mu.Unlock()
		t.Fatalf("%d log lines with %q, want 1; the log:\n%s", len(got), parts, all)
	}
	return got[0]
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
