// Package xepstest helps the tests of modules: what c2s would do around a
// module that a test drives through the Host alone.
package xepstest

import (
	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// Bind binds a detached session for each full JID in h's registry, as c2s
// does at resource binding, unless one is bound already, and returns them.
func Bind(h *xeps.Host, fulls ...stanza.JID) []*session.Session {
	out := make([]*session.Session, 0, len(fulls))
	for _, j := range fulls {
		s := h.Sessions().Session(j.String())
		if s == nil {
			s = session.New(j.String(), 8)
			s.SetAddress(j)
			h.Sessions().Bind(s)
		}
		out = append(out, s)
	}
	return out
}
