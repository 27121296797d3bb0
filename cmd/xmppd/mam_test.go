package main

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// The message archive (xeps/mam) over real sockets: two users chat, both
// query their archives.

const (
	nsMAM  = "urn:xmpp:mam:2"
	nsRSM  = "http://jabber.org/protocol/rsm"
	nsSID  = "urn:xmpp:sid:0"
	nsData = "jabber:x:data"
)

// mamUser is a logged-in, available client.
type mamUser struct {
	*wireClient
	jid, bare string
}

func mamLogin(t *testing.T, srv *server, user string) *mamUser {
	t.Helper()
	c := dialWire(t, srv.c2sAddrs[0], false)
	full := c.login("localhost", user, "r1", false)
	c.send("<presence/>")
	if p := c.next(); p.Local != "presence" || p.Get("from") != full {
		t.Fatalf("expected our presence echo, got %s", p)
	}
	u := &mamUser{wireClient: c, jid: full, bare: user + "@localhost"}
	return u
}

// nextMessage reads until a message arrives (skipping presence).
func (u *mamUser) nextMessage() *stanza.Element {
	u.t.Helper()
	for {
		el := u.next()
		if el.Local == "message" {
			return el
		}
	}
}

// settle pings the server and skips whatever arrives before the answer:
// everything u sent before has been routed.
func (u *mamUser) settle() {
	u.t.Helper()
	u.send("<iq type='get' id='settle' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	for {
		if el := u.next(); el.Local == "iq" && el.Get("id") == "settle" {
			return
		}
	}
}

// chat sends n chat messages to 'to' and returns their bodies.
func (u *mamUser) chat(to string, n int, prefix string) []string {
	var bodies []string
	for i := range n {
		b := fmt.Sprintf("%s %d", prefix, i)
		u.send(fmt.Sprintf("<message type='chat' to='%s' id='%s-%d'><body>%s</body><origin-id xmlns='urn:xmpp:sid:0' id='o-%s-%d'/></message>", to, prefix, i, b, prefix, i))
		bodies = append(bodies, b)
	}
	u.sync()
	return bodies
}

// mamPage is what a query brought: the results, then the iq's answer.
type mamPage struct {
	results []*stanza.Element // the <result/> elements
	iq      *stanza.Element
	fin     *stanza.Element
}

func (p mamPage) bodies() []string {
	var out []string
	for _, r := range p.results {
		out = append(out, r.Child("urn:xmpp:forward:0", "forwarded").Child(stanza.NSClient, "message").Child(stanza.NSClient, "body").Text())
	}
	return out
}

func (p mamPage) ids() []string {
	var out []string
	for _, r := range p.results {
		out = append(out, r.Get("id"))
	}
	return out
}

func (p mamPage) rsm(name string) string { return p.fin.Child(nsRSM, "set").Child(nsRSM, name).Text() }

func (p mamPage) complete() bool { return p.fin.Get("complete") == "true" }

// query sends a MAM query (form fields and RSM as raw XML) and reads the
// results up to the answer.
func (u *mamUser) query(id, to, form, set string) mamPage {
	u.t.Helper()
	toAttr := ""
	if to != "" {
		toAttr = " to='" + to + "'"
	}
	x := ""
	if form != "" {
		x = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>" + form + "</x>"
	}
	if set != "" {
		set = "<set xmlns='http://jabber.org/protocol/rsm'>" + set + "</set>"
	}
	u.send(fmt.Sprintf("<iq type='set' id='%s'%s><query xmlns='urn:xmpp:mam:2' queryid='q-%s'>%s%s</query></iq>", id, toAttr, id, x, set))
	var p mamPage
	for {
		el := u.next()
		switch {
		case el.Local == "message" && el.Child(nsMAM, "result") != nil:
			r := el.Child(nsMAM, "result")
			if r.Get("queryid") != "q-"+id {
				u.t.Fatalf("result with queryid %q, want q-%s", r.Get("queryid"), id)
			}
			if el.Get("from") != u.bare || el.Get("to") != u.jid {
				u.t.Fatalf("result addressed from %q to %q", el.Get("from"), el.Get("to"))
			}
			p.results = append(p.results, r)
		case el.Local == "iq" && el.Get("id") == id:
			p.iq = el
			p.fin = el.Child(nsMAM, "fin")
			return p
		}
	}
}

