package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// UserExists reports whether the account exists.
func (db *DB) UserExists(ctx context.Context, domain, local string) (bool, error) {
	_, err := db.UserCredentials(ctx, domain, local)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNoSuchUser):
		return false, nil
	}
	return false, err
}

// Scan calls fn for every key starting with prefix, in key order. fn gets
// copies, so it may keep them.
func (kv *KeyValue) Scan(ctx context.Context, prefix []byte, fn func(key, value []byte) error) error {
	err := kv.db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(kv.bucket)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if err := fn(bytes.Clone(k), bytes.Clone(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: %s scan: %w", kv.bucket, err)
	}
	return nil
}

// Txn is one read-write transaction on a KeyValue store, for changes that
// must land together (a roster item and the roster version).
type Txn struct{ b *bolt.Bucket }

// Get returns a copy of the value for key, or nil.
func (t *Txn) Get(key []byte) []byte { return bytes.Clone(t.b.Get(key)) }

// Put stores value under key.
func (t *Txn) Put(key, value []byte) error { return t.b.Put(key, value) }

// Delete removes key.
func (t *Txn) Delete(key []byte) error { return t.b.Delete(key) }

// Scan calls fn with copies of the keys and values under prefix, in order.
func (t *Txn) Scan(prefix []byte, fn func(key, value []byte) error) error {
	c := t.b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(bytes.Clone(k), bytes.Clone(v)); err != nil {
			return err
		}
	}
	return nil
}

// Update runs fn in one write transaction, committed (and synced to disk)
// before Update returns, or rolled back if fn fails.
func (kv *KeyValue) Update(ctx context.Context, fn func(t *Txn) error) error {
	err := kv.db.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(kv.bucket)
		if err != nil {
			return err
		}
		return fn(&Txn{b: b})
	})
	if err != nil {
		return fmt.Errorf("storage: %s update: %w", kv.bucket, err)
	}
	return nil
}

// ErrArchiveFull is returned by Archive.Append when the user's list is at its limit.
var ErrArchiveFull = errors.New("archive full")

// Archive is a named store of per-user ordered lists (offline messages, later
// the message archive), in bucket "archive:<name>". Keys are the user's
// UserKeyPrefix followed by a big-endian sequence number, so a cursor walks a
// user's items in the order they were added (never decimal strings: "10" < "9").
type Archive struct {
	db     *DB
	bucket []byte
}

const archivePrefix = "archive:"

// Archive returns the archive called name. The bucket is created on first Append.
func (db *DB) Archive(name string) *Archive {
	return &Archive{db: db, bucket: []byte(archivePrefix + name)}
}

// Append adds value at the end of the user's list, committed to disk before
// it returns. With max > 0 a list already holding max items is left alone and
// ErrArchiveFull returned: nothing stored is ever dropped to make room.
func (a *Archive) Append(ctx context.Context, domain, local string, value []byte, max int) (seq uint64, err error) {
	prefix := UserKeyPrefix(domain, local)
	err = a.db.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(a.bucket)
		if err != nil {
			return err
		}
		if max > 0 && countPrefix(b, prefix, max) >= max {
			return ErrArchiveFull
		}
		// NextSequence is per bucket and never reused, so keys only grow.
		if seq, err = b.NextSequence(); err != nil {
			return err
		}
		return b.Put(binary.BigEndian.AppendUint64(bytes.Clone(prefix), seq), value)
	})
	if err != nil {
		return 0, fmt.Errorf("storage: %s append: %w", a.bucket, err)
	}
	return seq, nil
}

// countPrefix counts keys under prefix, stopping at limit.
func countPrefix(b *bolt.Bucket, prefix []byte, limit int) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && n < limit; k, _ = c.Next() {
		n++
	}
	return n
}

// Count returns how many items the user's list holds.
func (a *Archive) Count(ctx context.Context, domain, local string) (int, error) {
	n := 0
	err := a.db.view(ctx, func(tx *bolt.Tx) error {
		if b := tx.Bucket(a.bucket); b != nil {
			n = countPrefix(b, UserKeyPrefix(domain, local), int(^uint(0)>>1))
		}
		return nil
	})
	return n, err
}

// List calls fn for the user's items in order, with copies of the values.
func (a *Archive) List(ctx context.Context, domain, local string, fn func(seq uint64, value []byte) error) error {
	prefix := UserKeyPrefix(domain, local)
	err := a.db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(a.bucket)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(k) != len(prefix)+8 {
				continue
			}
			if err := fn(binary.BigEndian.Uint64(k[len(prefix):]), bytes.Clone(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: %s list: %w", a.bucket, err)
	}
	return nil
}

// DeleteThrough removes the user's items with sequence numbers up to and
// including seq: what List handed out and the caller has delivered.
func (a *Archive) DeleteThrough(ctx context.Context, domain, local string, seq uint64) error {
	prefix := UserKeyPrefix(domain, local)
	err := a.db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(a.bucket)
		if b == nil {
			return nil
		}
		var doomed [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(k) == len(prefix)+8 && binary.BigEndian.Uint64(k[len(prefix):]) <= seq {
				doomed = append(doomed, bytes.Clone(k))
			}
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: %s delete: %w", a.bucket, err)
	}
	return nil
}

// PutBatched is Put through bbolt's Batch: concurrent calls from many
// goroutines share one commit, so one fsync, instead of one each. For writes
// many sessions make at once and that no reply waits on (the last-activity
// stamp at every logout). The value is on disk when it returns, as with Put.
func (kv *KeyValue) PutBatched(ctx context.Context, key, value []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("storage: %s put: empty key", kv.bucket)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Batch may run fn more than once; Put is idempotent.
	err := kv.db.bolt.Batch(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(kv.bucket)
		if err != nil {
			return err
		}
		return b.Put(key, value)
	})
	if err != nil {
		return fmt.Errorf("storage: %s put: %w", kv.bucket, err)
	}
	return nil
}
