package storage

import (
	"errors"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Group commit: the writes no caller can do without waiting for its own
// fsync (an archived message, a last-activity stamp) share transactions.
// bbolt's own Batch waits up to MaxBatchDelay (10 ms) for company before
// committing, so a lone Append took ~14 ms, however idle the server. Here
// the first writer commits at once; writers arriving while that commit
// runs queue up, and when it is done the first of them commits all that
// queued, in one transaction: no timer, so an idle server answers in one
// fsync, a busy one gathers as many writes per commit as arrive during one.
// Writers wait for their own commit only, and leadership passes from one
// waiting writer to the next, so nobody commits for others for long.

// maxGroup bounds the functions one group commit runs: a transaction of
// thousands of appends takes long to write, and all of them wait for it.
const maxGroup = 1000

type groupCommit struct {
	mu      sync.Mutex
	pending []*commitReq
	busy    bool // a leader is committing
}

type commitReq struct {
	fn  func(*bolt.Tx) error
	err error
	// wake gets true when the request is to lead the next commit, false
	// when it has been committed (err set).
	wake chan bool
}

var reqPool = sync.Pool{New: func() any { return &commitReq{wake: make(chan bool, 1)} }}

// errSkipped marks, inside a group, the function that failed: the others
// run again without it.
var errSkipped = errors.New("storage: batch function failed")

// batch runs fn in a write transaction shared with concurrent callers,
// durably committed before it returns. fn may run more than once (when
// another function of its group fails, the group is retried without it),
// so it must start from what the transaction holds each time. An error from
// fn fails only this call.
func (db *DB) batch(fn func(*bolt.Tx) error) error {
	r := reqPool.Get().(*commitReq)
	r.fn, r.err = fn, nil
	g := &db.group
	g.mu.Lock()
	g.pending = append(g.pending, r)
	lead := !g.busy
	g.busy = true
	g.mu.Unlock()
	if !lead {
		lead = <-r.wake
	}
	if lead {
		db.lead()
	}
	err := r.err
	r.fn, r.err = nil, nil
	reqPool.Put(r)
	return err
}

// lead commits the pending requests (the leader's own among them), then
// hands leadership to the next waiting one, if any.
func (db *DB) lead() {
	g := &db.group
	g.mu.Lock()
	n := min(len(g.pending), maxGroup)
	group := make([]*commitReq, n)
	copy(group, g.pending)
	g.pending = append(g.pending[:0], g.pending[n:]...)
	g.mu.Unlock()

	db.commitGroup(group)

	g.mu.Lock()
	var next *commitReq
	if len(g.pending) > 0 {
		next = g.pending[0]
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	// The leader's own request is in group: it returns after this.
	for _, r := range group[1:] {
		r.wake <- false
	}
	if next != nil {
		next.wake <- true
	}
}

// commitGroup runs group's functions in one transaction, retrying without
// any that fails, and sets each one's err. group[0] is the leader and is
// not woken.
func (db *DB) commitGroup(group []*commitReq) {
	live := make([]*commitReq, len(group))
	copy(live, group)
	for len(live) > 0 {
		failed := -1
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			for i, r := range live {
				if err := r.fn(tx); err != nil {
					failed, r.err = i, err
					return errSkipped
				}
			}
			return nil
		})
		if failed >= 0 {
			live = append(live[:failed], live[failed+1:]...)
			continue
		}
		for _, r := range live {
			r.err = err
		}
		return
	}
}
