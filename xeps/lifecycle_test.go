package xeps_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// lifeModule records its Start and Stop calls in a shared log.
type lifeModule struct {
	name     string
	calls    *[]string
	startErr error
}

func (m lifeModule) Name() string              { return m.name }
func (m lifeModule) Register(*xeps.Host) error { return nil }
func (m lifeModule) Start(context.Context) error {
	*m.calls = append(*m.calls, "start "+m.name)
	return m.startErr
}
func (m lifeModule) Stop(context.Context) error {
	*m.calls = append(*m.calls, "stop "+m.name)
	return nil
}

// TestStartStop: modules start in the order of the list and stop in the
// reverse; a module that fails to start stops the ones started before it.
func TestStartStop(t *testing.T) {
	for _, tt := range []struct {
		name    string
		failAt  string
		want    []string
		wantErr string
	}{
		{"clean", "", []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}, ""},
		{"b fails", "b", []string{"start a", "start b", "stop a"}, "module b: start: no disk"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var calls []string
			h := newHost()
			var mods []xeps.Module
			for _, n := range []string{"a", "b", "c"} {
				m := lifeModule{name: n, calls: &calls}
				if n == tt.failAt {
					m.startErr = errors.New("no disk")
				}
				mods = append(mods, m)
			}
			if err := h.Register(append(mods, moduleFunc{"plain", func(*xeps.Host) error { return nil }})...); err != nil {
				t.Fatal(err)
			}
			err := h.Start(context.Background())
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Start: %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if err := h.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(calls, tt.want) {
				t.Errorf("calls %q, want %q", calls, tt.want)
			}
		})
	}
}

// TestAccountHooks: every module's account hook runs, in order, with the
// bare JID; the errors are joined and name their modules.
func TestAccountHooks(t *testing.T) {
	h := newHost()
	var got []string
	hook := func(name string, err error) func(*xeps.Host) error {
		return func(h *xeps.Host) error {
			h.OnAccountDeleted(func(_ context.Context, u stanza.JID) error {
				got = append(got, name+" "+u.String())
				return err
			})
			return nil
		}
	}
	if err := h.Register(moduleFunc{"one", hook("one", nil)}, moduleFunc{"two", hook("two", errors.New("disk full"))}, moduleFunc{"three", hook("three", nil)}); err != nil {
		t.Fatal(err)
	}
	j, _ := stanza.ParseJID("alice@localhost/phone")
	err := h.AccountDeleted(context.Background(), j)
	if err == nil || err.Error() != "module two: disk full" {
		t.Errorf("error %v", err)
	}
	if want := []string{"one alice@localhost", "two alice@localhost", "three alice@localhost"}; !slices.Equal(got, want) {
		t.Errorf("hooks ran %q, want %q", got, want)
	}
}

// TestLoggerKeepsModuleName: the logger a module takes in Register still
// names the module when it logs later, at run time.
func TestLoggerKeepsModuleName(t *testing.T) {
	var buf bytes.Buffer
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	var log *slog.Logger
	if err := h.Register(moduleFunc{"roster", func(h *xeps.Host) error { log = h.Logger(); return nil }}); err != nil {
		t.Fatal(err)
	}
	log.Info("later")
	if !strings.Contains(buf.String(), "module=roster") {
		t.Errorf("log line %q has no module name", buf.String())
	}
}

// TestPipelineOrder: hooks run in module order within a stage, the first
// that does not pass decides, and the chain is described as registered.
func TestPipelineOrder(t *testing.T) {
	h := newHost()
	var ran []string
	hook := func(name string, v xeps.Verdict) func(*xeps.Host) error {
		return func(h *xeps.Host) error {
			h.Hook(xeps.ForAccount, func(context.Context, *stanza.Element, stanza.JID, stanza.JID) (xeps.Verdict, *stanza.Error) {
				ran = append(ran, name)
				return v, nil
			})
			return nil
		}
	}
	if err := h.Register(moduleFunc{"stamp", hook("stamp", xeps.Pass)}, moduleFunc{"store", hook("store", xeps.Consume)}, moduleFunc{"never", hook("never", xeps.Pass)}); err != nil {
		t.Fatal(err)
	}
	el := stanza.New(stanza.NSClient, "message")
	var z stanza.JID
	if v, _ := h.Run(context.Background(), xeps.ForAccount, el, z, z); v != xeps.Consume {
		t.Errorf("verdict %v", v)
	}
	if !slices.Equal(ran, []string{"stamp", "store"}) {
		t.Errorf("ran %q", ran)
	}
	if got, want := h.Pipeline(), "from-client: -; for-account: stamp, store, never; for-session: -; undeliverable: -"; got != want {
		t.Errorf("Pipeline() = %q, want %q", got, want)
	}
}

// TestServeDomainClashes: a service domain is refused when it is one of
// the server's domains, already served, or its parent is not ours.
func TestServeDomainClashes(t *testing.T) {
	h := newHost()
	var errs []string
	err := h.Register(moduleFunc{"muc", func(h *xeps.Host) error {
		for _, d := range [][2]string{{"conference.localhost", "localhost"}, {"localhost", "localhost"}, {"conference.localhost", "localhost"}, {"up.localhost", "elsewhere"}} {
			if err := h.ServeDomain(d[0], d[1], func(context.Context, *stanza.Element, stanza.JID) {}); err != nil {
				errs = append(errs, err.Error())
			}
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"service domain localhost is one of the server's own domains (config: domains)",
		"service domain conference.localhost is already served by module muc",
		`service domain up.localhost: its parent "elsewhere" is not a domain of this server`,
	}
	if !slices.Equal(errs, want) {
		t.Errorf("errors %q, want %q", errs, want)
	}
	if !h.Serves("conference.localhost") || h.Serves("up.localhost") || !h.Serves("localhost") {
		t.Error("Serves")
	}
	if got := h.ServiceDomains("localhost"); !slices.Equal(got, []string{"conference.localhost"}) {
		t.Errorf("ServiceDomains %q", got)
	}
}