func field(name string, values ...string) string {
	var b strings.Builder
	b.WriteString("<field var='" + name + "'>")
	for _, v := range values {
		b.WriteString("<value>" + v + "</value>")
	}
	b.WriteString("</field>")
	return b.String()
}

func TestMAMBothPartiesArchive(t *testing.T) {
	srv := startTestServer(t, nil)
	alice, bob := mamLogin(t, srv, "alice"), mamLogin(t, srv, "bob")
	sent := alice.chat("bob@localhost", 3, "hello")

	// bob gets each message with a stanza-id by his account; origin-id kept.
	var got []string
	for range sent {
		m := bob.nextMessage()
		sid := m.Child(nsSID, "stanza-id")
		if sid == nil || sid.Get("by") != "bob@localhost" || sid.Get("id") == "" {
			t.Fatalf("no stanza-id by bob in %s", m)
		}
		if n := strings.Count(m.String(), "stanza-id"); n != 1 {
			t.Fatalf("%d stanza-ids in %s (alice's own must not reach bob)", n, m)
		}
		if m.Child(nsSID, "origin-id") == nil {
			t.Fatalf("origin-id lost: %s", m)
		}
		got = append(got, sid.Get("id"))
	}

	bp := bob.query("b1", "", "", "")
	if !slicesEqual(bp.bodies(), sent) || !slicesEqual(bp.ids(), got) || !bp.complete() {
		t.Fatalf("bob's archive: bodies %q ids %q complete %v; want %q %q", bp.bodies(), bp.ids(), bp.complete(), sent, got)
	}
	fwd := bp.results[0].Child("urn:xmpp:forward:0", "forwarded")
	if fwd.Child(stanza.NSDelay, "delay").Get("stamp") == "" {
		t.Fatalf("no delay in %s", fwd)
	}
	if m := fwd.Child(stanza.NSClient, "message"); m.Get("from") != alice.jid || m.Get("to") != "bob@localhost" {
		t.Fatalf("archived message addressed from %q to %q", m.Get("from"), m.Get("to"))
	}
	if bp.rsm("first") != got[0] || bp.rsm("last") != got[2] {
		t.Fatalf("rsm first/last %q/%q, want %q/%q", bp.rsm("first"), bp.rsm("last"), got[0], got[2])
	}

	ap := alice.query("a1", "alice@localhost", "", "")
	if !slicesEqual(ap.bodies(), sent) || !ap.complete() {
		t.Fatalf("alice's archive: %q, want %q", ap.bodies(), sent)
	}
	if m := ap.results[0].Child("urn:xmpp:forward:0", "forwarded").Child(stanza.NSClient, "message"); m.Get("from") != alice.jid || m.Get("to") != "bob@localhost" {
		t.Fatalf("alice's archived message addressed from %q to %q", m.Get("from"), m.Get("to"))
	}
}

