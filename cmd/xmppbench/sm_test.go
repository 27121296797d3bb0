package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/stanza"
)

// recConn records what the client writes.
type recConn struct {
	net.Conn
	buf bytes.Buffer
}

func (r *recConn) Write(b []byte) (int, error) { return r.buf.Write(b) }

const testHeader = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' from='localhost'>"

// smClient is a client reading input (after a stream header) with stream
// management on, or off with sm nil.
func smClient(t *testing.T, input string, sm *smState) (*client, *recConn) {
	t.Helper()
	rc := &recConn{}
	c := &client{conn: rc, sm: sm, d: &dialer{}}
	c.dec = stanza.NewDecoder(strings.NewReader(testHeader+input), clientLimits)
	if _, err := c.dec.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	return c, rc
}

func TestSMNext(t *testing.T) {
	tests := []struct {
		name      string
		input     string
		off, cut  bool
		out       uint32 // stanzas we had sent
		wantNames []string
		wantH     uint32
		wantAcked uint32
		wantBad   int64
		wantWrite string
	}{
		{name: "stanzas counted", input: "<message/><presence/><iq type='get' id='x'/>",
			wantNames: []string{"message", "presence", "iq"}, wantH: 3},
		{name: "r answered with h so far", input: "<message/><r xmlns='urn:xmpp:sm:3'/><message/>",
			wantNames: []string{"message", "message"}, wantH: 2, wantWrite: "<a xmlns='urn:xmpp:sm:3' h='1'/>"},
		{name: "a taken", input: "<a xmlns='urn:xmpp:sm:3' h='5'/>", out: 7, wantAcked: 5},
		{name: "a beyond what was sent", input: "<a xmlns='urn:xmpp:sm:3' h='8'/>", out: 7, wantBad: 1},
		{name: "a without h", input: "<a xmlns='urn:xmpp:sm:3'/>", out: 7, wantBad: 1},
		{name: "a with a negative h", input: "<a xmlns='urn:xmpp:sm:3' h='-1'/>", out: 7, wantBad: 1},
		{name: "a with h over 2^32", input: "<a xmlns='urn:xmpp:sm:3' h='4294967296'/>", out: 7, wantBad: 1},
		{name: "nonzas of other namespaces not counted", input: "<enabled xmlns='urn:xmpp:sm:3' id='i'/><message xmlns='urn:other'/>",
			wantNames: []string{"enabled", "message"}},
		{name: "cut: nothing handled, counted or answered", cut: true,
			input: "<message/><r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='1'/><stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
			out:   3, wantNames: []string{"error"}},
		{name: "off: everything passes", off: true, input: "<message/><r xmlns='urn:xmpp:sm:3'/>", wantNames: []string{"message", "r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s *smState
			if !tt.off {
				s = &smState{id: "x", resumable: true}
				s.out.Store(tt.out)
				s.cut.Store(tt.cut)
			}
			c, rc := smClient(t, tt.input, s)
			var names []string
			for {
				el, err := c.next()
				if err != nil {
					if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Logf("end: %v", err)
					}
					break
				}
				names = append(names, el.Local)
			}
			if strings.Join(names, " ") != strings.Join(tt.wantNames, " ") {
				t.Errorf("returned %v, want %v", names, tt.wantNames)
			}
			if rc.buf.String() != tt.wantWrite {
				t.Errorf("wrote %q, want %q", rc.buf.String(), tt.wantWrite)
			}
			if s == nil {
				return
			}
			if s.h.Load() != tt.wantH || s.acked.Load() != tt.wantAcked || s.badAcks.Load() != tt.wantBad {
				t.Errorf("h %d acked %d bad %d, want %d %d %d", s.h.Load(), s.acked.Load(), s.badAcks.Load(), tt.wantH, tt.wantAcked, tt.wantBad)
			}
		})
	}
}

func TestAckAfter(t *testing.T) {
	tests := []struct {
		h, out  uint32
		unacked uint32
		ok      bool
	}{
		{0, 0, 0, true},
		{3, 10, 7, true},
		{10, 10, 0, true},
		{11, 10, 0, false},                 // the server acks more than we sent
		{4294967295, 2, 3, true},           // out wrapped past 2^32, h not yet
		{2, 4294967295, 4294967293, false}, // h ahead by 3 across the wrap
		{0, 1 << 31, 0, false},             // half the space: taken as ahead
		{1, 1<<31 + 0, 1<<31 - 1, true},    // just under half: behind
		{4294967290, 4294967295, 5, true},  // near the top
		{4294967295, 4294967290, 0, false}, // ahead near the top
		{4294967295, 4294967295 + 0, 0, true},
	}
	for _, tt := range tests {
		u, ok := ackAfter(tt.h, tt.out)
		if ok != tt.ok || ok && u != tt.unacked {
			t.Errorf("ackAfter(%d, %d) = %d, %v; want %d, %v", tt.h, tt.out, u, ok, tt.unacked, tt.ok)
		}
	}
}

