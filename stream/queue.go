package stream

import "sync"

// Queue is a bounded queue of items waiting to be written on a stream. A
// Conn drains it. Usually the Conn makes its own; a c2s session makes one
// that outlives its connections (a stream that ends leaves what it did not
// write in the queue for the session to deliver elsewhere), and hands it to
// each Conn that attaches to the session.
//
// Its lock also guards the draining Conn's writing and closing state: one
// lock for the queue and the state that decides whether it is drained, so
// that a push and the writer's decision to stop cannot miss each other.
type Queue[T any] struct {
	mu    sync.Mutex
	items []T
	max   int
	room  chan struct{} // closed by the writer when it empties the queue; see Conn.DeliverWait
}

// NewQueue returns an empty queue bounded to max items (for bounded pushes).
func NewQueue[T any](max int) *Queue[T] { return &Queue[T]{max: max} }

// Len reports how many items wait.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// Max is the queue's bound.
func (q *Queue[T]) Max() int { return q.max }

// Push adds it unless max items wait already, without any writer: for a
// queue that no Conn drains now (a session between two connections).
func (q *Queue[T]) Push(it T) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) >= q.max {
		return false
	}
	q.items = append(q.items, it)
	return true
}

// PushUpTo is Push with another bound: a detached session that waits for
// its client to resume (XEP-0198) may keep more than a connection may.
func (q *Queue[T]) PushUpTo(it T, max int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) >= max {
		return false
	}
	q.items = append(q.items, it)
	return true
}

// TakeAll removes and returns every waiting item.
func (q *Queue[T]) TakeAll() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	left := q.items
	q.items = nil
	return left
}

// PushFront puts items ahead of what waits, whatever the bound: stanzas
// sent on an earlier connection and never acknowledged, retransmitted
// first when a session resumes (XEP-0198).
func (q *Queue[T]) PushFront(items []T) {
	if len(items) == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = append(items[:len(items):len(items)], q.items...)
}
