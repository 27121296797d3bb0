package stanza

import (
	"fmt"
	"testing"

	"mellium.im/xmpp/jid"
)

func TestParseJID(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Alice@LocalHost/Phone", "alice@localhost/Phone", true},
		{"localhost", "localhost", true},
		{"@localhost", "", false},
		{"alice@", "", false},
		{"a b@localhost", "", false},
		{"alice@localhost/", "", false},
	}
	for _, tt := range tests {
		j, err := ParseJID(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseJID(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && j.String() != tt.want {
			t.Errorf("ParseJID(%q) = %q, want %q", tt.in, j, tt.want)
		}
	}
}

// FuzzJID checks that normalisation is stable: parse → String → parse is a fixed point.
func FuzzJID(f *testing.F) {
	for _, s := range []string{"alice@localhost/phone", "LOCALHOST", "ÄLICE@example.org", "a@b/c/d", "x@[::1]", "@", "a@b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := ParseJID(s)
		if err != nil {
			return
		}
		again, err := ParseJID(j.String())
		if err != nil {
			t.Fatalf("%q parsed, but its string %q does not: %v", s, j.String(), err)
		}
		if again.String() != j.String() {
			t.Fatalf("not stable: %q → %q → %q", s, j.String(), again.String())
		}
	})
}

func TestParseJIDCache(t *testing.T) {
	// A cached parse is the same address as a fresh one, every time.
	for range 3 {
		for _, in := range []string{"Alice@LocalHost/Phone", "Ünïcode@Example.ORG/r"} {
			j, err := ParseJID(in)
			if err != nil {
				t.Fatal(err)
			}
			fresh, err := jid.Parse(in)
			if err != nil {
				t.Fatal(err)
			}
			if !j.Equal(fresh) || j.String() != fresh.String() {
				t.Fatalf("ParseJID(%q) = %q, a fresh parse %q", in, j, fresh)
			}
		}
	}
	// Refusals are not remembered as addresses.
	for range 2 {
		if _, err := ParseJID("a b@localhost"); err == nil {
			t.Fatal("a refused address parsed on the second try")
		}
	}
	// The cache stays within its size however many addresses pass.
	for i := range 10 * jidCacheShards * jidCacheShardSize {
		if _, err := ParseJID(fmt.Sprintf("user%d@example.org/r", i)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for i := range jidCache.shards {
		sh := &jidCache.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	if n > jidCacheShards*jidCacheShardSize {
		t.Fatalf("%d cached addresses, the bound is %d", n, jidCacheShards*jidCacheShardSize)
	}
}

// BenchmarkParseJID compares a repeated address (cached) with the
// normalisation every new one costs.
func BenchmarkParseJID(b *testing.B) {
	b.Run("repeated", func(b *testing.B) {
		for b.Loop() {
			ParseJID("alice@example.org/phone")
		}
	})
	b.Run("normalise", func(b *testing.B) {
		for b.Loop() {
			jid.Parse("alice@example.org/phone")
		}
	})
}
