package stanza

import (
	"errors"
	"hash/maphash"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"
)

// JID is an XMPP address, normalised with PRECIS and IDNA (RFC 7622) by
// mellium.im/xmpp/jid: comparing two JIDs' strings compares the addresses.
type JID = jid.JID

// ParseJID parses and normalises an address.
//
// Normalising costs microseconds (IDNA for the domainpart, PRECIS for the
// others), and the same few addresses are parsed over and over: the
// server's domains, the online users, each stanza's 'to' and 'from'. So
// recent results are kept in a small cache of fixed size.
func ParseJID(s string) (JID, error) {
	if j, ok := jidCache.get(s); ok {
		return j, nil
	}
	j, err := jid.Parse(s)
	if err != nil {
		return j, err
	}
	// mellium strips one trailing dot, so ".." parses to the domain ".",
	// which is no domain at all (found by FuzzJID).
	if j.Domainpart() == "." {
		return JID{}, errors.New("jid: the domainpart is empty")
	}
	jidCache.put(s, j)
	return j, nil
}

// NewJID builds an address from its parts, normalising each.
func NewJID(local, domain, resource string) (JID, error) { return jid.New(local, domain, resource) }

// jidCache maps input strings to their parsed JIDs. It holds at most
// jidCacheShards × jidCacheShardSize entries (a few hundred KiB), whatever
// the number of users: a full shard forgets one entry at random to take a
// new one. Only successful parses are kept.
var jidCache = newJIDCache()

const (
	jidCacheShards    = 16
	jidCacheShardSize = 128
	jidCacheMaxLen    = 256 // longer inputs are parsed every time
)

type jidCacheT struct {
	seed   maphash.Seed
	shards [jidCacheShards]struct {
		mu sync.Mutex
		m  map[string]JID
	}
}

func newJIDCache() *jidCacheT {
	c := &jidCacheT{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[string]JID, jidCacheShardSize)
	}
	return c
}

func (c *jidCacheT) shard(s string) int { return int(maphash.String(c.seed, s) % jidCacheShards) }

func (c *jidCacheT) get(s string) (JID, bool) {
	if len(s) > jidCacheMaxLen {
		return JID{}, false
	}
	sh := &c.shards[c.shard(s)]
	sh.mu.Lock()
	j, ok := sh.m[s]
	sh.mu.Unlock()
	return j, ok
}

func (c *jidCacheT) put(s string, j JID) {
	if len(s) > jidCacheMaxLen {
		return
	}
	// A copy: s may be a slice of a larger string the cache must not pin.
	s = strings.Clone(s)
	sh := &c.shards[c.shard(s)]
	sh.mu.Lock()
	if len(sh.m) >= jidCacheShardSize {
		for k := range sh.m { // map iteration starts at a random entry
			delete(sh.m, k)
			break
		}
	}
	sh.m[s] = j
	sh.mu.Unlock()
}
