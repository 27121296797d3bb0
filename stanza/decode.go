package stanza

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Limits bound what one peer can make the decoder hold. Every limit is checked
// while scanning, before the bytes are kept, so an oversized text node or
// attribute is refused after at most MaxStanza bytes, never buffered whole.
type Limits struct {
	MaxStanza int // bytes of one top-level element
	MaxDepth  int // element nesting inside one top-level element
	MaxAttrs  int // attributes (namespace declarations included) per element
	MaxHeader int // bytes of the XML declaration plus the stream header
}

// DefaultLimits are the c2s limits after authentication (Prosody's 256 KiB stanza limit).
var DefaultLimits = Limits{MaxStanza: 256 << 10, MaxDepth: 48, MaxAttrs: 64, MaxHeader: 4096}

// ErrStreamClosed is returned by Next when the peer closed its stream with </stream:stream>.
var ErrStreamClosed = errors.New("stream closed by peer")

// IdleReader is a source that can decline to wait. Between top-level
// elements, with nothing buffered, Next reads through ReadIdle instead of
// Read; an error from it comes back from Next with nothing consumed, and
// Next may be called again. A server uses this to give up an idle stream's
// goroutine (stream.Conn.ReadIdle) and pick the stream up again when the
// socket is readable.
type IdleReader interface {
	ReadIdle(p []byte) (int, error)
}

const maxNameLen = 1024

// Decoder reads an XMPP stream: its header, then one complete top-level element at a time.
// It implements the restricted XML of RFC 6120 §11: no DTD, no comments, no
// processing instructions, no entities but the five predefined ones.
type Decoder struct {
	src     io.Reader
	rb      *readBuf // nil while idle: see release
	pos     int      // next byte of rb.b to read
	end     int      // end of the bytes read into rb.b
	err     error    // the source's error, returned once the buffer is drained
	one     [1]byte  // where an idle decoder waits for the next byte
	atTop   bool     // between top-level elements: the source may decline to wait (IdleReader)
	lim     Limits
	budget  int       // bytes the current unit (header or element) may still use
	bind    []binding // namespace bindings in scope, innermost last
	streamQ string    // qualified name of the stream element, for </stream:stream>
	scratch []byte
	attrs   []rawAttr
}

type binding struct{ prefix, uri string }

type rawAttr struct{ prefix, local, value string }

// readBufSize is the read buffer: small, because idle connections are many
// and TLS keeps its own record buffer under it.
const readBufSize = 1024

// maxPooledScratch bounds the scratch space a released buffer keeps: one
// large text node must not pin its size in the pool.
const maxPooledScratch = 4096

// readBuf is what a decoder needs only while it reads: the read buffer and
// the scratch space for names, text and attributes. Between top-level
// elements, when nothing is buffered, the decoder gives it back to a pool,
// so an idle stream holds none of it (issue 5: memory per idle session).
type readBuf struct {
	b       [readBufSize]byte
	scratch []byte
	attrs   []rawAttr
}

var readBufPool = sync.Pool{New: func() any { return new(readBuf) }}

// NewDecoder returns a decoder reading from r.
func NewDecoder(r io.Reader, lim Limits) *Decoder {
	return &Decoder{src: r, lim: lim}
}

// Reset discards everything buffered and reads from r from now on. Stream
// restarts after STARTTLS and SASL use it, which also drops any bytes a peer
// sent ahead of the TLS handshake (the STARTTLS injection defence).
func (d *Decoder) Reset(r io.Reader) {
	d.src = r
	d.pos, d.end, d.err, d.atTop = 0, 0, nil, false
	d.release()
	d.bind = d.bind[:0]
	d.streamQ = ""
}

// Compact gives back the spare room of the namespace bindings, which grows
// with the deepest element read so far. A stream that will be idle for a
// while calls it; the bindings of the stream header stay.
func (d *Decoder) Compact() {
	if cap(d.bind) > len(d.bind) {
		d.bind = append([]binding(nil), d.bind...)
	}
}

// SetLimits changes the limits, for example when a stream authenticates.
func (d *Decoder) SetLimits(l Limits) { d.lim = l }

// Buffered reports how many bytes are read from the connection but not yet decoded.
func (d *Decoder) Buffered() int { return d.end - d.pos }