// queryID makes a test case's name an id.
func queryID(name string) string {
	return strings.NewReplacer(" ", "-", "'", "").Replace(name)
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMAMPaging(t *testing.T) {
	srv := startTestServer(t, nil)
	alice, bob := mamLogin(t, srv, "alice"), mamLogin(t, srv, "bob")
	sent := alice.chat("bob@localhost", 7, "m")
	for range sent {
		bob.nextMessage()
	}

	// Forward, 3 per page: 3, 3, 1; only the last is complete.
	var fwd []string
	after := ""
	for i, want := range []int{3, 3, 1} {
		set := "<max>3</max>"
		if after != "" {
			set += "<after>" + after + "</after>"
		}
		p := alice.query("f"+strconv.Itoa(i), "", "", set)
		if len(p.results) != want || p.complete() != (i == 2) {
			t.Fatalf("forward page %d: %d results complete=%v", i, len(p.results), p.complete())
		}
		fwd = append(fwd, p.bodies()...)
		after = p.rsm("last")
	}
	if !slicesEqual(fwd, sent) {
		t.Fatalf("forward: %q", fwd)
	}

	// Backward from the end (<before/> empty), 3 per page: 4..6, 1..3, 0.
	var back []string
	before := ""
	for i, want := range []int{3, 3, 1} {
		p := alice.query("b"+strconv.Itoa(i), "", "", "<max>3</max><before>"+before+"</before>")
		if len(p.results) != want || p.complete() != (i == 2) {
			t.Fatalf("backward page %d: %d results complete=%v", i, len(p.results), p.complete())
		}
		back = append(p.bodies(), back...)
		before = p.rsm("first")
	}
	if !slicesEqual(back, sent) {
		t.Fatalf("backward: %q", back)
	}

	// A huge max is capped, not refused.
	if p := alice.query("big", "", "", "<max>10000</max>"); len(p.results) != 7 || !p.complete() {
		t.Fatalf("max 10000: %d results", len(p.results))
	}
	// max 0: nothing, and not complete since there is more.
	if p := alice.query("zero", "", "", "<max>0</max>"); len(p.results) != 0 || p.complete() {
		t.Fatalf("max 0: %d results complete=%v", len(p.results), p.complete())
	}
}

func TestMAMFilters(t *testing.T) {
	srv := startTestServer(t, nil)
	alice, bob, carol := mamLogin(t, srv, "alice"), mamLogin(t, srv, "bob"), mamLogin(t, srv, "carol")
	toBob := alice.chat("bob@localhost", 2, "bob")
	time.Sleep(20 * time.Millisecond)
	mid := time.Now().UTC()
	time.Sleep(20 * time.Millisecond)
	toCarol := alice.chat("carol@localhost", 2, "carol")
	for range toBob {
		bob.nextMessage()
	}
	for range toCarol {
		carol.nextMessage()
	}
	carol.send("<message type='chat' to='alice@localhost'><body>from carol</body></message>")
	carol.sync()
	alice.nextMessage()

	stampOf := func(t time.Time) string { return t.Format(time.RFC3339Nano) }
	all := alice.query("all", "", "", "")
	cases := []struct {
		name, form string
		want       []string
	}{
		{"with bob", field("with", "bob@localhost"), toBob},
		{"with carol", field("with", "carol@localhost"), append(append([]string{}, toCarol...), "from carol")},
		{"with carol's resource", field("with", carol.jid), []string{"from carol"}},
		{"start", field("start", stampOf(mid)), append(append([]string{}, toCarol...), "from carol")},
		{"end", field("end", stampOf(mid)), toBob},
		{"start and with", field("start", stampOf(mid)) + field("with", "bob@localhost"), nil},
		{"after-id", field("after-id", all.ids()[2]), []string{"carol 1", "from carol"}},
		{"before-id", field("before-id", all.ids()[2]), toBob},
		{"ids", field("ids", all.ids()[4], all.ids()[1]), []string{"bob 1", "from carol"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := alice.query(queryID(c.name), "", c.form, "")
			if p.fin == nil {
				t.Fatalf("no fin: %s", p.iq)
			}
			if !slicesEqual(p.bodies(), c.want) {
				t.Fatalf("got %q, want %q", p.bodies(), c.want)
			}
		})
	}
}

func TestMAMErrors(t *testing.T) {
	srv := startTestServer(t, nil)
	alice, bob := mamLogin(t, srv, "alice"), mamLogin(t, srv, "bob")
	alice.chat("bob@localhost", 1, "x")
	bob.nextMessage()
	cases := []struct {
		name, to, form, set, cond string
	}{
		{"another user's archive", "bob@localhost", "", "", "forbidden"},
		{"max not a number", "", "", "<max>many</max>", "bad-request"},
		{"negative max", "", "", "<max>-1</max>", "bad-request"},
		{"index", "", "", "<index>3</index>", "feature-not-implemented"},
		{"unknown after", "", "", "<after>0123456789abcdef</after>", "item-not-found"},
		{"malformed after", "", "", "<after>nope</after>", "item-not-found"},
		{"unknown after-id", "", field("after-id", "0123456789abcdef"), "", "item-not-found"},
		{"unknown before-id", "", field("before-id", "0123456789abcdef"), "", "item-not-found"},
		{"unknown ids", "", field("ids", "0123456789abcdef"), "", "item-not-found"},
		{"bad start", "", field("start", "yesterday"), "", "bad-request"},
		{"bad with", "", field("with", "@@"), "", "bad-request"},
		{"unknown field", "", field("colour", "red"), "", "bad-request"},
		{"two values", "", field("with", "a@b", "c@d"), "", "bad-request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := alice.query(queryID(c.name), c.to, c.form, c.set)
			if len(p.results) != 0 || p.iq.Get("type") != "error" {
				t.Fatalf("got %d results and %s", len(p.results), p.iq)
			}
			if e := stanza.ParseError(p.iq); e == nil || e.Condition != c.cond {
				t.Fatalf("got %s, want %s", p.iq, c.cond)
			}
		})
	}
	// A wrong FORM_TYPE.
	alice.send("<iq type='set' id='ft'><query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field></x></query></iq>")
	if r := alice.next(); r.Get("type") != "error" || stanza.ParseError(r).Condition != "bad-request" {
		t.Fatalf("wrong FORM_TYPE: %s", r)
	}
}

