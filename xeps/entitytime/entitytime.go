// Package entitytime implements XEP-0202: Entity Time (version 2.0), server side.
package entitytime

import (
	"context"
	"time"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// XEP is the number of the extension this package implements.
const XEP = "0202"

// NS is the entity time namespace.
const NS = "urn:xmpp:time"

// Module answers time queries to the server, in UTC: a server's local zone is
// an accident of deployment, not information worth publishing.
type Module struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

var _ xeps.Module = Module{}

// Name implements xeps.Module.
func (Module) Name() string { return "time" }

// Register implements xeps.Module.
func (m Module) Register(h *xeps.Host) error {
	now := m.Now
	if now == nil {
		now = time.Now
	}
	h.AdvertiseFeature(NS)
	h.HandleIQ("get", NS, "time", xeps.ToServer, func(context.Context, *stanza.IQ) (*stanza.Element, error) {
		t := stanza.New(NS, "time")
		t.Append(stanza.New(NS, "tzo").AppendText("Z"))
		t.Append(stanza.New(NS, "utc").AppendText(now().UTC().Format("2006-01-02T15:04:05.000Z")))
		return t, nil
	})
	return nil
}
