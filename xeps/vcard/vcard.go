// Package vcard implements XEP-0054: vcard-temp (version 1.2), server side:
// the server stores each user's vCard and answers for it.
//
//   - Get with no 'to' or to the user's own bare JID: the stored vCard, or an
//     empty <vCard/> when there is none (§3.1 allows an error or an empty
//     vCard; clients fetch their own vCard at login, and an empty result is
//     the answer that means "nothing yet" to all of them).
//   - Get to another user's bare JID: anyone may read it, vcard-temp is
//     public (§3.3, §5); none stored, or no such user, is item-not-found
//     (§3.3: service-unavailable or item-not-found; the same answer for both
//     cases, so it does not tell whether the account exists).
//   - Set with no 'to' or to the user's own bare JID replaces the whole vCard
//     (§3.2); to anyone else's it is forbidden (§3.2). An empty <vCard/>
//     deletes it. A vCard larger than MaxSize bytes serialized is refused
//     with not-acceptable (avatars in PHOTO/BINVAL make vCards big; the stanza
//     limit bounds them anyway).
//
// Storage: KeyValue "vcard", key = the bare JID (removed with the account),
// value = the <vCard/> element serialized.
package vcard

import (
	"context"
	"fmt"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// XEP is the number of the extension this package implements.
const XEP = "0054"

// NS is the vcard-temp namespace.
const NS = "vcard-temp"

// DefaultMaxSize bounds a stored vCard when Module.MaxSize is 0.
const DefaultMaxSize = 128 << 10

// Module stores and serves vCards.
type Module struct {
	// MaxSize is the largest vCard accepted, serialized, in bytes (0: DefaultMaxSize).
	MaxSize int
}

var _ xeps.Module = Module{}

// Name implements xeps.Module.
func (Module) Name() string { return "vcard" }

// Register implements xeps.Module.
func (m Module) Register(h *xeps.Host) error {
	limit := m.MaxSize
	if limit <= 0 {
		limit = DefaultMaxSize
	}
	kv := h.KeyValue("vcard")
	// XEP-0054 §4: the feature is advertised by the server, and by accounts,
	// whose vCards the server answers for.
	h.AdvertiseFeature(NS)
	h.AdvertiseAccountFeature(NS)
	h.HandleIQ("get", NS, "vCard", xeps.ToAccount, func(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
		self := iq.To.String() == "" || iq.To.Bare().Equal(iq.From.Bare())
		target := iq.From.Bare()
		if !self {
			target = iq.To.Bare()
		}
		b, err := kv.Get(ctx, []byte(target.String()))
		if err != nil {
			return nil, err
		}
		if b == nil {
			if self {
				return stanza.New(NS, "vCard"), nil
			}
			return nil, stanza.NewError("item-not-found")
		}
		v, err := stanza.ParseElement(b)
		if err != nil {
			return nil, fmt.Errorf("vcard: stored vCard of %s: %w", target, err)
		}
		return v, nil
	})
	h.HandleIQ("set", NS, "vCard", xeps.ToAccount, func(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
		user := iq.From.Bare()
		if user.Localpart() == "" || (iq.To.String() != "" && !iq.To.Bare().Equal(user)) {
			return nil, stanza.Errorf("forbidden", "only the owner may change a vCard")
		}
		key := []byte(user.String())
		if len(iq.Payload.Nodes) == 0 && len(iq.Payload.Attr) == 0 {
			return nil, kv.Delete(ctx, key)
		}
		b := iq.Payload.AppendXML(nil, "")
		if len(b) > limit {
			return nil, stanza.Errorf("not-acceptable", "a vCard may be at most %d bytes", limit)
		}
		return nil, kv.Put(ctx, key, b)
	})
	return nil
}
