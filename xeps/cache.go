package xeps

import (
	"container/list"
	"hash/maphash"
	"sync"
)

// Cache keeps recently used per-user values (a blocklist, a roster) in
// memory for the modules that read them on every stanza. It is sharded, so
// that readers do not serialize on one mutex, and bounded: each shard
// evicts its least recently used entry past its share of the size.
//
// A value read from storage is cached with Add and the Generation taken
// before the read: a Set or Delete in the meantime (a change committed
// while the read ran) makes Add a no-op, so a slow read never caches a value
// older than one already committed.
type Cache[V any] struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard[V]
}

const cacheShards = 16

type cacheShard[V any] struct {
	mu    sync.Mutex
	max   int
	gen   uint64 // bumped by every Set and Delete
	items map[string]*list.Element
	order list.List // front = most recently used; values are *cacheEntry[V]
}

type cacheEntry[V any] struct {
	key string
	val V
}

// NewCache returns a cache of about size entries.
func NewCache[V any](size int) *Cache[V] {
	c := &Cache[V]{seed: maphash.MakeSeed()}
	per := max(1, (size+cacheShards-1)/cacheShards)
	for i := range c.shards {
		c.shards[i].max = per
		c.shards[i].items = map[string]*list.Element{}
	}
	return c
}

func (c *Cache[V]) shard(key string) *cacheShard[V] {
	return &c.shards[maphash.String(c.seed, key)%cacheShards]
}

// Get returns the cached value and marks it recently used.
func (c *Cache[V]) Get(key string) (V, bool) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[key]; ok {
		s.order.MoveToFront(e)
		return e.Value.(*cacheEntry[V]).val, true
	}
	var zero V
	return zero, false
}

// Generation returns the token to pass to Add after reading storage.
func (c *Cache[V]) Generation(key string) uint64 {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// Add caches a value read from storage, unless a Set or Delete happened in
// its shard since gen was taken (the read may predate that change).
func (c *Cache[V]) Add(key string, val V, gen uint64) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen == gen {
		s.put(key, val)
	}
}

// Set caches a value just committed to storage.
func (c *Cache[V]) Set(key string, val V) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.put(key, val)
}

// Delete forgets key's value (it changed in storage; the next read loads it).
func (c *Cache[V]) Delete(key string) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	if e, ok := s.items[key]; ok {
		s.order.Remove(e)
		delete(s.items, key)
	}
}

func (s *cacheShard[V]) put(key string, val V) {
	if e, ok := s.items[key]; ok {
		e.Value.(*cacheEntry[V]).val = val
		s.order.MoveToFront(e)
		return
	}
	s.items[key] = s.order.PushFront(&cacheEntry[V]{key: key, val: val})
	for s.order.Len() > s.max {
		old := s.order.Back()
		s.order.Remove(old)
		delete(s.items, old.Value.(*cacheEntry[V]).key)
	}
}

// Len reports how many values are cached.
func (c *Cache[V]) Len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.Lock()
		n += c.shards[i].order.Len()
		c.shards[i].mu.Unlock()
	}
	return n
}
