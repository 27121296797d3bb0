package offline_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xeps"
	"github.com/xmppd/xmppd/xeps/offline"
)

var clock = time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)

const stamp = "2026-03-04T05:06:07.890Z"

// sessions stands in for the router's Deliver: it records what each JID was
// handed. A full JID takes stanzas while it is in accept; the bare JID only
// while bareOnline is set (an available resource of non-negative priority).
type sessions struct {
	mu         sync.Mutex
	accept     map[string]int // full JID → how many more it takes (-1: any)
	bareOnline bool
	got        []*stanza.Element
}

func (s *sessions) deliver(_ context.Context, el *stanza.Element) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	to := el.Get("to")
	if !strings.Contains(to, "/") {
		if !s.bareOnline {
			return false
		}
	} else {
		n, ok := s.accept[to]
		if !ok || n == 0 {
			return false
		}
		if n > 0 {
			s.accept[to] = n - 1
		}
	}
	s.got = append(s.got, el)
	return true
}

func (s *sessions) received() []*stanza.Element {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

type env struct {
	t    *testing.T
	db   *storage.DB
	host *xeps.Host
	sess *sessions
}

// newEnv opens a real bbolt database in a temporary folder with users alice
// and bob on localhost, and registers the module on a real Host.
func newEnv(t *testing.T, m offline.Module) *env {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "xmppd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, u := range []string{"alice", "bob"} {
		creds, err := storage.DeriveCredentials(u+"pass", 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.CreateUser(context.Background(), "localhost", u, creds); err != nil {
			t.Fatal(err)
		}
	}
	if m.Now == nil {
		m.Now = func() time.Time { return clock }
	}
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}, DB: db})
	if err := h.Register(m); err != nil {
		t.Fatal(err)
	}
	s := &sessions{accept: map[string]int{}}
	h.SetDeliverer(s.deliver)
	return &env{t: t, db: db, host: h, sess: s}
}

func parse(t testing.TB, s string) *stanza.Element {
	t.Helper()
	d := stanza.NewDecoder(strings.NewReader("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"+s), stanza.DefaultLimits)
	if _, err := d.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	el, err := d.Next()
	if err != nil {
		t.Fatalf("parsing %s: %v", s, err)
	}
	return el
}

func msg(t testing.TB, to, typ, id, inner string) *stanza.Element {
	t.Helper()
	ta := ""
	if typ != "" {
		ta = " type='" + typ + "'"
	}
	return parse(t, fmt.Sprintf("<message xmlns='jabber:client' from='alice@localhost/a' to='%s' id='%s'%s>%s</message>", to, id, ta, inner))
}

func (e *env) offer(el *stanza.Element) bool {
	e.t.Helper()
	to, err := stanza.ParseJID(el.Get("to"))
	if err != nil {
		e.t.Fatal(err)
	}
	from, err := stanza.ParseJID(el.Get("from"))
	if err != nil {
		e.t.Fatal(err)
	}
	v, _ := e.host.Run(context.Background(), xeps.Undeliverable, el, from, to)
	return v == xeps.Consume
}

func (e *env) count(local string) int {
	e.t.Helper()
	n, err := e.db.Queue(offline.ArchiveName).Count(context.Background(), "localhost", local)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) online(full string, n int) {
	e.sess.mu.Lock()
	e.sess.accept[full] = n
	e.sess.mu.Unlock()
}

func (e *env) available(full string) {
	e.t.Helper()
	j, err := stanza.ParseJID(full)
	if err != nil {
		e.t.Fatal(err)
	}
	e.host.ResourceAvailable(context.Background(), j)
}

func ids(els []*stanza.Element) []string {
	var out []string
	for _, el := range els {
		out = append(out, el.Get("id"))
	}
	return out
}

func TestRegister(t *testing.T) {
	e := newEnv(t, offline.Module{MaxMessages: 10})
	if !slices.Contains(e.host.Features(), offline.Feature) {
		t.Errorf("features %q lack %s", e.host.Features(), offline.Feature)
	}
	if offline.XEP != "0160" || (offline.Module{}).Name() != "offline" {
		t.Error("wrong XEP or name")
	}
	// MaxMessages 0 turns storage off: nothing advertised, nothing taken.
	off := newEnv(t, offline.Module{})
	if slices.Contains(off.host.Features(), offline.Feature) {
		t.Error("a disabled module advertises msgoffline")
	}
	if off.offer(msg(t, "bob@localhost", "chat", "m1", "<body>hi</body>")) {
		t.Error("a disabled module took a message")
	}
}

