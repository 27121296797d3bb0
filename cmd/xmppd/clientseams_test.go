package main

// The seams c2s offers modules for a bound client's own stream elements
// (xeps/client.go): nonzas in a namespace a module claims, and Bind 2's
// inline features. CSI and carbons build on them.

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

const (
	nsTestNonza = "urn:xmppd:test:nonza"
	nsTestBind2 = "urn:xmppd:test:bind2"
)

// seamModule claims a nonza namespace (it answers each nonza with a message
// naming the session it came on) and a Bind 2 inline feature (it records
// the session and answers in <bound/>).
type seamModule struct {
	mu    sync.Mutex
	bound map[string]string // full JID → the mode its <bind/> child asked for
}

func (*seamModule) Name() string { return "seamtest" }

func (m *seamModule) Register(h *xeps.Host) error {
	h.StreamFeature(stanza.New(nsTestNonza, "nonzas"))
	h.HandleNonza(nsTestNonza, func(ctx context.Context, s xeps.Session, el *stanza.Element) {
		s.Deliver(stanza.New(stanza.NSClient, "message").Set("to", s.Full()).
			Append(stanza.New(nsTestNonza, "heard").Set("what", el.Local).Set("on", s.Full())))
	})
	h.HandleBind2(nsTestBind2, func(ctx context.Context, s xeps.Session, req *stanza.Element) *stanza.Element {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.bound == nil {
			m.bound = map[string]string{}
		}
		m.bound[s.Full()] = req.Get("mode")
		return stanza.New(nsTestBind2, "ok").Set("mode", req.Get("mode"))
	})
	return nil
}

// loginSASL2 logs in over Direct TLS with SASL2 PLAIN, putting inline (XML)
// into <authenticate/>, and returns the stream features and the <success/>.
func (c *wireClient) loginSASL2(user, inline string) (features, success *stanza.Element) {
	c.t.Helper()
	c.send(fmt.Sprintf(clientHeader, "localhost"))
	c.readHeader()
	features = c.next()
	creds := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + user + "pass"))
	c.send("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>" + creds +
		"</initial-response>" + inline + "</authenticate>")
	success = c.next()
	if !success.Is(stanza.NSSASL2, "success") {
		c.t.Fatalf("expected SASL2 success, got %s", success)
	}
	return features, success
}

func TestClientSeams(t *testing.T) {
	mod := &seamModule{}
	srv := startTestServerWith(t, nil, mod)

	t.Run("bind2 inline feature", func(t *testing.T) {
		c := dialWire(t, srv.directAddr[0], true)
		features, success := c.loginSASL2("alice", "<bind xmlns='urn:xmpp:bind:0'><tag>seam</tag><x xmlns='"+nsTestBind2+"' mode='quiet'/></bind>")
		var vars []string
		for _, f := range features.Child(stanza.NSSASL2, "authentication").Child(stanza.NSSASL2, "inline").
			Child(stanza.NSBind2, "bind").Child(stanza.NSBind2, "inline").Children() {
			vars = append(vars, f.Get("var"))
		}
		if !strings.Contains(strings.Join(vars, " "), nsTestBind2) {
			t.Errorf("inline bind features %v lack %s", vars, nsTestBind2)
		}
		ok := success.Child(stanza.NSBind2, "bound").Child(nsTestBind2, "ok")
		if ok == nil || ok.Get("mode") != "quiet" {
			t.Fatalf("<bound/> lacks the module's answer: %s", success)
		}
		full := success.Child(stanza.NSSASL2, "authorization-identifier").Text()
		mod.mu.Lock()
		got := mod.bound[full]
		mod.mu.Unlock()
		if got != "quiet" {
			t.Errorf("module saw %q for %s, want quiet", got, full)
		}
		// The authenticated stream's features come with <success/> and
		// name what modules advertise.
		if f := c.next(); f.Child(nsTestNonza, "nonzas") == nil {
			t.Errorf("features after bind lack the module's: %s", f)
		}
	})

	t.Run("nonza to its module", func(t *testing.T) {
		c := dialWire(t, srv.c2sAddrs[0], false)
		full := c.login("localhost", "bob", "nz", false)
		c.send("<ping xmlns='" + nsTestNonza + "'/>")
		msg := c.nextOf("message")
		h := msg.Child(nsTestNonza, "heard")
		if h == nil || h.Get("what") != "ping" || h.Get("on") != full {
			t.Fatalf("module's answer: %s", msg)
		}
		// A namespace nobody claims still ends the stream as before.
		c.send("<what xmlns='urn:xmppd:test:unclaimed'/>")
		for {
			el, err := c.nextErr()
			if err != nil {
				t.Fatalf("no stream error before %v", err)
			}
			if el.Is(stanza.NSStream, "error") {
				if el.Child(stanza.NSStreams, "unsupported-stanza-type") == nil {
					t.Fatalf("got %s", el)
				}
				break
			}
		}
	})
}
