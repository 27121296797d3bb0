package stanza

import (
	"strconv"
	"unicode/utf8"
)

// AppendXML appends the serialized element to b. parentNS is the default
// namespace already in scope (the stream's content namespace for a stanza), so
// the xmlns attribute is written only where it changes.
func (e *Element) AppendXML(b []byte, parentNS string) []byte {
	b = append(b, '<')
	b = append(b, e.Local...)
	if e.Space != parentNS {
		b = append(b, " xmlns='"...)
		b = appendEscaped(b, e.Space, true)
		b = append(b, '\'')
	}
	var extra int // prefixes invented for namespaced attributes other than xml:
	for _, a := range e.Attr {
		b = append(b, ' ')
		switch a.Space {
		case "":
		case NSXML:
			b = append(b, "xml:"...)
		default:
			p := "a" + strconv.Itoa(extra)
			extra++
			b = append(b, "xmlns:"...)
			b = append(b, p...)
			b = append(b, "='"...)
			b = appendEscaped(b, a.Space, true)
			b = append(b, "' "...)
			b = append(b, p...)
			b = append(b, ':')
		}
		b = append(b, a.Local...)
		b = append(b, "='"...)
		b = appendEscaped(b, a.Value, true)
		b = append(b, '\'')
	}
	if len(e.Nodes) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	for _, n := range e.Nodes {
		if n.Elem != nil {
			b = n.Elem.AppendXML(b, e.Space)
		} else {
			b = appendEscaped(b, n.Text, false)
		}
	}
	b = append(b, "</"...)
	b = append(b, e.Local...)
	return append(b, '>')
}

// appendEscaped escapes the five XML special characters (quotes only in
// attribute values) and drops anything XML 1.0 cannot carry, so a value that
// reached us through a lenient path can never break the outgoing stream.
func appendEscaped(b []byte, s string, attr bool) []byte {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		var esc string
		width := 1
		switch {
		case c == '<':
			esc = "&lt;"
		case c == '>':
			esc = "&gt;"
		case c == '&':
			esc = "&amp;"
		case c == '\'' && attr:
			esc = "&apos;"
		case c == '"' && attr:
			esc = "&quot;"
		case (c == '\n' || c == '\r' || c == '\t') && attr:
			esc = "&#" + strconv.Itoa(int(c)) + ";"
		case c < 0x20 && c != '\n' && c != '\r' && c != '\t':
			esc = ""
		case c >= utf8.RuneSelf:
			r, w := utf8.DecodeRuneInString(s[i:])
			width = w
			if r != utf8.RuneError || w != 1 {
				if isXMLChar(r) {
					i += w
					continue
				}
			}
			esc = "\uFFFD"
		default:
			i++
			continue
		}
		b = append(b, s[last:i]...)
		b = append(b, esc...)
		i += width
		last = i
	}
	return append(b, s[last:]...)
}

// isXMLChar reports whether r is allowed by the XML 1.0 Char production.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// StreamHeader is the opening <stream:stream> tag of either direction.
type StreamHeader struct {
	To, From, ID, Version, Lang string
	// NS is the content namespace declared as default (jabber:client or jabber:server).
	NS string
	// Extra holds further namespace declarations to write, prefix → URI
	// (for example "db" → "jabber:server:dialback").
	Extra [][2]string
}

// AppendStreamHeader appends an XML declaration and the opening stream tag.
func AppendStreamHeader(b []byte, h StreamHeader) []byte {
	b = append(b, "<?xml version='1.0'?><stream:stream xmlns='"...)
	b = appendEscaped(b, h.NS, true)
	b = append(b, "' xmlns:stream='"+NSStream+"'"...)
	for _, x := range h.Extra {
		b = append(b, " xmlns:"...)
		b = append(b, x[0]...)
		b = append(b, "='"...)
		b = appendEscaped(b, x[1], true)
		b = append(b, '\'')
	}
	for _, a := range [...][2]string{{"id", h.ID}, {"from", h.From}, {"to", h.To}, {"version", h.Version}, {"xml:lang", h.Lang}} {
		if a[1] == "" {
			continue
		}
		b = append(b, ' ')
		b = append(b, a[0]...)
		b = append(b, "='"...)
		b = appendEscaped(b, a[1], true)
		b = append(b, '\'')
	}
	return append(b, '>')
}

// StreamEnd closes a stream.
const StreamEnd = "</stream:stream>"
