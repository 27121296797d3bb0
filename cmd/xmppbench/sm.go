package main

// The client side of XEP-0198 stream management: enable with resumption
// after bind, count the stanzas handled (h, modulo 2^32), answer the
// server's <r/> with <a h/>, ask for an <a/> every smEvery stanzas sent, and
// resume a cut session from a new connection.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

const nsSM = "urn:xmpp:sm:3"

// smState is one session's stream management counters. h and acked are
// written by the reader goroutine; out and lastR under the client's write
// lock.
type smState struct {
	id        string // resumption id (previd of a later <resume/>)
	resumable bool
	every     uint32 // <r/> after this many stanzas sent; 0: never on our own

	h     atomic.Uint32 // stanzas received and handled
	out   atomic.Uint32 // stanzas sent
	lastR uint32        // out when the last <r/> was sent (write lock)

	acked   atomic.Uint32 // the last h the server sent in an <a/>
	acks    atomic.Int64  // <a/> received
	answers atomic.Int64  // server <r/> answered
	badAcks atomic.Int64  // <a/> with a bad h (not a number, or more than we sent)

	// cut: the connection was abandoned (a phone out of coverage): what
	// still arrives is read but neither handled, counted nor answered.
	cut atomic.Bool
}

// sent accounts for n stanzas appended to b (under the write lock) and
// appends an <r/> when one is due.
func (s *smState) sent(b []byte, n int) []byte {
	out := s.out.Add(uint32(n))
	if s.every > 0 && out-s.lastR >= s.every {
		s.lastR = out
		b = append(b, "<r xmlns='"+nsSM+"'/>"...)
	}
	return b
}

// unacked is how many of the stanzas sent the server has not acknowledged.
func (s *smState) unacked() uint32 { return s.out.Load() - s.acked.Load() }

// ackAfter says whether an acknowledged count h (from <a/> or <resumed/>)
// covers all of out, modulo 2^32: the distance forward from h to out is
// what is still unacknowledged, and more than half the space means h is
// ahead of what was sent.
func ackAfter(h, out uint32) (unacked uint32, ok bool) {
	d := out - h
	return d, d < 1<<31
}

// parseH reads the h attribute of <a/>, <resumed/> or <failed/>: an
// unsigned 32-bit integer (XEP-0198 §4).
func parseH(el *stanza.Element) (uint32, error) {
	v, ok := el.Lookup("h")
	if !ok {
		return 0, errors.New("no h attribute")
	}
	h, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("h=%q: %w", v, err)
	}
	return uint32(h), nil
}

// isStanza: what XEP-0198 counts (message, presence, iq of the stream's
// namespace).
func isStanza(el *stanza.Element) bool {
	if el.Space != stanza.NSClient {
		return false
	}
	switch el.Local {
	case "message", "presence", "iq":
		return true
	}
	return false
}

// next reads the next element. With stream management on, it counts the
// stanzas, answers <r/> and takes <a/> without returning them; a cut
// session's stanzas are dropped unread.
func (c *client) next() (*stanza.Element, error) {
	for {
		el, err := c.dec.Next()
		if err != nil {
			return nil, err
		}
		s := c.sm
		if s == nil {
			return el, nil
		}
		if s.cut.Load() {
			if el.Space == nsSM || isStanza(el) {
				continue
			}
			return el, nil // a stream error or the like
		}
		switch {
		case el.Is(nsSM, "r"):
			s.answers.Add(1)
			_ = c.write([]byte("<a xmlns='" + nsSM + "' h='" + strconv.FormatUint(uint64(s.h.Load()), 10) + "'/>"))
			continue
		case el.Is(nsSM, "a"):
			h, err := parseH(el)
			if _, ok := ackAfter(h, s.out.Load()); err != nil || !ok {
				s.badAcks.Add(1)
				continue
			}
			s.acked.Store(h)
			s.acks.Add(1)
			continue
		case isStanza(el):
			s.h.Add(1)
		}
		return el, nil
	}
}

// writeStanzas writes b, which holds n stanzas, counting them for stream
// management.
func (c *client) writeStanzas(n int, b []byte) error {
	c.wmu.Lock()
	if s := c.sm; s != nil {
		s.out.Add(uint32(n))
	}
	_, err := c.conn.Write(b)
	c.wmu.Unlock()
	return err
}

