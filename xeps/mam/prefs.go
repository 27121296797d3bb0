package mam

import (
	"bytes"
	"context"
	"slices"
	"strings"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// maxPrefsJIDs bounds each of an account's always and never lists.
const maxPrefsJIDs = 1000

// prefs are one account's XEP-0441 preferences.
type prefs struct {
	def           string   // "" = the server's default
	always, never []string // JIDs as written (normalized), sorted
}

// prefsKey is the account's key in the preferences store.
func prefsKey(owner stanza.JID) []byte {
	return xeps.UserKeyPrefix(owner.Domainpart(), owner.Localpart())
}

// encode: the default on the first line, then "a JID" or "n JID" per line
// (a JID holds no newline).
func (p *prefs) encode() []byte {
	var b bytes.Buffer
	b.WriteString(p.def)
	for _, j := range p.always {
		b.WriteString("\na ")
		b.WriteString(j)
	}
	for _, j := range p.never {
		b.WriteString("\nn ")
		b.WriteString(j)
	}
	return b.Bytes()
}

func decodePrefs(v []byte) *prefs {
	lines := strings.Split(string(v), "\n")
	p := &prefs{def: lines[0]}
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, "a "):
			p.always = append(p.always, l[2:])
		case strings.HasPrefix(l, "n "):
			p.never = append(p.never, l[2:])
		}
	}
	return p
}

// loadPrefs returns owner's preferences (nil: none set).
func (a *archive) loadPrefs(ctx context.Context, owner stanza.JID) (*prefs, error) {
	key := owner.String()
	if p, ok := a.prefs.Get(key); ok {
		return p, nil
	}
	gen := a.prefs.Generation(key)
	v, err := a.kv.Get(ctx, prefsKey(owner))
	if err != nil {
		return nil, err
	}
	var p *prefs
	if v != nil {
		p = decodePrefs(v)
	}
	a.prefs.Add(key, p, gen)
	return p, nil
}

// shouldArchive applies owner's preferences to a message exchanged with
// other (XEP-0441 §2.2: a JID listed wins over the default; a bare JID in a
// list covers all its resources).
func (a *archive) shouldArchive(ctx context.Context, owner, other stanza.JID) bool {
	p, err := a.loadPrefs(ctx, owner)
	if err != nil {
		// Archive: a copy too many can be deleted, one too few is lost.
		a.logger.Error("reading archive preferences", "owner", owner.String(), "err", err)
		return true
	}
	def := a.def
	if p != nil {
		bare, full := other.Bare().String(), other.String()
		listed := func(l []string) bool {
			_, ok := slices.BinarySearch(l, bare)
			if !ok && full != bare {
				_, ok = slices.BinarySearch(l, full)
			}
			return ok
		}
		if listed(p.never) {
			return false
		}
		if listed(p.always) {
			return true
		}
		if p.def != "" {
			def = p.def
		}
	}
	switch def {
	case PolicyNever:
		return false
	case PolicyRoster:
		// A contact is "in the roster" when a subscription exists either
		// way; the roster reader tells no more than that.
		sub, err := a.host.Roster().Subscription(ctx, owner, other.Bare())
		if err != nil {
			a.logger.Error("reading the roster for archiving", "owner", owner.String(), "err", err)
			return true
		}
		return sub != "none" && sub != ""
	}
	return true
}

// ownArchive checks that the IQ is the account's own: only the account may
// read or configure its archive (XEP-0313 §4, §8).
func ownArchive(iq *stanza.IQ) (stanza.JID, *stanza.Error) {
	owner := iq.From.Bare()
	if owner.Localpart() == "" {
		return stanza.JID{}, stanza.Errorf("forbidden", "only an account can query its archive")
	}
	if iq.Get("to") != "" && !iq.To.Bare().Equal(owner) {
		return stanza.JID{}, stanza.Errorf("forbidden", "an archive is only open to its owner")
	}
	return owner, nil
}

// getPrefs answers a preferences request.
func (a *archive) getPrefs(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
	owner, serr := ownArchive(iq)
	if serr != nil {
		return nil, serr
	}
	p, err := a.loadPrefs(ctx, owner)
	if err != nil {
		return nil, err
	}
	return a.prefsElement(iq.Payload.Space, p), nil
}

func (a *archive) prefsElement(ns string, p *prefs) *stanza.Element {
	def := a.def
	if p == nil {
		p = &prefs{}
	}
	if p.def != "" {
		def = p.def
	}
	el := stanza.New(ns, "prefs").Set("default", def)
	list := func(name string, jids []string) {
		l := stanza.New(ns, name)
		for _, j := range jids {
			l.Append(stanza.New(ns, "jid").AppendText(j))
		}
		el.Append(l)
	}
	list("always", p.always)
	list("never", p.never)
	return el
}

// parsePrefs reads a prefs set request.
func parsePrefs(el *stanza.Element) (*prefs, *stanza.Error) {
	p := &prefs{def: el.Get("default")}
	switch p.def {
	case PolicyAlways, PolicyRoster, PolicyNever:
	default:
		return nil, stanza.Errorf("bad-request", "default must be always, roster or never")
	}
	seen := map[string]bool{}
	for _, c := range el.Children() {
		if c.Space != el.Space || c.Local != "always" && c.Local != "never" {
			continue
		}
		for _, j := range c.Children() {
			if !j.Is(el.Space, "jid") {
				continue
			}
			jid, err := stanza.ParseJID(strings.TrimSpace(j.Text()))
			if err != nil {
				return nil, stanza.Errorf("jid-malformed", "%q is not a JID", j.Text())
			}
			s := jid.String()
			if seen[s] {
				return nil, stanza.Errorf("bad-request", "%s is listed twice", s)
			}
			seen[s] = true
			if c.Local == "always" {
				p.always = append(p.always, s)
			} else {
				p.never = append(p.never, s)
			}
		}
	}
	if len(p.always) > maxPrefsJIDs || len(p.never) > maxPrefsJIDs {
		return nil, stanza.Errorf("not-acceptable", "at most %d JIDs per list", maxPrefsJIDs)
	}
	slices.Sort(p.always)
	slices.Sort(p.never)
	return p, nil
}

// setPrefs replaces the account's preferences and answers with them.
func (a *archive) setPrefs(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
	owner, serr := ownArchive(iq)
	if serr != nil {
		return nil, serr
	}
	p, serr := parsePrefs(iq.Payload)
	if serr != nil {
		return nil, serr
	}
	a.prefsMu.Lock()
	defer a.prefsMu.Unlock()
	if err := a.kv.Put(ctx, prefsKey(owner), p.encode()); err != nil {
		return nil, err
	}
	a.prefs.Set(owner.String(), p)
	return a.prefsElement(iq.Payload.Space, p), nil
}