// release gives the read buffer and scratch space back to the pool when
// nothing is buffered. The next read then waits for one byte in d.one and
// takes a buffer only once that byte has come.
func (d *Decoder) release() {
	rb := d.rb
	if rb == nil || d.pos < d.end {
		return
	}
	if cap(d.scratch) <= maxPooledScratch {
		rb.scratch = d.scratch[:0]
	} else {
		rb.scratch = nil
	}
	clear(d.attrs[:cap(d.attrs)]) // no strings kept alive from the pool
	rb.attrs = d.attrs[:0]
	d.scratch, d.attrs = nil, nil
	d.rb, d.pos, d.end = nil, 0, 0
	readBufPool.Put(rb)
}

// readByte returns the next byte of the stream. Like bufio.Reader, it
// returns the source's error only once what was read before it is used up,
// and only once.
func (d *Decoder) readByte() (byte, error) {
	if d.pos < d.end {
		c := d.rb.b[d.pos]
		d.pos++
		return c, nil
	}
	return d.fill()
}

// fill reads more from the source and returns its first byte.
func (d *Decoder) fill() (byte, error) {
	for range 100 { // bufio's bound on reads that return nothing
		if d.err != nil {
			err := d.err
			d.err = nil
			return 0, err
		}
		if d.rb == nil {
			var n int
			var err error
			if ir, ok := d.src.(IdleReader); ok && d.atTop {
				n, err = ir.ReadIdle(d.one[:])
			} else {
				n, err = d.src.Read(d.one[:])
			}
			if n <= 0 {
				d.err = err
				continue
			}
			d.rb = readBufPool.Get().(*readBuf)
			d.scratch, d.attrs = d.rb.scratch, d.rb.attrs
			d.rb.scratch, d.rb.attrs = nil, nil
			d.rb.b[0] = d.one[0]
			d.pos, d.end, d.err = 1, 1, err
			return d.one[0], nil
		}
		if d.end > 0 {
			// Keep the last byte read, for unread.
			d.rb.b[0] = d.rb.b[d.end-1]
			d.pos, d.end = 1, 1
		}
		n, err := d.src.Read(d.rb.b[d.end:])
		d.err = err
		if n > 0 {
			d.end += n
			c := d.rb.b[d.pos]
			d.pos++
			return c, nil
		}
	}
	return 0, io.ErrNoProgress
}

func (d *Decoder) overLimit() error {
	return &StreamError{Condition: "policy-violation", Text: "element exceeds " + strconv.Itoa(d.lim.MaxStanza) + " bytes"}
}

// next reads one byte of the current unit, charging it to the budget.
func (d *Decoder) next() (byte, error) {
	if d.budget <= 0 {
		return 0, d.overLimit()
	}
	d.budget--
	c, err := d.readByte()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return c, err
}

