package c2s

// Restart without clients noticing: at shutdown every resumable session is
// saved — bound JID, presence, pushes asked for, unacknowledged and queued
// stanzas, the h counters, the resumption id and its expiry — and its
// socket closed without </stream:stream> and without telling contacts
// anything; the next start puts it back, hibernated, for the client's
// <resume/> (docs/design/009-stream-management.md).

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
)

// nsSaved names the elements of a saved session: ours, never on the wire.
const nsSaved = "urn:xmppd:c2s:saved-session"

// suspend takes every resumable session away from its connection, which is
// closed at once with nothing more written: the client sees a dropped
// connection and will resume. Contacts hear nothing. It returns the
// sessions, claimed (no <resume/> and no expiry touches them any more),
// with when each would have expired.
func (s *Server) suspend() []suspended {
	var out []suspended
	for _, sess := range s.cfg.Sessions.AllResumable() {
		m := sess.SM()
		exp := m.Expires()
		if exp.IsZero() {
			exp = time.Now().Add(m.Timeout) // attached: the full wait from now
		}
		if !m.Claim() {
			continue
		}
		if t, ok := sess.Transport().(*Session); ok && t != nil {
			t.resumedAway.Store(true)
			t.out.AbortDetached()
			sess.Detach(t)
		}
		out = append(out, suspended{sess, exp})
	}
	return out
}

type suspended struct {
	sess    *session.Session
	expires time.Time
}

// save writes the suspended sessions to the store, each under its
// resumption id.
func (s *Server) save(ctx context.Context, list []suspended) error {
	var errs []error
	for _, sp := range list {
		b := savedSession(sp.sess, sp.expires).AppendXML(nil, "")
		if err := s.cfg.SavedSessions.Put(ctx, []byte(sp.sess.SM().ID), b); err != nil {
			errs = append(errs, fmt.Errorf("c2s: saving session %s: %w", sp.sess.Full(), err))
		}
	}
	if len(list) > 0 {
		s.log.Info("resumable sessions saved", "count", len(list)-len(errs))
	}
	return errors.Join(errs...)
}

// savedSession is a session as the store keeps it.
func savedSession(sess *session.Session, expires time.Time) *stanza.Element {
	m := sess.SM()
	_, acked := m.Counters()
	_, prio := sess.Available()
	avail, _ := sess.Available()
	el := stanza.New(nsSaved, "session").
		Set("id", m.ID).
		Set("jid", sess.Full()).
		Set("in", strconv.FormatUint(uint64(m.In.Load()), 10)).
		Set("acked", strconv.FormatUint(uint64(acked), 10)).
		Set("expires", strconv.FormatInt(expires.UnixMilli(), 10)).
		Set("timeout", strconv.FormatInt(m.Timeout.Milliseconds(), 10)).
		Set("interests", strconv.FormatUint(uint64(sess.Interests()), 10))
	if avail {
		el.Set("priority", strconv.Itoa(prio))
	}
	if sess.Announced() {
		el.Set("announced", "true")
	}
	if b := sess.Broadcast(); b != nil {
		el.Append(stanza.New(nsSaved, "broadcast").Append(b))
	}
	for _, to := range sess.DirectedTo() {
		el.Append(stanza.New(nsSaved, "directed").Set("to", to))
	}
	unacked := stanza.New(nsSaved, "unacked")
	for _, st := range m.TakeUnacked() {
		unacked.Append(st)
	}
	queued := stanza.New(nsSaved, "queued")
	for _, st := range sess.Queue().TakeAll() {
		if session.IsCounted(st) {
			queued.Append(st)
		}
	}
	return el.Append(unacked, queued)
}

// Restore puts the sessions saved at the last shutdown back, hibernated:
// registered under their JID with their presence (contacts saw nothing
// change), waiting for a <resume/> until their saved expiry. One whose
// expiry passed while the server was down ends at once, as on timeout:
// what it never got goes to offline storage. Call it after the router is
// connected and before the listeners accept.
func (s *Server) Restore(ctx context.Context) error {
	store := s.cfg.SavedSessions
	if store == nil {
		return nil
	}
	var keys [][]byte
	var restored []*session.Session
	var waits []time.Duration
	err := store.Scan(ctx, nil, func(key, value []byte) error {
		keys = append(keys, append([]byte(nil), key...))
		sess, wait, err := s.restoreOne(value)
		if err != nil {
			s.log.Error("a saved session cannot be restored", "id", string(key), "err", err)
			return nil
		}
		restored = append(restored, sess)
		waits = append(waits, wait)
		return nil
	})
	if err != nil {
		return fmt.Errorf("c2s: reading saved sessions: %w", err)
	}
	for i, sess := range restored {
		s.hibernate(sess, max(waits[i], time.Millisecond))
	}
	for _, k := range keys {
		if err := store.Delete(ctx, k); err != nil {
			return fmt.Errorf("c2s: deleting a saved session: %w", err)
		}
	}
	if len(restored) > 0 {
		s.log.Info("resumable sessions restored", "count", len(restored))
	}
	return nil
}

