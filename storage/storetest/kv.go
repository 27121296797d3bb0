package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/xmppd/xmppd/storage"
)

// KeyValue checks a storage.KeyValue.
func KeyValue(t *testing.T, open Opener[storage.KeyValue]) {
	t.Run("GetPutDelete", func(t *testing.T) {
		kv, _ := open(t)
		if v, err := kv.Get(ctx, []byte("missing")); v != nil || err != nil {
			t.Errorf("Get of a missing key = %q, %v; want nil, nil", v, err)
		}
		steps := []struct {
			put, del string
			value    string
		}{
			{put: "a", value: "1"},
			{put: "a", value: "2"}, // replaced
			{put: "b\x00c", value: ""},
			{put: "\xff\xff", value: "binary\x00value"},
			{del: "a"},
			{del: "never there"},
		}
		want := map[string]string{}
		for _, s := range steps {
			if s.put != "" {
				must(t, kv.Put(ctx, []byte(s.put), []byte(s.value)))
				want[s.put] = s.value
			} else {
				must(t, kv.Delete(ctx, []byte(s.del)))
				delete(want, s.del)
			}
		}
		for _, k := range []string{"a", "b\x00c", "\xff\xff", "never there"} {
			v, err := kv.Get(ctx, []byte(k))
			must(t, err)
			w, ok := want[k]
			if ok != (v != nil) || string(v) != w {
				t.Errorf("Get(%q) = %q (nil: %v), want %q (present: %v)", k, v, v == nil, w, ok)
			}
		}
		v, _ := kv.Get(ctx, []byte("\xff\xff"))
		v[0] = 'X' // a copy, not the store's memory
		if again, _ := kv.Get(ctx, []byte("\xff\xff")); string(again) != "binary\x00value" {
			t.Errorf("after changing what Get returned: %q", again)
		}
		if err := kv.Put(ctx, nil, []byte("x")); err == nil {
			t.Error("Put with an empty key succeeded")
		}
		if err := kv.PutBatched(ctx, nil, []byte("x")); err == nil {
			t.Error("PutBatched with an empty key succeeded")
		}
	})

	t.Run("Scan", func(t *testing.T) {
		kv, _ := open(t)
		keys := []string{"u@x\x00b", "u@x\x00a", "u@x\x00a\x00", "u@xy\x00a", "u@x", "v@x\x00a", "u@x\x00\xff"}
		for _, k := range keys {
			must(t, kv.Put(ctx, []byte(k), []byte("v:"+k)))
		}
		tests := []struct {
			prefix string
			want   []string
		}{
			{"u@x\x00", []string{"u@x\x00a", "u@x\x00a\x00", "u@x\x00b", "u@x\x00\xff"}},
			{"u@x", []string{"u@x", "u@x\x00a", "u@x\x00a\x00", "u@x\x00b", "u@x\x00\xff", "u@xy\x00a"}},
			{"w", nil},
			{"", []string{"u@x", "u@x\x00a", "u@x\x00a\x00", "u@x\x00b", "u@x\x00\xff", "u@xy\x00a", "v@x\x00a"}},
		}
		for _, tt := range tests {
			var got []string
			err := kv.Scan(ctx, []byte(tt.prefix), func(k, v []byte) error {
				if string(v) != "v:"+string(k) {
					t.Errorf("Scan(%q): %q has value %q", tt.prefix, k, v)
				}
				got = append(got, string(k))
				k[0] = 'X' // copies: the next key must be intact
				return nil
			})
			must(t, err)
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("Scan(%q) = %q, want %q", tt.prefix, got, tt.want)
			}
		}
		stop := errors.New("stop")
		n := 0
		err := kv.Scan(ctx, nil, func(k, v []byte) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("Scan stopped by its callback: %v after %d calls", err, n)
		}
	})

	t.Run("Update", func(t *testing.T) {
		kv, _ := open(t)
		must(t, kv.Put(ctx, []byte("u\x00ver"), []byte("1")))
		must(t, kv.Put(ctx, []byte("u\x00old"), []byte("x")))
		err := kv.Update(ctx, func(tx storage.Txn) error {
			if v := tx.Get([]byte("u\x00ver")); string(v) != "1" {
				t.Errorf("Txn.Get = %q", v)
			}
			if v := tx.Get([]byte("missing")); v != nil {
				t.Errorf("Txn.Get of a missing key = %q", v)
			}
			must(t, tx.Put([]byte("u\x00ver"), []byte("2")))
			must(t, tx.Put([]byte("u\x00item"), []byte("i")))
			must(t, tx.Delete([]byte("u\x00old")))
			// The transaction sees its own writes.
			if v := tx.Get([]byte("u\x00ver")); string(v) != "2" {
				t.Errorf("Txn.Get after Put = %q", v)
			}
			var keys []string
			must(t, tx.Scan([]byte("u\x00"), func(k, v []byte) error { keys = append(keys, string(k)); return nil }))
			if fmt.Sprint(keys) != fmt.Sprint([]string{"u\x00item", "u\x00ver"}) {
				t.Errorf("Txn.Scan = %q", keys)
			}
			return nil
		})
		must(t, err)
		check := func(what string, want map[string]string) {
			t.Helper()
			for k, w := range want {
				v, err := kv.Get(ctx, []byte(k))
				must(t, err)
				if (w == "") != (v == nil) || string(v) != w {
					t.Errorf("%s: %q = %q, want %q", what, k, v, w)
				}
			}
		}
		committed := map[string]string{"u\x00ver": "2", "u\x00item": "i", "u\x00old": ""}
		check("committed", committed)

		// A failing fn leaves nothing behind.
		boom := errors.New("boom")
		err = kv.Update(ctx, func(tx storage.Txn) error {
			must(t, tx.Put([]byte("u\x00ver"), []byte("3")))
			must(t, tx.Delete([]byte("u\x00item")))
			must(t, tx.Put([]byte("u\x00new"), []byte("n")))
			return boom
		})
		wantErr(t, "Update failing", err, boom)
		committed["u\x00new"] = ""
		check("rolled back", committed)
	})

	t.Run("Concurrent", func(t *testing.T) {
		kv, _ := open(t)
		// A counter incremented in Updates from many goroutines: none lost.
		var wg sync.WaitGroup
		const workers, each = 8, 10
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					err := kv.Update(ctx, func(tx storage.Txn) error {
						n := len(tx.Get([]byte("counter")))
						return tx.Put([]byte("counter"), bytes.Repeat([]byte("x"), n+1))
					})
					if err != nil {
						t.Error(err)
					}
					if err := kv.PutBatched(ctx, fmt.Appendf(nil, "stamp/%d/%d", w, i), []byte("t")); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		v, err := kv.Get(ctx, []byte("counter"))
		must(t, err)
		if len(v) != workers*each {
			t.Errorf("counter = %d, want %d", len(v), workers*each)
		}
		n := 0
		must(t, kv.Scan(ctx, []byte("stamp/"), func(k, v []byte) error { n++; return nil }))
		if n != workers*each {
			t.Errorf("%d stamps, want %d", n, workers*each)
		}
	})

	t.Run("Reopen", func(t *testing.T) {
		kv, reopen := open(t)
		if reopen == nil {
			t.Skip("the backend cannot reopen")
		}
		must(t, kv.Put(ctx, []byte("a"), []byte("1")))
		must(t, kv.PutBatched(ctx, []byte("b"), []byte("2")))
		must(t, kv.Update(ctx, func(tx storage.Txn) error { return tx.Put([]byte("c"), []byte("3")) }))
		kv = reopen()
		for k, w := range map[string]string{"a": "1", "b": "2", "c": "3"} {
			if v, err := kv.Get(ctx, []byte(k)); err != nil || string(v) != w {
				t.Errorf("after reopening, %q = %q, %v", k, v, err)
			}
		}
	})

	t.Run("Context", func(t *testing.T) {
		kv, _ := open(t)
		c := cancelled()
		_, err := kv.Get(c, []byte("a"))
		wantErr(t, "Get", err, context.Canceled)
		wantErr(t, "Put", kv.Put(c, []byte("a"), []byte("1")), context.Canceled)
		wantErr(t, "PutBatched", kv.PutBatched(c, []byte("a"), []byte("1")), context.Canceled)
		wantErr(t, "Delete", kv.Delete(c, []byte("a")), context.Canceled)
		wantErr(t, "Scan", kv.Scan(c, nil, func(k, v []byte) error { return nil }), context.Canceled)
		ran := false
		wantErr(t, "Update", kv.Update(c, func(storage.Txn) error { ran = true; return nil }), context.Canceled)
		if ran {
			t.Error("Update ran fn with an ended context")
		}
		if v, _ := kv.Get(ctx, []byte("a")); v != nil {
			t.Errorf("a cancelled Put stored %q", v)
		}
	})
}