func (d *Decoder) unread() {
	if d.pos > 0 {
		d.pos--
	}
	d.budget++
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

func (d *Decoder) skipSpace() (byte, error) {
	for {
		c, err := d.next()
		if err != nil || !isSpace(c) {
			return c, err
		}
	}
}

// ReadHeader reads an optional XML declaration and the peer's opening stream tag.
func (d *Decoder) ReadHeader() (StreamHeader, error) {
	var h StreamHeader
	d.release() // a peer may take its time to open the stream
	d.budget = d.lim.MaxHeader
	d.bind = append(d.bind[:0], binding{"xml", NSXML})
	c, err := d.skipSpace()
	if err != nil {
		return h, headerErr(err)
	}
	if c != '<' {
		return h, errNotWellFormed("expected a stream header")
	}
	if c, err = d.next(); err != nil {
		return h, headerErr(err)
	}
	if c == '?' {
		if err := d.xmlDecl(); err != nil {
			return h, headerErr(err)
		}
		if c, err = d.skipSpace(); err != nil {
			return h, headerErr(err)
		}
		if c != '<' {
			return h, errNotWellFormed("expected a stream header")
		}
		if c, err = d.next(); err != nil {
			return h, headerErr(err)
		}
	}
	if c == '!' || c == '?' {
		return h, &StreamError{Condition: "restricted-xml", Text: "DTDs, comments and processing instructions are not allowed"}
	}
	d.unread()
	qname, self, err := d.startTag()
	if err != nil {
		return h, headerErr(err)
	}
	el, err := d.resolve(qname)
	if err != nil {
		return h, err
	}
	if el.Space != NSStream || el.Local != "stream" {
		return h, &StreamError{Condition: "invalid-namespace", Text: "the stream element must be {" + NSStream + "}stream"}
	}
	if self {
		return h, errNotWellFormed("empty stream element")
	}
	d.streamQ = qname
	h.NS = d.lookup("")
	for _, b := range d.bind[1:] {
		if b.prefix != "" && b.uri != NSStream {
			h.Extra = append(h.Extra, [2]string{b.prefix, b.uri})
		}
	}
	h.To, h.From, h.ID, h.Version, h.Lang = el.Get("to"), el.Get("from"), el.Get("id"), el.Get("version"), el.Lang()
	return h, nil
}

// headerErr turns running out of header budget into a clearer message.
func headerErr(err error) error {
	var se *StreamError
	if errors.As(err, &se) && se.Condition == "policy-violation" {
		return &StreamError{Condition: "policy-violation", Text: "stream header too long"}
	}
	return err
}

// xmlDecl consumes "<?xml ...?>" (after "<?"); anything else there is a processing instruction.
func (d *Decoder) xmlDecl() error {
	d.scratch = d.scratch[:0]
	var prev byte
	for {
		c, err := d.next()
		if err != nil {
			return err
		}
		if c == '>' && prev == '?' {
			break
		}
		d.scratch = append(d.scratch, c)
		prev = c
	}
	decl := string(d.scratch[:len(d.scratch)-1])
	if decl != "xml" && !strings.HasPrefix(decl, "xml ") {
		return &StreamError{Condition: "restricted-xml", Text: "processing instructions are not allowed"}
	}
	if i := strings.Index(decl, "encoding"); i >= 0 {
		rest := strings.TrimLeft(decl[i+len("encoding"):], " =")
		if len(rest) > 0 && (rest[0] == '\'' || rest[0] == '"') {
			rest = rest[1:]
		}
		if !strings.HasPrefix(strings.ToUpper(rest), "UTF-8") {
			return &StreamError{Condition: "unsupported-encoding", Text: "only UTF-8 is supported"}
		}
	}
	return nil
}

// Next returns the next complete top-level element. Whitespace between
// elements (keepalives) is skipped without being charged to any limit. It
// returns ErrStreamClosed at </stream:stream>, a *StreamError for input that
// breaks the rules, and the reader's error otherwise.
func (d *Decoder) Next() (*Element, error) {
	for {
		if d.pos == d.end {
			d.release() // idle until the peer sends more
		}
		d.atTop = true
		c, err := d.readByte()
		d.atTop = false
		if err != nil {
			return nil, err
		}
		if isSpace(c) {
			continue
		}
		if c != '<' {
			return nil, errNotWellFormed("text is not allowed between stanzas")
		}
		break
	}
	d.budget = d.lim.MaxStanza - 1
	c, err := d.next()
	if err != nil {
		return nil, err
	}
	switch c {
	case '/':
		name, err := d.endTag()
		if err != nil {
			return nil, err
		}
		if name != d.streamQ {
			return nil, errNotWellFormed("unexpected end tag </" + name + ">")
		}
		return nil, ErrStreamClosed
	case '!', '?':
		return nil, &StreamError{Condition: "restricted-xml", Text: "DTDs, comments and processing instructions are not allowed"}
	}
	d.unread()
	return d.element()
}

// open is an element whose end tag is still to come.
type open struct {
	el    *Element
	qname string
	mark  int // namespace bindings in scope before it
}

// startElement reads a start tag (its '<' consumed) and resolves its names.
// self reports an empty-element tag, whose bindings are already dropped.
func (d *Decoder) startElement() (o open, self bool, err error) {
	o.mark = len(d.bind)
	if o.qname, self, err = d.startTag(); err != nil {
		return o, false, err
	}
	if o.el, err = d.resolve(o.qname); err != nil {
		return o, false, err
	}
	if self {
		d.bind = d.bind[:o.mark]
	}
	return o, self, nil
}

// element reads one element (the '<' already consumed) and everything inside it.
func (d *Decoder) element() (*Element, error) {
	root, self, err := d.startElement()
	if err != nil || self {
		return root.el, err
	}
	stack := make([]open, 1, 8)
	stack[0] = root
	for {
		c, err := d.next()
		if err != nil {
			return nil, err
		}
		top := &stack[len(stack)-1]
		if c != '<' {
			d.unread()
			text, err := d.text()
			if err != nil {
				return nil, err
			}
			addText(top.el, text)
			continue
		}
		if c, err = d.next(); err != nil {
			return nil, err
		}
		switch c {
		case '/':
			name, err := d.endTag()
			if err != nil {
				return nil, err
			}
			if name != top.qname {
				return nil, errNotWellFormed("end tag </" + name + "> does not match <" + top.qname + ">")
			}
			d.bind = d.bind[:top.mark]
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return root.el, nil
			}
		case '!':
			text, err := d.cdata()
			if err != nil {
				return nil, err
			}
			addText(top.el, text)
		case '?':
			return nil, &StreamError{Condition: "restricted-xml", Text: "processing instructions are not allowed"}
		default:
			d.unread()
			if len(stack) >= d.lim.MaxDepth {
				return nil, &StreamError{Condition: "policy-violation", Text: "elements nested deeper than " + strconv.Itoa(d.lim.MaxDepth)}
			}
			child, self, err := d.startElement()
			if err != nil {
				return nil, err
			}
			top.el.Nodes = append(top.el.Nodes, Node{Elem: child.el})
			if !self {
				stack = append(stack, child)
			}
		}
	}
}

