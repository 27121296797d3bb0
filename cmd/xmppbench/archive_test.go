package main

import (
	"strings"
	"testing"
)

func TestArchBodyRoundTrip(t *testing.T) {
	b := archBody(nil, "run1", 42, 10, 12)
	run, sq, ts, ok := parseArchBody(string(b))
	if !ok || run != "run1" || sq != 42 || ts <= 0 {
		t.Fatalf("%q: %q %d %d %v", b, run, sq, ts, ok)
	}
	if n := len(strings.Fields(string(b))); n != 4+12 {
		t.Errorf("%q: %d fields, want 16", b, n)
	}
	// With the default vocabulary, a stanza is about 200 bytes (the
	// issue's figure for database size per archived message).
	st := "<message type='chat' to='u2@bench.test'><body>" + string(archBody(nil, "abcdefgh", 12345, 2000, 16)) + "</body></message>"
	if len(st) < 170 || len(st) > 230 {
		t.Errorf("stanza %d bytes, want about 200: %s", len(st), st)
	}
	for _, bad := range []string{"", "xa", "xa r", "xa r 1", "xa r x 1", "xa r 0 1", "xa r 1 y", "xb r 1 1"} {
		if _, _, _, ok := parseArchBody(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseArchBody(f *testing.F) {
	f.Add("xa r 1 1700000000000000000 w1 w2")
	f.Fuzz(func(t *testing.T, body string) {
		run, sq, _, ok := parseArchBody(body)
		if ok && (sq == 0 || !strings.HasPrefix(body, archPrefix+run+" ")) {
			t.Errorf("%q: %q %d", body, run, sq)
		}
	})
}

func TestMAMParse(t *testing.T) {
	tests := []struct {
		name      string
		els       []string // result messages, then the IQ
		q         string
		wantIDs   string
		wantFirst string
		complete  bool
		errCond   string
	}{
		{name: "page with fin set", q: "q1", els: []string{
			"<message><result xmlns='urn:xmpp:mam:2' queryid='q1' id='A'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>one</body></message></forwarded></result></message>",
			"<message><result xmlns='urn:xmpp:mam:2' queryid='q1' id='B'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>two</body></message></forwarded></result></message>",
			"<iq type='result' id='q1'><fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><first index='0'>A</first><last>B</last></set></fin></iq>"},
			wantIDs: "A B", wantFirst: "A", complete: true},
		{name: "another query's results ignored, first from the results", q: "q2", els: []string{
			"<message><result xmlns='urn:xmpp:mam:2' queryid='q1' id='A'/></message>",
			"<message><result xmlns='urn:xmpp:mam:2' queryid='q2' id='C'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>x</body></message></forwarded></result></message>",
			"<iq type='result' id='q2'><fin xmlns='urn:xmpp:mam:2'/></iq>"},
			wantIDs: "C", wantFirst: "C"},
		{name: "refused", q: "q3", els: []string{
			"<iq type='error' id='q3'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"},
			errCond: "bad-request"},
		{name: "error without a condition", q: "q4", els: []string{"<iq type='error' id='q4'/>"}, errCond: "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p mamPage
			for _, x := range tt.els {
				el := decodeOne(t, x)
				if el.Local == "message" {
					if id, body, ok := parseMAMResult(el, tt.q); ok {
						p.ids = append(p.ids, id)
						p.bodies = append(p.bodies, body)
					}
					continue
				}
				parseFin(el, &p)
			}
			if strings.Join(p.ids, " ") != tt.wantIDs || p.first != tt.wantFirst || p.complete != tt.complete || p.errCond != tt.errCond {
				t.Errorf("ids %v first %q complete %v err %q", p.ids, p.first, p.complete, p.errCond)
			}
		})
	}
}

func TestMAMQueryWellFormed(t *testing.T) {
	b := mamQuery("q1", "q1", [][2]string{{"with", "a'b@x"}, {fulltextFV, "w<1>"}}, 50, "id&1")
	el := decodeOne(t, string(b))
	q := el.Child(nsMAM, "query")
	if q.Get("queryid") != "q1" {
		t.Fatalf("%s", b)
	}
	var vars []string
	for _, f := range q.Child(nsData, "x").Children() {
		vars = append(vars, f.Get("var")+"="+f.Child(nsData, "value").Text())
	}
	if got := strings.Join(vars, ","); got != "FORM_TYPE=urn:xmpp:mam:2,with=a'b@x,"+fulltextFV+"=w<1>" {
		t.Errorf("fields %s", got)
	}
	set := q.Child(nsRSM, "set")
	if set.Child(nsRSM, "max").Text() != "50" || set.Child(nsRSM, "before").Text() != "id&1" {
		t.Errorf("set %s", set)
	}
	if el := decodeOne(t, string(mamQuery("q", "q", nil, 5, ""))); el.Child(nsMAM, "query").Child(nsData, "x") != nil ||
		el.Child(nsMAM, "query").Child(nsRSM, "set").Child(nsRSM, "before") == nil {
		t.Errorf("no form, empty <before/>: %s", el)
	}
}
