package stanza

import (
	"strings"
	"testing"
)

// Every defined condition has a type and a default English text: a client
// showing only the <text/> (Gajim) must never show a blank error.
func TestConditionsHaveText(t *testing.T) {
	if len(conditions) != 22 {
		t.Errorf("%d conditions, want the 22 of RFC 6120 §8.3.3", len(conditions))
	}
	for cond, c := range conditions {
		switch c.typ {
		case Cancel, Continue, Modify, Auth, Wait:
		default:
			t.Errorf("%s: type %q", cond, c.typ)
		}
		text := DefaultText(cond)
		if strings.TrimSpace(text) == "" {
			t.Errorf("%s: no default text", cond)
			continue
		}
		if e := NewError(cond); e.Text != text || e.Type != c.typ || e.Condition != cond {
			t.Errorf("NewError(%s) = %+v, want type %s and text %q", cond, e, c.typ, text)
		}
	}
	if DefaultText("no-such-condition") != "" {
		t.Error("a text for an undefined condition")
	}
}

func TestErrorReplyText(t *testing.T) {
	iq := New(NSClient, "iq").Set("type", "get").Set("id", "q1").Set("from", "alice@example.test/gajim").Set("to", "127.0.0.1")
	for _, tc := range []struct {
		name string
		err  *Error
		want string // the whole reply, as written on a jabber:client stream
	}{
		{"default text", NewError("service-unavailable"),
			`<iq id='q1' from='127.0.0.1' to='alice@example.test/gajim' type='error'><error type='cancel'>` +
				`<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
				`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>The recipient or server does not provide this service.</text>` +
				`</error></iq>`},
		{"specific text", Errorf("bad-request", "a roster set holds exactly one item"),
			`<iq id='q1' from='127.0.0.1' to='alice@example.test/gajim' type='error'><error type='modify'>` +
				`<bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
				`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>a roster set holds exactly one item</text>` +
				`</error></iq>`},
		{"application condition", withApp(NewError("not-acceptable"), New("urn:xmpp:blocking:errors", "blocked")),
			`<iq id='q1' from='127.0.0.1' to='alice@example.test/gajim' type='error'><error type='modify'>` +
				`<not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
				`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>` + DefaultText("not-acceptable") + `</text>` +
				`<blocked xmlns='urn:xmpp:blocking:errors'/>` +
				`</error></iq>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply := ErrorReply(iq, tc.err)
			if got := string(reply.AppendXML(nil, NSClient)); got != tc.want {
				t.Fatalf("reply\n%s\nwant\n%s", got, tc.want)
			}
			// And it reads back.
			if e := ParseError(reply); e.Condition != tc.err.Condition || e.Text == "" {
				t.Fatalf("ParseError = %+v", e)
			}
		})
	}
}

func withApp(e *Error, app *Element) *Error {
	e.App = app
	return e
}