// addText appends text, merging with a preceding text node (text split by CDATA).
func addText(e *Element, s string) {
	if n := len(e.Nodes); n > 0 && e.Nodes[n-1].Elem == nil {
		e.Nodes[n-1].Text += s
		return
	}
	e.Nodes = append(e.Nodes, Node{Text: s})
}

// name reads an XML name whose first byte is c.
func (d *Decoder) name(c byte) (string, error) {
	if !isNameStart(c) {
		return "", errNotWellFormed("invalid name character " + strconv.QuoteRune(rune(c)))
	}
	d.scratch = append(d.scratch[:0], c)
	for {
		c, err := d.next()
		if err != nil {
			return "", err
		}
		if !isNameByte(c) {
			d.unread()
			break
		}
		if len(d.scratch) >= maxNameLen {
			return "", &StreamError{Condition: "policy-violation", Text: "name too long"}
		}
		d.scratch = append(d.scratch, c)
	}
	if !utf8.Valid(d.scratch) {
		return "", errNotWellFormed("invalid UTF-8 in a name")
	}
	return intern(d.scratch), nil
}

func isNameStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':' || c >= 0x80
}

func isNameByte(c byte) bool {
	return isNameStart(c) || c >= '0' && c <= '9' || c == '-' || c == '.'
}

// startTag reads "name attr='v' ...>" or ".../>" into d.attrs.
func (d *Decoder) startTag() (qname string, self bool, err error) {
	c, err := d.next()
	if err != nil {
		return "", false, err
	}
	if qname, err = d.name(c); err != nil {
		return "", false, err
	}
	d.attrs = d.attrs[:0]
	for {
		c, err := d.next()
		if err != nil {
			return "", false, err
		}
		sawSpace := false
		for isSpace(c) {
			sawSpace = true
			if c, err = d.next(); err != nil {
				return "", false, err
			}
		}
		switch c {
		case '>':
			return qname, false, nil
		case '/':
			if c, err = d.next(); err != nil {
				return "", false, err
			}
			if c != '>' {
				return "", false, errNotWellFormed("expected '>' after '/'")
			}
			return qname, true, nil
		}
		if !sawSpace {
			return "", false, errNotWellFormed("attributes must be separated by white space")
		}
		if len(d.attrs) >= d.lim.MaxAttrs {
			return "", false, &StreamError{Condition: "policy-violation", Text: "too many attributes"}
		}
		an, err := d.name(c)
		if err != nil {
			return "", false, err
		}
		if c, err = d.skipSpace(); err != nil {
			return "", false, err
		}
		if c != '=' {
			return "", false, errNotWellFormed("expected '=' after attribute " + an)
		}
		if c, err = d.skipSpace(); err != nil {
			return "", false, err
		}
		if c != '\'' && c != '"' {
			return "", false, errNotWellFormed("attribute value must be quoted")
		}
		v, err := d.attrValue(c)
		if err != nil {
			return "", false, err
		}
		prefix, local := splitQName(an)
		for _, a := range d.attrs {
			if a.prefix == prefix && a.local == local {
				return "", false, errNotWellFormed("duplicate attribute " + an)
			}
		}
		d.attrs = append(d.attrs, rawAttr{prefix, local, v})
	}
}

