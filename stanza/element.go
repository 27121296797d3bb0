// Package stanza is the XML layer of xmppd: a compact element tree, the bounded
// streaming decoder, the serializer, and the RFC 6120 stanza and stream errors.
// It imports nothing else of ours, so every other package may use it.
package stanza

// Namespaces used across the server.
const (
	NSClient   = "jabber:client"
	NSServer   = "jabber:server"
	NSStream   = "http://etherx.jabber.org/streams"
	NSXML      = "http://www.w3.org/XML/1998/namespace"
	NSStanzas  = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSStreams  = "urn:ietf:params:xml:ns:xmpp-streams"
	NSTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSSASL2    = "urn:xmpp:sasl:2" // XEP-0388
	NSBind2    = "urn:xmpp:bind:0" // XEP-0386
	NSFast     = "urn:xmpp:fast:0" // XEP-0484
	NSBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	NSSession  = "urn:ietf:params:xml:ns:xmpp-session"
	NSDelay    = "urn:xmpp:delay"
	NSCBinding = "urn:xmpp:sasl-cb:0"
)

// Attr is one attribute. Space is the resolved namespace of a prefixed
// attribute (NSXML for xml:lang) and empty for the common unprefixed case.
type Attr struct {
	Space, Local, Value string
}

// Node is one child of an element: either an element or a run of text.
type Node struct {
	Elem *Element
	Text string
}

// Element is one XML element with resolved namespaces. Mixed content is kept in
// order so that, for example, XHTML-IM bodies survive routing unchanged.
type Element struct {
	Space, Local string
	Attr         []Attr
	Nodes        []Node
}

// New returns an element with the given namespace and local name.
func New(space, local string) *Element {
	return &Element{Space: space, Local: local}
}

// Is reports whether the element has this namespace and local name.
func (e *Element) Is(space, local string) bool {
	return e != nil && e.Local == local && e.Space == space
}

// Get returns the value of the unprefixed attribute name, or "". It is
// nil-safe, like Child, so el.Child(...).Get(...) needs no check between.
func (e *Element) Get(name string) string {
	if e == nil {
		return ""
	}
	for i := range e.Attr {
		if e.Attr[i].Local == name && e.Attr[i].Space == "" {
			return e.Attr[i].Value
		}
	}
	return ""
}

// Lookup is Get that also reports whether the attribute is present.
func (e *Element) Lookup(name string) (string, bool) {
	for i := range e.Attr {
		if e.Attr[i].Local == name && e.Attr[i].Space == "" {
			return e.Attr[i].Value, true
		}
	}
	return "", false
}

// Lang returns xml:lang.
func (e *Element) Lang() string {
	for i := range e.Attr {
		if e.Attr[i].Local == "lang" && e.Attr[i].Space == NSXML {
			return e.Attr[i].Value
		}
	}
	return ""
}

// Set sets (or adds) the unprefixed attribute name and returns e. An empty
// value removes the attribute, which is what stanza addressing wants.
func (e *Element) Set(name, value string) *Element {
	for i := range e.Attr {
		if e.Attr[i].Local == name && e.Attr[i].Space == "" {
			if value == "" {
				e.Attr = append(e.Attr[:i], e.Attr[i+1:]...)
			} else {
				e.Attr[i].Value = value
			}
			return e
		}
	}
	if value != "" {
		e.Attr = append(e.Attr, Attr{Local: name, Value: value})
	}
	return e
}

// Append adds child elements and returns e.
func (e *Element) Append(children ...*Element) *Element {
	for _, c := range children {
		if c != nil {
			e.Nodes = append(e.Nodes, Node{Elem: c})
		}
	}
	return e
}

// AppendText adds a text node and returns e.
func (e *Element) AppendText(s string) *Element {
	if s != "" {
		e.Nodes = append(e.Nodes, Node{Text: s})
	}
	return e
}

// Child returns the first child element with this namespace and local name.
// It is nil-safe, so lookups can be chained.
func (e *Element) Child(space, local string) *Element {
	if e == nil {
		return nil
	}
	for _, n := range e.Nodes {
		if n.Elem != nil && n.Elem.Local == local && n.Elem.Space == space {
			return n.Elem
		}
	}
	return nil
}

// FirstChild returns the first child element, or nil.
func (e *Element) FirstChild() *Element {
	for _, n := range e.Nodes {
		if n.Elem != nil {
			return n.Elem
		}
	}
	return nil
}

// Children returns the child elements in order.
func (e *Element) Children() []*Element {
	var out []*Element
	for _, n := range e.Nodes {
		if n.Elem != nil {
			out = append(out, n.Elem)
		}
	}
	return out
}

// Text returns the concatenated direct text content.
func (e *Element) Text() string {
	if e == nil {
		return ""
	}
	switch len(e.Nodes) {
	case 0:
		return ""
	case 1:
		return e.Nodes[0].Text
	}
	var s string
	for _, n := range e.Nodes {
		s += n.Text
	}
	return s
}

// Copy returns a deep copy, so a stanza can be changed per recipient.
func (e *Element) Copy() *Element {
	c := &Element{Space: e.Space, Local: e.Local}
	if len(e.Attr) > 0 {
		c.Attr = append(make([]Attr, 0, len(e.Attr)+1), e.Attr...)
	}
	if len(e.Nodes) > 0 {
		c.Nodes = make([]Node, len(e.Nodes))
		for i, n := range e.Nodes {
			if n.Elem != nil {
				c.Nodes[i].Elem = n.Elem.Copy()
			} else {
				c.Nodes[i].Text = n.Text
			}
		}
	}
	return c
}

// ShallowCopy copies the element and its attribute slice but shares children:
// enough to re-address a stanza for another recipient without touching payloads.
func (e *Element) ShallowCopy() *Element {
	c := *e
	c.Attr = append(make([]Attr, 0, len(e.Attr)+1), e.Attr...)
	return &c
}

// String serializes the element with its own namespace declared.
func (e *Element) String() string {
	return string(e.AppendXML(nil, ""))
}
