package stanza

import (
	"errors"

	"mellium.im/xmpp/jid"
)

// JID is an XMPP address, normalised with PRECIS and IDNA (RFC 7622) by
// mellium.im/xmpp/jid: comparing two JIDs' strings compares the addresses.
type JID = jid.JID

// ParseJID parses and normalises an address.
func ParseJID(s string) (JID, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return j, err
	}
	// mellium strips one trailing dot, so ".." parses to the domain ".",
	// which is no domain at all (found by FuzzJID).
	if j.Domainpart() == "." {
		return JID{}, errors.New("jid: the domainpart is empty")
	}
	return j, nil
}

// NewJID builds an address from its parts, normalising each.
func NewJID(local, domain, resource string) (JID, error) { return jid.New(local, domain, resource) }
