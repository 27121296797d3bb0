package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// fakeClock is a Throttle's clock. Its sleep records the wait and, when
// advance is set, moves the clock on by it (a client that waited).
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	advance bool
	waits   []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	if c.advance {
		c.t = c.t.Add(d)
	}
	return nil
}

// testThrottle: 3 checks in a row, then one a second; waits up to 2 s.
func testThrottle(clk *fakeClock, maxEntries int) *Throttle {
	return NewThrottle(ThrottleConfig{
		AddrRate: 1, AddrBurst: 3, AccountRate: 1, AccountBurst: 3,
		MaxWait: 2 * time.Second, MaxEntries: maxEntries,
		Now: clk.now, Sleep: clk.sleep,
	})
}

// TestThrottleParallelNoFaster: checks that are in flight at the same time
// (parallel connections) get exactly the budget serial checks get: no more
// checks before the budget refills, the same waits.
func TestThrottleParallelNoFaster(t *testing.T) {
	const attempts = 10
	run := func(parallel bool) (admitted int, waits []time.Duration) {
		clk := newFakeClock() // waits are recorded; the clock stands still
		th := testThrottle(clk, 100)
		var inFlight []*ticket
		for i := range attempts {
			tk, err := th.admit(context.Background(), "192.0.2.1", fmt.Sprintf("user%d@example.com", i))
			if err != nil {
				wantFailure(t, err, "temporary-auth-failure")
				continue
			}
			admitted++
			if parallel {
				inFlight = append(inFlight, tk) // all checked at once, all wrong
			} else {
				tk.finish(true)
			}
		}
		for _, tk := range inFlight {
			tk.finish(true)
		}
		return admitted, clk.waits
	}
	serialN, serialWaits := run(false)
	parallelN, parallelWaits := run(true)
	// 3 at once, then the ones whose token comes within MaxWait (1 s, 2 s).
	want := []time.Duration{0, 0, 0, time.Second, 2 * time.Second}
	if serialN != len(want) || fmt.Sprint(serialWaits) != fmt.Sprint(want[3:]) {
		t.Errorf("serial: %d admitted, waits %v; want %d, %v", serialN, serialWaits, len(want), want[3:])
	}
	if parallelN != serialN || fmt.Sprint(parallelWaits) != fmt.Sprint(serialWaits) {
		t.Errorf("parallel: %d admitted, waits %v; serial: %d, %v", parallelN, parallelWaits, serialN, serialWaits)
	}
}

func TestThrottle(t *testing.T) {
	type op struct {
		kind    string // "fail", "ok": a check; "wait": the clock moves
		client  string
		account string
		d       time.Duration // "wait": how far; checks: the wait admit must impose
	}
	fail := func(client, account string, d time.Duration) op { return op{"fail", client, account, d} }
	ok := func(client, account string, d time.Duration) op { return op{"ok", client, account, d} }
	wait := func(d time.Duration) op { return op{kind: "wait", d: d} }
	const a, b = "192.0.2.1", "198.51.100.7"
	tests := []struct {
		name string
		ops  []op
	}{
		{"burst then rate", []op{
			fail(a, "", 0), fail(a, "", 0), fail(a, "", 0),
			fail(a, "", time.Second), fail(a, "", time.Second), // serial: each waits its token
		}},
		{"successes cost nothing", []op{
			ok(a, "x", 0), ok(a, "x", 0), ok(a, "x", 0), ok(a, "x", 0), ok(a, "x", 0),
			fail(a, "x", 0), fail(a, "x", 0), fail(a, "x", 0), fail(a, "x", time.Second),
		}},
		{"refill", []op{
			fail(a, "", 0), fail(a, "", 0), fail(a, "", 0),
			wait(2 * time.Second), fail(a, "", 0), fail(a, "", 0), fail(a, "", time.Second),
		}},
		{"addresses independent", []op{
			fail(a, "", 0), fail(a, "", 0), fail(a, "", 0), fail(b, "", 0),
		}},
		{"account shared across addresses", []op{
			fail(a, "alice@example.com", 0), fail(b, "alice@example.com", 0), fail(a, "alice@example.com", 0),
			fail(b, "alice@example.com", time.Second),
			fail(b, "bob@example.com", 0),
		}},
		{"nothing keyed, nothing limited", []op{
			fail("", "", 0), fail("", "", 0), fail("", "", 0), fail("", "", 0), fail("", "", 0),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			clk.advance = true
			th := testThrottle(clk, 100)
			for i, o := range tt.ops {
				switch o.kind {
				case "wait":
					clk.add(o.d)
					continue
				}
				clk.waits = nil
				tk, err := th.admit(context.Background(), o.client, o.account)
				if err != nil {
					t.Fatalf("op %d: %v", i, err)
				}
				var got time.Duration
				if len(clk.waits) > 0 {
					got = clk.waits[0]
				}
				if got != o.d {
					t.Fatalf("op %d (%s %s %s): waited %v, want %v", i, o.kind, o.client, o.account, got, o.d)
				}
				tk.finish(o.kind == "fail")
			}
		})
	}
}

