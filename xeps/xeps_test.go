package xeps_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// moduleFunc is a module written inline.
type moduleFunc struct {
	name string
	fn   func(h *xeps.Host) error
}

func (m moduleFunc) Name() string                { return m.name }
func (m moduleFunc) Register(h *xeps.Host) error { return m.fn(h) }

func newHost() *xeps.Host { return xeps.NewHost(xeps.Config{Domains: []string{"localhost"}}) }

func getIQ(t *testing.T, payload *stanza.Element) *stanza.IQ {
	t.Helper()
	el := stanza.New(stanza.NSClient, "iq").Set("id", "1").Set("type", "get").
		Set("from", "alice@localhost/a").Set("to", "localhost").Append(payload)
	iq, err := stanza.ParseIQ(el)
	if err != nil {
		t.Fatal(err)
	}
	return iq
}

func TestHandleIQDuplicatePanics(t *testing.T) {
	pong := func(context.Context, *stanza.IQ) (*stanza.Element, error) { return nil, nil }
	h := newHost()
	defer func() {
		p := recover()
		if p == nil {
			t.Fatal("registering the same iq twice did not panic")
		}
		msg, _ := p.(string)
		if !strings.Contains(msg, "second") || !strings.Contains(msg, "urn:xmpp:ping") {
			t.Errorf("panic %q should name the module and the payload", p)
		}
	}()
	h.Register(
		moduleFunc{"first", func(h *xeps.Host) error {
			h.HandleIQ("get", "urn:xmpp:ping", "ping", xeps.ToServer, pong)
			return nil
		}},
		moduleFunc{"second", func(h *xeps.Host) error {
			h.HandleIQ("get", "urn:xmpp:ping", "ping", xeps.ToServer, pong)
			return nil
		}},
	)
}