// TestWhatIsStored: which offered messages are taken, and which of those stored.
func TestWhatIsStored(t *testing.T) {
	const hints = "urn:xmpp:hints"
	for _, tc := range []struct {
		name   string
		to     string
		typ    string
		inner  string
		taken  bool
		stored bool
	}{
		{"chat", "bob@localhost", "chat", "<body>hi</body>", true, true},
		{"normal", "bob@localhost", "normal", "<body>hi</body>", true, true},
		{"no type", "bob@localhost", "", "<body>hi</body>", true, true},
		{"to a gone resource", "bob@localhost/gone", "chat", "<body>hi</body>", true, true},
		{"receipt without body", "bob@localhost", "chat", "<received xmlns='urn:xmpp:receipts' id='x'/>", true, true},
		{"groupchat", "bob@localhost", "groupchat", "<body>hi</body>", false, false},
		{"headline", "bob@localhost", "headline", "<body>hi</body>", false, false},
		{"error", "bob@localhost", "error", "<body>hi</body>", false, false},
		{"unknown type", "bob@localhost", "bogus", "<body>hi</body>", false, false},
		{"no such user", "nobody@localhost", "chat", "<body>hi</body>", false, false},
		{"no-store hint", "bob@localhost", "chat", "<body>hi</body><no-store xmlns='" + hints + "'/>", false, false},
		{"no-permanent-store hint", "bob@localhost", "chat", "<body>hi</body><no-permanent-store xmlns='" + hints + "'/>", false, false},
		{"no-store beats store", "bob@localhost", "chat", "<body>hi</body><store xmlns='" + hints + "'/><no-store xmlns='" + hints + "'/>", false, false},
		{"store hint on a headline", "bob@localhost", "headline", "<body>hi</body><store xmlns='" + hints + "'/>", true, true},
		{"store hint on groupchat", "bob@localhost", "groupchat", "<body>hi</body><store xmlns='" + hints + "'/>", false, false},
		{"chat state only", "bob@localhost", "chat", "<composing xmlns='http://jabber.org/protocol/chatstates'/><thread>t</thread>", true, false},
		{"chat state with body", "bob@localhost", "chat", "<body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/>", true, true},
		{"chat state with store hint", "bob@localhost", "chat", "<paused xmlns='http://jabber.org/protocol/chatstates'/><store xmlns='" + hints + "'/>", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, offline.Module{MaxMessages: 10})
			if got := e.offer(msg(t, tc.to, tc.typ, "m1", tc.inner)); got != tc.taken {
				t.Errorf("taken = %v, want %v", got, tc.taken)
			}
			if n := e.count("bob"); (n == 1) != tc.stored || n > 1 {
				t.Errorf("stored %d, want stored=%v", n, tc.stored)
			}
		})
	}
	t.Run("presence", func(t *testing.T) {
		e := newEnv(t, offline.Module{MaxMessages: 10})
		if e.offer(parse(t, "<presence xmlns='jabber:client' from='alice@localhost/a' to='bob@localhost'/>")) {
			t.Error("took a presence")
		}
	})
}

// TestDeliverOnAvailable: stored messages reach the resource that sent
// initial presence, in order, with a delay stamp, and are then deleted.
func TestDeliverOnAvailable(t *testing.T) {
	e := newEnv(t, offline.Module{MaxMessages: 10})
	originals := []*stanza.Element{
		msg(t, "bob@localhost", "chat", "m1", "<body>one</body>"),
		msg(t, "bob@localhost/old", "", "m2", "<body xml:lang='fr'>deux &amp; &lt;trois&gt;</body><x xmlns='urn:example'><y a='1'/></x>"),
		msg(t, "bob@localhost", "normal", "m3", "<body>three</body>"),
	}
	for _, el := range originals {
		before := el.String()
		if !e.offer(el) {
			t.Fatalf("%s not taken", el)
		}
		if el.String() != before {
			t.Errorf("storing changed the offered stanza: %s", el)
		}
	}
	// Another user's presence delivers nothing of bob's.
	e.online("alice@localhost/a", -1)
	e.available("alice@localhost/a")
	if got := e.sess.received(); len(got) != 0 {
		t.Fatalf("alice got %v", ids(got))
	}
	e.online("bob@localhost/phone", -1)
	e.available("bob@localhost/phone")
	got := e.sess.received()
	if !slices.Equal(ids(got), []string{"m1", "m2", "m3"}) {
		t.Fatalf("delivered %v, want m1 m2 m3", ids(got))
	}
	for i, el := range got {
		if el.Get("to") != "bob@localhost/phone" || el.Get("from") != "alice@localhost/a" {
			t.Errorf("%s: addressed from %s to %s", el.Get("id"), el.Get("from"), el.Get("to"))
		}
		d := el.Child(offline.NSDelay, "delay")
		if d == nil || d.Get("from") != "localhost" || d.Get("stamp") != stamp {
			t.Errorf("%s: delay %v", el.Get("id"), d)
		}
		// Apart from 'to' and the delay, the stanza is the one sent.
		want := originals[i].Copy().Set("to", "bob@localhost/phone")
		want.Append(stanza.New(offline.NSDelay, "delay").Set("from", "localhost").Set("stamp", stamp))
		if el.String() != want.String() {
			t.Errorf("delivered\n %s\nwant\n %s", el, want)
		}
	}
	if n := e.count("bob"); n != 0 {
		t.Errorf("%d messages left after delivery", n)
	}
	// A second presence delivers nothing more.
	e.available("bob@localhost/phone")
	if n := len(e.sess.received()); n != 3 {
		t.Errorf("delivered %d after a second presence, want 3", n)
	}
}

