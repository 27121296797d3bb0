package auth

import (
	"container/list"
	"sync"
	"time"
)

// defaultThrottleEntries caps the keys a Throttle remembers so that an
// attacker cycling through usernames or addresses cannot grow it unbounded.
const defaultThrottleEntries = 100_000

// Throttle slows down repeated authentication failures per key (an
// account's bare JID, or an IP address). After n consecutive failures the
// next attempt should wait base·2^(n-1), capped at max. A success forgets
// the key, and so does a quiet period of twice max (or base if larger)
// without failures. It is safe for concurrent use.
type Throttle struct {
	base, max, idle time.Duration
	now             func() time.Time
	maxEntries      int

	mu      sync.Mutex
	entries map[string]*list.Element // of *throttleEntry
	order   list.List                // least recently failed first
}

type throttleEntry struct {
	key      string
	failures int
	last     time.Time
}

// NewThrottle returns a Throttle whose delay doubles per consecutive failure
// from base up to max.
func NewThrottle(base, max time.Duration) *Throttle {
	return newThrottle(base, max, time.Now, defaultThrottleEntries)
}

func newThrottle(base, max time.Duration, now func() time.Time, maxEntries int) *Throttle {
	if max < base {
		max = base
	}
	idle := 2 * max
	if idle <= 0 {
		idle = time.Minute
	}
	return &Throttle{base: base, max: max, idle: idle, now: now, maxEntries: maxEntries,
		entries: make(map[string]*list.Element)}
}

// Delay is how long the caller should wait before answering this attempt.
func (t *Throttle) Delay(key string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.entries[key]
	if !ok {
		return 0
	}
	e := el.Value.(*throttleEntry)
	if t.now().Sub(e.last) >= t.idle {
		t.remove(el)
		return 0
	}
	d := t.base
	// Doubling stops at max; the loop also keeps the shift from overflowing.
	for i := 1; i < e.failures && d < t.max; i++ {
		d *= 2
	}
	return min(d, t.max)
}

// Failure records a failed attempt for key.
func (t *Throttle) Failure(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.expire(now)
	if el, ok := t.entries[key]; ok {
		e := el.Value.(*throttleEntry)
		if now.Sub(e.last) >= t.idle {
			e.failures = 0
		}
		e.failures++
		e.last = now
		t.order.MoveToBack(el)
		return
	}
	for len(t.entries) >= t.maxEntries && t.order.Len() > 0 {
		// Full of recent failures: forget the oldest. Under a flood this
		// weakens throttling of old keys rather than exhausting memory.
		t.remove(t.order.Front())
	}
	t.entries[key] = t.order.PushBack(&throttleEntry{key: key, failures: 1, last: now})
}

// Success forgets key's failures.
func (t *Throttle) Success(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.entries[key]; ok {
		t.remove(el)
	}
}

// expire drops idle entries from the front of the list; they are ordered by
// last failure, so it stops at the first live one (amortised O(1)).
func (t *Throttle) expire(now time.Time) {
	for el := t.order.Front(); el != nil; el = t.order.Front() {
		if now.Sub(el.Value.(*throttleEntry).last) < t.idle {
			return
		}
		t.remove(el)
	}
}

func (t *Throttle) remove(el *list.Element) {
	delete(t.entries, el.Value.(*throttleEntry).key)
	t.order.Remove(el)
}
