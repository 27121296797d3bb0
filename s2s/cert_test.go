package s2s

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

func TestCertNamesMatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		names  certNames
		domain string
		want   bool
	}{
		{"dns exact", certNames{dns: []string{"example.com"}}, "example.com", true},
		{"dns case", certNames{dns: []string{"Example.COM"}}, "example.com", true},
		{"dns trailing dot", certNames{dns: []string{"example.com."}}, "example.com.", true},
		{"dns other", certNames{dns: []string{"example.org"}}, "example.com", false},
		{"dns suffix is not a match", certNames{dns: []string{"ample.com"}}, "example.com", false},
		{"wildcard left-most", certNames{dns: []string{"*.example.com"}}, "chat.example.com", true},
		{"wildcard not the base", certNames{dns: []string{"*.example.com"}}, "example.com", false},
		{"wildcard one label only", certNames{dns: []string{"*.example.com"}}, "a.b.example.com", false},
		{"wildcard partial", certNames{dns: []string{"c*.example.com"}}, "chat.example.com", false},
		{"wildcard partial suffix", certNames{dns: []string{"*t.example.com"}}, "chat.example.com", false},
		{"wildcard not left-most", certNames{dns: []string{"chat.*.com"}}, "chat.example.com", false},
		{"wildcard over a TLD", certNames{dns: []string{"*.com"}}, "example.com", false},
		{"wildcard alone", certNames{dns: []string{"*"}}, "example", false},
		{"wildcard and IDN A-label", certNames{dns: []string{"*.example.com"}}, "xn--bcher-kva.example.com", false},
		{"IDN: U-label reference, A-label DNS-ID", certNames{dns: []string{"xn--bcher-kva.example"}}, "bücher.example", true},
		{"IDN: A-label reference", certNames{dns: []string{"xn--bcher-kva.example"}}, "xn--bcher-kva.example", true},
		{"IDN: U-label in certificate", certNames{dns: []string{"bücher.example"}}, "xn--bcher-kva.example", true},
		{"IDN: different", certNames{dns: []string{"xn--bcher-kva.example"}}, "bucher.example", false},
		{"SRV-ID", certNames{srv: []string{"_xmpp-server.example.com"}}, "example.com", true},
		{"SRV-ID direct TLS", certNames{srv: []string{"_xmpps-server.example.com"}}, "example.com", true},
		{"SRV-ID client service", certNames{srv: []string{"_xmpp-client.example.com"}}, "example.com", false},
		{"SRV-ID no wildcard", certNames{srv: []string{"_xmpp-server.*.com"}}, "example.com", false},
		{"SRV-ID other domain", certNames{srv: []string{"_xmpp-server.example.org"}}, "example.com", false},
		{"SRV-ID IDN", certNames{srv: []string{"_xmpp-server.xn--bcher-kva.example"}}, "bücher.example", true},
		{"xmppAddr", certNames{xmpp: []string{"example.com"}}, "example.com", true},
		{"xmppAddr U-label", certNames{xmpp: []string{"bücher.example"}}, "xn--bcher-kva.example", true},
		{"xmppAddr of a user", certNames{xmpp: []string{"admin@example.com"}}, "example.com", false},
		{"xmppAddr wildcard", certNames{xmpp: []string{"*.example.com"}}, "chat.example.com", false},
		{"CN without SAN", certNames{cn: "example.com"}, "example.com", true},
		{"CN ignored with a SAN", certNames{cn: "example.com", dns: []string{"other.example"}, haveSAN: true}, "example.com", false},
		{"CN ignored with an SRV-ID", certNames{cn: "example.com", srv: []string{"_xmpp-server.other.example"}, haveSAN: true}, "example.com", false},
		{"empty reference", certNames{dns: []string{"example.com"}}, "", false},
		{"wildcard reference", certNames{dns: []string{"*.example.com"}}, "*.example.com", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.names.match(tc.domain); got != tc.want {
				t.Errorf("%+v match %q = %v, want %v", tc.names, tc.domain, got, tc.want)
			}
		})
	}
}

// TestCertOtherNames: the SRV-ID and xmppAddr otherNames are read from a real certificate.
func TestCertOtherNames(t *testing.T) {
	ca := newCA(t)
	cert := issueWith(t, ca, func(c *x509.Certificate) {
		c.Subject.CommonName = "ignored.example"
		c.ExtraExtensions = append(c.ExtraExtensions, sanExtension(t,
			[]string{"www.example.net"}, []string{"_xmpp-server.srv.example"}, []string{"addr.example"}))
	})
	leaf := cert.Leaf
	if err := verifyChain([]*x509.Certificate{leaf}, ca.pool, time.Now()); err != nil {
		t.Fatal(err)
	}
	for domain, want := range map[string]bool{
		"www.example.net": true, "srv.example": true, "addr.example": true, "ignored.example": false, "example.net": false,
	} {
		if got := certMatches(leaf, domain); got != want {
			t.Errorf("certMatches(%q) = %v, want %v", domain, got, want)
		}
	}
	if err := verifyChain([]*x509.Certificate{leaf}, x509.NewCertPool(), time.Now()); err == nil {
		t.Error("verified without a trusted root")
	}
	if err := verifyChain(nil, ca.pool, time.Now()); err == nil {
		t.Error("verified an empty chain")
	}
	if err := verifyChain([]*x509.Certificate{leaf}, ca.pool, time.Now().Add(2*time.Hour)); err == nil {
		t.Error("verified an expired certificate")
	}
}

