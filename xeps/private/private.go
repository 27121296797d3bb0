// Package private implements XEP-0049: Private XML Storage (version 1.2):
// a user stores arbitrary XML fragments on the server, each under the
// qualified name (namespace and local name) of its root element.
//
//   - Only the user themselves, with no 'to' or 'to' their own bare JID, may
//     get or set (§2.3; forbidden, which the XEP calls preferable to
//     service-unavailable).
//   - A query with no child: a get is bad-request (§2.3, §3 "Bad Format"), a set
//     not-acceptable (§2.3: "At least one child element ... MUST be
//     included; otherwise the server MUST respond with a Not Acceptable").
//   - A child in jabber:iq:private itself (also what an unqualified child
//     ends up in) or in a stanza namespace (jabber:client, jabber:server) is
//     not-acceptable (§2.3 reserved namespaces; the other reserved ones are
//     left usable, as clients store e.g. storage:bookmarks next to them).
//   - A set may hold several fragments (§2.3); they are stored together, in
//     one transaction. A fragment with no content is stored as deleted: a get
//     answers it the same way.
//   - A get answers, for each child asked for, the stored fragment or the
//     child itself, emptied, when nothing is stored (§2.3, and what clients
//     expect for a bookmarks storage never written).
//   - At most MaxBytes of fragments per user, serialized (policy-violation).
//
// Storage: KeyValue "private", key = bare JID, NUL, namespace, NUL, local
// name (storage.UserKeyPrefix, so the data goes with the account), value =
// the fragment serialized.
package private

import (
	"bytes"
	"context"
	"errors"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// XEP is the number of the extension this package implements.
const XEP = "0049"

// NS is the private storage namespace.
const NS = "jabber:iq:private"

// DefaultMaxBytes bounds a user's storage when Module.MaxBytes is 0.
const DefaultMaxBytes = 1 << 20

// Module stores private XML.
type Module struct {
	// MaxBytes bounds the serialized fragments one user may store (0: DefaultMaxBytes).
	MaxBytes int
}

var _ xeps.Module = Module{}

// Name implements xeps.Module.
func (Module) Name() string { return "private" }

// Register implements xeps.Module.
func (m Module) Register(h *xeps.Host) error {
	limit := m.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	kv := h.KeyValue("private")
	h.AdvertiseFeature(NS)
	h.HandleIQ("get", NS, "query", xeps.ToAccount, func(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
		prefix, err := userPrefix(iq)
		if err != nil {
			return nil, err
		}
		asked := iq.Payload.Children()
		if len(asked) == 0 {
			return nil, stanza.Errorf("bad-request", "say which fragment to get")
		}
		out := stanza.New(NS, "query")
		for _, c := range asked {
			if err := checkName(c); err != nil {
				return nil, err
			}
			b, err := kv.Get(ctx, key(prefix, c))
			if err != nil {
				return nil, err
			}
			if b == nil {
				out.Append(stanza.New(c.Space, c.Local))
				continue
			}
			el, err := stanza.ParseElement(b)
			if err != nil {
				return nil, err
			}
			out.Append(el)
		}
		return out, nil
	})
	h.HandleIQ("set", NS, "query", xeps.ToAccount, func(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
		prefix, err := userPrefix(iq)
		if err != nil {
			return nil, err
		}
		frags := iq.Payload.Children()
		if len(frags) == 0 {
			return nil, stanza.Errorf("not-acceptable", "nothing to store")
		}
		vals := make([][]byte, len(frags))
		for i, c := range frags {
			if err := checkName(c); err != nil {
				return nil, err
			}
			if len(c.Nodes) > 0 || len(c.Attr) > 0 {
				vals[i] = c.AppendXML(nil, "")
			}
		}
		err = kv.Update(ctx, func(t xeps.Txn) error {
			used := 0
			if err := t.Scan(prefix, func(k, v []byte) error {
				used += len(v)
				return nil
			}); err != nil {
				return err
			}
			for i, c := range frags {
				k := key(prefix, c)
				used -= len(t.Get(k))
				if vals[i] == nil {
					if err := t.Delete(k); err != nil {
						return err
					}
					continue
				}
				used += len(vals[i])
				if err := t.Put(k, vals[i]); err != nil {
					return err
				}
			}
			if used > limit {
				return errFull
			}
			return nil
		})
		if errors.Is(err, errFull) {
			return nil, stanza.Errorf("policy-violation", "private storage is limited to %d bytes", limit)
		}
		return nil, err
	})
	return nil
}

var errFull = errors.New("private storage full")

// userPrefix returns the storage prefix of the user an IQ may touch.
func userPrefix(iq *stanza.IQ) ([]byte, error) {
	user := iq.From.Bare()
	if user.Localpart() == "" || (iq.To.String() != "" && !iq.To.Bare().Equal(user)) {
		return nil, stanza.Errorf("forbidden", "private storage belongs to its owner only")
	}
	// storage.UserKeyPrefix: bare JID then NUL.
	return []byte(user.String() + "\x00"), nil
}

func checkName(c *stanza.Element) error {
	switch c.Space {
	case NS, "", stanza.NSClient, stanza.NSServer:
		return stanza.Errorf("not-acceptable", "a fragment needs its own namespace")
	}
	return nil
}

// key is prefix, namespace, NUL, local name: XML names and namespaces cannot
// contain NUL, so keys never collide.
func key(prefix []byte, c *stanza.Element) []byte {
	k := append(bytes.Clone(prefix), c.Space...)
	k = append(k, 0)
	return append(k, c.Local...)
}
