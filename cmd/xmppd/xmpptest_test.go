package main

// The in-process test server and a raw-wire client: tests talk XML over real
// sockets to the same server `xmppd serve` runs.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xeps"
)

// testUsers are created in every test server; each password is the name + "pass".
var testUsers = []string{"alice", "bob", "carol"}

// startTestServer starts a server on 127.0.0.1:0 with a fresh data folder.
// edit may change the config before start.
func startTestServer(t testing.TB, edit func(*Config)) *server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.C2S.Listen = []string{"127.0.0.1:0"}
	cfg.C2S.DirectTLS = []string{"127.0.0.1:0"}
	cfg.S2S.Listen = []string{"127.0.0.1:0"}
	cfg.S2S.DirectTLS = nil
	// Nothing listens there: a lookup fails at once, on loopback, instead of
	// asking the machine's resolver about test domains.
	cfg.S2S.DNSServer = "127.0.0.1:9"
	cfg.C2S.AuthTimeout = Duration(2 * time.Second)
	cfg.C2S.MaxAuthFailures = 2
	cfg.C2S.MaxStanzaSize = 10000
	cfg.C2S.PreAuthStanzaSize = 4096
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	db, err := storage.Open(cfg.DBPath(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range cfg.Domains {
		for _, u := range testUsers {
			creds, err := storage.DeriveCredentials(u+"pass", 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.CreateUser(context.Background(), d, u, creds); err != nil {
				t.Fatal(err)
			}
		}
	}
	db.Close()
	level := slog.LevelWarn
	if os.Getenv("XMPPD_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return serveForTest(t, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})), nil)
}

// serveForTest starts a server on cfg, logging to log, with mods (nil: the
// modules of modules.go), and shuts it down at the end of the test.
func serveForTest(t testing.TB, cfg Config, log *slog.Logger, mods []xeps.Module) *server {
	t.Helper()
	if mods == nil {
		mods = modules(cfg)
	}
	srv, err := startServerWith(context.Background(), cfg, log, mods)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// wireClient is a raw XMPP client: it writes bytes and reads whole elements.
type wireClient struct {
	t    testing.TB
	conn net.Conn
	dec  *stanza.Decoder
	// header is the last stream header the server sent.
	header stanza.StreamHeader
}

// wireTimeout bounds one read or write of a wire client. It only keeps a
// broken test from hanging: no test relies on it to pass, so it is long
// enough for a loaded 2-core machine under the race detector.
const wireTimeout = 30 * time.Second

func clientLimits() stanza.Limits {
	return stanza.Limits{MaxStanza: 1 << 20, MaxDepth: 64, MaxAttrs: 64, MaxHeader: 8192}
}

func dialWire(t testing.TB, addr net.Addr, directTLS bool) *wireClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if directTLS {
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		conn = tc
	}
	t.Cleanup(func() { conn.Close() })
	return &wireClient{t: t, conn: conn, dec: stanza.NewDecoder(conn, clientLimits())}
}

func (c *wireClient) send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(wireTimeout))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// readHeader reads the server's stream header.
func (c *wireClient) readHeader() stanza.StreamHeader {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(wireTimeout))
	h, err := c.dec.ReadHeader()
	if err != nil {
		c.t.Fatalf("reading stream header: %v", err)
	}
	c.header = h
	return h
}

// next reads one element, failing the test on error.
func (c *wireClient) next() *stanza.Element {
	c.t.Helper()
	el, err := c.nextErr()
	if err != nil {
		c.t.Fatalf("reading: %v", err)
	}
	return el
}

func (c *wireClient) nextErr() (*stanza.Element, error) {
	c.conn.SetReadDeadline(time.Now().Add(wireTimeout))
	return c.dec.Next()
}

// startTLS upgrades the connection after <proceed/>.
func (c *wireClient) startTLS() {
	c.t.Helper()
	c.startTLSWith(nil)
}

// startTLSWith upgrades to TLS presenting cert (nil: none), as a federating server would.
func (c *wireClient) startTLSWith(cert *tls.Certificate) {
	c.t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}
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

// expectClosed waits for the server to end the stream and close the connection.
func (c *wireClient) expectClosed() {
	c.t.Helper()
	for {
		_, err := c.nextErr()
		if errors.Is(err, stanza.ErrStreamClosed) {
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
			err != nil && strings.Contains(err.Error(), "connection reset") {
			return
		}
		if err != nil {
			c.t.Fatalf("expected the connection to close, got %v", err)
		}
	}
}

const clientHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>`

// login negotiates a stream: STARTTLS (unless direct), SASL PLAIN and bind.
// It returns the bound full JID.
func (c *wireClient) login(domain, user, resource string, direct bool) string {
	c.t.Helper()
	open := func() *stanza.Element {
		c.send(fmt.Sprintf(clientHeader, domain))
		c.readHeader()
		return c.next()
	}
	f := open()
	if !direct {
		if f.Child(stanza.NSTLS, "starttls") == nil {
			c.t.Fatalf("no starttls in %s", f)
		}
		c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
		if p := c.next(); !p.Is(stanza.NSTLS, "proceed") {
			c.t.Fatalf("expected proceed, got %s", p)
		}
		c.startTLS()
		open()
	}
	creds := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + user + "pass"))
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + creds + "</auth>")
	if s := c.next(); !s.Is(stanza.NSSASL, "success") {
		c.t.Fatalf("expected success, got %s", s)
	}
	if f := open(); f.Child(stanza.NSBind, "bind") == nil {
		c.t.Fatalf("no bind feature in %s", f)
	}
	c.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	res := c.next()
	jid := res.Child(stanza.NSBind, "bind").Child(stanza.NSBind, "jid").Text()
	if jid == "" {
		c.t.Fatalf("bind failed: %s", res)
	}
	return jid
}

// restartTestServer shuts srv down and starts a new server on the same
// config and data folder, stopped at the end of the test: what was on disk
// must still be there.
func restartTestServer(t testing.TB, srv *server) *server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	srv2, err := startServer(context.Background(), srv.cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv2.Shutdown(context.Background()) })
	return srv2
}

// sync pings the server and waits for the answer: everything c sent before
// has been processed.
func (c *wireClient) sync() {
	c.t.Helper()
	c.send("<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if r := c.next(); r.Get("id") != "sync" {
		c.t.Fatalf("sync: got %s", r)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer (a server's log, a
// client's output) and a poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
