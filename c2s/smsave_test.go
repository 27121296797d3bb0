package c2s

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
)

// TestSavedSessionRoundTrip: what savedSession writes, restoreOne reads
// back into the same session state.
func TestSavedSessionRoundTrip(t *testing.T) {
	addr, _ := stanza.NewJID("bob", "localhost", "phone")
	sess := session.New("s1", 16)
	sess.SetAddress(addr)
	pres := stanza.New(stanza.NSClient, "presence").Append(stanza.New(stanza.NSClient, "priority").AppendText("5"))
	sess.TrackPresence(pres)
	sess.SetBroadcast(pres)
	sess.SetAnnounced(true)
	sess.Directed("room@conference.localhost/bob", true)
	sess.SetInterested(4)
	m := session.NewSM("resume-id", time.Hour, 100)
	m.Restore(7, 1<<32-1, []*stanza.Element{stanza.New(stanza.NSClient, "message").Set("id", "u1")})
	sess.SetSM(m)
	sess.Queue().Push(stanza.New(stanza.NSClient, "message").Set("id", "q1"))
	sess.Queue().Push(stanza.New(session.NSSM, "r")) // a nonza is not saved

	b := savedSession(sess, time.Now().Add(time.Minute)).AppendXML(nil, "")
	srv := New(Config{})
	got, wait, err := srv.restoreOne(b)
	if err != nil {
		t.Fatal(err)
	}
	if wait <= 0 || wait > time.Minute {
		t.Errorf("waits %s", wait)
	}
	if got.Full() != "bob@localhost/phone" || got.State() != session.Detached || srv.Sessions().Session(got.Full()) != got {
		t.Fatalf("restored %s in state %s", got.Full(), got.State())
	}
	if ok, prio := got.Available(); !ok || prio != 5 || !got.Announced() || got.Broadcast() == nil {
		t.Errorf("presence lost: %v %d %v", ok, prio, got.Announced())
	}
	if d := got.DirectedTo(); len(d) != 1 || !got.Interested(4) {
		t.Errorf("directed %v, interests %v", d, got.Interests())
	}
	gm := got.SM()
	if gm.ID != "resume-id" || gm.In.Load() != 7 || srv.Sessions().Resumable("resume-id") != got {
		t.Errorf("SM state lost: %q %d", gm.ID, gm.In.Load())
	}
	if out, acked := gm.Counters(); acked != 1<<32-1 || out != 0 {
		t.Errorf("counters out %d acked %d", out, acked)
	}
	un := gm.TakeUnacked()
	q := got.Queue().TakeAll()
	if len(un) != 1 || un[0].Get("id") != "u1" || len(q) != 1 || q[0].Get("id") != "q1" {
		t.Errorf("unacked %v, queued %v", un, q)
	}
}

// FuzzSavedSession: a saved session read back from the store never
// crashes the server; what parseSaved accepts can be restored.
func FuzzSavedSession(f *testing.F) {
	f.Add([]byte(`<session xmlns='urn:xmppd:c2s:saved-session' id='x' jid='a@b/c' in='1' acked='2' expires='0' timeout='1000' interests='0'><unacked><message xmlns='jabber:client'/></unacked><queued/></session>`))
	f.Add([]byte(`<session xmlns='urn:xmppd:c2s:saved-session' id='x' jid='a@b/c' in='4294967296' acked='2' expires='0' timeout='1000' interests='0'/>`))
	f.Add([]byte(`<session/>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := parseSaved(b); err != nil {
			return
		}
		srv := New(Config{})
		if _, _, err := srv.restoreOne(b); err != nil {
			t.Fatalf("accepted by parseSaved, refused by restoreOne: %v", err)
		}
	})
}

// TestHibernatedSessionMemory: a hibernated session (detached, resumable,
// its timer running, empty queue) costs at most 16 KiB (issue 13); what it
// costs is logged.
func TestHibernatedSessionMemory(t *testing.T) {
	const n = 2000
	srv := New(Config{QueueSize: DefaultQueueSize})
	pres := stanza.New(stanza.NSClient, "presence").Append(stanza.New(stanza.NSClient, "status").AppendText("away"))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	keep := make([]*session.Session, n)
	for i := range n {
		addr, _ := stanza.NewJID("user"+strconv.Itoa(i), "localhost", "phone")
		sess := session.New(newID(), DefaultQueueSize)
		sess.SetAddress(addr)
		sess.TrackPresence(pres)
		sess.SetBroadcast(pres)
		sess.SetAnnounced(true)
		sess.SetSM(session.NewSM(newID(), time.Hour, DefaultMaxUnacked))
		srv.Sessions().Bind(sess)
		srv.Sessions().AddResumable(sess)
		srv.hibernate(sess, time.Hour)
		keep[i] = sess
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n / 1024
	t.Logf("%d hibernated sessions: %.2f KiB each", n, per)
	if per > 16 {
		t.Errorf("a hibernated session costs %.1f KiB, over 16", per)
	}
	for _, s := range keep {
		s.SM().End()
	}
}
