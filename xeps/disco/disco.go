// Package disco implements XEP-0030: Service Discovery (version 2.5), server
// side. What it answers is built only from what modules registered on the
// Host, so advertised features cannot drift from handled ones.
package disco

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"slices"
	"sort"
	"strings"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// XEP is the number of the extension this package implements.
const XEP = "0030"

// Namespaces of XEP-0030 and XEP-0115.
const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
	NSCaps  = "http://jabber.org/protocol/caps"
)

// CapsNode is the node of the server's entity capabilities (XEP-0115).
const CapsNode = "https://github.com/xmppd/xmppd"

// Module answers disco#info and disco#items for the server and for accounts,
// and offers the server's entity capabilities (XEP-0115) in the stream
// features. Register it LAST: the capabilities hash covers what the modules
// before it registered.
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

	h.AdvertiseFeature(NSCaps)
	ver := CapsVer(h.Identities(), h.Features())
	h.StreamFeature(stanza.New(NSCaps, "c").Set("hash", "sha-1").Set("node", CapsNode).Set("ver", ver))

	h.HandleIQ("get", NSInfo, "query", xeps.ToServer, func(_ context.Context, iq *stanza.IQ) (*stanza.Element, error) {
		node := iq.Payload.Get("node")
		if node != "" && node != CapsNode+"#"+ver {
			return nil, stanza.NewError("item-not-found")
		}
		q := stanza.New(NSInfo, "query").Set("node", node)
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
		// The domain's services (conference., upload., ...), as clients
		// find them (XEP-0030 §4; the MUC, upload and proxy XEPs).
		q := stanza.New(NSItems, "query")
		for _, d := range h.ServiceDomains(iq.To.Domainpart()) {
			q.Append(stanza.New(NSItems, "item").Set("jid", d))
		}
		return q, nil
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

// CapsVer computes the XEP-0115 §5.1 verification string of an entity with
// these identities and features (no extended forms).
func CapsVer(ids []xeps.Identity, features []string) string {
	idStrings := make([]string, len(ids))
	for i, id := range ids {
		// category/type/lang/name; we publish no xml:lang on identities.
		idStrings[i] = id.Category + "/" + id.Type + "//" + id.Name
	}
	sort.Strings(idStrings)
	fs := slices.Clone(features)
	sort.Strings(fs)
	var b strings.Builder
	for _, s := range idStrings {
		b.WriteString(s)
		b.WriteByte('<')
	}
	for _, f := range slices.Compact(fs) {
		b.WriteString(f)
		b.WriteByte('<')
	}
	sum := sha1.Sum([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}
