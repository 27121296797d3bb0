package c2s

// XEP-0198 stream management on client streams: acks both ways, the
// unacknowledged window, resumption (also inline in SASL2), enabling inline
// in Bind 2, and hibernation of a session whose connection dropped
// (docs/design/009-stream-management.md).

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
)

// ackEvery is how many stanzas the server sends before it asks the client
// for an ack (<r/>) whatever else happens; a queue that goes idle with
// stanzas unacknowledged asks after ackIdle. A request per stanza would
// double the elements on the wire; Prosody asks at a queue threshold too.
const (
	ackEvery = 10
	ackIdle  = time.Second
)

var (
	smRequest = stanza.New(session.NSSM, "r")
	smFeature = stanza.New(session.NSSM, "sm")
)

// smFailed is <failed/> with a stanza error condition (XEP-0198 §6); h, if
// not negative, is the count of stanzas handled from the client.
func smFailed(cond string, h int64) *stanza.Element {
	f := stanza.New(session.NSSM, "failed")
	if h >= 0 {
		f.Set("h", strconv.FormatInt(h, 10))
	}
	return f.Append(stanza.New(stanza.NSStanzas, cond))
}

// tooHigh is the application condition of an h that acknowledges more than
// was sent (XEP-0198 §4).
func tooHigh(h, sent uint32) *stanza.Element {
	return stanza.New(session.NSSM, "handled-count-too-high").
		Set("h", strconv.FormatUint(uint64(h), 10)).Set("send-count", strconv.FormatUint(uint64(sent), 10))
}

