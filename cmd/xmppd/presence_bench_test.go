package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/xmppd/xmppd/router"
	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xeps"
)

// countingTransport takes every stanza and counts it: a client that reads
// as fast as it is written to, without a socket.
type countingTransport struct{ n *atomic.Int64 }

func (c countingTransport) Deliver(*stanza.Element) bool { c.n.Add(1); return true }
func (c countingTransport) DeliverWait(context.Context, *stanza.Element) bool {
	c.n.Add(1)
	return true
}
func (countingTransport) Start()                    {}
func (countingTransport) Close(*stanza.StreamError) {}

// presenceWorld is the server's modules, router and registry in process,
// with users u0..uN online, u0 subscribed both ways to every other.
type presenceWorld struct {
	rt        *router.Router
	sessions  []*session.Session
	delivered atomic.Int64
}

// newWorld is the modules mods with their router and registry in process,
// users u0..u(users-1) bound (not yet available), no sockets.
func newWorld(tb testing.TB, users int, mods []xeps.Module) *presenceWorld {
	tb.Helper()
	cfg := DefaultConfig()
	db, err := storage.Open(filepath.Join(tb.TempDir(), "x.db"), storage.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	reg := session.NewRegistry()
	host := xeps.NewHost(xeps.Config{Domains: cfg.Domains, Logger: slog.New(slog.DiscardHandler), DB: db, Sessions: reg})
	if err := host.Register(mods...); err != nil {
		tb.Fatal(err)
	}
	w := &presenceWorld{}
	w.rt = router.New(host, reg, nil, nil)
	host.SetSender(w.rt.Route)
	host.SetDeliverer(w.rt.Deliver)
	host.SetBacklogDeliverer(w.rt.DeliverBacklog)
	ctx := context.Background()
	creds, _ := storage.DeriveCredentials("p", 0)
	for i := range users {
		if err := db.CreateUser(ctx, "localhost", fmt.Sprintf("u%d", i), creds); err != nil {
			tb.Fatal(err)
		}
		j, _ := stanza.ParseJID(fmt.Sprintf("u%d@localhost/r", i))
		s := session.New(j.String(), 1024)
		s.SetAddress(j)
		reg.Bind(s)
		s.Attach(countingTransport{&w.delivered})
		w.sessions = append(w.sessions, s)
	}
	return w
}

func newPresenceWorld(tb testing.TB, contacts int) *presenceWorld {
	tb.Helper()
	w := newWorld(tb, contacts+1, modules(DefaultConfig()))
	for i := 1; i <= contacts; i++ {
		u := fmt.Sprintf("u%d@localhost", i)
		w.send(0, "<presence type='subscribe' to='"+u+"'/>")
		w.send(i, "<presence type='subscribed' to='u0@localhost'/>")
		w.send(i, "<presence type='subscribe' to='u0@localhost'/>")
		w.send(0, "<presence type='subscribed' to='"+u+"'/>")
	}
	for i := range w.sessions {
		w.send(i, "<presence/>")
	}
	return w
}

// send routes xml as user i's client sent it (c2s stamps 'from' and tracks
// the session's own presence).
func (w *presenceWorld) send(i int, xml string) {
	el := mustParse(xml)
	s := w.sessions[i]
	el.Set("from", s.Full())
	if el.Local == "presence" && el.Get("to") == "" {
		s.TrackPresence(el)
	}
	w.rt.RouteFromClient(session.NewContext(context.Background(), s), el)
}

func mustParse(xml string) *stanza.Element {
	d := stanza.NewDecoder(strings.NewReader("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"+xml), stanza.DefaultLimits)
	if _, err := d.ReadHeader(); err != nil {
		panic(err)
	}
	el, err := d.Next()
	if err != nil {
		panic(err)
	}
	return el
}

// BenchmarkPresenceBroadcast is one presence update of a user with 10
// online contacts (each subscribed both ways): the broadcast to them, the
// echo to the sender. ns/delivery is the cost of one delivered presence.
func BenchmarkPresenceBroadcast(b *testing.B) {
	w := newPresenceWorld(b, 10)
	away := "<presence><show>away</show></presence>"
	w.delivered.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w.send(0, away)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(w.delivered.Load()), "ns/delivery")
	b.ReportMetric(float64(w.delivered.Load())/float64(b.N), "deliveries/op")
}

// TestPresenceBroadcastWorld: the benchmark's world does what it says: an
// update of u0 reaches its 10 contacts and u0 itself.
func TestPresenceBroadcastWorld(t *testing.T) {
	w := newPresenceWorld(t, 10)
	w.delivered.Store(0)
	w.send(0, "<presence><show>away</show></presence>")
	if n := w.delivered.Load(); n != 11 {
		t.Fatalf("%d deliveries, want 11 (10 contacts and the echo)", n)
	}
}
