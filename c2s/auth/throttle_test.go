package auth

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestThrottle(t *testing.T) {
	const (
		base = 100 * time.Millisecond
		max  = time.Second
		idle = 2 * max
	)
	type op struct {
		kind  string // "fail", "ok", "wait", "delay"
		key   string
		d     time.Duration // wait amount, or expected delay
		label string
	}
	tests := []struct {
		name string
		ops  []op
	}{
		{"fresh key", []op{{kind: "delay", key: "a", d: 0}}},
		{"doubling to max", []op{
			{kind: "fail", key: "a"}, {kind: "delay", key: "a", d: base},
			{kind: "fail", key: "a"}, {kind: "delay", key: "a", d: 2 * base},
			{kind: "fail", key: "a"}, {kind: "delay", key: "a", d: 4 * base},
			{kind: "fail", key: "a"}, {kind: "delay", key: "a", d: 8 * base},
			{kind: "fail", key: "a"}, {kind: "delay", key: "a", d: max},
			{kind: "fail", key: "a"}, {kind: "delay", key: "a", d: max},
		}},
		{"keys independent", []op{
			{kind: "fail", key: "a"}, {kind: "fail", key: "a"},
			{kind: "delay", key: "a", d: 2 * base}, {kind: "delay", key: "b", d: 0},
		}},
		{"success resets", []op{
			{kind: "fail", key: "a"}, {kind: "fail", key: "a"}, {kind: "ok", key: "a"},
			{kind: "delay", key: "a", d: 0},
			{kind: "fail", key: "a"}, {kind: "delay", key: "a", d: base},
		}},
		{"idle resets delay", []op{
			{kind: "fail", key: "a"}, {kind: "fail", key: "a"},
			{kind: "wait", d: idle - time.Millisecond}, {kind: "delay", key: "a", d: 2 * base},
			{kind: "wait", d: time.Millisecond}, {kind: "delay", key: "a", d: 0},
		}},
		{"idle resets count on next failure", []op{
			{kind: "fail", key: "a"}, {kind: "fail", key: "a"}, {kind: "fail", key: "a"},
			{kind: "wait", d: idle}, {kind: "fail", key: "a"}, {kind: "delay", key: "a", d: base},
		}},
		{"many failures do not overflow", func() []op {
			var ops []op
			for range 200 {
				ops = append(ops, op{kind: "fail", key: "a"})
			}
			return append(ops, op{kind: "delay", key: "a", d: max})
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
			th := newThrottle(base, max, clk.now, 100)
			for i, o := range tt.ops {
				switch o.kind {
				case "fail":
					th.Failure(o.key)
				case "ok":
					th.Success(o.key)
				case "wait":
					clk.advance(o.d)
				case "delay":
					if got := th.Delay(o.key); got != o.d {
						t.Fatalf("op %d: Delay(%q) = %v, want %v", i, o.key, got, o.d)
					}
				}
			}
		})
	}
}

func TestThrottleBounded(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	th := newThrottle(time.Second, time.Minute, clk.now, 10)
	for i := range 25 {
		th.Failure(fmt.Sprint("k", i))
		clk.advance(time.Millisecond)
	}
	if n := th.size(); n != 10 {
		t.Fatalf("size = %d, want cap 10", n)
	}
	// The oldest keys were evicted, the newest kept.
	if d := th.Delay("k0"); d != 0 {
		t.Errorf("evicted key delay %v", d)
	}
	if d := th.Delay("k24"); d != time.Second {
		t.Errorf("newest key delay %v", d)
	}
	// Expired entries are swept on the next failure.
	clk.advance(time.Hour)
	th.Failure("fresh")
	if n := th.size(); n != 1 {
		t.Errorf("size after expiry = %d, want 1", n)
	}
}

func TestThrottleConcurrent(t *testing.T) {
	th := NewThrottle(time.Millisecond, time.Second)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				k := fmt.Sprint(g, i%50)
				th.Failure(k)
				th.Delay(k)
				if i%7 == 0 {
					th.Success(k)
				}
			}
		})
	}
	wg.Wait()
}

// size reports the number of remembered keys.
func (t *Throttle) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}