// enableSM asks for stream management with resumption after bind and waits
// for <enabled/>; stanzas that arrive before it are handled uncounted (the
// server counts from its <enabled/>).
func (c *client) enableSM(feat *stanza.Element) error {
	if c.sm != nil {
		return nil // enabled inline in Bind 2
	}
	if feat.Child(nsSM, "sm") == nil {
		return errors.New("sm: urn:xmpp:sm:3 not offered")
	}
	if err := c.write([]byte("<enable xmlns='" + nsSM + "' resume='true'/>")); err != nil {
		return errf("sm enable", err)
	}
	for {
		el, err := c.expect("sm enable")
		if err != nil {
			return err
		}
		switch {
		case el.Is(nsSM, "enabled"):
			return c.smEnabled(el)
		case el.Is(nsSM, "failed"):
			return fmt.Errorf("sm enable: failed %s", failureCond(el))
		default:
			c.dispatch(el)
		}
	}
}

// smEnabled starts counting after an <enabled/>.
func (c *client) smEnabled(el *stanza.Element) error {
	r := el.Get("resume")
	s := &smState{id: el.Get("id"), resumable: r == "true" || r == "1", every: uint32(max(c.d.smEvery, 0))}
	if !s.resumable || s.id == "" {
		return errors.New("sm: enabled without resumption")
	}
	c.sm = s
	return nil
}

// bind2Extra is what goes into Bind 2's <bind/> besides the tag: with
// --sm, an inline <enable/> where offered (as Conversations and Monal do).
func (c *client) bind2Extra(inline *stanza.Element) string {
	if !c.d.sm || c.inlineResume != "" {
		return ""
	}
	for _, f := range inline.Child(stanza.NSBind2, "bind").Child(stanza.NSBind2, "inline").Children() {
		if f.Get("var") == nsSM {
			return "<enable xmlns='" + nsSM + "' resume='true'/>"
		}
	}
	return ""
}

// cutMode is how a session's connection is lost.
type cutMode string

const (
	// cutSilent: the client stops handling and answering anything on the
	// connection and never closes it until after the resumption — a phone
	// that lost its network: no FIN or RST reaches the server, whose
	// writes still succeed (into socket buffers) but are never handled.
	cutSilent cutMode = "silent"
	// cutRST: an abortive close (SO_LINGER 0): the server gets an RST at
	// once — a phone whose network stack reset the connection, or a
	// middlebox that did.
	cutRST cutMode = "rst"
)

func parseCut(s string) (cutMode, error) {
	switch m := cutMode(s); m {
	case cutSilent, cutRST:
		return m, nil
	}
	return "", fmt.Errorf("--cut %q: want silent or rst", s)
}

// cut abandons the session's connection as mode says. The client's reader
// stops handling stanzas at once.
func (c *client) cut(mode cutMode) {
	c.sm.cut.Store(true)
	c.closing.Store(true) // its end is no anomaly
	if mode == cutRST {
		if tc, ok := c.raw.(interface{ SetLinger(int) error }); ok {
			_ = tc.SetLinger(0)
		}
		c.raw.Close()
	}
}

// abandon closes a cut connection after the resumption (abortively: the
// server has taken the session to the new connection and closed the old).
func (c *client) abandon() {
	if tc, ok := c.raw.(interface{ SetLinger(int) error }); ok {
		_ = tc.SetLinger(0)
	}
	c.raw.Close()
}

// errResumeFailed: the server answered <failed/> to the resumption.
var errResumeFailed = errors.New("resumption failed")

// resume logs in again as old's account from a new connection and resumes
// old's session (XEP-0198 §5) instead of binding. It returns the new client
// (not yet reading: the caller runs its readLoop) and the number of our
// stanzas the server says it did not get (which this tool does not resend;
// the caller counts them). On <failed/> the error wraps errResumeFailed.
func (d *dialer) resume(ctx context.Context, old *client, password string) (*client, uint32, error) {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	raw, err := d.dialTCP(ctx)
	if err != nil {
		return nil, 0, errf("connect", err)
	}
	deadline, _ := ctx.Deadline()
	_ = raw.SetDeadline(deadline)
	c := &client{idx: old.idx, local: old.local, bare: old.bare, full: old.full, handle: old.handle, conn: raw, raw: raw, d: d,
		chat: old.chat, pres: old.pres, res: old.res}
	unacked, err := c.negotiateResume(d, password, old.sm)
	if err != nil {
		raw.Close()
		return nil, 0, err
	}
	_ = raw.SetDeadline(time.Time{})
	c.loggedIn = time.Since(t0)
	return c, unacked, nil
}

