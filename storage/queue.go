package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// boltQueue is a Queue in bucket "archive:<name>" (the name it had when it
// was called Archive; the layout is unchanged). Keys are the user's
// UserKeyPrefix followed by a big-endian sequence number, so a cursor walks
// a user's items in the order they were added (never decimal strings:
// "10" < "9").
type boltQueue struct {
	db     *DB
	bucket []byte
}

const archivePrefix = "archive:"

// Queue returns the queue called name. Its bucket is created on the first Append.
func (db *DB) Queue(name string) Queue {
	return &boltQueue{db: db, bucket: []byte(archivePrefix + name)}
}

// Archive is Queue by its former name, kept for the callers that still use
// it; new code says Queue (the message archive is a Log).
func (db *DB) Archive(name string) Queue { return db.Queue(name) }

// Append implements Queue.
func (a *boltQueue) Append(ctx context.Context, domain, local string, value []byte, max int) (seq uint64, err error) {
	prefix := UserKeyPrefix(domain, local)
	err = a.db.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(a.bucket)
		if err != nil {
			return err
		}
		if max > 0 && countPrefix(b, prefix, max) >= max {
			return ErrFull
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

// Count implements Queue.
func (a *boltQueue) Count(ctx context.Context, domain, local string) (int, error) {
	n := 0
	err := a.db.view(ctx, func(tx *bolt.Tx) error {
		if b := tx.Bucket(a.bucket); b != nil {
			n = countPrefix(b, UserKeyPrefix(domain, local), int(^uint(0)>>1))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: %s count: %w", a.bucket, err)
	}
	return n, nil
}

// List implements Queue.
func (a *boltQueue) List(ctx context.Context, domain, local string, fn func(seq uint64, value []byte) error) error {
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

// DeleteThrough implements Queue.
func (a *boltQueue) DeleteThrough(ctx context.Context, domain, local string, seq uint64) error {
	prefix := UserKeyPrefix(domain, local)
	err := a.db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(a.bucket)
		if b == nil {
			return nil
		}
		var doomed [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(k) != len(prefix)+8 {
				continue
			}
			if binary.BigEndian.Uint64(k[len(prefix):]) > seq {
				break // in sequence order: the rest are later
			}
			doomed = append(doomed, bytes.Clone(k))
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