// The key is (type, namespace, local name, target): any difference is a different handler.
func TestHandleIQDistinctKeys(t *testing.T) {
	h := newHost()
	answer := func(s string) xeps.IQHandlerFunc {
		return func(context.Context, *stanza.IQ) (*stanza.Element, error) { return stanza.New("urn:t", s), nil }
	}
	err := h.Register(moduleFunc{"m", func(h *xeps.Host) error {
		h.HandleIQ("get", "urn:t", "q", xeps.ToServer, answer("get-server"))
		h.HandleIQ("set", "urn:t", "q", xeps.ToServer, answer("set-server"))
		h.HandleIQ("get", "urn:t", "q", xeps.ToAccount, answer("get-account"))
		h.HandleIQ("get", "urn:u", "q", xeps.ToServer, answer("other-ns"))
		h.HandleIQ("get", "urn:t", "r", xeps.ToServer, answer("other-local"))
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		typ, space, local string
		to                xeps.Target
		want              string
	}{
		{"get", "urn:t", "q", xeps.ToServer, "get-server"},
		{"set", "urn:t", "q", xeps.ToServer, "set-server"},
		{"get", "urn:t", "q", xeps.ToAccount, "get-account"},
		{"get", "urn:u", "q", xeps.ToServer, "other-ns"},
		{"get", "urn:t", "r", xeps.ToServer, "other-local"},
		{"set", "urn:t", "q", xeps.ToAccount, ""},
		{"get", "urn:x", "q", xeps.ToServer, ""},
	} {
		fn := h.IQHandler(tt.typ, tt.space, tt.local, tt.to)
		if tt.want == "" {
			if fn != nil {
				t.Errorf("%s {%s}%s to %s: unexpected handler", tt.typ, tt.space, tt.local, tt.to)
			}
			continue
		}
		if fn == nil {
			t.Errorf("%s {%s}%s to %s: no handler", tt.typ, tt.space, tt.local, tt.to)
			continue
		}
		el, err := fn(context.Background(), getIQ(t, stanza.New(tt.space, tt.local)))
		if err != nil || el.Local != tt.want {
			t.Errorf("%s {%s}%s to %s: got %v, %v; want <%s/>", tt.typ, tt.space, tt.local, tt.to, el, err, tt.want)
		}
	}
}

func TestHandlerPanicIsInternalServerError(t *testing.T) {
	h := newHost()
	err := h.Register(moduleFunc{"buggy", func(h *xeps.Host) error {
		h.HandleIQ("get", "urn:t", "boom", xeps.ToServer, func(_ context.Context, iq *stanza.IQ) (*stanza.Element, error) {
			var ids []string
			_ = ids[len(iq.ID)] // a runtime panic (index out of range), not a string
			return stanza.New("urn:t", "never"), nil
		})
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	fn := h.IQHandler("get", "urn:t", "boom", xeps.ToServer)
	el, err := fn(context.Background(), getIQ(t, stanza.New("urn:t", "boom")))
	if el != nil {
		t.Errorf("payload after a panic: %s", el)
	}
	var se *stanza.Error
	if !errors.As(err, &se) || se.Condition != "internal-server-error" {
		t.Errorf("err = %v, want internal-server-error", err)
	}
	// The wrapper recovers per call: the next call panics and recovers again.
	if _, err := fn(context.Background(), getIQ(t, stanza.New("urn:t", "boom"))); err == nil {
		t.Error("second call: no error")
	}
}

// A handler's own results and errors pass through the wrapper unchanged.
func TestHandlerResultsPassThrough(t *testing.T) {
	h := newHost()
	refusal := stanza.Errorf("not-allowed", "no")
	plain := errors.New("plain")
	err := h.Register(moduleFunc{"m", func(h *xeps.Host) error {
		h.HandleIQ("get", "urn:t", "ok", xeps.ToServer, func(_ context.Context, iq *stanza.IQ) (*stanza.Element, error) {
			return stanza.New("urn:t", "ok").Set("id", iq.ID), nil
		})
		h.HandleIQ("get", "urn:t", "refuse", xeps.ToServer, func(context.Context, *stanza.IQ) (*stanza.Element, error) {
			return nil, refusal
		})
		h.HandleIQ("get", "urn:t", "plain", xeps.ToServer, func(context.Context, *stanza.IQ) (*stanza.Element, error) {
			return nil, plain
		})
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if el, err := h.IQHandler("get", "urn:t", "ok", xeps.ToServer)(ctx, getIQ(t, stanza.New("urn:t", "ok"))); err != nil || el.Get("id") != "1" {
		t.Errorf("ok: %v, %v", el, err)
	}
	if _, err := h.IQHandler("get", "urn:t", "refuse", xeps.ToServer)(ctx, getIQ(t, stanza.New("urn:t", "refuse"))); err != refusal {
		t.Errorf("refuse: err = %v, want the handler's own", err)
	}
	// Turning a plain error into internal-server-error is the router's job (stanza.AsError).
	if _, err := h.IQHandler("get", "urn:t", "plain", xeps.ToServer)(ctx, getIQ(t, stanza.New("urn:t", "plain"))); err != plain {
		t.Errorf("plain: err = %v, want the handler's own", err)
	}
}

func TestFeaturesSortedAndDeduplicated(t *testing.T) {
	h := newHost()
	err := h.Register(
		moduleFunc{"one", func(h *xeps.Host) error {
			h.AdvertiseFeature("urn:z")
			h.AdvertiseFeature("urn:a")
			h.AdvertiseAccountFeature("urn:acct:y")
			return nil
		}},
		moduleFunc{"two", func(h *xeps.Host) error {
			h.AdvertiseFeature("urn:m")
			h.AdvertiseFeature("urn:a") // again, from another module
			h.AdvertiseFeature("urn:z")
			h.AdvertiseAccountFeature("urn:acct:b")
			h.AdvertiseAccountFeature("urn:acct:y")
			return nil
		}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h.Features(), []string{"urn:a", "urn:m", "urn:z"}; !slices.Equal(got, want) {
		t.Errorf("Features() = %q, want %q", got, want)
	}
	if got, want := h.AccountFeatures(), []string{"urn:acct:b", "urn:acct:y"}; !slices.Equal(got, want) {
		t.Errorf("AccountFeatures() = %q, want %q", got, want)
	}
}

func TestIdentitiesInRegistrationOrder(t *testing.T) {
	h := newHost()
	a := xeps.Identity{Category: "server", Type: "im", Name: "xmppd"}
	b := xeps.Identity{Category: "pubsub", Type: "pep"}
	err := h.Register(
		moduleFunc{"one", func(h *xeps.Host) error { h.AdvertiseIdentity(a); return nil }},
		moduleFunc{"two", func(h *xeps.Host) error { h.AdvertiseIdentity(b); return nil }},
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Identities(); !slices.Equal(got, []xeps.Identity{a, b}) {
		t.Errorf("Identities() = %v", got)
	}
}

func TestRegisterInOrderStopsAtError(t *testing.T) {
	var order []string
	failure := errors.New("bad config")
	mod := func(name string, err error) xeps.Module {
		return moduleFunc{name, func(*xeps.Host) error {
			order = append(order, name)
			return err
		}}
	}
	h := newHost()
	err := h.Register(mod("a", nil), mod("b", nil), mod("c", failure), mod("d", nil))
	if !errors.Is(err, failure) {
		t.Fatalf("err = %v, want it to wrap %v", err, failure)
	}
	if !strings.Contains(err.Error(), "module c") {
		t.Errorf("err = %q, want it to name module c", err)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(order, want) {
		t.Errorf("registered %q, want %q (in order, nothing after the failure)", order, want)
	}
}

func TestIsLocal(t *testing.T) {
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost", "example.org"}})
	for d, want := range map[string]bool{"localhost": true, "example.org": true, "example.net": false, "": false, "sub.example.org": false} {
		if got := h.IsLocal(d); got != want {
			t.Errorf("IsLocal(%q) = %v, want %v", d, got, want)
		}
	}
	if got := h.Domains(); !slices.Equal(got, []string{"localhost", "example.org"}) {
		t.Errorf("Domains() = %q", got)
	}
}

func TestSend(t *testing.T) {
	h := newHost()
	el := stanza.New(stanza.NSClient, "message")
	h.Send(context.Background(), el) // no sender yet: a no-op, not a crash
	var got *stanza.Element
	h.SetSender(func(_ context.Context, el *stanza.Element) { got = el })
	h.Send(context.Background(), el)
	if got != el {
		t.Error("Send did not reach the sender")
	}
}

func TestSessionHooksInOrder(t *testing.T) {
	h := newHost()
	var calls []string
	hook := func(name string) func(context.Context, xeps.Session) {
		return func(_ context.Context, s xeps.Session) { calls = append(calls, name+" "+s.Address().String()) }
	}
	err := h.Register(moduleFunc{"m", func(h *xeps.Host) error {
		h.OnSessionBound(hook("bound1"))
		h.OnSessionClosed(hook("closed1"))
		h.OnSessionBound(hook("bound2"))
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	j, _ := stanza.ParseJID("alice@localhost/a")
	s := session.New("a", 1)
	s.SetAddress(j)
	h.SessionBound(context.Background(), s)
	h.SessionClosed(context.Background(), s)
	want := []string{"bound1 alice@localhost/a", "bound2 alice@localhost/a", "closed1 alice@localhost/a"}
	if !slices.Equal(calls, want) {
		t.Errorf("calls = %q, want %q", calls, want)
	}
}

func TestTargetString(t *testing.T) {
	if xeps.ToServer.String() != "server" || xeps.ToAccount.String() != "account" {
		t.Errorf("Target strings: %s, %s", xeps.ToServer, xeps.ToAccount)
	}
}
