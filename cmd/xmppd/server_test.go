package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/ping"

	"github.com/xmppd/xmppd/stanza"
)

// TestSCRAMWithMelliumClient logs in with a third-party Go client (mellium's
// client side) once per mechanism, over STARTTLS and Direct TLS; the -PLUS
// variants bind to the TLS 1.3 channel with tls-exporter.
func TestSCRAMWithMelliumClient(t *testing.T) {
	srv := startTestServer(t, nil)
	mechs := []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha1Plus, sasl.ScramSha256, sasl.ScramSha1, sasl.Plain}
	for _, direct := range []bool{false, true} {
		for _, m := range mechs {
			t.Run(fmt.Sprintf("%s/direct=%v", m.Name, direct), func(t *testing.T) {
				sess, err := melliumLogin(t, srv, "alice@localhost", "alicepass", m, direct)
				if err != nil {
					t.Fatalf("login with %s: %v", m.Name, err)
				}
				defer sess.Close()
				if got := sess.LocalAddr().Bare().String(); got != "alice@localhost" {
					t.Fatalf("bound as %s", got)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				go sess.Serve(nil)
				if err := ping.Send(ctx, sess, jid.MustParse("localhost")); err != nil {
					t.Fatalf("ping after login: %v", err)
				}
			})
		}
	}
	t.Run("wrong password", func(t *testing.T) {
		if _, err := melliumLogin(t, srv, "alice@localhost", "wrong", sasl.ScramSha256Plus, false); err == nil {
			t.Fatal("logged in with a wrong password")
		}
	})
}

func melliumLogin(t *testing.T, srv *server, user, pass string, m sasl.Mechanism, direct bool) (*xmpp.Session, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tlsCfg := &tls.Config{ServerName: "localhost", InsecureSkipVerify: true}
	addr := srv.c2sAddrs[0]
	if direct {
		addr = srv.directAddr[0]
	}
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	features := []xmpp.StreamFeature{xmpp.SASL("", pass, m), xmpp.BindResource()}
	if direct {
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			t.Fatal(err)
		}
		conn = tc
	} else {
		features = append([]xmpp.StreamFeature{xmpp.StartTLS(tlsCfg)}, features...)
	}
	return xmpp.NewClientSession(ctx, jid.MustParse(user), conn, features...)
}

// TestShutdownSendsSystemShutdown: on SIGTERM (Shutdown) every open stream gets
// <system-shutdown/>, and the database is closed so a new server can open it.
func TestShutdownSendsSystemShutdown(t *testing.T) {
	srv := startTestServer(t, nil)

	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "phone", false)
	pending := dialWire(t, srv.c2sAddrs[0], false) // not yet authenticated
	pending.send(fmt.Sprintf(clientHeader, "localhost"))
	pending.readHeader()
	pending.next()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wireClient{alice, pending} {
		el := c.next()
		if !el.Is(stanza.NSStream, "error") || el.Child(stanza.NSStreams, "system-shutdown") == nil {
			t.Fatalf("got %s, want system-shutdown", el)
		}
		c.expectClosed()
	}
	again, err := startServer(context.Background(), srv.cfg, srv.log)
	if err != nil {
		t.Fatalf("reopening after shutdown: %v", err)
	}
	again.Shutdown(ctx)
}