func TestMAMWhatIsArchived(t *testing.T) {
	srv := startTestServer(t, nil)
	alice, bob := mamLogin(t, srv, "alice"), mamLogin(t, srv, "bob")
	stanzas := []struct {
		xml     string
		archive bool
	}{
		{"<message type='chat' to='bob@localhost'><body>chat</body></message>", true},
		{"<message to='bob@localhost'><body>no type</body></message>", true},
		{"<message type='normal' to='bob@localhost'><body>normal</body></message>", true},
		{"<message type='chat' to='bob@localhost'><body>no-store</body><no-store xmlns='urn:xmpp:hints'/></message>", false},
		{"<message type='chat' to='bob@localhost'><body>no-permanent-store</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>", false},
		{"<message type='headline' to='bob@localhost'><body>headline</body></message>", false},
		{"<message type='chat' to='bob@localhost'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", false},
		{"<message type='chat' to='bob@localhost'><encrypted xmlns='eu.siacs.conversations.axolotl'><payload>x</payload></encrypted></message>", true},
		{"<message type='chat' to='bob@localhost'><encrypted xmlns='urn:xmpp:omemo:2'><payload>x</payload></encrypted></message>", true},
		{"<message type='chat' to='bob@localhost'><displayed xmlns='urn:xmpp:chat-markers:0' id='1'/></message>", true},
		{"<message type='chat' to='bob@localhost'><reactions xmlns='urn:xmpp:reactions:0' id='1'><reaction>👍</reaction></reactions></message>", true},
		{"<message type='chat' to='bob@localhost'><body>fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='1'/></message>", true},
		{"<message type='chat' to='bob@localhost'><store xmlns='urn:xmpp:hints'/><x xmlns='jabber:x:oob'/></message>", true},
	}
	want := 0
	for _, s := range stanzas {
		alice.send(s.xml)
		if s.archive {
			want++
		}
	}
	alice.sync() // routed, and so archived: bob's query skips the messages themselves
	for _, who := range []*mamUser{alice, bob} {
		p := who.query("q", "", "", "")
		if len(p.results) != want {
			t.Errorf("%s's archive holds %d messages, want %d: %q", who.bare, len(p.results), want, p.bodies())
		}
	}
}

func TestMAMForgedStanzaID(t *testing.T) {
	srv := startTestServer(t, nil)
	alice, bob := mamLogin(t, srv, "alice"), mamLogin(t, srv, "bob")
	alice.send("<message type='chat' to='bob@localhost'><body>hi</body>" +
		"<stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='forged'/>" +
		"<stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='forged-too'/>" +
		"<stanza-id xmlns='urn:xmpp:sid:0' by='room@muc.example' id='kept'/></message>")
	m := bob.nextMessage()
	ids := map[string]string{}
	for _, c := range m.Children() {
		if c.Is(nsSID, "stanza-id") {
			if _, dup := ids[c.Get("by")]; dup {
				t.Fatalf("two stanza-ids by %s: %s", c.Get("by"), m)
			}
			ids[c.Get("by")] = c.Get("id")
		}
	}
	if ids["bob@localhost"] == "forged" || ids["bob@localhost"] == "" || ids["room@muc.example"] != "kept" || len(ids) != 2 {
		t.Fatalf("stanza-ids %v in %s", ids, m)
	}
	if p := bob.query("q", "", "", ""); len(p.results) != 1 || p.ids()[0] != ids["bob@localhost"] {
		t.Fatalf("archive ids %q, stamped %q", p.ids(), ids["bob@localhost"])
	}
}

// TestMAMOfflineSameID: a message stored offline carries the stanza-id the
// archive has, so a client that queries MAM after login recognises it.
func TestMAMOfflineSameID(t *testing.T) {
	srv := startTestServer(t, nil)
	alice := mamLogin(t, srv, "alice")
	alice.chat("bob@localhost", 1, "offline")
	bob := mamLogin(t, srv, "bob")
	m := bob.nextMessage()
	sid := m.Child(nsSID, "stanza-id")
	if sid == nil || sid.Get("by") != "bob@localhost" {
		t.Fatalf("offline message without stanza-id: %s", m)
	}
	if p := bob.query("q", "", "", ""); len(p.results) != 1 || p.ids()[0] != sid.Get("id") {
		t.Fatalf("archive ids %q, offline stanza-id %q", p.ids(), sid.Get("id"))
	}
}