func parseH(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// enableSM turns stream management on for the bound session and returns the
// <enabled/> to send. With resume, the session gets a resumption id and may
// hibernate for the resume timeout (or the client's max, if shorter).
func (s *Session) enableSM(el *stanza.Element) *stanza.Element {
	cfg := &s.srv.cfg
	resume := el.Get("resume") == "true" || el.Get("resume") == "1"
	timeout := cfg.ResumeTimeout
	if max, err := strconv.Atoi(el.Get("max")); err == nil && max > 0 && time.Duration(max)*time.Second < timeout {
		timeout = time.Duration(max) * time.Second
	}
	id := ""
	if resume {
		id = newID()
	}
	m := session.NewSM(id, timeout, cfg.MaxUnacked)
	s.sess.SetSM(m)
	enabled := stanza.New(session.NSSM, "enabled")
	if resume {
		cfg.Sessions.AddResumable(s.sess)
		enabled.Set("id", id).Set("resume", "true").Set("max", strconv.Itoa(int(timeout/time.Second)))
	}
	s.logAt(slog.LevelDebug, "stream management enabled", "resume", resume)
	return enabled
}

// smElement handles an XEP-0198 element on a bound stream.
func (s *Session) smElement(el *stanza.Element) error {
	m := s.sess.SM()
	switch el.Local {
	case "enable":
		if m != nil {
			s.out.Enqueue(smFailed("unexpected-request", -1), false)
			return nil
		}
		s.out.Enqueue(s.enableSM(el), false)
	case "r":
		if m == nil {
			s.out.Enqueue(smFailed("unexpected-request", -1), false)
			return nil
		}
		s.out.Enqueue(stanza.New(session.NSSM, "a").Set("h", strconv.FormatUint(uint64(m.In.Load()), 10)), false)
	case "a":
		if m == nil {
			s.out.Enqueue(smFailed("unexpected-request", -1), false)
			return nil
		}
		h, ok := parseH(el.Get("h"))
		if !ok {
			return &stanza.StreamError{Condition: "invalid-xml", Text: "<a/> needs an 'h' between 0 and 2^32-1"}
		}
		if ok, sent := m.Ack(h); !ok {
			return &stanza.StreamError{Condition: "undefined-condition", Text: "h acknowledges more stanzas than were sent", App: tooHigh(h, sent)}
		}
	case "resume":
		// Only a new stream resumes, before it binds (XEP-0198 §5).
		s.out.Enqueue(smFailed("unexpected-request", -1), false)
	default:
		return &stanza.StreamError{Condition: "unsupported-stanza-type", Text: "<" + el.Local + "/> is not supported here"}
	}
	return nil
}

// smNegotiation handles an XEP-0198 element before binding: a <resume/>
// once authenticated; anything else fails (enable before bind is
// unexpected-request, XEP-0198 §3).
func (s *Session) smNegotiation(ctx context.Context, el *stanza.Element) error {
	if el.Local != "resume" || !s.authenticated {
		return s.writeRaw(smFailed("unexpected-request", -1).AppendXML(nil, stanza.NSClient))
	}
	resumed, failed, m := s.resumeSM(el)
	if failed != nil {
		return s.writeRaw(failed.AppendXML(nil, stanza.NSClient))
	}
	defer m.Release()
	if err := s.writeRaw(resumed.AppendXML(nil, stanza.NSClient)); err != nil {
		// The session waits for another try, as after any broken connection.
		s.sess.Detach(s)
		return err
	}
	s.sess.Attach(s)
	s.logAt(slog.LevelInfo, "resumed")
	return nil
}

// resumeSM takes over the session a <resume/> names (XEP-0198 §5): the old
// connection, if any, is closed; the stanzas the client did not acknowledge
// go back to the front of the session's queue; this connection drains the
// session's queue from now on. On success it returns <resumed/> and the
// session's SM, claimed: the caller writes <resumed/>, attaches, then
// releases it. Otherwise it returns the <failed/> to send.
func (s *Session) resumeSM(el *stanza.Element) (resumed, failed *stanza.Element, m *session.SM) {
	cfg := &s.srv.cfg
	h, ok := parseH(el.Get("h"))
	if !ok || el.Get("previd") == "" {
		s.logAt(slog.LevelDebug, "resumption refused: bad h or previd", "h", el.Get("h"))
		return nil, smFailed("bad-request", -1), nil
	}
	old := cfg.Sessions.Resumable(el.Get("previd"))
	// A resumption id is good for its own account only: another's is as
	// unknown as a made-up one.
	if old == nil || bareOf(old.Full()) != s.user+"@"+s.domain || old.SM() == nil {
		s.logAt(slog.LevelDebug, "resumption refused: no such session of this account", "found", old != nil)
		return nil, smFailed("item-not-found", -1), nil
	}
	m = old.SM()
	if !m.Claim() {
		s.logAt(slog.LevelDebug, "resumption refused: the session is over or being resumed")
		return nil, smFailed("item-not-found", -1), nil
	}
	if t, ok := old.Transport().(*Session); ok && t != nil {
		// The old connection loses the session: it writes nothing more of
		// its queue, and its end leaves the session alone.
		t.resumedAway.Store(true)
		t.out.Detach(&stanza.StreamError{Condition: "conflict", Text: "the session was resumed on another connection"})
		old.Detach(t)
	}
	if ok, sent := m.Ack(h); !ok {
		m.Release()
		s.srv.hibernate(old, m.Timeout)
		f := smFailed("undefined-condition", int64(m.In.Load()))
		f.Append(tooHigh(h, sent))
		return nil, f, nil
	}
	// Sent again, and counted again, ahead of what waited.
	old.Queue().PushFront(m.TakeUnacked())
	s.sess = old
	s.out.SetQueue(old.Queue())
	s.addr, s.full = old.Address(), old.Full()
	s.ctx = session.NewContext(s.ctx, old)
	resumed = stanza.New(session.NSSM, "resumed").
		Set("h", strconv.FormatUint(uint64(m.In.Load()), 10)).Set("previd", m.ID)
	return resumed, nil, m
}

// taken is the queue's Taken hook: with stream management on, the stanzas
// written are kept until acknowledged, and the client is asked for an ack
// every ackEvery stanzas, or ackIdle after the queue went idle.
func (s *Session) taken(batch []*stanza.Element) (*stanza.Element, bool, bool) {
	m := s.sess.SM()
	if m == nil {
		return nil, false, false
	}
	request, kept, overflow := m.Taken(batch, ackEvery)
	if overflow && s.overflowed.CompareAndSwap(false, true) {
		// Not here: the queue's lock is held. The session ends as one whose
		// resumption timed out (finish: never hibernated).
		go func() {
			s.logAt(slog.LevelWarn, "too many unacknowledged stanzas: closing", "max", m.MaxUnacked)
			s.CloseWithError(&stanza.StreamError{Condition: "policy-violation", Text: "too many unacknowledged stanzas"})
		}()
	}
	if request {
		return smRequest, true, kept
	}
	if m.NeedsRequest() && s.ackArmed.CompareAndSwap(false, true) {
		if t := s.ackTimer.Load(); t != nil {
			t.Reset(ackIdle)
		} else {
			s.ackTimer.Store(time.AfterFunc(ackIdle, s.idleAck))
		}
	}
	return nil, false, kept
}

// idleAck asks for an ack when stanzas went unacknowledged for ackIdle.
func (s *Session) idleAck() {
	s.ackArmed.Store(false)
	if m := s.sess.SM(); m != nil && m.NeedsRequest() {
		s.out.Enqueue(smRequest, false)
	}
}

// smEnd decides, when the connection of a bound session ends, what becomes
// of the session: gone (another connection resumed it, or is resuming it:
// not ours to touch), hibernated (resumable and the connection broke without
// </stream:stream>: it waits for a <resume/>), or over (end it now).
func (s *Session) smEnd() (gone, hibernated bool) {
	if s.resumedAway.Load() {
		return true, false
	}
	m := s.sess.SM()
	if m == nil {
		return false, false
	}
	if m.ID != "" && s.broken && !s.overflowed.Load() {
		if s.srv.hibernate(s.sess, m.Timeout) {
			s.logAt(slog.LevelInfo, "hibernated", "timeout", m.Timeout)
			return false, true
		}
		return true, false
	}
	if !m.End() {
		return true, false
	}
	s.srv.cfg.Sessions.RemoveResumable(s.sess)
	return false, false
}

// hibernate makes a detached resumable session wait d for a <resume/>; then
// it ends (expire). False: the session is over or being resumed.
func (srv *Server) hibernate(sess *session.Session, d time.Duration) bool {
	return sess.SM().Hibernate(d, func() { srv.expire(sess) })
}

// expire ends a hibernated session nobody resumed: out of the registry;
// what it never got — unacknowledged, then queued — to the undeliverable
// stage (other resources, offline storage: never dropped, never twice);
// only then do contacts learn it is unavailable.
func (srv *Server) expire(sess *session.Session) {
	ctx := session.NewContext(context.Background(), sess)
	srv.log.Info("hibernated session expired", "jid", sess.Full())
	srv.cfg.Sessions.RemoveResumable(sess)
	srv.cfg.Sessions.Unbind(sess)
	srv.undeliver(ctx, sess)
	if sess.SetUnavailable() {
		un := stanza.New(stanza.NSClient, "presence").Set("type", "unavailable").Set("from", sess.Full())
		srv.cfg.Router.RouteFromClient(ctx, un)
	}
	if srv.cfg.OnClosed != nil {
		srv.cfg.OnClosed(ctx, sess)
	}
	// Modules may hand back at the close what they held for the session
	// (CSI's held messages go back into its queue): that is undelivered too.
	srv.undeliver(ctx, sess)
}

// undeliver hands what a session's client never got — the unacknowledged
// stanzas (older), then the queue — to the undeliverable stage.
func (srv *Server) undeliver(ctx context.Context, sess *session.Session) {
	if srv.cfg.Undeliverable == nil {
		return
	}
	var left []*stanza.Element
	if m := sess.SM(); m != nil {
		left = m.TakeUnacked()
	}
	left = append(left, sess.Queue().TakeAll()...)
	for _, el := range left {
		srv.cfg.Undeliverable(ctx, sess, el)
	}
}

// bareOf returns the bare JID of a full JID string.
func bareOf(full string) string {
	bare, _, _ := strings.Cut(full, "/")
	return bare
}

// replaced ends the stream management of a session a new connection of
// the same resource replaced: it can no longer be resumed. A hibernated
// one has no connection to end it, so what it never got goes to the
// undeliverable stage now (the new session, other resources, offline);
// an attached one's connection ends it as any other.
func (srv *Server) replaced(ctx context.Context, old *session.Session) {
	m := old.SM()
	if m == nil {
		return
	}
	srv.cfg.Sessions.RemoveResumable(old)
	if old.Transport() == nil && m.End() {
		srv.undeliver(session.NewContext(ctx, old), old)
		if srv.cfg.OnClosed != nil {
			srv.cfg.OnClosed(ctx, old)
		}
	}
}
