package mam

import (
	"testing"

	"github.com/xmppd/xmppd/stanza"
)

func mustParse(t testing.TB, s string) *stanza.Element {
	t.Helper()
	el, err := stanza.ParseElement([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func TestParseQuery(t *testing.T) {
	form := func(fields string) string {
		return "<query xmlns='urn:xmpp:mam:2' queryid='q'><x xmlns='jabber:x:data' type='submit'>" +
			"<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>" + fields + "</x></query>"
	}
	set := func(s string) string {
		return "<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'>" + s + "</set></query>"
	}
	cases := []struct {
		name, xml, cond string
		check           func(*request) bool
	}{
		{"empty", "<query xmlns='urn:xmpp:mam:2'/>", "", func(r *request) bool { return r.rsm.pageSize() == DefaultPage && !r.hasWith }},
		{"with", form("<field var='with'><value>bob@example.com</value></field>"), "", func(r *request) bool { return r.hasWith && r.with.String() == "bob@example.com" }},
		{"start end", form("<field var='start'><value>2010-06-07T00:00:00Z</value></field><field var='end'><value>2010-07-07T13:23:54.5+02:00</value></field>"), "",
			func(r *request) bool { return r.start.Year() == 2010 && r.end.Month() == 7 }},
		{"ids", form("<field var='ids'><value>a</value><value>b</value></field>"), "", func(r *request) bool { return len(r.ids) == 2 }},
		{"fulltext", form("<field var='{urn:xmpp:fulltext:0}fulltext'><value>hello</value></field>"), "", func(r *request) bool { return r.text == "hello" }},
		{"max capped", set("<max>100000</max>"), "", func(r *request) bool { return r.rsm.pageSize() == MaxPage }},
		{"before empty", set("<before/>"), "", func(r *request) bool { return r.rsm.hasBefore && r.rsm.before == "" }},
		{"after", set("<after>x</after>"), "", func(r *request) bool { return r.rsm.after == "x" }},
		{"bad max", set("<max>x</max>"), "bad-request", nil},
		{"negative max", set("<max>-5</max>"), "bad-request", nil},
		{"empty after", set("<after/>"), "bad-request", nil},
		{"twice", set("<max>1</max><max>2</max>"), "bad-request", nil},
		{"index", set("<index>0</index>"), "feature-not-implemented", nil},
		{"unknown rsm", set("<first>1</first>"), "bad-request", nil},
		{"form type", "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field></x></query>", "bad-request", nil},
		{"form not submit", "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='form'/></query>", "bad-request", nil},
		{"bad with", form("<field var='with'><value>a@b@c</value></field>"), "bad-request", nil},
		{"bad start", form("<field var='start'><value>2010-13-01</value></field>"), "bad-request", nil},
		{"unknown field", form("<field var='colour'><value>red</value></field>"), "bad-request", nil},
		{"field twice", form("<field var='with'><value>a@b</value></field><field var='with'><value>a@b</value></field>"), "bad-request", nil},
		{"long text", form("<field var='{urn:xmpp:fulltext:0}fulltext'><value>" + string(make([]byte, 0)) + longText() + "</value></field>"), "not-acceptable", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := parseQuery(mustParse(t, c.xml))
			if c.cond != "" {
				if err == nil || err.Condition != c.cond {
					t.Fatalf("got %v, want %s", err, c.cond)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(r) {
				t.Fatalf("parsed %+v", r)
			}
		})
	}
}

func longText() string {
	b := make([]byte, maxText+1)
	for i := range b {
		b[i] = 'a'
	}
	return string(b)
}

func TestParsePrefs(t *testing.T) {
	cases := []struct {
		name, xml, cond string
		always, never   int
	}{
		{"lists", "<prefs xmlns='urn:xmpp:mam:2' default='roster'><always><jid>a@b</jid><jid>c@d/r</jid></always><never><jid>e@f</jid></never></prefs>", "", 2, 1},
		{"no lists", "<prefs xmlns='urn:xmpp:mam:2' default='never'/>", "", 0, 0},
		{"bad default", "<prefs xmlns='urn:xmpp:mam:2' default='maybe'/>", "bad-request", 0, 0},
		{"no default", "<prefs xmlns='urn:xmpp:mam:2'/>", "bad-request", 0, 0},
		{"bad jid", "<prefs xmlns='urn:xmpp:mam:2' default='always'><never><jid>@</jid></never></prefs>", "jid-malformed", 0, 0},
		{"both lists", "<prefs xmlns='urn:xmpp:mam:2' default='always'><always><jid>a@b</jid></always><never><jid>a@b</jid></never></prefs>", "bad-request", 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := parsePrefs(mustParse(t, c.xml))
			if c.cond != "" {
				if err == nil || err.Condition != c.cond {
					t.Fatalf("got %v, want %s", err, c.cond)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(p.always) != c.always || len(p.never) != c.never {
				t.Fatalf("got %+v", p)
			}
			if q := decodePrefs(p.encode()); q.def != p.def || len(q.always) != len(p.always) || len(q.never) != len(p.never) {
				t.Fatalf("round trip: %+v != %+v", q, p)
			}
		})
	}
}

func TestArchivable(t *testing.T) {
	cases := []struct {
		xml  string
		want bool
	}{
		{"<message xmlns='jabber:client' type='chat'><body>x</body></message>", true},
		{"<message xmlns='jabber:server'><body>x</body></message>", true},
		{"<message xmlns='jabber:client' type='groupchat'><body>x</body></message>", false},
		{"<message xmlns='jabber:client' type='error'><body>x</body></message>", false},
		{"<message xmlns='jabber:client' type='headline'><body>x</body></message>", false},
		{"<message xmlns='jabber:client' type='chat'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>", false},
		{"<message xmlns='jabber:client' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>", false},
		{"<message xmlns='jabber:client' type='chat'><retract xmlns='urn:xmpp:message-retract:1' id='x'/></message>", true},
		{"<message xmlns='jabber:client' type='chat'><received xmlns='urn:xmpp:chat-markers:0' id='x'/></message>", true},
		{"<message xmlns='jabber:client' type='chat'><received xmlns='urn:xmpp:carbons:2'/></message>", false},
		{"<message xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2'/></message>", false},
		{"<message xmlns='jabber:client' type='chat'><store xmlns='urn:xmpp:hints'/></message>", true},
	}
	for _, c := range cases {
		if got := archivable(mustParse(t, c.xml)); got != c.want {
			t.Errorf("%s: %v, want %v", c.xml, got, c.want)
		}
	}
}

func TestStripStanzaIDs(t *testing.T) {
	el := mustParse(t, "<message xmlns='jabber:client'><stanza-id xmlns='urn:xmpp:sid:0' by='a@b' id='1'/><body>x</body><stanza-id xmlns='urn:xmpp:sid:0' by='room@muc' id='2'/><stanza-id xmlns='urn:xmpp:sid:0' by='a@b' id='3'/></message>")
	stripStanzaIDs(el, "a@b")
	if got := el.String(); got != "<message xmlns='jabber:client'><body>x</body><stanza-id xmlns='urn:xmpp:sid:0' by='room@muc' id='2'/></message>" {
		t.Fatal(got)
	}
}

// The parsers never panic, and what they accept is within the bounds.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"<query xmlns='urn:xmpp:mam:2' queryid='q'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field><field var='with'><value>a@b</value></field><field var='start'><value>2010-06-07T00:00:00Z</value></field><field var='ids'><value>1</value></field></x><set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set></query>",
		"<query xmlns='urn:xmpp:mam:1'><set xmlns='http://jabber.org/protocol/rsm'><after>x</after><index>1</index></set></query>",
		"<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data'><field var='{urn:xmpp:fulltext:0}fulltext'><value>a b</value></field></x></query>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		el, err := stanza.ParseElement(b)
		if err != nil {
			return
		}
		r, serr := parseQuery(el)
		if serr != nil {
			if serr.Condition == "" {
				t.Fatal("error without a condition")
			}
			return
		}
		if n := r.rsm.pageSize(); n < 0 || n > MaxPage {
			t.Fatalf("page size %d", n)
		}
		if len(r.ids) > maxIDs || len(r.text) > maxText {
			t.Fatalf("unbounded: %d ids, %d bytes of text", len(r.ids), len(r.text))
		}
	})
}

func FuzzParseRSM(f *testing.F) {
	for _, s := range []string{
		"<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><after>0123456789abcdef</after></set>",
		"<set xmlns='http://jabber.org/protocol/rsm'><before/></set>",
		"<set xmlns='http://jabber.org/protocol/rsm'><max>99999999999999999999</max></set>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		el, err := stanza.ParseElement(b)
		if err != nil {
			return
		}
		s, serr := parseRSM(el)
		if serr == nil && (s.pageSize() < 0 || s.pageSize() > MaxPage) {
			t.Fatalf("page size %d", s.pageSize())
		}
	})
}

func FuzzParsePrefs(f *testing.F) {
	f.Add([]byte("<prefs xmlns='urn:xmpp:mam:2' default='roster'><always><jid>a@b</jid></always><never><jid>c@d/e</jid></never></prefs>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		el, err := stanza.ParseElement(b)
		if err != nil {
			return
		}
		p, serr := parsePrefs(el)
		if serr != nil {
			return
		}
		// What is accepted survives the store's encoding.
		q := decodePrefs(p.encode())
		if q.def != p.def || len(q.always) != len(p.always) || len(q.never) != len(p.never) {
			t.Fatalf("round trip: %+v != %+v", q, p)
		}
	})
}