// TestThrottleRefused: once the wait for a token would exceed MaxWait, the
// attempt is refused unchecked, and the refusal costs no token.
func TestThrottleRefused(t *testing.T) {
	clk := newFakeClock()
	th := testThrottle(clk, 100)
	var held []*ticket
	for range 5 { // 3 + the 2 whose token comes within 2 s
		tk, err := th.admit(context.Background(), "192.0.2.1", "")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, tk)
	}
	for range 3 {
		_, err := th.admit(context.Background(), "192.0.2.1", "")
		wantFailure(t, err, "temporary-auth-failure")
	}
	// A success gives its token back: the next attempt is admitted.
	held[0].finish(false)
	if _, err := th.admit(context.Background(), "192.0.2.1", ""); err != nil {
		t.Fatalf("after a success: %v", err)
	}
}

// TestThrottleCanceled: an attempt whose session ends while it waits gives
// its place back.
func TestThrottleCanceled(t *testing.T) {
	clk := newFakeClock()
	th := NewThrottle(ThrottleConfig{AddrRate: 1, AddrBurst: 1, MaxWait: time.Minute, Now: clk.now,
		Sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() }})
	th.admit(context.Background(), "a", "") // holds the only token
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := th.admit(ctx, "a", ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("admit = %v, want context.Canceled", err)
	}
	if p := th.addrs.m["a"].pending; p != 1 {
		t.Errorf("pending = %d, want 1 (the canceled attempt gave its place back)", p)
	}
}

func TestThrottleBounded(t *testing.T) {
	clk := newFakeClock()
	clk.advance = true
	th := testThrottle(clk, 10)
	for i := range 25 {
		tk, err := th.admit(context.Background(), fmt.Sprint("k", i), fmt.Sprint("u", i))
		if err != nil {
			t.Fatal(err)
		}
		tk.finish(true)
		clk.add(time.Millisecond)
	}
	if n, m := len(th.addrs.m), len(th.accounts.m); n != 10 || m != 10 {
		t.Fatalf("tables hold %d and %d keys, want the cap, 10", n, m)
	}
	if _, ok := th.addrs.m["k24"]; !ok {
		t.Error("the newest key was evicted")
	}
	// Buckets that filled up again are swept.
	clk.add(time.Hour)
	tk, _ := th.admit(context.Background(), "fresh", "")
	tk.finish(true)
	if n, m := len(th.addrs.m), len(th.accounts.m); n != 1 || m != 0 {
		t.Errorf("after an hour: %d and %d keys, want 1 and 0", n, m)
	}
	// A success leaves its bucket full: nothing to remember.
	tk, _ = th.admit(context.Background(), "ok", "")
	tk.finish(false)
	if _, ok := th.addrs.m["ok"]; ok {
		t.Error("a bucket a success left full is kept")
	}
}

func TestThrottleConcurrent(t *testing.T) {
	th := NewThrottle(ThrottleConfig{AddrRate: rate.Inf, AccountRate: 1000, MaxEntries: 20,
		Sleep: func(context.Context, time.Duration) error { return nil }})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				tk, err := th.admit(context.Background(), fmt.Sprint(g), fmt.Sprint(i%50))
				if err == nil {
					tk.finish(i%7 != 0)
				}
				if s, ok := th.Connect(fmt.Sprint(i%3), 4); ok {
					s.Release()
					s.Release()
				}
			}
		})
	}
	wg.Wait()
	if n := len(th.conns); n != 0 {
		t.Errorf("%d addresses still counted after every slot was released", n)
	}
}

func TestThrottleConnect(t *testing.T) {
	th := NewThrottle(ThrottleConfig{})
	s1, ok1 := th.Connect("a", 2)
	s2, ok2 := th.Connect("a", 2)
	_, ok3 := th.Connect("a", 2)
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("Connect ×3 = %v %v %v, want true true false", ok1, ok2, ok3)
	}
	if _, ok := th.Connect("b", 2); !ok {
		t.Error("another address was refused")
	}
	s1.Release()
	s1.Release() // a second release frees nothing more
	if _, ok := th.Connect("a", 2); !ok {
		t.Error("refused after a release")
	}
	if _, ok := th.Connect("a", 2); ok {
		t.Error("a double release freed two slots")
	}
	s2.Release()
	var nilSlot *ConnSlot
	nilSlot.Release()
	ctx := WithConnSlot(context.Background(), s2)
	if ConnSlotFrom(ctx) != s2 || ConnSlotFrom(context.Background()) != nil {
		t.Error("ConnSlotFrom does not return the slot WithConnSlot stored")
	}
	var nilThrottle *Throttle
	if s, ok := nilThrottle.Connect("a", 0); !ok || s != nil {
		t.Error("a nil Throttle refused a connection")
	}
}

func TestClientKey(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 5222}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 5222}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 5222}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:ffff::1"), Port: 1}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0"}, "fe80::/64"},
		{&net.UDPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, "192.0.2.7"},
		{pipeAddr{}, "pipe"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := ClientKey(tt.addr); got != tt.want {
			t.Errorf("ClientKey(%v) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