func TestDialbackKey(t *testing.T) {
	secret := []byte("s3cr3tf0rd14lb4ck")
	// XEP-0185 §3's example: sha256(secret) as HMAC key over "receiving originating streamid".
	k := dialbackKey(secret, "example.net", "example.org", "D60000229F")
	if len(k) != 64 {
		t.Fatalf("key %q", k)
	}
	if !checkKey(secret, "example.net", "example.org", "D60000229F", k) {
		t.Error("own key refused")
	}
	for _, bad := range [][4]string{
		{"example.org", "example.net", "D60000229F", k},
		{"example.net", "example.org", "D60000229G", k},
		{"example.net", "example.org", "D60000229F", k[:63]},
		{"example.net", "example.org", "D60000229F", ""},
	} {
		if checkKey(secret, bad[0], bad[1], bad[2], bad[3]) {
			t.Errorf("accepted %v", bad)
		}
	}
	if checkKey([]byte("other"), "example.net", "example.org", "D60000229F", k) {
		t.Error("accepted with another secret")
	}
}

func TestParseDialback(t *testing.T) {
	for _, tc := range []struct {
		xml string
		ok  bool
	}{
		{`<db:result xmlns:db='jabber:server:dialback' from='a.example' to='b.example'>key</db:result>`, true},
		{`<db:result xmlns:db='jabber:server:dialback' from='a.example' to='b.example' type='valid'/>`, true},
		{`<db:result xmlns:db='jabber:server:dialback' from='a.example' to='b.example'/>`, false}, // no key
		{`<db:result xmlns:db='jabber:server:dialback' from='u@a.example' to='b.example'>k</db:result>`, false},
		{`<db:result xmlns:db='jabber:server:dialback' from='a.example/r' to='b.example'>k</db:result>`, false},
		{`<db:result xmlns:db='jabber:server:dialback' to='b.example'>k</db:result>`, false},
		{`<db:result xmlns:db='jabber:server:dialback' from='a.example' to='b.example' type='maybe'>k</db:result>`, false},
		{`<db:verify xmlns:db='jabber:server:dialback' from='a.example' to='b.example'>k</db:verify>`, false}, // no id
		{`<db:verify xmlns:db='jabber:server:dialback' from='a.example' to='b.example' id='i'>k</db:verify>`, true},
		{`<result xmlns='urn:example' from='a.example' to='b.example'>k</result>`, false},
	} {
		el, err := stanza.ParseElement([]byte(tc.xml))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseDialback(el); (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.xml, err, tc.ok)
		}
	}
	el, _ := stanza.ParseElement([]byte(`<db:result xmlns:db='jabber:server:dialback' from='a.example' to='b.example' type='error'><error xmlns='jabber:server' type='cancel'><remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>`))
	if d, err := parseDialback(el); err != nil || d.errCond != "remote-server-timeout" {
		t.Errorf("error result: %+v %v", d, err)
	}
}

// FuzzDialback: whatever a peer sends as a dialback element, parsing never
// panics, and what we write back parses to the same thing.
func FuzzDialback(f *testing.F) {
	f.Add([]byte(`<db:result xmlns:db='jabber:server:dialback' from='a.example' to='b.example'>key</db:result>`))
	f.Add([]byte(`<db:verify xmlns:db='jabber:server:dialback' from='a.example' to='b.example' id='x' type='invalid'/>`))
	f.Add([]byte(`<db:result xmlns:db='jabber:server:dialback' from='a.example' to='b.example' type='error'><error xmlns='jabber:server' type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>`))
	f.Add([]byte(`<db:result xmlns:db='jabber:server:dialback' from='bücher.example' to='b.example'> &amp;&lt; </db:result>`))
	secret := []byte("fuzz")
	f.Fuzz(func(t *testing.T, b []byte) {
		el, err := stanza.ParseElement(b)
		if err != nil {
			return
		}
		d, err := parseDialback(el)
		if err != nil {
			return
		}
		checkKey(secret, d.from, d.to, d.id, d.key)
		// Our rendering, read back inside a stream that declares the prefix.
		out := d.element().AppendXML(nil, stanza.NSServer)
		wrapped := append([]byte("<x xmlns='jabber:server' xmlns:db='jabber:server:dialback'>"), out...)
		wrapped = append(wrapped, "</x>"...)
		x, err := stanza.ParseElement(wrapped)
		if err != nil {
			t.Fatalf("our own %s does not parse: %v", out, err)
		}
		d2, err := parseDialback(x.FirstChild())
		if err != nil {
			t.Fatalf("our own %s: %v", out, err)
		}
		if d2 != d {
			t.Fatalf("round trip: %+v became %+v", d, d2)
		}
	})
}
