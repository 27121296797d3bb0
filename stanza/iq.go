package stanza

import "errors"

// IQ is a parsed view of an <iq/> request with its addresses resolved.
type IQ struct {
	*Element
	ID, Type string
	From, To JID
	// Payload is the single child of a get or set.
	Payload *Element
}

// ParseIQ checks an iq's shape (RFC 6120 §8.2.3): an id, a known type, and
// exactly one payload child for get and set. The error is a bad-request stanza error.
func ParseIQ(el *Element) (*IQ, error) {
	iq := &IQ{Element: el, ID: el.Get("id"), Type: el.Get("type")}
	if iq.ID == "" {
		return nil, Errorf("bad-request", "an iq needs an id")
	}
	switch iq.Type {
	case "get", "set":
		n := 0
		for _, c := range el.Nodes {
			if c.Elem != nil {
				iq.Payload = c.Elem
				n++
			}
		}
		if n != 1 {
			return nil, Errorf("bad-request", "an iq of type %s needs exactly one child", iq.Type)
		}
	case "result", "error":
	default:
		return nil, Errorf("bad-request", "unknown iq type %q", iq.Type)
	}
	var err error
	if s := el.Get("from"); s != "" {
		if iq.From, err = ParseJID(s); err != nil {
			return nil, NewError("jid-malformed")
		}
	}
	if s := el.Get("to"); s != "" {
		if iq.To, err = ParseJID(s); err != nil {
			return nil, NewError("jid-malformed")
		}
	}
	return iq, nil
}

// Result builds the result answer carrying payload (which may be nil).
func (iq *IQ) Result(payload *Element) *Element {
	r := &Element{Space: iq.Space, Local: "iq"}
	r.Set("id", iq.ID)
	r.Set("type", "result")
	r.Set("from", iq.Get("to"))
	r.Set("to", iq.Get("from"))
	return r.Append(payload)
}

// AsError returns err as a stanza error: a *Error is kept, anything else
// becomes internal-server-error, whose details stay in our log.
func AsError(err error) *Error {
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	return NewError("internal-server-error")
}
