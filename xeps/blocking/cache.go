package blocking

import (
	"container/list"
	"hash/maphash"
	"sync"
)

const shards = 16

// lru caches blocklists by bare JID. It is sharded so that the filter, which
// runs for every stanza, does not serialize all sessions on one mutex. Each
// shard holds at most its share of the capacity and evicts the least
// recently used entry.
type lru struct {
	seed   maphash.Seed
	shards [shards]lruShard
}

type lruShard struct {
	mu    sync.Mutex
	max   int
	gen   uint64 // bumped by every set, so a slow load cannot overwrite a newer list
	items map[string]*list.Element
	order list.List // front = most recently used; values are *entry
}

type entry struct {
	user string
	bl   *blocklist
}

func newLRU(size int) *lru {
	c := &lru{seed: maphash.MakeSeed()}
	per := max(1, (size+shards-1)/shards)
	for i := range c.shards {
		c.shards[i].max = per
		c.shards[i].items = map[string]*list.Element{}
	}
	return c
}

func (c *lru) shard(user string) *lruShard {
	return &c.shards[maphash.String(c.seed, user)%shards]
}

// get returns the cached list and marks it recently used.
func (c *lru) get(user string) (*blocklist, bool) {
	s := c.shard(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[user]; ok {
		s.order.MoveToFront(e)
		return e.Value.(*entry).bl, true
	}
	return nil, false
}

// generation returns a token to pass to add after reading storage.
func (c *lru) generation(user string) uint64 {
	s := c.shard(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// add caches a list read from storage, unless a set happened in the shard
// since generation was taken (the read may predate that change).
func (c *lru) add(user string, bl *blocklist, gen uint64) {
	s := c.shard(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return
	}
	s.put(user, bl)
}

// set caches a list just committed to storage.
func (c *lru) set(user string, bl *blocklist) {
	s := c.shard(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.put(user, bl)
}

func (s *lruShard) put(user string, bl *blocklist) {
	if e, ok := s.items[user]; ok {
		e.Value.(*entry).bl = bl
		s.order.MoveToFront(e)
		return
	}
	s.items[user] = s.order.PushFront(&entry{user: user, bl: bl})
	for s.order.Len() > s.max {
		old := s.order.Back()
		s.order.Remove(old)
		delete(s.items, old.Value.(*entry).user)
	}
}

// count reports how many lists are cached, for tests.
func (c *lru) count() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.Lock()
		n += c.shards[i].order.Len()
		c.shards[i].mu.Unlock()
	}
	return n
}
