package storage

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestPostings edits posting lists at random (mostly appends, as Append
// does, some inserts and removals anywhere) and checks every list against
// a model after each transaction, reading it with the cursors both ways.
func TestPostings(t *testing.T) {
	db := openTemp(t)
	rng := rand.New(rand.NewPCG(1, 2))
	lists := [][]byte{[]byte("a\x00tx\x00"), []byte("a\x00ty\x00"), []byte("a\x00tyy\x00")}
	model := make([][]LogID, len(lists))
	next := LogID(1) << 16
	for round := range 60 {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("log:t"))
			if err != nil {
				return err
			}
			p := postings{b: b}
			for range 50 {
				i := rng.IntN(len(lists))
				switch r := rng.IntN(10); {
				case r < 6: // append
					next += LogID(rng.IntN(3)) << 16
					if rng.IntN(4) == 0 {
						next += LogID(rng.IntN(5)) // a sequence
					}
					next++
					if err := p.add(lists[i], next); err != nil {
						return err
					}
					model[i] = append(model[i], next)
				case r < 8: // insert anywhere (maybe present already)
					id := LogID(1+rng.Uint64N(uint64(next))) | 1
					if err := p.add(lists[i], id); err != nil {
						return err
					}
					if j, found := slices.BinarySearch(model[i], id); !found {
						model[i] = slices.Insert(model[i], j, id)
					}
				default: // remove a few, present or not
					var doomed []LogID
					for range rng.IntN(8) {
						if len(model[i]) > 0 && rng.IntN(3) > 0 {
							doomed = append(doomed, model[i][rng.IntN(len(model[i]))])
						} else {
							doomed = append(doomed, LogID(1+rng.Uint64N(uint64(next))))
						}
					}
					slices.Sort(doomed)
					doomed = slices.Compact(doomed)
					if err := p.remove(lists[i], doomed); err != nil {
						return err
					}
					model[i] = slices.DeleteFunc(model[i], func(id LogID) bool {
						_, found := slices.BinarySearch(doomed, id)
						return found
					})
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		err = db.bolt.View(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("log:t"))
			for i, prefix := range lists {
				checkList(t, b, prefix, model[i], next, fmt.Sprintf("round %d, list %q", round, prefix))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// checkList reads list prefix with ge and le from every point (and from
// fresh cursors) and compares with want.
func checkList(t *testing.T, b *bolt.Bucket, prefix []byte, want []LogID, past LogID, what string) {
	t.Helper()
	loads := 0
	var got []LogID
	pc := postCursor{c: b.Cursor(), prefix: prefix, loads: &loads}
	for x := LogID(1); ; x = got[len(got)-1] + 1 {
		y := pc.ge(x)
		if y == 0 {
			break
		}
		got = append(got, y)
	}
	if pc.err != nil || !slices.Equal(got, want) {
		t.Fatalf("%s: forward %v (%v), want %v", what, got, pc.err, want)
	}
	got = got[:0]
	pc = postCursor{c: b.Cursor(), prefix: prefix, loads: &loads}
	for x := past + 10; x > 0; x = got[len(got)-1] - 1 {
		y := pc.le(x)
		if y == 0 {
			break
		}
		got = append(got, y)
	}
	slices.Reverse(got)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: backward %v, want %v", what, got, want)
	}
	// Random seeks from one cursor, in any order.
	rng := rand.New(rand.NewPCG(3, uint64(len(want))))
	pc = postCursor{c: b.Cursor(), prefix: prefix, loads: &loads}
	for range 200 {
		x := LogID(1 + rng.Uint64N(uint64(past+2)))
		var ge, le LogID
		if j, found := slices.BinarySearch(want, x); found {
			ge, le = x, x
		} else {
			if j < len(want) {
				ge = want[j]
			}
			if j > 0 {
				le = want[j-1]
			}
		}
		if rng.IntN(2) == 0 {
			if g := pc.ge(x); g != ge {
				t.Fatalf("%s: ge(%x) = %x, want %x", what, x, g, ge)
			}
		} else if l := pc.le(x); l != le {
			t.Fatalf("%s: le(%x) = %x, want %x", what, x, l, le)
		}
	}
	// Chunks stay within bounds (a chunk of one id may be any size: none is).
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(v) > maxChunk+2*10 {
			t.Fatalf("%s: a chunk of %d bytes", what, len(v))
		}
	}
}

// TestLogIndexKeysGo: DeleteRange, ExpireBefore and Replace leave no index
// key of an entry that no longer has the word or exists.
func TestLogIndexKeysGo(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	l := db.Log("archive")
	at := time.UnixMilli(1_700_000_000_000).UTC()
	for i := range 300 {
		for _, owner := range []string{"a@x", "b@x"} {
			text := fmt.Sprintf("hello world number%d %s", i, strings.Repeat("common ", i%3))
			if _, err := l.Append(ctx, owner, LogEntry{Time: at.Add(time.Duration(i) * time.Second), With: "c@x", Text: text, Data: []byte(text)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	id, err := l.Append(ctx, "a@x", LogEntry{Time: at.Add(time.Hour), Text: "unique", Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Replace(ctx, "a@x", id, LogEntry{Text: "other", Data: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	if keys := logKeys(t, db, "archive", "a@x\x00tnumber100\x00"); len(keys) != 1 {
		t.Errorf("the word of an entry indexed from the pending list: %q", keys)
	}
	if keys := logKeys(t, db, "archive", "a@x\x00tunique\x00"); len(keys) != 0 {
		t.Errorf("after Replace, %q", keys)
	}
	if n, err := l.DeleteRange(ctx, "a@x", at.Add(time.Hour)); n != 300 || err != nil {
		t.Fatalf("DeleteRange = %d, %v", n, err)
	}
	for n, more := 0, true; more; {
		var m int
		if m, more, err = l.ExpireBefore(ctx, at.Add(time.Hour), 7); err != nil {
			t.Fatal(err)
		}
		n += m
		if !more && n != 300 {
			t.Fatalf("ExpireBefore removed %d", n)
		}
	}
	// The last entry is pending (300 appends index 9 times 32).
	want := []string{"a@x\x00e" + string(entryKey("", id)[2:]), "a@x\x00h", "a@x\x00r" + string(entryKey("", id)[2:]), "b@x\x00h"}
	if keys := logKeys(t, db, "archive", ""); !slices.Equal(keys, want) {
		t.Errorf("keys left %q, want %q", keys, want)
	}
}

// FuzzDecodeChunk: a stored chunk, however damaged, decodes to ascending
// ids or an error, and what encodes decodes back.
func FuzzDecodeChunk(f *testing.F) {
	f.Add(uint64(1<<16), []byte{})
	f.Add(uint64(1<<16), encodeChunk(nil, []LogID{1 << 16, 2 << 16, 2<<16 | 5, 900 << 16}))
	f.Add(uint64(7), []byte{0x81})
	f.Fuzz(func(t *testing.T, first uint64, v []byte) {
		ids, err := decodeChunk(nil, LogID(first), v)
		if err != nil {
			return
		}
		if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
			t.Fatalf("decoded %v: not ascending", ids)
		}
		again, err := decodeChunk(nil, ids[0], encodeChunk(nil, ids))
		if err != nil || !slices.Equal(again, ids) {
			t.Fatalf("%v re-encoded decodes as %v, %v", ids, again, err)
		}
	})
}

// FuzzLogValue: a stored entry, however damaged, parses and unpacks
// without a panic, and what encodes decodes back.
func FuzzLogValue(f *testing.F) {
	f.Add("b@x", "hello", []byte("<body>hello</body>"), []byte(nil))
	f.Add("bob@example.net", "hi", []byte("<message xmlns='jabber:client' from='bob@example.net/x' to='a@x'><body>hi</body></message>"), []byte(nil))
	f.Add("", "text", []byte("data"), []byte("\x02\x00\x02\x05\x03abc"))
	f.Add("", "", []byte(nil), []byte("\x03\x00\x02\x05\x03a\x03\x01bc"))
	f.Add("", "", []byte(nil), []byte("\x01\x03b@xone"))
	f.Fuzz(func(t *testing.T, with, text string, data, raw []byte) {
		if lv, err := parseLogValue(1, raw); err == nil {
			_, _, _ = lv.appendData(nil, "a@x")
		}
		_, _, _ = entryText(1, "a@x", raw)
		if with == "" || strings.IndexByte(with, 0) < 0 {
			e, err := decodeLogValue(1, "a@x", encodeLogValue("a@x", with, text, data))
			if err != nil || e.With != with || e.Text != text || !bytes.Equal(e.Data, data) {
				t.Fatalf("(%q, %q, %q) decodes as %+v, %v", with, text, data, e, err)
			}
		}
	})
}
