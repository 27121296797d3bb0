package mam

import (
	"context"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// retractScan bounds how far back in a conversation a retraction looks for
// the message it retracts: clients retract recent messages, and a
// retraction must not turn into a scan of years of history.
const retractScan = 500

// retractedID returns the id a XEP-0424 retraction names, or "".
func retractedID(el *stanza.Element) string {
	if r := el.Child(NSRetract, "retract"); r != nil {
		return r.Get("id")
	}
	return ""
}

// tombstone replaces, in owner's archive, the message that sender sent in
// the conversation with with whose origin-id (or, lacking one, id) is rid
// by a tombstone (XEP-0424 §5): the addresses and ids stay, the payload
// goes. Only the sender's own message is retracted.
func (a *archive) tombstone(ctx context.Context, owner, with, sender stanza.JID, rid string) {
	if rid == "" {
		return
	}
	q := xeps.LogQuery{With: with.Bare().String(), Backward: true, Limit: MaxPage}
	seen := 0
	for seen < retractScan {
		p, err := a.log.Query(ctx, owner.String(), q)
		if err != nil {
			a.logger.Error("looking up a retracted message", "owner", owner.String(), "err", err)
			return
		}
		for i := len(p.Entries) - 1; i >= 0; i-- {
			e := p.Entries[i]
			el, err := stanza.ParseElement(e.Data)
			if err != nil || el.Child(NSRetract, "retract") != nil || el.Child(NSRetract, "retracted") != nil {
				continue
			}
			from, err := stanza.ParseJID(el.Get("from"))
			if err != nil || !from.Bare().Equal(sender.Bare()) {
				continue
			}
			id := el.Child("urn:xmpp:sid:0", "origin-id").Get("id")
			if id == "" {
				id = el.Get("id")
			}
			if id != rid {
				continue
			}
			ts := stanza.New(el.Space, "message")
			for _, attr := range []string{"from", "to", "id", "type"} {
				ts.Set(attr, el.Get(attr))
			}
			ts.Append(stanza.New(NSRetract, "retracted").Set("stamp", a.now().UTC().Format(stampFormat)))
			if oid := el.Child(NSSID, "origin-id"); oid != nil {
				ts.Append(oid)
			}
			if err := a.log.Replace(ctx, owner.String(), e.ID, xeps.LogEntry{Data: ts.AppendXML(nil, "")}); err != nil {
				a.logger.Error("replacing a retracted message", "owner", owner.String(), "err", err)
			}
			return
		}
		seen += len(p.Entries)
		if p.Complete || len(p.Entries) == 0 {
			return
		}
		q.Before = p.Entries[0].ID
	}
}