func TestMAMPrefs(t *testing.T) {
	srv := startTestServer(t, nil)
	alice, bob, carol := mamLogin(t, srv, "alice"), mamLogin(t, srv, "bob"), mamLogin(t, srv, "carol")

	bob.send("<iq type='get' id='p0'><prefs xmlns='urn:xmpp:mam:2'/></iq>")
	if r := bob.next(); r.Child(nsMAM, "prefs").Get("default") != "always" {
		t.Fatalf("default prefs: %s", r)
	}
	// bob archives nothing by default, but always what carol says; alice
	// never archives what she says to bob.
	bob.send("<iq type='set' id='p1'><prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>carol@localhost</jid></always><never/></prefs></iq>")
	if r := bob.next(); r.Get("type") != "result" || r.Child(nsMAM, "prefs").Get("default") != "never" {
		t.Fatalf("set prefs: %s", r)
	}
	alice.send("<iq type='set' id='p2'><prefs xmlns='urn:xmpp:mam:2' default='always'><always/><never><jid>bob@localhost</jid></never></prefs></iq>")
	if r := alice.next(); r.Get("type") != "result" {
		t.Fatalf("set prefs: %s", r)
	}
	bob.send("<iq type='get' id='p3'><prefs xmlns='urn:xmpp:mam:2'/></iq>")
	if r := bob.next(); r.Child(nsMAM, "prefs").Child(nsMAM, "always").Child(nsMAM, "jid").Text() != "carol@localhost" {
		t.Fatalf("prefs read back: %s", r)
	}
	alice.chat("bob@localhost", 1, "from alice")
	carol.chat("bob@localhost", 1, "from carol")
	bob.nextMessage()
	bob.nextMessage()
	if p := bob.query("q", "", "", ""); !slicesEqual(p.bodies(), []string{"from carol 0"}) {
		t.Fatalf("bob's archive: %q", p.bodies())
	}
	if p := alice.query("q", "", "", ""); len(p.results) != 0 {
		t.Fatalf("alice's archive: %q", p.bodies())
	}
	// A bad default.
	bob.send("<iq type='set' id='p4'><prefs xmlns='urn:xmpp:mam:2' default='sometimes'/></iq>")
	if r := bob.next(); stanza.ParseError(r) == nil || stanza.ParseError(r).Condition != "bad-request" {
		t.Fatalf("bad default: %s", r)
	}
	// Someone else's prefs.
	alice.send("<iq type='get' id='p5' to='bob@localhost'><prefs xmlns='urn:xmpp:mam:2'/></iq>")
	if r := alice.next(); stanza.ParseError(r) == nil || stanza.ParseError(r).Condition != "forbidden" {
		t.Fatalf("bob's prefs for alice: %s", r)
	}
}

