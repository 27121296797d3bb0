package xeps

import (
	"slices"
	"strings"

	"github.com/xmppd/xmppd/stanza"
)

// FullJIDs maps a bare JID to a set of its full JIDs: the online resources
// a module keeps track of. A user has one to three resources, so a slice
// searched in order costs far less than a map per user (a map with one
// entry takes a few hundred bytes, issue 5). The key is the bare prefix of
// one of the slice's strings, so each JID is stored once. Not safe for
// concurrent use: the module's lock guards it.
type FullJIDs map[string][]string

// SplitJID returns full's string and its bare JID, a prefix of that string
// (the localpart and domainpart cannot hold a '/').
func SplitJID(full stanza.JID) (f, bare string) {
	f = full.String()
	if i := strings.IndexByte(f, '/'); i >= 0 {
		return f, f[:i]
	}
	return f, f
}

// Add records full.
func (m FullJIDs) Add(full stanza.JID) {
	f, bare := SplitJID(full)
	if fs := m[bare]; !slices.Contains(fs, f) {
		m[bare] = append(fs, f)
	}
}

// Remove deletes full, and the user's entry with its last full JID.
func (m FullJIDs) Remove(full stanza.JID) {
	f, bare := SplitJID(full)
	fs := m[bare]
	i := slices.Index(fs, f)
	if i < 0 {
		return
	}
	fs = slices.Delete(fs, i, i+1)
	// Deleted and added again, so that the key is a prefix of a string kept
	// in fs, not of the one just removed.
	delete(m, bare)
	if len(fs) > 0 {
		m[fs[0][:len(bare)]] = fs
	}
}

// Sorted returns a sorted copy of the full JIDs recorded for bare.
func (m FullJIDs) Sorted(bare string) []string {
	out := slices.Clone(m[bare])
	slices.Sort(out)
	return out
}
