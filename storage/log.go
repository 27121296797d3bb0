package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A Log lives in bucket "log:<name>". Every key of an owner starts with the
// owner and a NUL (UserKeyPrefix's form, so DeleteUser finds them), then a
// kind byte:
//
//	owner NUL 'e' id                    the entry: 0x01, uvarint len(with), with, data
//	owner NUL 'h'                       the owner's newest id ever issued
//	owner NUL 'w' with NUL id           the 'with' index: empty value
//
// Ids are 8 bytes big-endian, so a cursor walks an owner's entries, and the
// entries with one 'with', in id order, which is time order: Query seeks to
// its first id and reads no more than the page (and one more entry, to
// tell whether the page is the last). Owners and 'with' JIDs contain no NUL,
// so no prefix is ambiguous.
const (
	logPrefix = "log:"

	logEntry = 'e'
	logHigh  = 'h'
	logWith  = 'w'

	logValueVersion = 1

	// maxLogMillis is the largest time an id can carry (year 10889).
	maxLogMillis = 1<<48 - 1

	// deleteChunk bounds the keys one write transaction of DeleteRange or
	// DeleteOwner deletes, so that removing years of archive neither holds
	// the single writer for long nor builds one huge transaction.
	deleteChunk = 10_000
)

type boltLog struct {
	db     *DB
	bucket []byte
	now    func() time.Time
}

// Log returns the log called name. Its bucket is created on the first Append.
func (db *DB) Log(name string) Log {
	return &boltLog{db: db, bucket: []byte(logPrefix + name), now: time.Now}
}

// checkJID rejects what would make keys ambiguous or oversized.
func checkJID(what, s string) error {
	switch {
	case len(s) > MaxJIDLen:
		return fmt.Errorf("storage: %s longer than %d bytes", what, MaxJIDLen)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("storage: %s %q contains NUL", what, s)
	}
	return nil
}

func checkOwner(owner string) error {
	if owner == "" {
		return errors.New("storage: empty log owner")
	}
	return checkJID("log owner", owner)
}

// logKey is owner NUL kind, with room for what follows.
func logKey(owner string, kind byte, extra int) []byte {
	k := make([]byte, 0, len(owner)+2+extra)
	k = append(k, owner...)
	return append(k, 0, kind)
}

func entryKey(owner string, id LogID) []byte {
	return binary.BigEndian.AppendUint64(logKey(owner, logEntry, 8), uint64(id))
}

// withPrefix is the index prefix of owner's entries with this 'with'.
func withPrefix(owner, with string) []byte {
	k := append(logKey(owner, logWith, len(with)+9), with...)
	return append(k, 0)
}

func encodeLogValue(with string, data []byte) []byte {
	v := make([]byte, 0, 1+binary.MaxVarintLen64+len(with)+len(data))
	v = append(v, logValueVersion)
	v = binary.AppendUvarint(v, uint64(len(with)))
	v = append(v, with...)
	return append(v, data...)
}

// splitLogValue splits a stored entry into its 'with' and its data, both
// v's own memory.
func splitLogValue(id LogID, v []byte) (with, data []byte, err error) {
	if len(v) == 0 || v[0] != logValueVersion {
		return nil, nil, fmt.Errorf("storage: log entry %s: unknown encoding", id)
	}
	n, k := binary.Uvarint(v[1:])
	if k <= 0 || n > uint64(len(v)-1-k) {
		return nil, nil, fmt.Errorf("storage: log entry %s: corrupt", id)
	}
	return v[1+k : 1+k+int(n)], v[1+k+int(n):], nil
}

// decodeLogValue is the entry stored as v, copied out of it.
func decodeLogValue(id LogID, v []byte) (LogEntry, error) {
	with, data, err := splitLogValue(id, v)
	if err != nil {
		return LogEntry{}, err
	}
	return LogEntry{ID: id, Time: id.Time(), With: string(with), Data: bytes.Clone(data)}, nil
}

// withCache hands out one string per 'with' among the last few seen, so a
// page of a conversation or two does not copy the same JID per entry.
type withCache struct {
	s [8]string
	n int
}

func (c *withCache) intern(b []byte) string {
	for _, s := range c.s[:min(c.n, len(c.s))] {
		if string(b) == s {
			return s
		}
	}
	s := string(b)
	c.s[c.n%len(c.s)] = s
	c.n++
	return s
}

// ceilMillis is t in milliseconds since the epoch, rounded up, within [0, maxLogMillis+1].
func ceilMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Nanosecond()%int(time.Millisecond) != 0 && t.UnixNano() > 0 {
		ms++
	}
	return min(max(ms, 0), maxLogMillis+1)
}