func TestMAMDiscoAndForm(t *testing.T) {
	srv := startTestServer(t, nil)
	alice := mamLogin(t, srv, "alice")
	alice.send("<iq type='get' id='d' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	r := alice.next()
	var features []string
	for _, f := range r.Child("http://jabber.org/protocol/disco#info", "query").Children() {
		if f.Local == "feature" {
			features = append(features, f.Get("var"))
		}
	}
	for _, want := range []string{"urn:xmpp:mam:2", "urn:xmpp:mam:1", "urn:xmpp:mam:2#extended", "urn:xmpp:sid:0"} {
		if !strings.Contains(" "+strings.Join(features, " ")+" ", " "+want+" ") {
			t.Errorf("account disco lacks %s: %q", want, features)
		}
	}
	alice.send("<iq type='get' id='f'><query xmlns='urn:xmpp:mam:2'/></iq>")
	r = alice.next()
	x := r.Child(nsMAM, "query").Child(nsData, "x")
	var vars []string
	for _, f := range x.Children() {
		vars = append(vars, f.Get("var"))
	}
	if got := strings.Join(vars, " "); !strings.Contains(got, "FORM_TYPE with start end after-id before-id ids") {
		t.Fatalf("form fields: %s", got)
	}
}

func TestMAMMetadata(t *testing.T) {
	srv := startTestServer(t, nil)
	alice, bob := mamLogin(t, srv, "alice"), mamLogin(t, srv, "bob")
	alice.send("<iq type='get' id='m0'><metadata xmlns='urn:xmpp:mam:2'/></iq>")
	if r := alice.next(); r.Child(nsMAM, "metadata") == nil || len(r.Child(nsMAM, "metadata").Children()) != 0 {
		t.Fatalf("empty archive's metadata: %s", r)
	}
	alice.chat("bob@localhost", 3, "m")
	for range 3 {
		bob.nextMessage()
	}
	all := alice.query("q", "", "", "")
	alice.send("<iq type='get' id='m1'><metadata xmlns='urn:xmpp:mam:2'/></iq>")
	md := alice.next().Child(nsMAM, "metadata")
	if md.Child(nsMAM, "start").Get("id") != all.ids()[0] || md.Child(nsMAM, "end").Get("id") != all.ids()[2] || md.Child(nsMAM, "end").Get("timestamp") == "" {
		t.Fatalf("metadata %s, ids %q", md, all.ids())
	}
}

// TestMAMVersion1: clients still on urn:xmpp:mam:1 get answers in it.
func TestMAMVersion1(t *testing.T) {
	srv := startTestServer(t, nil)
	alice, bob := mamLogin(t, srv, "alice"), mamLogin(t, srv, "bob")
	alice.chat("bob@localhost", 1, "v1")
	bob.nextMessage()
	alice.send("<iq type='set' id='v1'><query xmlns='urn:xmpp:mam:1' queryid='x'/></iq>")
	m := alice.next()
	if m.Child("urn:xmpp:mam:1", "result") == nil {
		t.Fatalf("result: %s", m)
	}
	if r := alice.next(); r.Child("urn:xmpp:mam:1", "fin").Get("complete") != "true" {
		t.Fatalf("fin: %s", r)
	}
}

// TestMAMFulltext: XEP-0431 search, combined with the other filters and
// paged like any query.
func TestMAMFulltext(t *testing.T) {
	srv := startTestServer(t, nil)
	alice, bob, carol := mamLogin(t, srv, "alice"), mamLogin(t, srv, "bob"), mamLogin(t, srv, "carol")
	for _, b := range []string{"the quick brown fox", "a lazy dog", "Quick thinking", "nothing here"} {
		alice.send("<message type='chat' to='bob@localhost'><body>" + b + "</body></message>")
	}
	alice.send("<message type='chat' to='carol@localhost'><body>quick to carol</body></message>")
	alice.sync()
	_ = bob
	_ = carol
	ft := func(s string) string { return field("{urn:xmpp:fulltext:0}fulltext", s) }
	cases := []struct {
		name, form, set string
		want            []string
	}{
		{"one word", ft("quick"), "", []string{"the quick brown fox", "Quick thinking", "quick to carol"}},
		{"two words", ft("quick fox"), "", []string{"the quick brown fox"}},
		{"with", ft("quick") + field("with", "carol@localhost"), "", []string{"quick to carol"}},
		{"paged", ft("quick"), "<max>2</max><before/>", []string{"Quick thinking", "quick to carol"}},
		{"no match", ft("elephant"), "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := alice.query(queryID(c.name), "", c.form, c.set)
			if p.fin == nil {
				t.Fatalf("no fin: %s", p.iq)
			}
			if !slicesEqual(p.bodies(), c.want) {
				t.Fatalf("got %q, want %q", p.bodies(), c.want)
			}
		})
	}
	// Too many words: refused, not searched.
	p := alice.query("many", "", ft(strings.Repeat("w ", 40)+"x y z a b c d e f g h i j k l m n o p q r s t u v"), "")
	if e := stanza.ParseError(p.iq); e == nil || e.Condition != "not-acceptable" {
		t.Fatalf("too many words: %s", p.iq)
	}
}

