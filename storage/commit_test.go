package storage

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestBatchGroups: concurrent batch calls share commits; a failing function
// fails only its own call (its writes are not committed) and the others'
// writes are.
func TestBatchGroups(t *testing.T) {
	db := openTemp(t)
	errBad := errors.New("bad")
	const n = 300
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = db.batch(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("t"))
				if err != nil {
					return err
				}
				if err := b.Put(fmt.Appendf(nil, "%03d", i), []byte("x")); err != nil {
					return err
				}
				if i%7 == 0 {
					return errBad // after writing: the write must not stay
				}
				return nil
			})
		})
	}
	wg.Wait()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("t"))
		for i := range n {
			got := b.Get(fmt.Appendf(nil, "%03d", i)) != nil
			switch {
			case i%7 == 0 && !errors.Is(errs[i], errBad):
				t.Errorf("%d: error %v, want %v", i, errs[i], errBad)
			case i%7 != 0 && errs[i] != nil:
				t.Errorf("%d: error %v", i, errs[i])
			case got != (i%7 != 0):
				t.Errorf("%d: written %v", i, got)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBatchIdleLatency: a lone write commits at once, not after a batching
// delay (bbolt's Batch waited 10 ms).
func TestBatchIdleLatency(t *testing.T) {
	db := openTemp(t)
	best := time.Hour
	for range 5 {
		start := time.Now()
		if err := db.batch(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists([]byte("t"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		best = min(best, time.Since(start))
	}
	// One commit (an fsync or two); a 10 ms timer would show in all five.
	if best >= 10*time.Millisecond {
		t.Errorf("the fastest of 5 lone writes took %v", best)
	}
}
