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

// Stanza error conditions (RFC 6120 §8.3.3) with the type each usually carries.
var errorTypes = map[string]string{
	"bad-request":             Modify,
	"conflict":                Cancel,
	"feature-not-implemented": Cancel,
	"forbidden":               Auth,
	"gone":                    Cancel,
	"internal-server-error":   Cancel,
	"item-not-found":          Cancel,
	"jid-malformed":           Modify,
	"not-acceptable":          Modify,
	"not-allowed":             Cancel,
	"not-authorized":          Auth,
	"policy-violation":        Modify,
	"recipient-unavailable":   Wait,
	"redirect":                Modify,
	"registration-required":   Auth,
	"remote-server-not-found": Cancel,
	"remote-server-timeout":   Wait,
	"resource-constraint":     Wait,
	"service-unavailable":     Cancel,
	"subscription-required":   Auth,
	"undefined-condition":     Cancel,
	"unexpected-request":      Wait,
}

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

// NewError returns the error for condition with its usual type.
func NewError(condition string) *Error {
	t, ok := errorTypes[condition]
	if !ok {
		t = Cancel
	}
	return &Error{Type: t, Condition: condition}
}

// Errorf is NewError with a human-readable text.
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

// Element renders the <error/> child of an error stanza.
func (e *Error) Element() *Element {
	el := New("", "error").Set("type", e.Type)
	el.Append(New(NSStanzas, e.Condition))
	if e.Text != "" {
		el.Append(New(NSStanzas, "text").AppendText(e.Text))
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
	return append(b, "</stream:error>"...)
}

// Stream error conditions used by the decoder.
func errNotWellFormed(text string) *StreamError {
	return &StreamError{Condition: "not-well-formed", Text: text}
}
