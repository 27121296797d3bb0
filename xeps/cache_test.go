package xeps_test

import (
	"fmt"
	"testing"

	"github.com/xmppd/xmppd/xeps"
)

// TestCacheBounded: the cache holds about its size, and keeps what was used last.
func TestCacheBounded(t *testing.T) {
	c := xeps.NewCache[int](32)
	for i := range 1000 {
		c.Set(fmt.Sprintf("u%d@localhost", i), i)
	}
	if n := c.Len(); n > 32 {
		t.Fatalf("%d entries cached, want at most 32", n)
	}
	if v, ok := c.Get("u999@localhost"); !ok || v != 999 {
		t.Fatal("the last entry set is not cached")
	}
}

// TestCacheStaleLoad: a value read before a change committed is not cached
// over the newer one, nor after the change was dropped.
func TestCacheStaleLoad(t *testing.T) {
	c := xeps.NewCache[string](16)
	gen := c.Generation("alice@localhost") // a load starts reading storage
	c.Set("alice@localhost", "newer")      // a change commits meanwhile
	c.Add("alice@localhost", "older", gen) // the load ends
	if v, _ := c.Get("alice@localhost"); v != "newer" {
		t.Fatalf("cached %q, want the newer value", v)
	}
	gen = c.Generation("alice@localhost")
	c.Delete("alice@localhost")
	c.Add("alice@localhost", "older", gen)
	if _, ok := c.Get("alice@localhost"); ok {
		t.Fatal("a load that predates the Delete was cached")
	}
	gen = c.Generation("alice@localhost")
	c.Add("alice@localhost", "fresh", gen)
	if v, _ := c.Get("alice@localhost"); v != "fresh" {
		t.Fatalf("cached %q, want the fresh load", v)
	}
}