// Append implements Log. Concurrent Appends share commits (bbolt's Batch):
// one fsync for many messages.
func (l *boltLog) Append(ctx context.Context, owner string, e LogEntry) (LogID, error) {
	if err := checkOwner(owner); err != nil {
		return 0, err
	}
	if err := checkJID("log 'with'", e.With); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	t := e.Time
	if t.IsZero() {
		t = l.now()
	}
	ms := t.UnixMilli()
	if ms > maxLogMillis {
		return 0, fmt.Errorf("storage: %s append: time %v out of range", l.bucket, t)
	}
	want := LogID(max(ms, 0)) << 16
	value := encodeLogValue(e.With, e.Data)
	high := logKey(owner, logHigh, 0)
	var id LogID
	// Batch may run fn more than once (when another fn of its batch fails):
	// every run starts again from what the transaction holds, and id is the
	// committed run's.
	err := l.db.bolt.Batch(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(l.bucket)
		if err != nil {
			return err
		}
		next := max(want, 1)
		if v := b.Get(high); len(v) == 8 {
			last := LogID(binary.BigEndian.Uint64(v))
			if last == math.MaxUint64 {
				return errors.New("ids exhausted")
			}
			next = max(next, last+1)
		}
		if err := b.Put(entryKey(owner, next), value); err != nil {
			return err
		}
		if e.With != "" {
			k := binary.BigEndian.AppendUint64(withPrefix(owner, e.With), uint64(next))
			if err := b.Put(k, []byte{}); err != nil {
				return err
			}
		}
		if err := b.Put(high, binary.BigEndian.AppendUint64(nil, uint64(next))); err != nil {
			return err
		}
		id = next
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: %s append: %w", l.bucket, err)
	}
	return id, nil
}

// Get implements Log.
func (l *boltLog) Get(ctx context.Context, owner string, id LogID) (LogEntry, error) {
	if err := checkOwner(owner); err != nil {
		return LogEntry{}, err
	}
	var e LogEntry
	err := l.db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(l.bucket)
		if b == nil {
			return ErrNotFound
		}
		v := b.Get(entryKey(owner, id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		e, err = decodeLogValue(id, v)
		return err
	})
	if err != nil {
		return LogEntry{}, fmt.Errorf("storage: %s get %s: %w", l.bucket, id, err)
	}
	return e, nil
}

// bounds turns q into the inclusive range of ids it selects; ok is false
// when the range is empty.
func (q LogQuery) bounds() (lo, hi LogID, ok bool) {
	lo, hi = 1, math.MaxUint64
	if q.After != 0 {
		if q.After == math.MaxUint64 {
			return 0, 0, false
		}
		lo = max(lo, q.After+1)
	}
	if !q.Start.IsZero() {
		ms := ceilMillis(q.Start)
		if ms > maxLogMillis {
			return 0, 0, false
		}
		lo = max(lo, LogID(ms)<<16)
	}
	if q.Before != 0 {
		hi = q.Before - 1
	}
	if !q.End.IsZero() {
		ms := q.End.UnixMilli() // an entry at End's millisecond is not after End
		if ms < 0 {
			return 0, 0, false
		}
		if ms < maxLogMillis {
			hi = min(hi, LogID(ms+1)<<16-1)
		}
	}
	return lo, hi, lo <= hi
}

// Query implements Log.
func (l *boltLog) Query(ctx context.Context, owner string, q LogQuery) (LogPage, error) {
	if err := checkOwner(owner); err != nil {
		return LogPage{}, err
	}
	if err := checkJID("log 'with'", q.With); err != nil {
		return LogPage{}, err
	}
	limit := q.Limit
	if limit <= 0 || limit > MaxLogPage {
		limit = MaxLogPage
	}
	page := LogPage{Complete: true}
	lo, hi, ok := q.bounds()
	if !ok {
		return page, ctx.Err()
	}
	err := l.db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(l.bucket)
		if b == nil {
			return nil
		}
		var prefix []byte
		if q.With == "" {
			prefix = logKey(owner, logEntry, 8)
		} else {
			prefix = withPrefix(owner, q.With)
		}
		// selected returns the id of key k when k is one of the selection.
		selected := func(k []byte) (LogID, bool) {
			if len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) {
				return 0, false
			}
			id := LogID(binary.BigEndian.Uint64(k[len(prefix):]))
			return id, lo <= id && id <= hi
		}
		c := b.Cursor()
		var k, v []byte
		step := c.Next
		if !q.Backward {
			k, v = c.Seek(binary.BigEndian.AppendUint64(prefix, uint64(lo)))
		} else {
			// The last key at or before the upper bound.
			target := binary.BigEndian.AppendUint64(prefix, uint64(hi))
			k, v = c.Seek(target)
			switch {
			case k == nil:
				k, v = c.Last()
			case !bytes.Equal(k, target):
				k, v = c.Prev()
			}
			step = c.Prev
		}
		page.Entries = make([]LogEntry, 0, min(limit, 64))
		entry := logKey(owner, logEntry, 8) // reused for the lookups from the index
		var entries *bolt.Cursor            // for them: a Get makes a cursor each time
		var withs withCache
		withs.intern([]byte(q.With))
		size := 0
		for ; ; k, v = step() {
			i, ok := selected(k)
			if !ok {
				break
			}
			if len(page.Entries) == limit {
				page.Complete = false // one more matches
				break
			}
			if q.With != "" {
				entry = binary.BigEndian.AppendUint64(entry[:len(owner)+2], uint64(i))
				if entries == nil {
					entries = b.Cursor()
				}
				var ek []byte
				if ek, v = entries.Seek(entry); !bytes.Equal(ek, entry) {
					continue // an index key without its entry; never written so
				}
			}
			with, data, err := splitLogValue(i, v)
			if err != nil {
				return err
			}
			size += len(data)
			page.Entries = append(page.Entries, LogEntry{ID: i, Time: i.Time(), With: withs.intern(with), Data: data})
		}
		// One copy out of the mmap for the whole page; each Data capped, so
		// that an append to one cannot overwrite the next.
		arena := make([]byte, 0, size)
		for i := range page.Entries {
			d := &page.Entries[i].Data
			off := len(arena)
			arena = append(arena, *d...)
			*d = arena[off:len(arena):len(arena)]
		}
		return nil
	})
	if err != nil {
		return LogPage{}, fmt.Errorf("storage: %s query: %w", l.bucket, err)
	}
	if q.Backward {
		slices.Reverse(page.Entries)
	}
	return page, nil
}