// TestMAMRetraction: a retraction (XEP-0424) replaces the retracted
// message in both archives by a tombstone; the retraction itself is kept.
func TestMAMRetraction(t *testing.T) {
	srv := startTestServer(t, nil)
	alice, bob := mamLogin(t, srv, "alice"), mamLogin(t, srv, "bob")
	alice.send("<message type='chat' to='bob@localhost' id='m1'><body>oops</body><origin-id xmlns='urn:xmpp:sid:0' id='orig-1'/></message>")
	alice.send("<message type='chat' to='bob@localhost' id='m2'><body>fine</body><origin-id xmlns='urn:xmpp:sid:0' id='orig-2'/></message>")
	alice.sync()
	// bob may not retract alice's message.
	bob.send("<message type='chat' to='alice@localhost' id='r0'><retract xmlns='urn:xmpp:message-retract:1' id='orig-2'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/><body>retracted</body></message>")
	bob.settle()
	alice.send("<message type='chat' to='bob@localhost' id='r1'><retract xmlns='urn:xmpp:message-retract:1' id='orig-1'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/><body>This person attempted to retract a previous message</body><store xmlns='urn:xmpp:hints'/></message>")
	alice.settle()
	for _, who := range []*mamUser{alice, bob} {
		p := who.query("q", "", "", "")
		if len(p.results) != 4 {
			t.Fatalf("%s: %d results", who.bare, len(p.results))
		}
		first := p.results[0].Child("urn:xmpp:forward:0", "forwarded").Child(stanza.NSClient, "message")
		if first.Child(stanza.NSClient, "body") != nil || first.Child("urn:xmpp:message-retract:1", "retracted") == nil || first.Get("id") != "m1" {
			t.Fatalf("%s: retracted message not a tombstone: %s", who.bare, first)
		}
		if b := p.bodies()[1]; b != "fine" {
			t.Fatalf("%s: second message %q: another's retraction was applied", who.bare, b)
		}
	}
}

// chatWorld is the server's modules (with the archive or without), router
// and registry in process, users u0..u(n-1) online, no sockets: what the
// archive adds to a message's path, and nothing else.
func newChatWorld(tb testing.TB, users int, archive bool) *presenceWorld {
	tb.Helper()
	var mods []xeps.Module
	for _, m := range modules(DefaultConfig()) {
		if m.Name() != "archive" || archive {
			mods = append(mods, m)
		}
	}
	w := newWorld(tb, users, mods)
	for i := range w.sessions {
		w.send(i, "<presence/>")
	}
	return w
}

// BenchmarkChatArchive: 1:1 chat messages between pairs of online users,
// from 64 senders at once (as many clients chat at once), with the archive
// and without. With it every message costs two appends (the sender's copy
// and the recipient's, the latter committed to disk before delivery);
// concurrent appends share their commits (the store's group commit), so
// msgs/s, not ns/op of one sender, is the figure that matters.
func BenchmarkChatArchive(b *testing.B) {
	for _, archive := range []bool{false, true} {
		name := "off"
		if archive {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			const senders = 64
			w := newChatWorld(b, 2*senders, archive)
			var next atomic.Int64
			w.delivered.Store(0)
			b.ReportAllocs()
			b.SetParallelism(senders / runtime.GOMAXPROCS(0))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1)-1) % senders
				from, to := 2*i, 2*i+1
				msg := fmt.Sprintf("<message type='chat' to='u%d@localhost'><body>hello, this is a message of some forty bytes</body></message>", to)
				for pb.Next() {
					w.send(from, msg)
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if d := w.delivered.Load(); d < int64(b.N) {
				b.Fatalf("%d delivered of %d", d, b.N)
			}
		})
	}
}

// TestMAMPrefsRoster: with default='roster', only messages exchanged with
// contacts in the user's roster are archived.
func TestMAMPrefsRoster(t *testing.T) {
	srv := startTestServer(t, nil)
	alice, bob, carol := mamLogin(t, srv, "alice"), mamLogin(t, srv, "bob"), mamLogin(t, srv, "carol")
	alice.send("<presence type='subscribe' to='bob@localhost'/>")
	alice.settle()
	bob.send("<presence type='subscribed' to='alice@localhost'/>")
	bob.settle()
	bob.send("<iq type='set' id='pr'><prefs xmlns='urn:xmpp:mam:2' default='roster'><always/><never/></prefs></iq>")
	bob.settle()
	alice.settle() // bob's approval, the roster push, bob's presence
	alice.chat("bob@localhost", 1, "contact")
	carol.chat("bob@localhost", 1, "stranger")
	bob.settle()
	if p := bob.query("q", "", "", ""); !slicesEqual(p.bodies(), []string{"contact 0"}) {
		t.Fatalf("bob's archive with default roster: %q", p.bodies())
	}
}
