package carbons

import (
	"testing"

	"github.com/xmppd/xmppd/stanza"
)

func TestEligible(t *testing.T) {
	tests := []struct {
		xml  string
		want bool
	}{
		{`<message xmlns='jabber:client' type='chat'/>`, true},
		{`<message xmlns='jabber:client'><body>x</body></message>`, true},
		{`<message xmlns='jabber:client' type='normal'><body>x</body></message>`, true},
		{`<message xmlns='jabber:client'/>`, false},
		{`<message xmlns='jabber:client'><displayed xmlns='urn:xmpp:chat-markers:0' id='1'/></message>`, true},
		{`<message xmlns='jabber:client'><encrypted xmlns='urn:xmpp:omemo:2'/></message>`, true},
		{`<message xmlns='jabber:client'><reactions xmlns='urn:xmpp:reactions:0'/></message>`, true},
		{`<message xmlns='jabber:client'><x xmlns='jabber:x:oob'/></message>`, false},
		{`<message xmlns='jabber:client' type='groupchat'><body>x</body></message>`, false},
		{`<message xmlns='jabber:client' type='headline'><body>x</body></message>`, false},
		{`<message xmlns='jabber:client' type='error'><body>x</body></message>`, false},
		{`<message xmlns='jabber:client' type='chat'><private xmlns='urn:xmpp:carbons:2'/></message>`, false},
		{`<message xmlns='jabber:client' type='chat'><no-copy xmlns='urn:xmpp:hints'/></message>`, false},
		{`<message xmlns='jabber:client' type='chat'><x xmlns='http://jabber.org/protocol/muc#user'/></message>`, false},
		{`<message xmlns='jabber:client' type='chat'><sent xmlns='urn:xmpp:carbons:2'/></message>`, false},
		{`<message xmlns='jabber:server' type='chat'><body>from s2s</body></message>`, true},
		{`<iq xmlns='jabber:client' type='get'/>`, false},
	}
	for _, tc := range tests {
		el, err := stanza.ParseElement([]byte(tc.xml))
		if err != nil {
			t.Fatal(err)
		}
		if got := Eligible(el); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.xml, got, tc.want)
		}
	}
}

// TestForwardedIsolated: the copy keeps its children when the original's
// list is rebuilt later (mam strips a stanza-id before local delivery).
func TestForwardedIsolated(t *testing.T) {
	el, _ := stanza.ParseElement([]byte(`<message xmlns='jabber:server' type='chat' from='b@y/r' to='a@x'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='a@x' id='1'/></message>`))
	w := forwarded("received", el, "a@x", "a@x/r2")
	el.Nodes[1] = stanza.Node{Elem: stanza.New("urn:other", "changed")}
	inner := w.Child(NS, "received").Child(NSForward, "forwarded").Child(stanza.NSClient, "message")
	if inner == nil || inner.Child("urn:xmpp:sid:0", "stanza-id") == nil || inner.Space != stanza.NSClient {
		t.Fatalf("copy %s", w)
	}
	if w.Get("from") != "a@x" || w.Get("to") != "a@x/r2" || w.Get("type") != "chat" {
		t.Fatalf("wrapper %s", w)
	}
}