// DeleteRange implements Log, in write transactions of at most deleteChunk
// entries each.
func (l *boltLog) DeleteRange(ctx context.Context, owner string, before time.Time) (int, error) {
	if err := checkOwner(owner); err != nil {
		return 0, err
	}
	ms := ceilMillis(before)
	if before.IsZero() || ms == 0 {
		return 0, ctx.Err()
	}
	var end LogID = math.MaxUint64 // ids below end go
	if ms <= maxLogMillis {
		end = LogID(ms) << 16
	}
	prefix := logKey(owner, logEntry, 8)
	return l.deleteChunks(ctx, "delete range", owner, func(b *bolt.Bucket) (doomed [][]byte) {
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(doomed) < deleteChunk; k, v = c.Next() {
			if len(k) != len(prefix)+8 {
				continue
			}
			id := LogID(binary.BigEndian.Uint64(k[len(prefix):]))
			if id >= end {
				break
			}
			doomed = append(doomed, bytes.Clone(k))
			with, _, err := splitLogValue(id, v)
			if err != nil {
				continue // delete what cannot be read, without its index key
			}
			if len(with) > 0 {
				doomed = append(doomed, binary.BigEndian.AppendUint64(withPrefix(owner, string(with)), uint64(id)))
			}
		}
		return doomed
	})
}

// DeleteOwner implements Log, in write transactions of at most deleteChunk
// keys each.
func (l *boltLog) DeleteOwner(ctx context.Context, owner string) error {
	if err := checkOwner(owner); err != nil {
		return err
	}
	prefix := append([]byte(owner), 0)
	_, err := l.deleteChunks(ctx, "delete owner", owner, func(b *bolt.Bucket) (doomed [][]byte) {
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(doomed) < deleteChunk; k, _ = c.Next() {
			doomed = append(doomed, bytes.Clone(k))
		}
		return doomed
	})
	return err
}

// deleteChunks deletes what collect picks from the bucket (at most about
// deleteChunk keys of owner's), one write transaction per pick, until a
// pick comes short of deleteChunk. It reports how many of the deleted keys
// were entries (not index keys or the high-water mark).
func (l *boltLog) deleteChunks(ctx context.Context, op, owner string, collect func(b *bolt.Bucket) [][]byte) (int, error) {
	total := 0
	for {
		n, more := 0, false
		err := l.db.update(ctx, func(tx *bolt.Tx) error {
			b := tx.Bucket(l.bucket)
			if b == nil {
				return nil
			}
			doomed := collect(b)
			for _, k := range doomed {
				if k[len(owner)+1] == logEntry {
					n++
				}
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			more = len(doomed) >= deleteChunk
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("storage: %s %s: %w", l.bucket, op, err)
		}
		total += n
		if !more {
			return total, nil
		}
	}
}

// Replace implements Log.
func (l *boltLog) Replace(ctx context.Context, owner string, id LogID, e LogEntry) error {
	return fmt.Errorf("storage: %s replace: not implemented yet", l.bucket)
}

// ExpireBefore implements Log.
func (l *boltLog) ExpireBefore(ctx context.Context, before time.Time, max int) (int, bool, error) {
	return 0, false, fmt.Errorf("storage: %s expire: not implemented yet", l.bucket)
}