func splitQName(q string) (prefix, local string) {
	if i := strings.IndexByte(q, ':'); i >= 0 {
		return q[:i], q[i+1:]
	}
	return "", q
}

// resolve applies the namespace declarations in d.attrs and builds the element.
func (d *Decoder) resolve(qname string) (*Element, error) {
	nattrs := 0
	for _, a := range d.attrs {
		switch {
		case a.prefix == "" && a.local == "xmlns":
			d.bind = append(d.bind, binding{"", a.value})
		case a.prefix == "xmlns":
			if a.value == "" || a.local == "xml" || a.local == "xmlns" {
				return nil, errNotWellFormed("invalid namespace declaration xmlns:" + a.local)
			}
			d.bind = append(d.bind, binding{a.local, a.value})
		default:
			nattrs++
		}
	}
	prefix, local := splitQName(qname)
	if local == "" || strings.IndexByte(local, ':') >= 0 {
		return nil, errNotWellFormed("invalid element name " + qname)
	}
	el := &Element{Local: local}
	if prefix == "" {
		el.Space = d.lookup("")
	} else if el.Space = d.lookup(prefix); el.Space == "" {
		return nil, errNotWellFormed("undeclared namespace prefix " + prefix)
	}
	if nattrs == 0 {
		return el, nil
	}
	el.Attr = make([]Attr, 0, nattrs)
	for _, a := range d.attrs {
		if a.prefix == "xmlns" || a.prefix == "" && a.local == "xmlns" {
			continue
		}
		at := Attr{Local: a.local, Value: a.value}
		if a.prefix != "" {
			if at.Space = d.lookup(a.prefix); at.Space == "" {
				return nil, errNotWellFormed("undeclared namespace prefix " + a.prefix)
			}
		}
		el.Attr = append(el.Attr, at)
	}
	return el, nil
}

func (d *Decoder) lookup(prefix string) string {
	for i := len(d.bind) - 1; i >= 0; i-- {
		if d.bind[i].prefix == prefix {
			return d.bind[i].uri
		}
	}
	return ""
}

// attrValue reads a quoted value after its opening quote.
func (d *Decoder) attrValue(quote byte) (string, error) {
	d.scratch = d.scratch[:0]
	high := false
	for {
		c, err := d.next()
		if err != nil {
			return "", err
		}
		switch {
		case c == quote:
			return d.finishText(high)
		case c == '<':
			return "", errNotWellFormed("'<' in an attribute value")
		case c == '&':
			if err := d.reference(); err != nil {
				return "", err
			}
			high = true // a character reference may have added non-ASCII
		case c == '\t' || c == '\n' || c == '\r':
			d.scratch = append(d.scratch, ' ') // attribute value normalisation
		case c < 0x20:
			return "", errNotWellFormed("control character in an attribute value")
		default:
			high = high || c >= 0x80
			d.scratch = append(d.scratch, c)
		}
	}
}

// text reads character data up to the next '<'.
func (d *Decoder) text() (string, error) {
	d.scratch = d.scratch[:0]
	high := false
	for {
		c, err := d.next()
		if err != nil {
			return "", err
		}
		switch {
		case c == '<':
			d.unread()
			return d.finishText(high)
		case c == '&':
			if err := d.reference(); err != nil {
				return "", err
			}
			high = true
		case c < 0x20 && c != '\t' && c != '\n' && c != '\r':
			return "", errNotWellFormed("control character in text")
		default:
			high = high || c >= 0x80
			d.scratch = append(d.scratch, c)
		}
	}
}

// cdata reads "[CDATA[...]]>" after "<!"; anything else after "<!" is a comment or DTD.
func (d *Decoder) cdata() (string, error) {
	for _, want := range []byte("[CDATA[") {
		c, err := d.next()
		if err != nil {
			return "", err
		}
		if c != want {
			return "", &StreamError{Condition: "restricted-xml", Text: "comments and DTDs are not allowed"}
		}
	}
	d.scratch = d.scratch[:0]
	high := false
	for {
		c, err := d.next()
		if err != nil {
			return "", err
		}
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return "", errNotWellFormed("control character in CDATA")
		}
		high = high || c >= 0x80
		d.scratch = append(d.scratch, c)
		if n := len(d.scratch); n >= 3 && c == '>' && d.scratch[n-2] == ']' && d.scratch[n-3] == ']' {
			d.scratch = d.scratch[:n-3]
			return d.finishText(high)
		}
	}
}