// restoreOne registers one saved session, hibernated, and returns how long
// it may still wait.
func (s *Server) restoreOne(b []byte) (*session.Session, time.Duration, error) {
	el, err := parseSaved(b)
	if err != nil {
		return nil, 0, err
	}
	addr, _ := stanza.ParseJID(el.Get("jid"))
	in, _ := strconv.ParseUint(el.Get("in"), 10, 32)
	acked, _ := strconv.ParseUint(el.Get("acked"), 10, 32)
	expMs, _ := strconv.ParseInt(el.Get("expires"), 10, 64)
	timeoutMs, _ := strconv.ParseInt(el.Get("timeout"), 10, 64)
	interests, _ := strconv.ParseUint(el.Get("interests"), 10, 32)

	sess := session.New(newID(), s.cfg.QueueSize)
	sess.SetAddress(addr)
	if bc := el.Child(nsSaved, "broadcast"); bc != nil && bc.FirstChild() != nil {
		sess.SetBroadcast(bc.FirstChild())
	}
	if p := el.Get("priority"); p != "" {
		sess.TrackPresence(stanza.New(stanza.NSClient, "presence").
			Append(stanza.New(stanza.NSClient, "priority").AppendText(p)))
	}
	sess.SetAnnounced(el.Get("announced") == "true")
	for _, d := range el.Children() {
		if d.Is(nsSaved, "directed") {
			sess.Directed(d.Get("to"), true)
		}
	}
	if interests != 0 {
		sess.SetInterested(session.Interest(interests))
	}
	m := session.NewSM(el.Get("id"), time.Duration(timeoutMs)*time.Millisecond, s.cfg.MaxUnacked)
	m.Restore(uint32(in), uint32(acked), children(el, "unacked"))
	sess.SetSM(m)
	sess.Queue().PushFront(children(el, "queued"))
	if old := s.cfg.Sessions.Bind(sess); old != nil {
		old.Close(&stanza.StreamError{Condition: "conflict"})
	}
	s.cfg.Sessions.AddResumable(sess)
	return sess, time.Until(time.UnixMilli(expMs)), nil
}

// parseSaved reads and checks a saved session.
func parseSaved(b []byte) (*stanza.Element, error) {
	el, err := stanza.ParseElement(b)
	if err != nil {
		return nil, err
	}
	if !el.Is(nsSaved, "session") {
		return nil, errors.New("not a saved session")
	}
	if el.Get("id") == "" {
		return nil, errors.New("no resumption id")
	}
	addr, err := stanza.ParseJID(el.Get("jid"))
	if err != nil || addr.Resourcepart() == "" || addr.Localpart() == "" {
		return nil, fmt.Errorf("bad jid %q", el.Get("jid"))
	}
	for _, a := range []string{"in", "acked"} {
		if _, err := strconv.ParseUint(el.Get(a), 10, 32); err != nil {
			return nil, fmt.Errorf("bad %s: %w", a, err)
		}
	}
	for _, a := range []string{"expires", "timeout"} {
		if _, err := strconv.ParseInt(el.Get(a), 10, 64); err != nil {
			return nil, fmt.Errorf("bad %s: %w", a, err)
		}
	}
	if _, err := strconv.ParseUint(el.Get("interests"), 10, 32); err != nil {
		return nil, fmt.Errorf("bad interests: %w", err)
	}
	if p := el.Get("priority"); p != "" {
		if _, err := strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("bad priority: %w", err)
		}
	}
	for _, c := range append(children(el, "unacked"), children(el, "queued")...) {
		if !session.IsCounted(c) {
			return nil, errors.New("a saved stanza is not a stanza")
		}
	}
	return el, nil
}

// children returns the children of el's child named local (none if absent).
func children(el *stanza.Element, local string) []*stanza.Element {
	if c := el.Child(nsSaved, local); c != nil {
		return c.Children()
	}
	return nil
}
