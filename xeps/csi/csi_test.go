package csi

import (
	"testing"

	"github.com/xmppd/xmppd/stanza"
)

func TestClassify(t *testing.T) {
	nicks := map[string]string{"room@muc.example": "Alice"}
	tests := []struct {
		xml  string
		want kind
	}{
		{`<iq xmlns='jabber:client' type='get' id='1'/>`, urgent},
		{`<presence xmlns='jabber:client' from='b@x/r'/>`, presence},
		{`<presence xmlns='jabber:client' from='b@x/r' type='unavailable'/>`, presence},
		{`<presence xmlns='jabber:client' from='b@x' type='subscribe'/>`, urgent},
		{`<presence xmlns='jabber:client' from='b@x' type='error'/>`, urgent},
		{`<message xmlns='jabber:client' type='chat'><body>hi</body></message>`, urgent},
		{`<message xmlns='jabber:client'><body>hi</body></message>`, urgent},
		{`<message xmlns='jabber:client' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/><thread>t</thread></message>`, chatState},
		{`<message xmlns='jabber:client' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/><markable xmlns='urn:xmpp:chat-markers:0'/></message>`, other},
		{`<message xmlns='jabber:client' type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>`, urgent},
		{`<message xmlns='jabber:client'><propose xmlns='urn:xmpp:jingle-message:0'/></message>`, urgent},
		{`<message xmlns='jabber:client' type='error'/>`, urgent},
		{`<message xmlns='jabber:client'><received xmlns='urn:xmpp:receipts' id='x'/></message>`, other},
		{`<message xmlns='jabber:client' from='pubsub.x'><event xmlns='http://jabber.org/protocol/pubsub#event'/></message>`, other},
		{`<message xmlns='jabber:client' type='headline'><body>news</body></message>`, other},
		{`<message xmlns='jabber:client' type='groupchat' from='room@muc.example/Bob'><body>hello all</body></message>`, other},
		{`<message xmlns='jabber:client' type='groupchat' from='room@muc.example/Bob'><body>hey ALICE</body></message>`, urgent},
		{`<message xmlns='jabber:client' type='groupchat' from='room@muc.example/Alice'><body>alice speaking</body></message>`, other},
		{`<message xmlns='jabber:client' type='groupchat' from='other@muc.example/Bob'><body>alice</body></message>`, other},
		{`<message xmlns='jabber:client' type='groupchat' from='other@muc.example/Bob'><body>hi</body><reference xmlns='urn:xmpp:reference:0' type='mention' uri='xmpp:a@x'/></message>`, urgent},
		{`<message xmlns='jabber:client' from='a@x'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat'><body>hi</body></message></forwarded></received></message>`, urgent},
		{`<message xmlns='jabber:client' from='a@x'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded></received></message>`, other},
		{`<message xmlns='jabber:client' from='a@x'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat'><body>mine</body></message></forwarded></sent></message>`, other},
	}
	for _, tc := range tests {
		el, err := stanza.ParseElement([]byte(tc.xml))
		if err != nil {
			t.Fatal(err)
		}
		if got := classify(el, nicks, "a@x"); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.xml, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, -1, 10001} {
		if err := (Config{MaxHeld: n}).Validate(); err == nil {
			t.Errorf("max_held %d accepted", n)
		}
	}
}
