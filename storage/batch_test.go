package storage

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// TestPutBatched: many concurrent writers, every value stored, readable
// after reopening.
func TestPutBatched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	kv := db.KeyValue("stamps")
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := kv.PutBatched(ctx, fmt.Appendf(nil, "u%02d@localhost", i), fmt.Appendf(nil, "%d", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := kv.PutBatched(ctx, nil, []byte("x")); err == nil {
		t.Error("an empty key was accepted")
	}
	db.Close()
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 0; i < 50; i++ {
		v, err := db.KeyValue("stamps").Get(ctx, fmt.Appendf(nil, "u%02d@localhost", i))
		if err != nil || string(v) != fmt.Sprint(i) {
			t.Fatalf("u%02d: %q %v", i, v, err)
		}
	}
}