// TestUserDelClosesSessions deletes a user through the admin socket while the
// user is online: the session is closed and the account can no longer log in.
func TestUserDelClosesSessions(t *testing.T) {
	srv := startTestServer(t, nil)
	bob := dialWire(t, srv.c2sAddrs[0], false)
	bob.login("localhost", "bob", "laptop", false)
	waitFor(t, func() bool {
		c, err := net.Dial("unix", srv.cfg.AdminSocket())
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if _, err := callAdminSocket(context.Background(), srv.cfg.AdminSocket(), adminRequest{Op: "del", JID: "bob@localhost"}); err != nil {
		t.Fatal(err)
	}
	el := bob.next()
	if el.Child(stanza.NSStreams, "not-authorized") == nil {
		t.Fatalf("got %s, want a not-authorized stream error", el)
	}
	bob.expectClosed()
	again := dialWire(t, srv.directAddr[0], true)
	again.send(fmt.Sprintf(clientHeader, "localhost"))
	again.readHeader()
	again.next()
	again.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGJvYgBib2JwYXNz</auth>")
	if el := again.next(); !el.Is(stanza.NSSASL, "failure") {
		t.Fatalf("a deleted user logged in: %s", el)
	}
}

// TestSlowConsumer: a client that stops reading is disconnected once its
// queue is full; the sender and the router never block on it.
func TestSlowConsumer(t *testing.T) {
	srv := startTestServer(t, func(c *Config) { c.C2S.QueueSize = 8 })
	bob := dialWire(t, srv.c2sAddrs[0], false)
	bobJID := bob.login("localhost", "bob", "stuck", false)
	alice := dialWire(t, srv.c2sAddrs[0], false)
	alice.login("localhost", "alice", "fast", false)

	// Headlines: once bob is gone they vanish instead of bouncing, so alice
	// (whose queue is as small as bob's) gets nothing back but her ping.
	pong := make(chan struct{})
	go func() {
		for {
			el, err := alice.nextErr()
			if err != nil {
				return
			}
			if el.Get("id") == "p" {
				close(pong)
				return
			}
		}
	}()
	body := strings.Repeat("x", 9000)
	deadline := time.Now().Add(2 * time.Minute) // a hang guard, not a margin
	for i := 0; srv.c2s.Sessions().Session(bobJID) != nil; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("bob's session still open after %d messages", i)
		}
		alice.send(fmt.Sprintf("<message to='%s' id='m%d' type='headline'><body>%s</body></message>", bobJID, i, body))
	}
	// Alice was never held up: the server answers her at once.
	alice.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	select {
	case <-pong:
	case <-time.After(wireTimeout):
		t.Fatal("alice got no answer after bob was dropped")
	}
}

// TestVirtualHosts: two domains on one server, each with its own users, and
// stanzas between them routed internally.
func TestVirtualHosts(t *testing.T) {
	srv := startTestServer(t, func(c *Config) { c.Domains = []string{"localhost", "example.test"} })
	alice := dialWire(t, srv.c2sAddrs[0], false)
	aliceJID := alice.login("localhost", "alice", "a", false)
	bob := dialWire(t, srv.c2sAddrs[0], false)
	bobJID := bob.login("example.test", "bob", "b", false)
	if bobJID != "bob@example.test/b" {
		t.Fatalf("bound %s", bobJID)
	}
	alice.send("<message to='bob@example.test/b' type='chat'><body>across domains</body></message>")
	el := bob.next()
	if el.Get("from") != aliceJID || el.Child(stanza.NSClient, "body").Text() != "across domains" {
		t.Fatalf("bob got %s", el)
	}
	other := dialWire(t, srv.c2sAddrs[0], false)
	other.send(fmt.Sprintf(clientHeader, "elsewhere.test"))
	other.readHeader()
	if el := other.next(); el.Child(stanza.NSStreams, "host-unknown") == nil {
		t.Fatalf("got %s, want host-unknown", el)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	// Polls until wireTimeout: a hang guard, long enough for a loaded machine.
	for deadline := time.Now().Add(wireTimeout); time.Now().Before(deadline); {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("condition not met in %s", wireTimeout)
}

// TestPreAuthConnsFromConfig: c2s.max_preauth_conns reaches the listener:
// with 1, a second connection from the same address that has not
// authenticated is refused with policy-violation.
func TestPreAuthConnsFromConfig(t *testing.T) {
	srv := startTestServer(t, func(c *Config) { c.C2S.MaxPreAuthConns = 1 })
	first := dialWire(t, srv.c2sAddrs[0], false)
	first.send(fmt.Sprintf(clientHeader, "localhost"))
	first.readHeader()
	first.next() // features: the first connection is served
	second := dialWire(t, srv.c2sAddrs[0], false)
	second.send(fmt.Sprintf(clientHeader, "localhost"))
	second.readHeader()
	if el := second.next(); el.Child(stanza.NSStreams, "policy-violation") == nil {
		t.Fatalf("second unauthenticated connection: got %s, want policy-violation", el)
	}
}