// TestExistingDelay: a message that already carries our delay is not stamped
// twice; one delayed elsewhere keeps that stamp and gets ours too.
func TestExistingDelay(t *testing.T) {
	e := newEnv(t, offline.Module{MaxMessages: 10})
	e.offer(msg(t, "bob@localhost", "chat", "ours", "<body>a</body><delay xmlns='urn:xmpp:delay' from='localhost' stamp='2001-01-01T00:00:00Z'/>"))
	e.offer(msg(t, "bob@localhost", "chat", "theirs", "<body>b</body><delay xmlns='urn:xmpp:delay' from='example.org' stamp='2001-01-01T00:00:00Z'/>"))
	e.online("bob@localhost/r", -1)
	e.available("bob@localhost/r")
	got := e.sess.received()
	if len(got) != 2 {
		t.Fatalf("delivered %v", ids(got))
	}
	var stamps [2][]string
	for i, el := range got {
		for _, c := range el.Children() {
			if c.Is(offline.NSDelay, "delay") {
				stamps[i] = append(stamps[i], c.Get("from")+" "+c.Get("stamp"))
			}
		}
	}
	if want := []string{"localhost 2001-01-01T00:00:00Z"}; !slices.Equal(stamps[0], want) {
		t.Errorf("ours: %v, want %v", stamps[0], want)
	}
	if want := []string{"example.org 2001-01-01T00:00:00Z", "localhost " + stamp}; !slices.Equal(stamps[1], want) {
		t.Errorf("theirs: %v, want %v", stamps[1], want)
	}
}

// TestLimit: when the user's storage is full the message is refused (the
// router bounces it) and everything already stored is kept and delivered.
func TestLimit(t *testing.T) {
	e := newEnv(t, offline.Module{MaxMessages: 2})
	for i, want := range []bool{true, true, false, false} {
		if got := e.offer(msg(t, "bob@localhost", "chat", fmt.Sprint("m", i+1), "<body>x</body>")); got != want {
			t.Errorf("message %d taken = %v, want %v", i+1, got, want)
		}
	}
	// Alice's quota is her own.
	if !e.offer(msg(t, "alice@localhost", "chat", "a1", "<body>x</body>")) {
		t.Error("alice's message refused")
	}
	e.online("bob@localhost/r", -1)
	e.available("bob@localhost/r")
	if got := ids(e.sess.received()); !slices.Equal(got, []string{"m1", "m2"}) {
		t.Errorf("delivered %v, want m1 m2", got)
	}
	// Delivery frees the space.
	if !e.offer(msg(t, "bob@localhost", "chat", "m5", "<body>x</body>")) {
		t.Error("refused after the storage was emptied")
	}
}

// TestPartialDelivery: when the session stops taking messages (it closed),
// only what it took is deleted; the rest wait, in order, for the next presence.
func TestPartialDelivery(t *testing.T) {
	e := newEnv(t, offline.Module{MaxMessages: 10})
	for i := 1; i <= 5; i++ {
		e.offer(msg(t, "bob@localhost", "chat", fmt.Sprint("m", i), "<body>x</body>"))
	}
	e.online("bob@localhost/flaky", 2)
	e.available("bob@localhost/flaky")
	if got := ids(e.sess.received()); !slices.Equal(got, []string{"m1", "m2"}) {
		t.Fatalf("delivered %v, want m1 m2", got)
	}
	if n := e.count("bob"); n != 3 {
		t.Fatalf("%d left, want 3", n)
	}
	e.available("bob@localhost/gone") // bound nowhere: takes nothing
	if n := e.count("bob"); n != 3 {
		t.Fatalf("%d left after a failed delivery, want 3", n)
	}
	e.online("bob@localhost/good", -1)
	e.available("bob@localhost/good")
	if got := ids(e.sess.received()); !slices.Equal(got, []string{"m1", "m2", "m3", "m4", "m5"}) {
		t.Fatalf("delivered %v", got)
	}
}