func TestSMCadence(t *testing.T) {
	// every 3: writes of 1, 1, 1 (r), 2, 2 (r), 5 (r) stanzas.
	s := &smState{every: 3}
	var rs []bool
	for _, n := range []int{1, 1, 1, 2, 2, 5} {
		b := s.sent(nil, n)
		rs = append(rs, len(b) > 0)
	}
	want := []bool{false, false, true, false, true, true}
	for i := range want {
		if rs[i] != want[i] {
			t.Fatalf("<r/> after writes: %v, want %v", rs, want)
		}
	}
	if s.out.Load() != 12 {
		t.Errorf("out = %d, want 12", s.out.Load())
	}
	// 0: never on our own; the count wraps modulo 2^32.
	s = &smState{}
	s.out.Store(1<<32 - 1)
	if b := s.sent(nil, 2); len(b) != 0 || s.out.Load() != 1 {
		t.Errorf("every 0: wrote %q, out %d", b, s.out.Load())
	}
}

func TestParseH(t *testing.T) {
	for _, tt := range []struct {
		xml  string
		h    uint32
		fail bool
	}{
		{"<a h='0'/>", 0, false},
		{"<a h='4294967295'/>", 4294967295, false},
		{"<a h='4294967296'/>", 0, true},
		{"<a h=''/>", 0, true},
		{"<a h=' 1'/>", 0, true},
		{"<a h='0x10'/>", 0, true},
		{"<a/>", 0, true},
	} {
		el := decodeOne(t, tt.xml)
		h, err := parseH(el)
		if (err != nil) != tt.fail || h != tt.h {
			t.Errorf("%s: %d, %v", tt.xml, h, err)
		}
	}
}

func decodeOne(t *testing.T, xml string) *stanza.Element {
	t.Helper()
	d := stanza.NewDecoder(strings.NewReader(testHeader+xml), clientLimits)
	if _, err := d.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	el, err := d.Next()
	if err != nil {
		t.Fatalf("%s: %v", xml, err)
	}
	return el
}

func TestResState(t *testing.T) {
	var st resState
	for _, sq := range []uint64{1, 2, 64, 2, 200, 1} {
		st.record(sq)
	}
	d, dups, _ := st.counts()
	if d != 4 || dups != 2 {
		t.Errorf("distinct %d dups %d, want 4 2", d, dups)
	}
}

func TestParseResBody(t *testing.T) {
	for _, tt := range []struct {
		body string
		run  string
		sq   uint64
		ok   bool
	}{
		{"xr abc 7", "abc", 7, true},
		{"xr abc 0", "", 0, false},
		{"xr abc", "", 0, false},
		{"xr abc x", "", 0, false},
		{"xr abc 99999999999", "", 0, false}, // beyond the bitset's bound
		{"xb abc 1", "", 0, false},
		{"", "", 0, false},
	} {
		run, sq, ok := parseResBody(tt.body)
		if ok != tt.ok || run != tt.run || sq != tt.sq {
			t.Errorf("%q: %q %d %v", tt.body, run, sq, ok)
		}
	}
}

func FuzzParseResBody(f *testing.F) {
	f.Add("xr abc 7")
	f.Add("xr  1")
	f.Fuzz(func(t *testing.T, body string) {
		run, sq, ok := parseResBody(body)
		if ok && (sq == 0 || sq > 1<<24 || !strings.HasPrefix(body, resPrefix+run+" ")) {
			t.Errorf("%q: %q %d", body, run, sq)
		}
		if ok {
			var st resState
			st.record(sq) // the bitset grows to sq, bounded
		}
	})
}

// FuzzSMNext: whatever the server sends, next() neither panics nor counts
// what is not a stanza, and answers <r/> only with a well-formed <a/>.
func FuzzSMNext(f *testing.F) {
	f.Add("<message/><r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='1'/>")
	f.Add("<a xmlns='urn:xmpp:sm:3' h='99999999999999'/><iq/>")
	f.Fuzz(func(t *testing.T, input string) {
		rc := &recConn{}
		s := &smState{}
		s.out.Store(5)
		c := &client{conn: rc, sm: s, d: &dialer{}}
		c.dec = stanza.NewDecoder(strings.NewReader(testHeader+input), clientLimits)
		if _, err := c.dec.ReadHeader(); err != nil {
			return
		}
		n := uint32(0)
		for range 1000 {
			el, err := c.next()
			if err != nil {
				break
			}
			if isStanza(el) {
				n++
			}
		}
		if s.h.Load() != n {
			t.Errorf("h %d, %d stanzas returned", s.h.Load(), n)
		}
		if a := s.acked.Load(); a > 5 {
			t.Errorf("acked %d of 5 sent", a)
		}
		if w := rc.buf.String(); w != "" && !strings.HasPrefix(w, "<a xmlns='urn:xmpp:sm:3' h='") {
			t.Errorf("wrote %q", w)
		}
	})
}
