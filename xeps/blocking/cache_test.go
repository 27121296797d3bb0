package blocking

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xeps"
)

// countingStore counts storage reads.
type countingStore struct {
	xeps.KeyValue
	gets atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, key []byte) ([]byte, error) {
	c.gets.Add(1)
	return c.KeyValue.Get(ctx, key)
}

func TestFilterReadsStorageOncePerUser(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}, DB: db})
	cs := &countingStore{KeyValue: h.KeyValue("blocklist")}
	s := &service{h: h, kv: cs, cache: xeps.NewCache[*blocklist](64), maxItems: 10, interest: h.NewInterest()}
	from, _ := stanza.ParseJID("bob@localhost/x")
	to, _ := stanza.ParseJID("alice@localhost/a")
	msg := stanza.New(stanza.NSClient, "message")
	for range 100 {
		if drop, _ := s.filter(context.Background(), msg, from, to, inbound); drop {
			t.Fatal("dropped with an empty blocklist")
		}
	}
	if n := cs.gets.Load(); n != 1 {
		t.Errorf("%d storage reads for 100 stanzas, want 1", n)
	}
	// A change replaces the cached list: still no read on the stanza path.
	if _, err := s.change(context.Background(), "alice@localhost", func([]string) ([]string, []string, error) {
		return []string{"bob@localhost"}, nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	before := cs.gets.Load()
	if drop, _ := s.filter(context.Background(), msg, from, to, inbound); !drop {
		t.Error("blocked contact passed after the change")
	}
	if cs.gets.Load() != before {
		t.Error("the filter read storage after a change")
	}
}
