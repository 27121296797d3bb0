package stanza

import "fmt"

// Stanza error types (RFC 6120 §8.3.2).
const (
	Cancel   = "cancel"
	Continue = "continue"
	Modify   = "modify"
	Auth     = "auth"
	Wait     = "wait"
)

// Stanza error conditions (RFC 6120 §8.3.3): the type each usually carries
// and the text NewError gives it. The texts are for people, not programs:
// clients such as Gajim show the <text/> and nothing else, so an error
// without one reaches the user as a blank error message. They say what went
// wrong in the words of RFC 6120's definitions, short enough for a dialog.
var conditions = map[string]struct{ typ, text string }{
	"bad-request":             {Modify, "The request is malformed or incomplete."},
	"conflict":                {Cancel, "The request conflicts with something that already exists."},
	"feature-not-implemented": {Cancel, "This feature is not supported."},
	"forbidden":               {Auth, "You are not allowed to do this."},
	"gone":                    {Cancel, "The recipient is no longer at this address."},
	"internal-server-error":   {Cancel, "The server could not handle the request because of an internal error."},
	"item-not-found":          {Cancel, "The requested item does not exist."},
	"jid-malformed":           {Modify, "The address is not a valid XMPP address."},
	"not-acceptable":          {Modify, "The request was refused because it does not meet the recipient's criteria."},
	"not-allowed":             {Cancel, "This action is not allowed."},
	"not-authorized":          {Auth, "You need to authenticate before doing this."},
	"policy-violation":        {Modify, "The request goes against a policy of the server."},
	"recipient-unavailable":   {Wait, "The recipient is temporarily unavailable."},
	"redirect":                {Modify, "The recipient is reachable at another address."},
	"registration-required":   {Auth, "You need to register before doing this."},
	"remote-server-not-found": {Cancel, "The recipient's server could not be found or reached."},
	"remote-server-timeout":   {Wait, "The recipient's server did not answer in time."},
	"resource-constraint":     {Wait, "The server is too busy to handle the request now; try again later."},
	"service-unavailable":     {Cancel, "The recipient or server does not provide this service."},
	"subscription-required":   {Auth, "You need a presence subscription to do this."},
	"undefined-condition":     {Cancel, "An error occurred."},
	"unexpected-request":      {Wait, "The request was not expected at this point."},
}

// DefaultText is the English text NewError gives condition, or "" for a
// condition RFC 6120 does not define.
func DefaultText(condition string) string { return conditions[condition].text }

// Error is a stanza error: recoverable, answered to the sender of one stanza.
// Handlers return it; the router turns it into the error reply.
type Error struct {
	Type      string
	Condition string
	Text      string
	// App is an optional application-specific condition element
	// (RFC 6120 §8.3.2), e.g. XEP-0191's <blocked/>.
	App *Element
}

// NewError returns the error for condition with its usual type and its
// default English text (DefaultText).
func NewError(condition string) *Error {
	c, ok := conditions[condition]
	if !ok {
		c.typ = Cancel
	}
	return &Error{Type: c.typ, Condition: condition, Text: c.text}
}

// Errorf is NewError with a specific human-readable text, in English.
func Errorf(condition, format string, args ...any) *Error {
	e := NewError(condition)
	e.Text = fmt.Sprintf(format, args...)
	return e
}

func (e *Error) Error() string {
	if e.Text != "" {
		return e.Condition + ": " + e.Text
	}
	return e.Condition
}

// Element renders the <error/> child of an error stanza: condition, text
// (NewError's default unless Errorf or the caller set one), then App, in
// the order of RFC 6120 §8.3.2.
func (e *Error) Element() *Element {
	el := New("", "error").Set("type", e.Type)
	el.Append(New(NSStanzas, e.Condition))
	if e.Text != "" {
		// RFC 6120 §8.3.2: the text SHOULD carry xml:lang; ours are English.
		t := New(NSStanzas, "text").AppendText(e.Text)
		t.Attr = append(t.Attr, Attr{Space: NSXML, Local: "lang", Value: "en"})
		el.Append(t)
	}
	if e.App != nil {
		el.Append(e.App)
	}
	return el
}

// ErrorReply builds the error answer to orig: same kind and id, addresses
// swapped, type "error". It returns nil when orig is itself an error, because
// an error must never be answered with an error (RFC 6120 §8.3.1).
func ErrorReply(orig *Element, err *Error) *Element {
	if orig.Get("type") == "error" {
		return nil
	}
	r := &Element{Space: orig.Space, Local: orig.Local}
	r.Set("id", orig.Get("id"))
	r.Set("from", orig.Get("to"))
	r.Set("to", orig.Get("from"))
	r.Set("type", "error")
	el := err.Element()
	el.Space = orig.Space
	return r.Append(el)
}

// ParseError reads the condition of an error stanza, for tests and for modules
// that react to errors. It returns nil when there is no <error/> child.
func ParseError(st *Element) *Error {
	el := st.Child(st.Space, "error")
	if el == nil {
		return nil
	}
	e := &Error{Type: el.Get("type")}
	for _, c := range el.Children() {
		if c.Space != NSStanzas {
			continue
		}
		if c.Local == "text" {
			e.Text = c.Text()
		} else if e.Condition == "" {
			e.Condition = c.Local
		}
	}
	return e
}

// StreamError is an unrecoverable error of a whole stream (RFC 6120 §4.9).
// Only the connection layer sends one, then closes the stream.
type StreamError struct {
	Condition string
	Text      string
	// App is an application-specific condition (RFC 6120 §4.9.4), such
	// as XEP-0198's <handled-count-too-high/>; nil for none.
	App *Element
}

func (e *StreamError) Error() string {
	if e.Text != "" {
		return "stream error " + e.Condition + ": " + e.Text
	}
	return "stream error " + e.Condition
}

// AppendXML renders <stream:error/>; the stream prefix is in scope on every stream we write.
func (e *StreamError) AppendXML(b []byte) []byte {
	b = append(b, "<stream:error><"...)
	b = append(b, e.Condition...)
	b = append(b, " xmlns='"+NSStreams+"'/>"...)
	if e.Text != "" {
		b = append(b, "<text xmlns='"+NSStreams+"'>"...)
		b = appendEscaped(b, e.Text, false)
		b = append(b, "</text>"...)
	}
	if e.App != nil {
		b = e.App.AppendXML(b, NSStream)
	}
	return append(b, "</stream:error>"...)
}

// Stream error conditions used by the decoder.
func errNotWellFormed(text string) *StreamError {
	return &StreamError{Condition: "not-well-formed", Text: text}
}
