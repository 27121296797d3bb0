package storage_test

import (
	"path/filepath"
	"testing"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/storetest"
)

// The contract of storetest, against bbolt in t.TempDir().

// openDB opens a fresh database for one test, closed at its end; reopen
// closes it and opens the same file again.
func openDB(t *testing.T) (db *storage.DB, reopen func() *storage.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "xmppd.db")
	var err error
	db, err = storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, func() *storage.DB {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if db, err = storage.Open(path, storage.Options{}); err != nil {
			t.Fatal(err)
		}
		return db
	}
}

// opener makes a storetest.Opener of the store get returns.
func opener[S any](get func(*storage.DB) S) storetest.Opener[S] {
	return func(t *testing.T) (S, func() S) {
		db, reopen := openDB(t)
		return get(db), func() S { return get(reopen()) }
	}
}

func TestContractLog(t *testing.T) {
	storetest.Log(t, opener(func(db *storage.DB) storage.Log { return db.Log("archive") }))
}

// TestContractLogIndexed runs the Log contract with the words of every
// third entry's batch indexed at once (the default waits for 128 per
// owner, more than most subtests append), so that queries, Replace and
// deletes go through the word index and the pending list together.
func TestContractLogIndexed(t *testing.T) {
	defer storage.SetPendingMax(3)()
	storetest.Log(t, opener(func(db *storage.DB) storage.Log { return db.Log("archive") }))
}

func TestContractKeyValue(t *testing.T) {
	storetest.KeyValue(t, opener(func(db *storage.DB) storage.KeyValue { return db.KeyValue("roster") }))
}

func TestContractQueue(t *testing.T) {
	storetest.Queue(t, opener(func(db *storage.DB) storage.Queue { return db.Queue("offline") }))
}

func TestContractBackend(t *testing.T) {
	storetest.Backend(t, func(t *testing.T) storage.Backend {
		db, _ := openDB(t)
		return db
	})
}
