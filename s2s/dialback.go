package s2s

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/xmppd/xmppd/stanza"
)

// Namespaces of Server Dialback (XEP-0220) and bidirectional streams (XEP-0288).
const (
	nsDialback        = "jabber:server:dialback"
	nsDialbackFeature = "urn:xmpp:features:dialback"
	nsBidi            = "urn:xmpp:bidi"
	nsBidiFeature     = "urn:xmpp:features:bidi"
)

// maxKeyLen bounds a dialback key: ours are 64 hex digits; nobody needs 1 KiB.
const maxKeyLen = 1024

// dialbackKey computes the key of XEP-0185 §3:
// HEX(HMAC-SHA256(SHA256(secret), receiving + " " + originating + " " + streamID)).
// It needs no state: any of our processes with the same secret can verify it.
func dialbackKey(secret []byte, receiving, originating, streamID string) string {
	k := sha256.Sum256(secret)
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte(receiving + " " + originating + " " + streamID))
	return hex.EncodeToString(m.Sum(nil))
}

// checkKey compares a presented key with the one we would have made, in constant time.
func checkKey(secret []byte, receiving, originating, streamID, key string) bool {
	want := dialbackKey(secret, receiving, originating, streamID)
	return len(key) == len(want) && subtle.ConstantTimeCompare([]byte(key), []byte(want)) == 1
}

// dbElem is a <db:result/> or <db:verify/> (XEP-0220 §2), as read or to write.
type dbElem struct {
	verify   bool   // db:verify, else db:result
	from, to string // normalised domains
	id       string // db:verify only: the stream ID being vouched for
	typ      string // "", "valid", "invalid" or "error"
	key      string
	errCond  string // type "error": the stanza error condition
}

var errBadDialback = errors.New("malformed dialback element")

// parseDialback reads a dialback element. The addresses must be bare
// domains; the key is trimmed of white space and bounded.
func parseDialback(el *stanza.Element) (dbElem, error) {
	var d dbElem
	switch {
	case el.Is(nsDialback, "result"):
	case el.Is(nsDialback, "verify"):
		d.verify = true
	default:
		return d, errBadDialback
	}
	var ok bool
	if d.from, ok = normDomain(el.Get("from")); !ok {
		return d, errBadDialback
	}
	if d.to, ok = normDomain(el.Get("to")); !ok {
		return d, errBadDialback
	}
	d.id = el.Get("id")
	if d.verify && d.id == "" {
		return d, errBadDialback
	}
	d.typ = el.Get("type")
	switch d.typ {
	case "", "valid", "invalid":
	case "error":
		if e := el.Child(stanza.NSServer, "error"); e != nil {
			for _, c := range e.Children() {
				if c.Space == stanza.NSStanzas && c.Local != "text" {
					d.errCond = c.Local
					break
				}
			}
		}
		if d.errCond == "" {
			d.errCond = "undefined-condition"
		}
	default:
		return d, errBadDialback
	}
	d.key = strings.TrimSpace(el.Text())
	if len(d.key) > maxKeyLen || d.typ == "" && d.key == "" {
		return d, errBadDialback
	}
	return d, nil
}

// element renders d for the queue. Its name carries the "db" prefix our
// stream header declares and its namespace is the stream's, so it is written
// as <db:result .../> the way every implementation expects to see it.
func (d dbElem) element() *stanza.Element {
	name := "db:result"
	if d.verify {
		name = "db:verify"
	}
	el := stanza.New(stanza.NSServer, name).Set("from", d.from).Set("to", d.to).Set("id", d.id).Set("type", d.typ)
	if d.typ == "error" {
		e := stanza.NewError(d.errCond).Element() // with its text, like every error we send
		e.Space = stanza.NSServer
		el.Append(e)
	}
	return el.AppendText(d.key)
}

// normDomain parses a bare domain (no localpart, no resource) into the form
// stanza.ParseJID gives every domainpart, so comparisons are exact.
func normDomain(s string) (string, bool) {
	// RFC 7622 §3.2: a trailing dot is not part of the domain. Stripping it
	// here makes the result stable (mellium keeps one after a U-label; found
	// by FuzzDialback).
	s = strings.TrimSuffix(s, ".")
	if s == "" || strings.ContainsAny(s, "@/") {
		return "", false
	}
	j, err := stanza.ParseJID(s)
	if err != nil || j.Localpart() != "" || j.Resourcepart() != "" || j.Domainpart() == "" ||
		strings.HasSuffix(j.Domainpart(), ".") || strings.Contains(j.Domainpart(), "..") {
		return "", false // an empty label
	}
	return j.Domainpart(), true
}
