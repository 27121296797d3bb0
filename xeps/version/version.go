// Package version implements XEP-0092: Software Version (version 1.1), server side.
package version

import (
	"context"
	"runtime"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// XEP is the number of the extension this package implements.
const XEP = "0092"

// NS is the software version namespace.
const NS = "jabber:iq:version"

// Module answers software version queries to the server. The OS is not
// disclosed: operators rarely want to publish it.
type Module struct {
	Software string // software name, e.g. "xmppd"
	Version  string
}

var _ xeps.Module = Module{}

// Name implements xeps.Module.
func (Module) Name() string { return "version" }

// Register implements xeps.Module.
func (m Module) Register(h *xeps.Host) error {
	h.AdvertiseFeature(NS)
	h.HandleIQ("get", NS, "query", xeps.ToServer, func(context.Context, *stanza.IQ) (*stanza.Element, error) {
		q := stanza.New(NS, "query")
		q.Append(stanza.New(NS, "name").AppendText(m.Software))
		q.Append(stanza.New(NS, "version").AppendText(m.Version + " (" + runtime.Version() + ")"))
		return q, nil
	})
	return nil
}
