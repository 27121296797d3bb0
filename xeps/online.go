package xeps

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync"

	"github.com/xmppd/xmppd/stanza"
)

// Interest names one kind of push a resource asked for (the roster's, the
// blocklist's, ...): a module takes one with NewInterest when it registers.
type Interest uint8

// online is what modules need to know about the resources of local users,
// kept once here instead of once per module (issue 5: four modules each
// kept a set of full JIDs per online user): whether a resource is announced
// (ResourceAvailable ... ResourceUnavailable) and which pushes it asked for.
// An entry lives while it has any of these, and every entry goes with its
// session (SessionClosed).
type online struct {
	seed   maphash.Seed
	next   Interest // the next free bit
	shards [16]onlineShard
}

type onlineShard struct {
	mu sync.Mutex
	m  map[string][]onlineRes // bare JID, a prefix of one of its resources' strings →
}

type onlineRes struct {
	full      string
	interests Interest
	announced bool
}

func (o *online) init() {
	o.seed = maphash.MakeSeed()
	o.next = 1
	for i := range o.shards {
		o.shards[i].m = map[string][]onlineRes{}
	}
}

func (o *online) shard(bare string) *onlineShard {
	return &o.shards[maphash.String(o.seed, bare)%uint64(len(o.shards))]
}

// update applies fn to full's entry (made if needed when create is set) and
// drops the entry when nothing is left in it.
func (o *online) update(full stanza.JID, create bool, fn func(*onlineRes)) {
	f, bare := SplitJID(full)
	sh := o.shard(bare)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	rs := sh.m[bare]
	i := slices.IndexFunc(rs, func(r onlineRes) bool { return r.full == f })
	if i < 0 {
		if !create {
			return
		}
		rs = append(rs, onlineRes{full: f})
		i = len(rs) - 1
	}
	fn(&rs[i])
	if rs[i].interests == 0 && !rs[i].announced {
		rs = slices.Delete(rs, i, i+1)
	}
	sh.store(bare, rs)
}

// store files rs under bare, keyed by a prefix of a string rs keeps (so the
// bare JID is not a string of its own), or removes bare when rs is empty.
func (sh *onlineShard) store(bare string, rs []onlineRes) {
	delete(sh.m, bare)
	if len(rs) > 0 {
		sh.m[rs[0].full[:len(bare)]] = rs
	}
}

// list returns, sorted, the full JIDs of user's resources that keep.
func (o *online) list(user stanza.JID, keep func(onlineRes) bool) []string {
	bare := user.Bare().String()
	sh := o.shard(bare)
	sh.mu.Lock()
	var out []string
	for _, r := range sh.m[bare] {
		if keep(r) {
			out = append(out, r.full)
		}
	}
	sh.mu.Unlock()
	slices.Sort(out)
	return out
}

// SplitJID returns full's string and its bare JID, a prefix of that string
// (the localpart and domainpart cannot hold a '/').
func SplitJID(full stanza.JID) (f, bare string) {
	f = full.String()
	if i := strings.IndexByte(f, '/'); i >= 0 {
		return f, f[:i]
	}
	return f, f
}

// NewInterest returns a new kind of push for SetInterested and Interested.
// Modules call it when they register; there are eight.
func (h *Host) NewInterest() Interest {
	i := h.online.next
	if i == 0 {
		panic("xeps: more than eight interests")
	}
	h.online.next <<= 1
	return i
}

// SetInterested records that the resource full asked for the pushes of
// interest (RFC 6121 §2.1.6 for the roster: the resource did a roster get).
// It lasts until the session ends.
func (h *Host) SetInterested(full stanza.JID, interest Interest) {
	h.online.update(full, true, func(r *onlineRes) { r.interests |= interest })
}

// Interested returns the full JIDs, sorted, of user's resources that asked
// for the pushes of interest.
func (h *Host) Interested(user stanza.JID, interest Interest) []string {
	return h.online.list(user, func(r onlineRes) bool { return r.interests&interest != 0 })
}

// Announced returns the full JIDs, sorted, of user's resources that the
// presence module announced available (ResourceAvailable: they sent initial
// presence, with a non-negative priority at some point) and not yet
// unavailable: the resources whose presence contacts see.
func (h *Host) Announced(user stanza.JID) []string {
	return h.online.list(user, func(r onlineRes) bool { return r.announced })
}

// announce and unannounce keep Announced; sessionGone drops an ended
// session's entry.
func (h *Host) announce(full stanza.JID) {
	h.online.update(full, true, func(r *onlineRes) { r.announced = true })
}

func (h *Host) unannounce(full stanza.JID, last bool) {
	if !last {
		h.online.update(full, false, func(r *onlineRes) { r.announced = false })
		return
	}
	// The presence module's word is final: a resource it no longer counts
	// must not keep the user announced.
	_, bare := SplitJID(full)
	sh := h.online.shard(bare)
	sh.mu.Lock()
	rs := sh.m[bare][:0:0]
	for _, r := range sh.m[bare] {
		r.announced = false
		if r.interests != 0 {
			rs = append(rs, r)
		}
	}
	sh.store(bare, rs)
	sh.mu.Unlock()
}

func (h *Host) sessionGone(full stanza.JID) {
	h.online.update(full, false, func(r *onlineRes) { *r = onlineRes{full: r.full} })
}
