// Package disco implements XEP-0030: Service Discovery (version 2.5), server
// side. What it answers is built only from what modules registered on the
// Host, so advertised features cannot drift from handled ones.
package disco

import (
	"context"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// XEP is the number of the extension this package implements.
const XEP = "0030"

// Namespaces of XEP-0030.
const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
)

// Module answers disco#info and disco#items for the server and for accounts.
// Register it after every module whose features it lists: it reads the Host
// when answering, so the order only matters for readability.
type Module struct{}

var _ xeps.Module = Module{}

// Name implements xeps.Module.
func (Module) Name() string { return "disco" }

// Register implements xeps.Module.
func (Module) Register(h *xeps.Host) error {
	h.AdvertiseFeature(NSInfo)
	h.AdvertiseFeature(NSItems)
	h.AdvertiseIdentity(xeps.Identity{Category: "server", Type: "im", Name: "xmppd"})
	h.AdvertiseAccountFeature(NSInfo)
	h.AdvertiseAccountFeature(NSItems)

	h.HandleIQ("get", NSInfo, "query", xeps.ToServer, func(_ context.Context, iq *stanza.IQ) (*stanza.Element, error) {
		if iq.Payload.Get("node") != "" {
			return nil, stanza.NewError("item-not-found")
		}
		q := stanza.New(NSInfo, "query")
		for _, id := range h.Identities() {
			el := stanza.New(NSInfo, "identity").Set("category", id.Category).Set("type", id.Type).Set("name", id.Name)
			q.Append(el)
		}
		appendFeatures(q, h.Features())
		return q, nil
	})
	h.HandleIQ("get", NSItems, "query", xeps.ToServer, func(_ context.Context, iq *stanza.IQ) (*stanza.Element, error) {
		if iq.Payload.Get("node") != "" {
			return nil, stanza.NewError("item-not-found")
		}
		return stanza.New(NSItems, "query"), nil
	})
	h.HandleIQ("get", NSInfo, "query", xeps.ToAccount, func(_ context.Context, iq *stanza.IQ) (*stanza.Element, error) {
		if iq.Payload.Get("node") != "" {
			return nil, stanza.NewError("item-not-found")
		}
		// XEP-0030 §3.2: an account's bare JID has the identity account/registered.
		q := stanza.New(NSInfo, "query")
		q.Append(stanza.New(NSInfo, "identity").Set("category", "account").Set("type", "registered"))
		appendFeatures(q, h.AccountFeatures())
		return q, nil
	})
	h.HandleIQ("get", NSItems, "query", xeps.ToAccount, func(context.Context, *stanza.IQ) (*stanza.Element, error) {
		return stanza.New(NSItems, "query"), nil
	})
	return nil
}

func appendFeatures(q *stanza.Element, features []string) {
	for _, f := range features {
		q.Append(stanza.New(NSInfo, "feature").Set("var", f))
	}
}
