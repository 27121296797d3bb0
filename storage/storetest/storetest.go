// Package storetest is the contract every storage backend meets: one test
// function per store interface of package storage, run by a backend's own
// tests against a fresh database of that backend (bbolt in t.TempDir() in
// storage's tests; PostgreSQL later). Only tests import it.
//
//	func TestLog(t *testing.T) {
//		storetest.Log(t, func(t *testing.T) (storage.Log, func() storage.Log) {
//			db := open(t)
//			return db.Log("x"), func() storage.Log { db = reopen(t, db); return db.Log("x") }
//		})
//	}
//
// The tests use only the interfaces, explicit times (no wall-clock margins)
// and small data, so a backend over the network runs them in seconds.
package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/xmppd/xmppd/storage"
)

// Opener makes an empty store of one backend for one subtest and returns it
// with reopen, which closes the backend and opens it again on the same data
// and returns the store as a restarted server would see it (the earlier one
// is not used again). reopen may be nil when the backend cannot; the
// subtests that need it are then skipped. The backend is closed by the
// opener's own t.Cleanup.
type Opener[S any] func(t *testing.T) (store S, reopen func() S)

// BackendOpener makes an empty backend for one subtest (closed by its own
// t.Cleanup).
type BackendOpener func(t *testing.T) storage.Backend

// ctx is the context of calls that are not about contexts.
var ctx = context.Background()

// cancelled is a context that has ended.
func cancelled() context.Context {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	return c
}

// must fails the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErr checks that err wraps target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want one wrapping %v", what, err, target)
	}
}