func (c *client) negotiateResume(d *dialer, password string, prev *smState) (uint32, error) {
	h := prev.h.Load()
	resume := "<resume xmlns='" + nsSM + "' previd='" + escapeAttr(prev.id) + "' h='" + strconv.FormatUint(uint64(h), 10) + "'/>"
	// With --sasl2, inside <authenticate/> where the server offers it
	// (XEP-0388 §2.5): one round trip, no stream restart.
	c.inlineResume = resume
	after, err := c.connectAuth(d, password)
	if err != nil {
		return 0, err
	}
	var el *stanza.Element
	if r := c.sasl2Done.Child(nsSM, "resumed"); r != nil {
		el = r
	} else if f := c.sasl2Done.Child(nsSM, "failed"); f != nil {
		el = f
	} else {
		if after.Child(nsSM, "sm") == nil {
			return 0, errors.New("resume: urn:xmpp:sm:3 not offered")
		}
		if err := c.write([]byte(resume)); err != nil {
			return 0, errf("resume", err)
		}
		if el, err = c.expect("resume"); err != nil {
			return 0, err
		}
	}
	switch {
	case el.Is(nsSM, "resumed"):
		got, err := parseH(el)
		if err != nil {
			return 0, fmt.Errorf("resumed: %w", err)
		}
		unacked, ok := ackAfter(got, prev.out.Load())
		if !ok {
			return 0, fmt.Errorf("resumed: h=%d but only %d stanzas were sent", got, prev.out.Load())
		}
		s := &smState{id: prev.id, resumable: true, every: prev.every}
		s.h.Store(h)
		s.out.Store(prev.out.Load())
		s.acked.Store(got)
		s.lastR = s.out.Load()
		c.sm = s
		return unacked, nil
	case el.Is(nsSM, "failed"):
		return 0, fmt.Errorf("%w: %s (h=%s)", errResumeFailed, failureCond(el), el.Get("h"))
	}
	return 0, fmt.Errorf("resume: got <%s xmlns='%s'/>", el.Local, el.Space)
}

// smTotals sums the stream management counters of a run's sessions.
type smTotals struct {
	sessions, acks, answers, badAcks int64
	unackedEnd                       int64 // our stanzas still unacknowledged after the final <r/>
	h, out                           int64
}

// smSettle asks every session for a final ack, waits up to 5 s for all of
// them, and sums the counters.
func smSettle(ctx context.Context, clients []*client) smTotals {
	for _, c := range clients {
		if c != nil && c.sm != nil {
			_ = c.write([]byte("<r xmlns='" + nsSM + "'/>"))
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		all := true
		for _, c := range clients {
			if c != nil && c.sm != nil && c.sm.unacked() != 0 && !c.dropped.Load() {
				all = false
				break
			}
		}
		if all {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var t smTotals
	for _, c := range clients {
		if c == nil || c.sm == nil {
			continue
		}
		s := c.sm
		t.sessions++
		t.acks += s.acks.Load()
		t.answers += s.answers.Load()
		t.badAcks += s.badAcks.Load()
		t.unackedEnd += int64(s.unacked())
		t.h += int64(s.h.Load())
		t.out += int64(s.out.Load())
	}
	return t
}

func (t smTotals) report(r *report) {
	r.add("sm_sessions", "sessions with stream management", float64(t.sessions), "")
	r.add("sm_stanzas_out", "stanzas sent (counted for acks)", float64(t.out), "")
	r.add("sm_stanzas_in", "stanzas handled (h)", float64(t.h), "")
	r.add("sm_acks", "acks (<a/>) received", float64(t.acks), "")
	r.add("sm_answers", "server <r/> answered", float64(t.answers), "")
	r.add("sm_unacked_end", "stanzas unacknowledged after a final <r/>", float64(t.unackedEnd), "")
	if t.badAcks > 0 {
		r.add("sm_bad_acks", "acks with a bad h (more than sent, or not a number)", float64(t.badAcks), "")
	}
	r.Anomalies += int(t.unackedEnd + t.badAcks)
}
