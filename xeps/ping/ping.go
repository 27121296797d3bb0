// Package ping implements XEP-0199: XMPP Ping (version 2.0.1), server side:
// a ping addressed to the server, or to an account, is answered with an empty result.
//
// It is the reference module: copy it to start a new one.
package ping

import (
	"context"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// XEP is the number of the extension this package implements.
const XEP = "0199"

// NS is the ping namespace.
const NS = "urn:xmpp:ping"

// Module answers pings.
type Module struct{}

var _ xeps.Module = Module{}

// Name implements xeps.Module.
func (Module) Name() string { return "ping" }

// Register implements xeps.Module.
func (Module) Register(h *xeps.Host) error {
	h.AdvertiseFeature(NS)
	h.HandleIQ("get", NS, "ping", xeps.ToServer, pong)
	// A ping to an account's bare JID (or with no 'to' at all) is answered by
	// the server on the user's behalf (RFC 6120 §10.3.3): clients use it as a
	// keepalive and expect an answer.
	h.HandleIQ("get", NS, "ping", xeps.ToAccount, pong)
	return nil
}

// pong answers every ping with an empty result.
func pong(context.Context, *stanza.IQ) (*stanza.Element, error) { return nil, nil }
