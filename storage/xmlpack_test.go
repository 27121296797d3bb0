package storage

import (
	"bytes"
	"testing"
)

func TestPackXML(t *testing.T) {
	tests := []struct {
		data, with, owner string
		packed            bool
		most              int // the most bytes the packed form may take
	}{
		{"<message xmlns='jabber:client' from='bob@example.net/phone' to='alice@example.org' type='chat' id='abc'><body>hi</body><origin-id xmlns='urn:xmpp:sid:0' id='x'/><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
			"bob@example.net", "alice@example.org", true, 30},
		{"<message xmlns='jabber:client' to='bob@example.net' type='chat'><body>hi</body></message>", "", "alice@example.org", true, 40},
		{"plain text", "x@y", "a@b", false, 0},
		{"<a>\x01</a><body>", "x@y", "a@b", false, 0}, // holds a code byte
		{"", "", "a@b", false, 0},
		{"a@ba@ba@b", "", "a@b", true, 3},
	}
	for _, tt := range tests {
		p, ok := packXML(nil, []byte(tt.data), tt.with, tt.owner)
		if ok != tt.packed || (ok && len(p) > tt.most) {
			t.Errorf("pack(%q) = %q (%d bytes), %v", tt.data, p, len(p), ok)
		}
		if !ok {
			continue
		}
		u, err := unpackXML(nil, p, tt.with, tt.owner)
		if err != nil || string(u) != tt.data {
			t.Errorf("unpack(pack(%q)) = %q, %v", tt.data, u, err)
		}
	}
	if _, err := unpackXML(nil, []byte{0x09, 0x1f, 0x0d, 0x0a}, "", "a@b"); err != nil {
		t.Errorf("unpack: %v", err)
	}
}

// FuzzPackXML: packing is lossless, never longer, and unpacking anything
// does not panic.
func FuzzPackXML(f *testing.F) {
	f.Add([]byte("<message xmlns='jabber:client' from='bob@example.net/phone'><body>hi</body></message>"), "bob@example.net", "alice@example.org")
	f.Add([]byte("\x03\x01\x02x"), "", "a@b")
	f.Fuzz(func(t *testing.T, data []byte, with, owner string) {
		if owner == "" {
			owner = "a@b"
		}
		_, _ = unpackXML(nil, data, with, owner)
		p, ok := packXML([]byte("prefix"), data, with, owner)
		if !ok {
			if string(p) != "prefix" {
				t.Fatalf("pack failed but wrote %q", p)
			}
			return
		}
		p = p[len("prefix"):]
		if len(p) >= len(data) {
			t.Fatalf("packed %d bytes into %d", len(data), len(p))
		}
		u, err := unpackXML(nil, p, with, owner)
		if err != nil || !bytes.Equal(u, data) {
			t.Fatalf("unpack(pack(%q)) = %q, %v", data, u, err)
		}
	})
}
