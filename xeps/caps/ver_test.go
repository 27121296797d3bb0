package caps

import (
	"errors"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/stanza"
)

func parse(t *testing.T, s string) *stanza.Element {
	t.Helper()
	el, err := stanza.ParseElement([]byte(s))
	if err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return el
}

// XEP-0115 §5.2, the simple example (Exodus).
const exodus = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>
  <identity category='client' name='Exodus 0.9.1' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
</query>`

const exodusVer = "QgayPKawpkPSDYmwT/WM94uAlu0="

// XEP-0115 §5.3, the complex example (Psi, two identities with xml:lang and
// an extended form); its features in another order than sorted.
const psi = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'>
      <value>urn:xmpp:dataforms:softwareinfo</value>
    </field>
    <field var='software_version'>
      <value>0.11</value>
    </field>
    <field var='ip_version'>
      <value>ipv6</value>
      <value>ipv4</value>
    </field>
    <field var='os'>
      <value>Mac</value>
    </field>
    <field var='os_version'>
      <value>10.5.1</value>
    </field>
    <field var='software'>
      <value>Psi</value>
    </field>
  </x>
</query>`

const psiVer = "q07IKJEyjvHSyhy//CH0CxmKi8w="

func TestVerExamples(t *testing.T) {
	for _, tc := range []struct{ name, xml, want string }{
		{"5.2 simple", exodus, exodusVer},
		{"5.3 complex", psi, psiVer},
	} {
		got, err := Ver("sha-1", parse(t, tc.xml))
		if err != nil || got != tc.want {
			t.Errorf("%s: Ver = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	s, err := verString(parse(t, psi))
	want := "client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<" +
		"http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<" +
		"ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<"
	if err != nil || s != want {
		t.Errorf("§5.3 S =\n%q\nwant\n%q", s, want)
	}
	// Other hashes of the registry; md5 is not one we verify.
	if v, err := Ver("sha-256", parse(t, exodus)); err != nil || len(v) != 44 {
		t.Errorf("sha-256: %q, %v", v, err)
	}
	if _, err := Ver("md5", parse(t, exodus)); err == nil {
		t.Error("md5 verified")
	}
}

func TestVerIllFormed(t *testing.T) {
	feature := "<feature var='http://jabber.org/protocol/muc'/>"
	form := func(typeAttr string, formTypes ...string) string {
		s := "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'" + typeAttr + ">"
		for _, f := range formTypes {
			s += "<value>" + f + "</value>"
		}
		return s + "</field><field var='a'><value>1</value></field></x>"
	}
	// §5.4 step 3: the entire answer is ill-formed.
	for name, body := range map[string]string{
		"duplicate feature":   feature + feature,
		"duplicate identity":  "<identity category='client' type='pc' name='x'/><identity category='client' type='pc' name='x'/>",
		"two forms same type": form(" type='hidden'", "urn:a") + form(" type='hidden'", "urn:a"),
		"FORM_TYPE values":    form(" type='hidden'", "urn:a", "urn:b"),
	} {
		q := parse(t, "<query xmlns='http://jabber.org/protocol/disco#info'>"+body+"</query>")
		if _, err := Ver("sha-1", q); !errors.Is(err, ErrIllFormed) {
			t.Errorf("%s: err = %v, want ErrIllFormed", name, err)
		}
	}
	// Same identity in two languages, or a FORM_TYPE value repeated: fine.
	ok := parse(t, "<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='pc' xml:lang='en'/>"+
		"<identity category='client' type='pc' xml:lang='de'/>"+form(" type='hidden'", "urn:a", "urn:a")+"</query>")
	if _, err := Ver("sha-1", ok); err != nil {
		t.Errorf("well-formed answer: %v", err)
	}
	// §5.4 3.6: a form whose FORM_TYPE is not hidden (or that has none) is
	// left out of the hash, and the rest still counts.
	base := strings.TrimSuffix(exodus, "</query>")
	for _, extra := range []string{form("", "urn:a"), form(" type='text-single'", "urn:a"), "<x xmlns='jabber:x:data' type='result'><field var='a'><value>1</value></field></x>"} {
		if v, err := Ver("sha-1", parse(t, base+extra+"</query>")); err != nil || v != exodusVer {
			t.Errorf("with %s: Ver = %q, %v; want %q", extra, v, err, exodusVer)
		}
	}
	if v, _ := Ver("sha-1", parse(t, base+form(" type='hidden'", "urn:a")+"</query>")); v == exodusVer {
		t.Error("a hidden FORM_TYPE form did not change the ver")
	}
}
