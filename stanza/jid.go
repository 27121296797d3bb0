package stanza

import "mellium.im/xmpp/jid"

// JID is an XMPP address, normalised with PRECIS and IDNA (RFC 7622) by
// mellium.im/xmpp/jid: comparing two JIDs' strings compares the addresses.
type JID = jid.JID

// ParseJID parses and normalises an address.
func ParseJID(s string) (JID, error) { return jid.Parse(s) }

// NewJID builds an address from its parts, normalising each.
func NewJID(local, domain, resource string) (JID, error) { return jid.New(local, domain, resource) }