// TestStoredWhileBecomingAvailable: a message committed after the user's
// presence was processed is delivered at once, not left for the next login.
func TestStoredWhileBecomingAvailable(t *testing.T) {
	e := newEnv(t, offline.Module{MaxMessages: 10})
	e.sess.mu.Lock()
	e.sess.bareOnline = true // the router saw no resource, but one is available now
	e.sess.mu.Unlock()
	if !e.offer(msg(t, "bob@localhost", "chat", "late", "<body>x</body>")) {
		t.Fatal("not taken")
	}
	got := e.sess.received()
	if len(got) != 1 || got[0].Get("to") != "bob@localhost" || got[0].Child(offline.NSDelay, "delay") == nil {
		t.Fatalf("delivered %v", got)
	}
	if n := e.count("bob"); n != 0 {
		t.Errorf("%d left", n)
	}
}

// TestConcurrentPresence: initial presences from several resources at once,
// while messages keep arriving, deliver every message exactly once.
func TestConcurrentPresence(t *testing.T) {
	e := newEnv(t, offline.Module{MaxMessages: 10000})
	const stored, live = 200, 100
	for i := range stored {
		e.offer(msg(t, "bob@localhost", "chat", fmt.Sprint("s", i), "<body>x</body>"))
	}
	resources := []string{"bob@localhost/a", "bob@localhost/b", "bob@localhost/c", "bob@localhost/d"}
	for _, r := range resources {
		e.online(r, -1)
	}
	var wg sync.WaitGroup
	for _, r := range resources {
		wg.Go(func() { e.available(r) })
	}
	wg.Go(func() {
		for i := range live {
			if !e.offer(msg(t, "bob@localhost", "chat", fmt.Sprint("l", i), "<body>x</body>")) {
				t.Errorf("l%d refused", i)
			}
		}
	})
	wg.Wait()
	e.available(resources[0]) // whatever raced with the last presence
	got := ids(e.sess.received())
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	if len(seen) != stored+live || len(got) != stored+live {
		t.Errorf("delivered %d (%d distinct), want %d", len(got), len(seen), stored+live)
	}
	// The stored ones arrive in order.
	var order []string
	for _, id := range got {
		if strings.HasPrefix(id, "s") {
			order = append(order, id)
		}
	}
	for i, id := range order {
		if id != fmt.Sprint("s", i) {
			t.Fatalf("stored messages out of order at %d: %v", i, order[:i+1])
		}
	}
	if n := e.count("bob"); n != 0 {
		t.Errorf("%d left", n)
	}
}

// TestSurvivesReopen: what was taken is on disk, not in memory.
func TestSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xmppd.db")
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	creds, _ := storage.DeriveCredentials("bobpass", 0)
	if err := db.CreateUser(context.Background(), "localhost", "bob", creds); err != nil {
		t.Fatal(err)
	}
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}, DB: db})
	if err := h.Register(offline.Module{MaxMessages: 5}); err != nil {
		t.Fatal(err)
	}
	bob, _ := stanza.ParseJID("bob@localhost")
	alice, _ := stanza.ParseJID("alice@localhost/a")
	if v, _ := h.Run(context.Background(), xeps.Undeliverable, msg(t, "bob@localhost", "chat", "m1", "<body>kept</body>"), alice, bob); v != xeps.Consume {
		t.Fatal("not taken")
	}
	db.Close()

	db, err = storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h = xeps.NewHost(xeps.Config{Domains: []string{"localhost"}, DB: db})
	if err := h.Register(offline.Module{MaxMessages: 5}); err != nil {
		t.Fatal(err)
	}
	var got []*stanza.Element
	h.SetDeliverer(func(_ context.Context, el *stanza.Element) bool { got = append(got, el); return true })
	full, _ := stanza.ParseJID("bob@localhost/r")
	h.ResourceAvailable(context.Background(), full)
	if len(got) != 1 || got[0].Child(stanza.NSClient, "body").Text() != "kept" {
		t.Fatalf("after reopening got %v", got)
	}
}
