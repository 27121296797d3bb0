package storage

import (
	"bytes"
	"errors"
)

// An archived message is ~200 bytes of XML of which half is the same in
// every message: the envelope (<message xmlns='jabber:client' from=… to=…
// type='chat' id=…>), the JIDs of the owner and of the other party, the
// markers clients add (origin-id, chat states, receipts, chat markers).
// packXML replaces those with single bytes that XML cannot contain (the C0
// controls other than tab, newline and carriage return are not allowed
// characters, XML 1.0 §2.2), so it costs one pass over the data and no
// allocation beyond the output, and unpacking is a table lookup per byte.
// Data holding any of those bytes (not XML, or XML 1.1) is stored as it
// is. The dictionary is part of the on-disk format: entries may be added
// for codes still free, never changed.

// packCodes are the bytes that stand for dictionary strings; packWith and
// packOwner stand for the entry's With and owner.
const (
	packWith  = 0x01
	packOwner = 0x02
)

var packDict = map[byte]string{
	0x03: "<message xmlns='jabber:client'",
	0x04: " from='",
	0x05: " to='",
	0x06: " type='chat'",
	0x07: " id='",
	0x08: "<body>",
	0x0B: "</body>",
	0x0C: "</message>",
	0x0E: "'>",
	0x0F: "'/>",
	0x10: " xmlns='urn:xmpp:",
	0x11: "<origin-id xmlns='urn:xmpp:sid:0' id='",
	0x12: "<stanza-id xmlns='urn:xmpp:sid:0' by='",
	0x13: "<active xmlns='http://jabber.org/protocol/chatstates'/>",
	0x14: "<markable xmlns='urn:xmpp:chat-markers:0'/>",
	0x15: "<request xmlns='urn:xmpp:receipts'/>",
	0x16: "<store xmlns='urn:xmpp:hints'/>",
	0x17: "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='",
	0x18: "</payload></encrypted>",
	0x19: " type='groupchat'",
	0x1A: "<received xmlns='urn:xmpp:chat-markers:0' id='",
	0x1B: "<displayed xmlns='urn:xmpp:chat-markers:0' id='",
	0x1C: "<replace xmlns='urn:xmpp:message-correct:0' id='",
	0x1D: "<composing xmlns='http://jabber.org/protocol/chatstates'/>",
	0x1E: "<received xmlns='urn:xmpp:receipts' id='",
	0x1F: "<reactions xmlns='urn:xmpp:reactions:0' id='",
}

// isPackCode reports whether c is one of the bytes packXML writes.
func isPackCode(c byte) bool { return c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != 0 }

// packByFirst lists, per first byte, the dictionary's codes, longest
// string first (so that the longest match wins).
var packByFirst = func() (t [256][]byte) {
	for code, s := range packDict {
		t[s[0]] = append(t[s[0]], code)
	}
	for i := range t {
		l := t[i]
		for a := 1; a < len(l); a++ {
			for b := a; b > 0 && len(packDict[l[b]]) > len(packDict[l[b-1]]); b-- {
				l[b], l[b-1] = l[b-1], l[b]
			}
		}
	}
	return t
}()

// packTable is packDict as an array, for unpacking.
var packTable = func() (t [32]string) {
	for code, s := range packDict {
		t[code] = s
	}
	return t
}()

// packXML appends data packed to dst; ok is false (and dst unchanged) when
// data holds a byte the packing uses, or packing would not save anything.
func packXML(dst, data []byte, with, owner string) (_ []byte, ok bool) {
	for _, c := range data {
		if isPackCode(c) {
			return dst, false
		}
	}
	start := len(dst)
	for i := 0; i < len(data); {
		c := data[i]
		rest := data[i:]
		switch {
		case with != "" && c == with[0] && bytes.HasPrefix(rest, []byte(with)):
			dst = append(dst, packWith)
			i += len(with)
			continue
		case c == owner[0] && bytes.HasPrefix(rest, []byte(owner)):
			dst = append(dst, packOwner)
			i += len(owner)
			continue
		}
		matched := false
		for _, code := range packByFirst[c] {
			if s := packTable[code]; bytes.HasPrefix(rest, []byte(s)) {
				dst = append(dst, code)
				i += len(s)
				matched = true
				break
			}
		}
		if !matched {
			dst = append(dst, c)
			i++
		}
	}
	if len(dst)-start >= len(data) {
		return dst[:start], false
	}
	return dst, true
}

var errPacked = errors.New("storage: corrupt packed data")

// unpackXML appends packed unpacked to dst.
func unpackXML(dst, packed []byte, with, owner string) ([]byte, error) {
	for len(packed) > 0 {
		// Copy the run of plain bytes at once.
		i := 0
		for i < len(packed) && !isPackCode(packed[i]) {
			i++
		}
		dst = append(dst, packed[:i]...)
		if i == len(packed) {
			break
		}
		switch c := packed[i]; c {
		case packWith:
			dst = append(dst, with...)
		case packOwner:
			dst = append(dst, owner...)
		default:
			s := packTable[c]
			if s == "" {
				return dst, errPacked
			}
			dst = append(dst, s...)
		}
		packed = packed[i+1:]
	}
	return dst, nil
}
