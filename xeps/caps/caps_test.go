package caps

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xeps"
)

const node = "http://example.org/client"

type harness struct {
	t    *testing.T
	h    *xeps.Host
	m    *Module
	mu   sync.Mutex
	sent []*stanza.Element
}

func openDB(t *testing.T) *storage.DB {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "xmppd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newHarness(t *testing.T, db *storage.DB, m *Module) *harness {
	t.Helper()
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}, DB: db})
	if err := h.Register(m); err != nil {
		t.Fatal(err)
	}
	x := &harness{t: t, h: h, m: m}
	h.SetSender(func(_ context.Context, el *stanza.Element) {
		x.mu.Lock()
		x.sent = append(x.sent, el)
		x.mu.Unlock()
	})
	return x
}

func jid(t *testing.T, s string) stanza.JID {
	t.Helper()
	j, err := stanza.ParseJID(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// presence sends full's broadcast presence with caps (ver "" = no <c/>).
func (x *harness) presence(full, hashName, ver string) {
	p := stanza.New(stanza.NSClient, "presence").Set("from", full)
	if ver != "" {
		p.Append(stanza.New(NS, "c").Set("hash", hashName).Set("node", node).Set("ver", ver))
	}
	x.h.PresenceAvailable(context.Background(), jid(x.t, full), p)
}

// queries returns (and forgets) the stanzas sent so far.
func (x *harness) queries() []*stanza.Element {
	x.mu.Lock()
	defer x.mu.Unlock()
	q := x.sent
	x.sent = nil
	return q
}

// one expects exactly one disco#info query, to full for ver, and returns it.
func (x *harness) one(full, ver string) *stanza.Element {
	x.t.Helper()
	qs := x.queries()
	if len(qs) != 1 {
		x.t.Fatalf("sent %d stanzas %v, want one query to %s", len(qs), qs, full)
	}
	q := qs[0]
	if q.Get("type") != "get" || q.Get("to") != full || q.Get("from") != "localhost" || q.Get("id") == "" ||
		q.Child(NSInfo, "query").Get("node") != node+"#"+ver {
		x.t.Fatalf("query %s", q)
	}
	return q
}

func (x *harness) none() {
	x.t.Helper()
	if qs := x.queries(); len(qs) != 0 {
		x.t.Fatalf("sent %v, want nothing", qs)
	}
}

// answer answers q from 'from' with the disco#info query info.
func (x *harness) answer(q *stanza.Element, from, info string) bool {
	x.t.Helper()
	res := stanza.New(stanza.NSClient, "iq").Set("type", "result").Set("id", q.Get("id")).
		Set("from", from).Set("to", "localhost").Append(parse(x.t, info))
	return x.h.IQResponse(res)
}

const muc = "http://jabber.org/protocol/muc"

func TestQueryVerifyCache(t *testing.T) {
	x := newHarness(t, openDB(t), New())
	alice, alice2, bob := "alice@localhost/a", "alice@localhost/b", "bob@localhost/phone"
	caps := x.h.Caps()
	if caps != xeps.CapsReader(x.m) {
		t.Fatal("the module is not the host's CapsReader")
	}

	x.presence(alice, "sha-1", exodusVer)
	q := x.one(alice, exodusVer)
	if caps.Supports(jid(t, alice), muc) {
		t.Error("supported before the answer")
	}
	// An update with the same caps, and another resource with the same ver
	// while the query is out: no second query.
	x.presence(alice, "sha-1", exodusVer)
	x.presence(alice2, "sha-1", exodusVer)
	x.none()

	if !x.answer(q, alice, exodus) {
		t.Fatal("answer not taken")
	}
	for _, full := range []string{alice, alice2} {
		if !caps.Supports(jid(t, full), muc) || caps.Supports(jid(t, full), "urn:xmpp:jingle:1") {
			t.Errorf("%s: Supports wrong after the answer", full)
		}
	}
	want := []string{"http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items", muc}
	if got := caps.Features(jid(t, alice)); !slices.Equal(got, want) {
		t.Errorf("Features = %q", got)
	}
	// Known ver: bob is not asked.
	x.presence(bob, "sha-1", exodusVer)
	x.none()
	if !caps.Supports(jid(t, bob), muc) {
		t.Error("bob: not supported with a known ver")
	}
	// A presence without caps keeps what we know; unavailable forgets it.
	x.presence(bob, "", "")
	if !caps.Supports(jid(t, bob), muc) {
		t.Error("bob: forgotten after a presence without caps")
	}
	x.h.ResourceUnavailable(context.Background(), jid(t, bob), true)
	if caps.Supports(jid(t, bob), muc) || caps.Features(jid(t, bob)) != nil {
		t.Error("bob: still supported after unavailable")
	}
	// Legacy caps (no hash) and hashes we cannot verify are ignored.
	x.presence("carol@localhost/c", "", "1.0")
	x.presence("carol@localhost/d", "md5", "abc")
	x.none()
	if x.h.PendingIQs() != 0 {
		t.Errorf("PendingIQs = %d", x.h.PendingIQs())
	}
}

func TestSpoofedAnswerIgnored(t *testing.T) {
	x := newHarness(t, openDB(t), New())
	alice := "alice@localhost/a"
	x.presence(alice, "sha-1", exodusVer)
	q := x.one(alice, exodusVer)
	// mallory knows (or guesses) the id and answers first: not taken.
	if x.answer(q, "mallory@localhost/m", exodus) || x.answer(q, "alice@localhost/other", exodus) {
		t.Fatal("an answer from another JID was taken")
	}
	if x.m.Supports(jid(t, alice), muc) || len(x.m.entries) != 0 {
		t.Fatal("cached from a spoofed answer")
	}
	if !x.answer(q, alice, exodus) || !x.m.Supports(jid(t, alice), muc) {
		t.Fatal("the real answer after a spoofed one was not cached")
	}
}

func TestWrongAnswerNotCached(t *testing.T) {
	db := openDB(t)
	x := newHarness(t, db, New())
	alice, bob := "alice@localhost/a", "bob@localhost/b"
	// alice claims Exodus's ver but answers with an extra feature.
	x.presence(alice, "sha-1", exodusVer)
	q := x.one(alice, exodusVer)
	lying := `<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' name='Exodus 0.9.1' type='pc'/>` +
		`<feature var='http://jabber.org/protocol/muc'/><feature var='urn:xmpp:evil'/></query>`
	if !x.answer(q, alice, lying) {
		t.Fatal("answer not taken")
	}
	if x.m.Supports(jid(t, alice), muc) || x.m.Supports(jid(t, alice), "urn:xmpp:evil") || len(x.m.entries) != 0 || x.m.stored != 0 {
		t.Fatal("a ver that does not verify was cached")
	}
	// alice's next presence with the same ver is not asked again; bob's is.
	x.presence(alice, "sha-1", exodusVer)
	x.none()
	x.presence(bob, "sha-1", exodusVer)
	q = x.one(bob, exodusVer)
	// An error answer caches nothing either.
	if !x.h.IQResponse(stanza.ErrorReply(q, stanza.NewError("service-unavailable"))) || x.m.Supports(jid(t, bob), muc) {
		t.Fatal("error answer")
	}
	if len(x.m.inflight) != 0 {
		t.Errorf("inflight = %v", x.m.inflight)
	}
}

func TestQueryTimeout(t *testing.T) {
	m := New()
	m.Timeout = 20 * time.Millisecond
	x := newHarness(t, openDB(t), m)
	x.presence("alice@localhost/a", "sha-1", exodusVer)
	x.one("alice@localhost/a", exodusVer)
	deadline := time.Now().Add(5 * time.Second)
	for x.h.PendingIQs() != 0 || func() bool { m.mu.Lock(); defer m.mu.Unlock(); return len(m.inflight) != 0 }() {
		if time.Now().After(deadline) {
			t.Fatal("the query did not time out")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Nobody answered: the next resource with that ver is asked.
	x.presence("bob@localhost/b", "sha-1", exodusVer)
	x.one("bob@localhost/b", exodusVer)
}

// info returns a disco#info query with one feature of its own, and its ver.
func info(t *testing.T, i int) (string, string) {
	s := fmt.Sprintf(`<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='pc' name='c%d'/>`+
		`<feature var='urn:example:%d'/></query>`, i, i)
	v, err := Ver("sha-1", parse(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func TestBoundsAndRestart(t *testing.T) {
	db := openDB(t)
	m := New()
	m.MaxEntries, m.MaxStored = 2, 3
	x := newHarness(t, db, m)
	for i := 1; i <= 4; i++ {
		full := fmt.Sprintf("u%d@localhost/r", i)
		s, v := info(t, i)
		x.presence(full, "sha-1", v)
		if !x.answer(x.one(full, v), full, s) {
			t.Fatalf("answer %d not taken", i)
		}
	}
	if len(m.entries) != 2 || m.lru.Len() != 2 || m.stored != 3 {
		t.Fatalf("entries %d, lru %d, stored %d; want 2, 2, 3", len(m.entries), m.lru.Len(), m.stored)
	}
	// Evicted from memory but stored: still known, read back from the store.
	// (The fourth is in memory only; evicted too, it would be unknown.)
	for _, i := range []int{4, 1, 2, 3} {
		if !m.Supports(jid(t, fmt.Sprintf("u%d@localhost/r", i)), fmt.Sprintf("urn:example:%d", i)) {
			t.Errorf("u%d: not supported", i)
		}
	}
	if len(m.entries) > 2 {
		t.Errorf("memory holds %d entries past its bound", len(m.entries))
	}

	// A restart: the stored vers are not asked for again, the fourth
	// (memory only, past MaxStored) is.
	m2 := New()
	x2 := newHarness(t, db, m2)
	if m2.stored != 3 {
		t.Errorf("stored after restart = %d", m2.stored)
	}
	for i := 1; i <= 3; i++ {
		full := fmt.Sprintf("v%d@localhost/r", i)
		_, v := info(t, i)
		x2.presence(full, "sha-1", v)
		x2.none()
		if !m2.Supports(jid(t, full), fmt.Sprintf("urn:example:%d", i)) {
			t.Errorf("%s: not supported after restart", full)
		}
	}
	_, v4 := info(t, 4)
	x2.presence("v4@localhost/r", "sha-1", v4)
	x2.one("v4@localhost/r", v4)
}

func TestSessionClosedForgets(t *testing.T) {
	x := newHarness(t, openDB(t), New())
	alice := "alice@localhost/a"
	x.presence(alice, "sha-1", exodusVer)
	x.answer(x.one(alice, exodusVer), alice, exodus)
	x.h.SessionClosed(context.Background(), boundSession(jid(t, alice)))
	if x.m.Supports(jid(t, alice), muc) || len(x.m.jids) != 0 {
		t.Error("still known after the session closed")
	}
}

// boundSession is a session bound to j, as c2s makes one.
func boundSession(j stanza.JID) *session.Session {
	s := session.New(j.String(), 1)
	s.SetAddress(j)
	return s
}
