package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// logKeys returns the keys of bucket "log:<name>" that start with prefix.
func logKeys(t *testing.T, db *DB, name, prefix string) []string {
	t.Helper()
	var keys []string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(logPrefix + name))
		if b == nil {
			return nil
		}
		return scan(b, []byte(prefix), func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestLogLayout pins the on-disk keys (DESIGN.md: big-endian ids after the
// owner) and checks that deletes leave no index key behind.
func TestLogLayout(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	l := db.Log("archive")
	at := time.UnixMilli(0x0102030405).UTC()
	id1, err := l.Append(ctx, "a@x", LogEntry{Time: at, With: "b@x", Data: []byte("<one/>"), Text: "one"})
	if err != nil {
		t.Fatal(err)
	}
	id2, err := l.Append(ctx, "a@x", LogEntry{Time: at, Data: []byte("two"), Text: "Zwei, zwei"})
	if err != nil {
		t.Fatal(err)
	}
	if id1 != 0x0102030405<<16 || id2 != id1+1 || id1.String() != "0001020304050000" {
		t.Fatalf("ids %x %x (%s)", uint64(id1), uint64(id2), id1)
	}
	want := []string{
		"a@x\x00e\x00\x01\x02\x03\x04\x05\x00\x00",
		"a@x\x00e\x00\x01\x02\x03\x04\x05\x00\x01",
		"a@x\x00h",
		// Both wait in the pending list for their words to be indexed.
		"a@x\x00r\x00\x01\x02\x03\x04\x05\x00\x00",
		"a@x\x00wb@x\x00\x00\x01\x02\x03\x04\x05\x00\x00",
	}
	if got := logKeys(t, db, "archive", ""); !reflect.DeepEqual(got, want) {
		t.Fatalf("keys\n%q\nwant\n%q", got, want)
	}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("log:archive"))
		// The text found in the data is stored as its offset and length.
		if v := b.Get([]byte(want[0])); !bytes.Equal(v, []byte("\x02\x03b@x\x02\x01\x03<one/>")) {
			t.Errorf("value %q", v)
		}
		if v := b.Get([]byte(want[1])); !bytes.Equal(v, []byte("\x02\x00\x01\x0aZwei, zweitwo")) {
			t.Errorf("value %q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	if n, err := l.DeleteRange(ctx, "a@x", at.Add(time.Millisecond)); n != 2 || err != nil {
		t.Fatalf("DeleteRange = %d, %v", n, err)
	}
	// The high-water mark stays, so ids never go back.
	if got := logKeys(t, db, "archive", ""); !reflect.DeepEqual(got, []string{"a@x\x00h"}) {
		t.Errorf("after DeleteRange: %q", got)
	}
	if id3, _ := l.Append(ctx, "a@x", LogEntry{Time: at, With: "b@x"}); id3 != id2+1 {
		t.Errorf("after DeleteRange, id %x", uint64(id3))
	}
	if err := l.DeleteOwner(ctx, "a@x"); err != nil {
		t.Fatal(err)
	}
	if got := logKeys(t, db, "archive", ""); len(got) != 0 {
		t.Errorf("after DeleteOwner: %q", got)
	}
}

// TestLogDeleteChunks: range and owner deletes larger than one write
// transaction's share remove everything.
func TestLogDeleteChunks(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	l := db.Log("archive")
	n := deleteChunk + deleteChunk/2
	// Written directly: n Appends through Batch would take long.
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("log:archive"))
		if err != nil {
			return err
		}
		for _, owner := range []string{"a@x", "b@x"} {
			for i := 1; i <= n; i++ {
				id := LogID(i)
				if err := b.Put(entryKey(owner, id), encodeLogValue(owner, "c@x", "", nil)); err != nil {
					return err
				}
				if err := b.Put(binary.BigEndian.AppendUint64(withPrefix(owner, "c@x"), uint64(id)), []byte{}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := l.DeleteRange(ctx, "a@x", time.Unix(1, 0)); got != n || err != nil {
		t.Fatalf("DeleteRange = %d, %v; want %d", got, err, n)
	}
	if keys := logKeys(t, db, "archive", "a@x\x00"); len(keys) != 0 {
		t.Errorf("%d keys left, the first %q", len(keys), keys[0])
	}
	if err := l.DeleteOwner(ctx, "b@x"); err != nil {
		t.Fatal(err)
	}
	if keys := logKeys(t, db, "archive", ""); len(keys) != 0 {
		t.Errorf("%d keys left, the first %q", len(keys), keys[0])
	}
}

// TestDeleteUserLog: DeleteUser removes every key of the user's log, the
// index and the high-water mark included, in every log, and nobody else's.
func TestDeleteUserLog(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	for _, u := range []string{"a", "aa"} {
		if err := db.CreateUser(ctx, "x", u, mustDerive(t, "pw")); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"archive", "pubsub"} {
		for _, owner := range []string{"a@x", "aa@x", "a@xx"} {
			if _, err := db.Log(name).Append(ctx, owner, LogEntry{With: "b@x"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.DeleteUser(ctx, "x", "a"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"archive", "pubsub"} {
		if keys := logKeys(t, db, name, "a@x\x00"); len(keys) != 0 {
			t.Errorf("%s: left %q", name, keys)
		}
		for _, owner := range []string{"aa@x", "a@xx"} {
			if keys := logKeys(t, db, name, owner+"\x00"); len(keys) != 3 {
				t.Errorf("%s: %s has %q", name, owner, keys)
			}
		}
	}
}

// TestOldDatabase: a file laid out as before the store interfaces (schema
// 1: accounts, "kv:" and "archive:" buckets) opens and reads the same, and
// its queues go on numbering after their stored sequence.
func TestOldDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := mustDerive(t, "pencil")
	rec, _ := json.Marshal(record{V: 1, Salt: c.Salt, Iterations: c.Iterations,
		SHA1Stored: c.SHA1.StoredKey, SHA1Server: c.SHA1.ServerKey,
		S256Stored: c.SHA256.StoredKey, S256Server: c.SHA256.ServerKey})
	err = b.Update(func(tx *bolt.Tx) error {
		put := func(bucket, key string, value []byte) {
			bk, err := tx.CreateBucketIfNotExists([]byte(bucket))
			if err == nil {
				err = bk.Put([]byte(key), value)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		put("meta", "schema", []byte{0, 0, 0, 1})
		put("accounts", "alice@example.com", rec)
		put("kv:roster", "alice@example.com\x00bob@example.com", []byte(`{"sub":"both"}`))
		put("kv:roster", "alice@example.com\x00\x00ver", binary.BigEndian.AppendUint64(nil, 7))
		put("archive:offline", "alice@example.com\x00\x00\x00\x00\x00\x00\x00\x00\x05", []byte("<message/>"))
		return tx.Bucket([]byte("archive:offline")).SetSequence(5)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.UserCredentials(ctx, "example.com", "alice"); err != nil || !reflect.DeepEqual(got, c) {
		t.Errorf("credentials: %+v, %v", got, err)
	}
	var keys []string
	err = db.KeyValue("roster").Update(ctx, func(t Txn) error {
		return t.Scan(UserKeyPrefix("example.com", "alice"), func(k, v []byte) error {
			keys = append(keys, fmt.Sprintf("%q=%q", k, v))
			return nil
		})
	})
	if err != nil || len(keys) != 2 {
		t.Errorf("roster: %q, %v", keys, err)
	}
	q := db.Queue("offline")
	var seqs []uint64
	if err := q.List(ctx, "example.com", "alice", func(seq uint64, v []byte) error {
		seqs = append(seqs, seq)
		return nil
	}); err != nil || !reflect.DeepEqual(seqs, []uint64{5}) {
		t.Errorf("offline: %v, %v", seqs, err)
	}
	if seq, err := q.Append(ctx, "example.com", "alice", []byte("<message/>"), 0); seq != 6 || err != nil {
		t.Errorf("Append after the old items: %d, %v", seq, err)
	}
	// The deprecated names still reach the same data.
	if n, err := db.Archive("offline").Count(ctx, "example.com", "alice"); n != 2 || err != nil {
		t.Errorf("Archive.Count = %d, %v", n, err)
	}
}

func benchLog(b *testing.B) (*DB, Log) {
	db, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db, db.Log("archive")
}

// payload is a chat message of a typical size.
var payload = []byte(`<message xmlns='jabber:client' from='alice@example.com/phone' to='bob@example.com' type='chat' id='5c8f2a'><body>Hello Bob, are we still on for lunch tomorrow at noon?</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`)

// BenchmarkLogAppend: one goroutine (each Append waits for its own commit)
// and many (concurrent Appends share commits through bbolt's Batch).
func BenchmarkLogAppend(b *testing.B) {
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		_, l := benchLog(b)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.Append(ctx, "alice@example.com", LogEntry{With: "bob@example.com", Data: payload}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		_, l := benchLog(b)
		b.ReportAllocs()
		b.SetParallelism(16) // sessions archiving at once
		var users atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			owner := fmt.Sprintf("user%d@example.com", users.Add(1)) // one per goroutine
			for pb.Next() {
				if _, err := l.Append(ctx, owner, LogEntry{With: "bob@example.com", Data: payload}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkLogQuery: a page of 50 from an archive of 20000 messages, the
// latest (RSM <before/>), one in the middle, and with a 'with' filter.
func BenchmarkLogQuery(b *testing.B) {
	ctx := context.Background()
	db, l := benchLog(b)
	const n = 20_000
	const owner = "alice@example.com"
	withs := []string{"bob@example.com", "carol@example.com", "dave@example.com", "erin@example.com"}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var mid LogID
	// Written in one transaction, as Append lays them out.
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte(logPrefix + "archive"))
		if err != nil {
			return err
		}
		for i := range n {
			id := LogID(start.Add(time.Duration(i)*time.Second).UnixMilli()) << 16
			if i == n/2 {
				mid = id
			}
			w := withs[i%len(withs)]
			if err := bk.Put(entryKey(owner, id), encodeLogValue(owner, w, "", payload)); err != nil {
				return err
			}
			if err := bk.Put(binary.BigEndian.AppendUint64(withPrefix(owner, w), uint64(id)), []byte{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	queries := []struct {
		name string
		q    LogQuery
	}{
		{"last page", LogQuery{Limit: 50, Backward: true}},
		{"after an id", LogQuery{Limit: 50, After: mid}},
		{"time range", LogQuery{Limit: 50, Start: start.Add(5000 * time.Second), End: start.Add(6000 * time.Second)}},
		{"with", LogQuery{Limit: 50, With: "carol@example.com", After: mid}},
		{"with backward", LogQuery{Limit: 50, With: "carol@example.com", Backward: true}},
	}
	for _, qq := range queries {
		b.Run(qq.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p, err := l.Query(ctx, owner, qq.q)
				if err != nil || len(p.Entries) != 50 {
					b.Fatalf("%d entries, %v", len(p.Entries), err)
				}
			}
		})
	}
}
