package push

import (
	"strings"

	"github.com/xmppd/xmppd/stanza"
)

// Limits on what a client may register: an app server's node is an opaque
// token (Conversations: 40-odd characters, Monal: a UUID), and its
// publish-options form carries a secret and a few settings.
const (
	MaxNode       = 1024 // bytes of a node name
	MaxFields     = 16   // fields of the publish-options form
	MaxValueBytes = 2048 // bytes of all the form's values together
	MaxVarBytes   = 256  // bytes of a field's var
)

// Registration is one app server a user enabled push notifications with
// (XEP-0357 §5): its JID, the node it assigned to the device, and the
// publish-options fields (the secret, usually) to send with every
// notification.
type Registration struct {
	JID  stanza.JID
	Node string
	// Resource is the resource of the session that registered (stored,
	// never taken from the client): when a session hibernates, only its own
	// registrations are woken.
	Resource string
	// Options are the publish-options form's fields other than FORM_TYPE,
	// in the order sent: var and values.
	Options []Field
}

// Field is one data form field (XEP-0004).
type Field struct {
	Var    string
	Values []string
}

// ParseEnable reads an <enable xmlns='urn:xmpp:push:0'/> element (§5). It
// is also how stored registrations are read back (Registration.Element
// writes them), so whatever is stored went through it. Errors are
// bad-request or not-acceptable stanza errors with a text saying why.
func ParseEnable(el *stanza.Element) (Registration, error) {
	var r Registration
	if !el.Is(NS, "enable") {
		return r, stanza.Errorf("bad-request", "expected <enable xmlns='%s'/>", NS)
	}
	jid, err := stanza.ParseJID(el.Get("jid"))
	if err != nil || el.Get("jid") == "" {
		return r, stanza.Errorf("jid-malformed", "the app server's 'jid' is missing or not a JID")
	}
	r.JID = jid
	r.Node = el.Get("node")
	r.Resource = el.Get("resource") // set by the module on enable; stored with it
	if r.Node == "" {
		return r, stanza.Errorf("bad-request", "the 'node' attribute is required")
	}
	if len(r.Node) > MaxNode {
		return r, stanza.Errorf("not-acceptable", "the node is longer than %d bytes", MaxNode)
	}
	forms := 0
	for _, c := range el.Children() {
		if !c.Is(NSData, "x") {
			continue // unknown children are ignored, as XMPP extensions are
		}
		forms++
		if forms > 1 {
			return r, stanza.Errorf("bad-request", "more than one publish-options form")
		}
		opts, err := parseOptions(c)
		if err != nil {
			return r, err
		}
		r.Options = opts
	}
	return r, nil
}

// parseOptions reads the publish-options form: type submit, FORM_TYPE
// http://jabber.org/protocol/pubsub#publish-options when present, bounded.
func parseOptions(x *stanza.Element) ([]Field, error) {
	if t := x.Get("type"); t != "submit" {
		return nil, stanza.Errorf("bad-request", "the publish-options form must be of type 'submit', not %q", t)
	}
	var out []Field
	size := 0
	for _, f := range x.Children() {
		if !f.Is(NSData, "field") {
			continue
		}
		v := f.Get("var")
		if v == "" {
			return nil, stanza.Errorf("bad-request", "a form field without 'var'")
		}
		var values []string
		for _, val := range f.Children() {
			if val.Is(NSData, "value") {
				values = append(values, val.Text())
				size += len(val.Text())
			}
		}
		if v == "FORM_TYPE" {
			if len(values) != 1 || strings.TrimSpace(values[0]) != NSPublishOptions {
				return nil, stanza.Errorf("bad-request", "FORM_TYPE must be %s", NSPublishOptions)
			}
			continue
		}
		if len(v) > MaxVarBytes {
			return nil, stanza.Errorf("not-acceptable", "a field's var is longer than %d bytes", MaxVarBytes)
		}
		size += len(v)
		out = append(out, Field{Var: v, Values: values})
		if len(out) > MaxFields {
			return nil, stanza.Errorf("not-acceptable", "more than %d publish-options fields", MaxFields)
		}
		if size > MaxValueBytes {
			return nil, stanza.Errorf("not-acceptable", "the publish-options form is larger than %d bytes", MaxValueBytes)
		}
	}
	return out, nil
}

// Element writes r as the <enable/> a client would send for it, with the
// registering resource as an attribute (how it is stored).
func (r Registration) Element() *stanza.Element {
	el := stanza.New(NS, "enable").Set("jid", r.JID.String()).Set("node", r.Node).Set("resource", r.Resource)
	if r.Options != nil {
		el.Append(r.optionsForm())
	}
	return el
}

// optionsForm is the publish-options form, FORM_TYPE first.
func (r Registration) optionsForm() *stanza.Element {
	x := stanza.New(NSData, "x").Set("type", "submit")
	x.Append(field("FORM_TYPE", NSPublishOptions))
	for _, f := range r.Options {
		fe := stanza.New(NSData, "field").Set("var", f.Var)
		for _, v := range f.Values {
			fe.Append(stanza.New(NSData, "value").AppendText(v))
		}
		x.Append(fe)
	}
	return x
}

func field(v string, values ...string) *stanza.Element {
	f := stanza.New(NSData, "field").Set("var", v)
	for _, s := range values {
		f.Append(stanza.New(NSData, "value").AppendText(s))
	}
	return f
}