// finishText validates the collected bytes and returns them as a string.
func (d *Decoder) finishText(high bool) (string, error) {
	if high {
		if !utf8.Valid(d.scratch) {
			return "", errNotWellFormed("invalid UTF-8")
		}
		for _, r := range string(d.scratch) {
			if !isXMLChar(r) {
				return "", errNotWellFormed("character " + strconv.QuoteRune(r) + " is not allowed in XML")
			}
		}
	}
	if len(d.scratch) <= 1 {
		return intern(d.scratch), nil
	}
	return string(d.scratch), nil
}

// reference decodes an entity or character reference after '&' into d.scratch.
func (d *Decoder) reference() error {
	var ref [12]byte
	n := 0
	for {
		c, err := d.next()
		if err != nil {
			return err
		}
		if c == ';' {
			break
		}
		if n == len(ref) {
			return errNotWellFormed("malformed entity reference")
		}
		ref[n] = c
		n++
	}
	switch s := string(ref[:n]); s {
	case "lt":
		d.scratch = append(d.scratch, '<')
	case "gt":
		d.scratch = append(d.scratch, '>')
	case "amp":
		d.scratch = append(d.scratch, '&')
	case "apos":
		d.scratch = append(d.scratch, '\'')
	case "quot":
		d.scratch = append(d.scratch, '"')
	default:
		if len(s) < 2 || s[0] != '#' {
			// Only the predefined entities exist without a DTD, and DTDs are refused.
			return &StreamError{Condition: "restricted-xml", Text: "entity references other than the predefined five are not allowed"}
		}
		var v uint64
		var err error
		if s[1] == 'x' {
			v, err = strconv.ParseUint(s[2:], 16, 32)
		} else {
			v, err = strconv.ParseUint(s[1:], 10, 32)
		}
		if err != nil || !isXMLChar(rune(v)) {
			return errNotWellFormed("invalid character reference &" + s + ";")
		}
		d.scratch = utf8.AppendRune(d.scratch, rune(v))
	}
	return nil
}

// endTag reads "name>" after "</".
func (d *Decoder) endTag() (string, error) {
	c, err := d.next()
	if err != nil {
		return "", err
	}
	name, err := d.name(c)
	if err != nil {
		return "", err
	}
	if c, err = d.skipSpace(); err != nil {
		return "", err
	}
	if c != '>' {
		return "", errNotWellFormed("expected '>' in end tag")
	}
	return name, nil
}

// intern returns a shared string for names and values that recur in every
// stanza, so the common path allocates only for what is really new.
func intern(b []byte) string {
	if s, ok := interned[string(b)]; ok {
		return s
	}
	return string(b)
}

var interned = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{
		"", " ", "\n", "message", "presence", "iq", "body", "subject", "thread", "error", "query", "show", "status",
		"priority", "id", "to", "from", "type", "lang", "xml:lang", "xmlns", "chat", "normal", "groupchat", "headline",
		"get", "set", "result", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe",
		"stream:stream", "stream", "bind", "resource", "jid", "session", "ping", "c", "x", "item", "active",
		"delay", "stamp", "request", "received", "markable", "origin-id", "stanza-id", "auth", "response",
		"mechanism", "starttls", "r", "a", "h", "enable", "en", "away", "dnd", "xa",
	} {
		m[s] = s
	}
	return m
}()

// parseHeader binds the prefixes a stored element may use (xml:, and the
// stream's) so the decoder can read the element alone.
const parseHeader = "<stream:stream xmlns:stream='" + NSStream + "'>"

// ParseElement reads back one element serialized with AppendXML(b, ""), as
// modules store them (vCards, private XML, offline messages). The limits are
// generous: what is read was accepted from a stream once already.
func ParseElement(b []byte) (*Element, error) {
	lim := DefaultLimits
	lim.MaxStanza = max(lim.MaxStanza, len(b)+1)
	lim.MaxDepth, lim.MaxAttrs = 256, 256
	d := NewDecoder(io.MultiReader(strings.NewReader(parseHeader), bytes.NewReader(b)), lim)
	if _, err := d.ReadHeader(); err != nil {
		return nil, err
	}
	el, err := d.Next()
	d.pos = d.end // nothing more to read: give the buffer back
	d.release()
	return el, err
}
