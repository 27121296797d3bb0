package push

import (
	"reflect"
	"testing"

	"github.com/xmppd/xmppd/stanza"
)

func TestParseEnable(t *testing.T) {
	tests := []struct {
		name, xml string
		cond      string // "" = accepted
		opts      int
	}{
		{"plain", `<enable xmlns='urn:xmpp:push:0' jid='push.example' node='n1'/>`, "", 0},
		{"with secret", `<enable xmlns='urn:xmpp:push:0' jid='push.example' node='n1'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s3</value></field></x></enable>`, "", 1},
		{"no FORM_TYPE", `<enable xmlns='urn:xmpp:push:0' jid='push.example' node='n1'><x xmlns='jabber:x:data' type='submit'><field var='secret'><value>s3</value></field></x></enable>`, "", 1},
		{"no jid", `<enable xmlns='urn:xmpp:push:0' node='n1'/>`, "jid-malformed", 0},
		{"bad jid", `<enable xmlns='urn:xmpp:push:0' jid='a@@b' node='n1'/>`, "jid-malformed", 0},
		{"no node", `<enable xmlns='urn:xmpp:push:0' jid='push.example'/>`, "bad-request", 0},
		{"form not submit", `<enable xmlns='urn:xmpp:push:0' jid='push.example' node='n'><x xmlns='jabber:x:data' type='form'/></enable>`, "bad-request", 0},
		{"wrong FORM_TYPE", `<enable xmlns='urn:xmpp:push:0' jid='push.example' node='n'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value></field></x></enable>`, "bad-request", 0},
		{"two forms", `<enable xmlns='urn:xmpp:push:0' jid='push.example' node='n'><x xmlns='jabber:x:data' type='submit'/><x xmlns='jabber:x:data' type='submit'/></enable>`, "bad-request", 0},
		{"field without var", `<enable xmlns='urn:xmpp:push:0' jid='push.example' node='n'><x xmlns='jabber:x:data' type='submit'><field><value>v</value></field></x></enable>`, "bad-request", 0},
		{"wrong element", `<disable xmlns='urn:xmpp:push:0' jid='push.example' node='n'/>`, "bad-request", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			el, err := stanza.ParseElement([]byte(tc.xml))
			if err != nil {
				t.Fatal(err)
			}
			r, err := ParseEnable(el)
			if tc.cond != "" {
				if se, ok := err.(*stanza.Error); !ok || se.Condition != tc.cond {
					t.Fatalf("got %v, want %s", err, tc.cond)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Options) != tc.opts {
				t.Fatalf("options %v", r.Options)
			}
			back, err := ParseEnable(r.Element())
			if err != nil || !reflect.DeepEqual(back, r) {
				t.Fatalf("round trip: %+v, %v", back, err)
			}
		})
	}
}

func TestParseEnableLimits(t *testing.T) {
	big := make([]byte, MaxNode+1)
	for i := range big {
		big[i] = 'n'
	}
	el := stanza.New(NS, "enable").Set("jid", "push.example").Set("node", string(big))
	if _, err := ParseEnable(el); err == nil {
		t.Fatal("an oversized node was accepted")
	}
	x := stanza.New(NSData, "x").Set("type", "submit")
	for range MaxFields + 1 {
		x.Append(field("f", "v"))
	}
	el = stanza.New(NS, "enable").Set("jid", "push.example").Set("node", "n").Append(x)
	if _, err := ParseEnable(el); err == nil {
		t.Fatal("too many fields were accepted")
	}
}

// FuzzParseEnable: any input is either refused with a stanza error or
// accepted, and what is accepted is stored and read back unchanged.
func FuzzParseEnable(f *testing.F) {
	f.Add(`<enable xmlns='urn:xmpp:push:0' jid='push.example' node='n1'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s3</value></field></x></enable>`)
	f.Add(`<enable xmlns='urn:xmpp:push:0' jid='u@push.example/r' node='&amp;'/>`)
	f.Add(`<enable xmlns='urn:xmpp:push:0' jid='push.example' node='n'><x xmlns='jabber:x:data' type='submit'><field var='a'/><field var='b'><value/><value>x</value></field></x></enable>`)
	f.Fuzz(func(t *testing.T, s string) {
		el, err := stanza.ParseElement([]byte(s))
		if err != nil {
			return
		}
		r, err := ParseEnable(el)
		if err != nil {
			if _, ok := err.(*stanza.Error); !ok {
				t.Fatalf("not a stanza error: %v", err)
			}
			return
		}
		stored := r.Element().AppendXML(nil, "")
		el2, err := stanza.ParseElement(stored)
		if err != nil {
			t.Fatalf("stored form does not parse: %v\n%s", err, stored)
		}
		back, err := ParseEnable(el2)
		if err != nil {
			t.Fatalf("stored form refused: %v\n%s", err, stored)
		}
		if !back.JID.Equal(r.JID) || back.Node != r.Node || len(back.Options) != len(r.Options) {
			t.Fatalf("round trip changed %+v into %+v", r, back)
		}
		for i := range r.Options {
			if !reflect.DeepEqual(back.Options[i], r.Options[i]) {
				t.Fatalf("round trip changed field %+v into %+v", r.Options[i], back.Options[i])
			}
		}
	})
}

func TestWorthNotifying(t *testing.T) {
	tests := []struct {
		xml  string
		want bool
	}{
		{`<message xmlns='jabber:client' type='chat'><body>x</body></message>`, true},
		{`<message xmlns='jabber:server'><body>x</body></message>`, true},
		{`<message xmlns='jabber:client' type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>`, true},
		{`<message xmlns='jabber:client' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, false},
		{`<message xmlns='jabber:client' type='groupchat'><body>x</body></message>`, false},
		{`<message xmlns='jabber:client' type='headline'><body>x</body></message>`, false},
		{`<message xmlns='jabber:client' type='error'><body>x</body></message>`, false},
		{`<message xmlns='jabber:client' type='chat'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat'><body>x</body></message></forwarded></received></message>`, true},
		{`<message xmlns='jabber:client' type='chat'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded></received></message>`, false},
		{`<message xmlns='jabber:client' type='chat'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat'><body>x</body></message></forwarded></sent></message>`, false},
		{`<presence xmlns='jabber:client'/>`, false},
	}
	for _, tc := range tests {
		el, err := stanza.ParseElement([]byte(tc.xml))
		if err != nil {
			t.Fatal(err)
		}
		if got := worthNotifying(el); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.xml, got, tc.want)
		}
	}
}
