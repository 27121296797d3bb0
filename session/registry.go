package session

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync"
)

// Registry is the one registry of bound sessions, sharded by bare JID so
// that routing takes no global lock. The router delivers through it;
// presence and modules read it.
type Registry struct {
	seed   maphash.Seed
	shards [64]shard
	next   Interest // the next free interest bit
	// Sessions that may be resumed (XEP-0198), by resumption id.
	resumable [16]idShard
}

type idShard struct {
	mu sync.Mutex
	m  map[string]*Session
}

type shard struct {
	mu sync.RWMutex
	// bare JID → its bound sessions. A user has one to three: a slice costs
	// far less than a map per user. The key is a prefix of one of the
	// sessions' full JID strings, so the bare JID is not stored again.
	m map[string][]*Session
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{seed: maphash.MakeSeed(), next: 1}
	for i := range r.shards {
		r.shards[i].m = map[string][]*Session{}
	}
	return r
}

func (r *Registry) shard(bare string) *shard {
	return &r.shards[maphash.String(r.seed, bare)%uint64(len(r.shards))]
}

// bareOf returns the bare JID of a full JID string: a prefix of it (the
// localpart and domainpart cannot hold a '/').
func bareOf(full string) string {
	bare, _, _ := strings.Cut(full, "/")
	return bare
}

// Bind makes s reachable under its full JID (SetAddress first), detached
// until a transport attaches. A session already bound to that JID loses
// (RFC 6120 §7.7.2.2: the new one wins) and is returned for closing.
func (r *Registry) Bind(s *Session) (old *Session) {
	bare := bareOf(s.full)
	s.state.Store(uint32(Detached))
	sh := r.shard(bare)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	list := sh.m[bare]
	for i, o := range list {
		if o.full == s.full {
			old = o
			list = slices.Delete(list, i, i+1)
			break
		}
	}
	sh.store(bare, append(list, s))
	return old
}

// Unbind removes s, if it is still the session registered under its JID,
// and marks it closed.
func (r *Registry) Unbind(s *Session) {
	s.state.Store(uint32(Closed))
	if s.full == "" {
		return
	}
	bare := bareOf(s.full)
	sh := r.shard(bare)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	list := sh.m[bare]
	if i := slices.Index(list, s); i >= 0 {
		sh.store(bare, slices.Delete(list, i, i+1))
	}
}

// store files list under bare (keyed by a prefix of a string it keeps), or
// removes bare when list is empty.
func (sh *shard) store(bare string, list []*Session) {
	delete(sh.m, bare)
	if len(list) > 0 {
		sh.m[list[0].full[:len(bare)]] = list
	}
}

// Sessions appends the bound sessions of a bare JID to buf and returns it.
func (r *Registry) Sessions(bare string, buf []*Session) []*Session {
	sh := r.shard(bare)
	sh.mu.RLock()
	buf = append(buf, sh.m[bare]...)
	sh.mu.RUnlock()
	return buf
}

// Session returns the session bound to a full JID, or nil.
func (r *Registry) Session(full string) *Session {
	bare := bareOf(full)
	sh := r.shard(bare)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	for _, s := range sh.m[bare] {
		if s.full == full {
			return s
		}
	}
	return nil
}

// Count reports how many sessions are bound.
func (r *Registry) Count() int {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		for _, l := range sh.m {
			n += len(l)
		}
		sh.mu.RUnlock()
	}
	return n
}

// NewInterest returns a new kind of push (for SetInterested and
// Interested). Modules take theirs at startup; there are 32.
func (r *Registry) NewInterest() Interest {
	i := r.next
	if i == 0 {
		panic("session: more than 32 interests")
	}
	r.next <<= 1
	return i
}

// Interested returns the full JIDs, sorted, of bare's sessions that asked
// for the pushes of i.
func (r *Registry) Interested(bare string, i Interest) []string {
	return r.fulls(bare, func(s *Session) bool { return s.Interested(i) })
}

// Announced returns the full JIDs, sorted, of bare's sessions whose
// presence contacts see (announced available by the presence module).
func (r *Registry) Announced(bare string) []string {
	return r.fulls(bare, (*Session).Announced)
}

// Broadcasting returns bare's sessions that sent available presence the
// presence module broadcast, sorted by full JID.
func (r *Registry) Broadcasting(bare string) []*Session {
	var buf [8]*Session
	var out []*Session
	for _, s := range r.Sessions(bare, buf[:0]) {
		if s.Broadcast() != nil {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *Session) int { return strings.Compare(a.full, b.full) })
	return out
}

func (r *Registry) fulls(bare string, keep func(*Session) bool) []string {
	var buf [8]*Session
	var out []string
	for _, s := range r.Sessions(bare, buf[:0]) {
		if keep(s) {
			out = append(out, s.full)
		}
	}
	slices.Sort(out)
	return out
}

func (r *Registry) idShard(id string) *idShard {
	return &r.resumable[maphash.String(r.seed, id)%uint64(len(r.resumable))]
}

// AddResumable files s under its resumption id (SM().ID).
func (r *Registry) AddResumable(s *Session) {
	m := s.SM()
	if m == nil || m.ID == "" {
		return
	}
	sh := r.idShard(m.ID)
	sh.mu.Lock()
	if sh.m == nil {
		sh.m = map[string]*Session{}
	}
	sh.m[m.ID] = s
	sh.mu.Unlock()
}

// RemoveResumable forgets s's resumption id, if s is still filed under it.
func (r *Registry) RemoveResumable(s *Session) {
	m := s.SM()
	if m == nil || m.ID == "" {
		return
	}
	sh := r.idShard(m.ID)
	sh.mu.Lock()
	if sh.m[m.ID] == s {
		delete(sh.m, m.ID)
	}
	sh.mu.Unlock()
}

// Resumable returns the session filed under a resumption id, or nil.
func (r *Registry) Resumable(id string) *Session {
	sh := r.idShard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[id]
}

// AllResumable returns every session filed under a resumption id.
func (r *Registry) AllResumable() []*Session {
	var out []*Session
	for i := range r.resumable {
		sh := &r.resumable[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			out = append(out, s)
		}
		sh.mu.Unlock()
	}
	return out
}
