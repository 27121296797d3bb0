package storage

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// boltKV is a KeyValue kept in bucket "kv:<name>".
type boltKV struct {
	db     *DB
	bucket []byte
}

// KeyValue returns the store called name. Its bucket is created on the
// first write.
func (db *DB) KeyValue(name string) KeyValue {
	return &boltKV{db: db, bucket: []byte(kvPrefix + name)}
}

// Get implements KeyValue.
func (kv *boltKV) Get(ctx context.Context, key []byte) ([]byte, error) {
	var out []byte
	err := kv.db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(kv.bucket)
		if b == nil {
			return nil
		}
		if v := b.Get(key); v != nil {
			// bbolt values point into the mmap and are only valid inside
			// the transaction.
			out = append([]byte{}, v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: %s get: %w", kv.bucket, err)
	}
	return out, nil
}

// Put implements KeyValue.
func (kv *boltKV) Put(ctx context.Context, key, value []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("storage: %s put: empty key", kv.bucket)
	}
	if err := kv.db.update(ctx, kv.put(key, value)); err != nil {
		return fmt.Errorf("storage: %s put: %w", kv.bucket, err)
	}
	return nil
}

// put is the transaction of Put and PutBatched.
func (kv *boltKV) put(key, value []byte) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(kv.bucket)
		if err != nil {
			return err
		}
		return b.Put(key, value)
	}
}

// PutBatched implements KeyValue through DB.batch: concurrent calls from
// many goroutines share one commit, so one fsync, instead of one each.
func (kv *boltKV) PutBatched(ctx context.Context, key, value []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("storage: %s put: empty key", kv.bucket)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// batch may run the transaction more than once; a put is idempotent.
	if err := kv.db.batch(kv.put(key, value)); err != nil {
		return fmt.Errorf("storage: %s put: %w", kv.bucket, err)
	}
	return nil
}

// Delete implements KeyValue.
func (kv *boltKV) Delete(ctx context.Context, key []byte) error {
	err := kv.db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(kv.bucket)
		if b == nil {
			return nil
		}
		return b.Delete(key)
	})
	if err != nil {
		return fmt.Errorf("storage: %s delete: %w", kv.bucket, err)
	}
	return nil
}

// Scan implements KeyValue.
func (kv *boltKV) Scan(ctx context.Context, prefix []byte, fn func(key, value []byte) error) error {
	err := kv.db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(kv.bucket)
		if b == nil {
			return nil
		}
		return scan(b, prefix, fn)
	})
	if err != nil {
		return fmt.Errorf("storage: %s scan: %w", kv.bucket, err)
	}
	return nil
}

// scan calls fn with copies of the keys and values under prefix, in order.
func scan(b *bolt.Bucket, prefix []byte, fn func(key, value []byte) error) error {
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(bytes.Clone(k), bytes.Clone(v)); err != nil {
			return err
		}
	}
	return nil
}

// Update implements KeyValue: fn runs in one bbolt write transaction,
// committed (and synced to disk) before Update returns.
func (kv *boltKV) Update(ctx context.Context, fn func(t Txn) error) error {
	err := kv.db.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(kv.bucket)
		if err != nil {
			return err
		}
		return fn(&boltTxn{b: b})
	})
	if err != nil {
		return fmt.Errorf("storage: %s update: %w", kv.bucket, err)
	}
	return nil
}

// boltTxn is a Txn on one bucket.
type boltTxn struct{ b *bolt.Bucket }

// Get implements Txn.
func (t *boltTxn) Get(key []byte) []byte { return bytes.Clone(t.b.Get(key)) }

// Put implements Txn.
func (t *boltTxn) Put(key, value []byte) error { return t.b.Put(key, value) }

// Delete implements Txn.
func (t *boltTxn) Delete(key []byte) error { return t.b.Delete(key) }

// Scan implements Txn.
func (t *boltTxn) Scan(prefix []byte, fn func(key, value []byte) error) error {
	return scan(t.b, prefix, fn)
}
