package auth

import (
	"container/list"
	"context"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Throttle limits password guessing across all of a server's connections.
//
// What it limits is checks: every time a mechanism is about to compare a
// proof (a PLAIN password, a SCRAM ClientProof, a FAST token) it first
// takes a token from two buckets, the client address's and the attempted
// account's (golang.org/x/time/rate, one Limiter per key, shared by every
// connection). A check that fails spends its tokens; a check that succeeds
// gives them back, so successful logins cost no budget and, while the
// buckets are not empty, wait for nothing.
//
// The token is taken before the check, not after a failure, because a
// correct guess is answered at once: if only failures were metered, an
// attacker with N parallel connections would have N guesses checked at the
// same time and learn of a hit without waiting. Here checks still in flight
// hold their tokens (bucket.pending), so N parallel attempts get no more
// checks than N serial ones: at most Burst at once, then Rate per second,
// per address and per account.
//
// An attempt beyond the budget waits for its token, in line behind the
// attempts already waiting. If that wait would exceed MaxWait the attempt
// is refused at once with temporary-auth-failure, before any check: the
// client learns nothing about the password, and the session counts it as a
// failure (c2s closes the stream after MaxAuthFailures).
//
// IPv6 clients are keyed by their /64 (ClientKey): one host usually holds
// the whole prefix.
//
// Memory is bounded: a bucket that is full again and has no check in flight
// says nothing a fresh one would not, and is dropped; each table (addresses,
// accounts) also has a hard cap, past which the least recently used key is
// forgotten: under a flood of distinct keys this weakens throttling of old
// keys rather than exhausting memory.
//
// The per-account budget is a trade-off: someone spraying guesses at an
// account also slows, and past MaxWait refuses, its owner's logins for as
// long as they keep at it. Without it, guesses at one account from many
// addresses would be unlimited.
//
// A Throttle also counts, per client address, the connections that have not
// authenticated yet (Connect), for c2s's cap on them. It is safe for
// concurrent use.
type Throttle struct {
	maxWait time.Duration
	now     func() time.Time
	sleep   func(ctx context.Context, d time.Duration) error

	mu       sync.Mutex
	addrs    table
	accounts table
	conns    map[string]int // client key → connections not yet authenticated
}

// ThrottleConfig sets a Throttle's budgets. Zero fields take the defaults.
type ThrottleConfig struct {
	// AddrRate is the checks per second one client address gets back, up
	// to AddrBurst in a row (DefaultAddrRate, DefaultAddrBurst).
	AddrRate  rate.Limit
	AddrBurst int
	// AccountRate and AccountBurst are the same for one account.
	AccountRate  rate.Limit
	AccountBurst int
	// MaxWait is the longest an attempt waits for its token (DefaultMaxWait).
	MaxWait time.Duration
	// MaxEntries caps the keys each table remembers (DefaultThrottleEntries).
	MaxEntries int

	// Now and Sleep are the clock, for tests; nil: the real one.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// The defaults: a client address gets 10 checks, then one every 2 s; an
// account 10, then one every 5 s. A person who mistypes a password a few
// times never waits; a guesser gets 30 guesses a minute per address at
// most, whatever the number of its connections.
const (
	DefaultAddrRate        = rate.Limit(1.0 / 2)
	DefaultAddrBurst       = 10
	DefaultAccountRate     = rate.Limit(1.0 / 5)
	DefaultAccountBurst    = 10
	DefaultMaxWait         = 8 * time.Second
	DefaultThrottleEntries = 100_000

	// DefaultMaxPreAuthConns is c2s's default cap on one address's
	// connections that have not authenticated yet.
	DefaultMaxPreAuthConns = 32
)

// NewThrottle returns a Throttle with cfg's budgets.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	if cfg.AddrRate <= 0 {
		cfg.AddrRate = DefaultAddrRate
	}
	if cfg.AddrBurst <= 0 {
		cfg.AddrBurst = DefaultAddrBurst
	}
	if cfg.AccountRate <= 0 {
		cfg.AccountRate = DefaultAccountRate
	}
	if cfg.AccountBurst <= 0 {
		cfg.AccountBurst = DefaultAccountBurst
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultThrottleEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	return &Throttle{
		maxWait:  cfg.MaxWait,
		now:      cfg.Now,
		sleep:    cfg.Sleep,
		addrs:    newTable(cfg.AddrRate, cfg.AddrBurst, cfg.MaxEntries),
		accounts: newTable(cfg.AccountRate, cfg.AccountBurst, cfg.MaxEntries),
		conns:    make(map[string]int),
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errThrottled refuses an attempt whose token is too far off.
func errThrottled() *Failure {
	return failure("temporary-auth-failure", "too many failed attempts, try again later")
}

// ticket is one admitted check: it holds a token of each bucket until finish.
type ticket struct {
	t       *Throttle
	buckets []*bucket
}

// admit waits until a check by client (a ClientKey) of account (a bare JID)
// may run, and returns its ticket; "" keys are not limited. A nil Throttle
// admits everything (a nil ticket). When the wait would exceed MaxWait it
// returns errThrottled at once; when ctx ends first, ctx's error.
func (t *Throttle) admit(ctx context.Context, client, account string) (*ticket, error) {
	if t == nil {
		return nil, nil
	}
	t.mu.Lock()
	now := t.now()
	tk := &ticket{t: t}
	if client != "" {
		tk.buckets = append(tk.buckets, t.addrs.get(client, now))
	}
	if account != "" {
		tk.buckets = append(tk.buckets, t.accounts.get(account, now))
	}
	var wait time.Duration
	for _, b := range tk.buckets {
		wait = max(wait, b.wait(now))
	}
	if wait > t.maxWait {
		t.mu.Unlock()
		return nil, errThrottled()
	}
	// Taken now, while waiting too: who comes next queues behind us.
	for _, b := range tk.buckets {
		b.pending++
	}
	t.mu.Unlock()
	if wait > 0 {
		if err := t.sleep(ctx, wait); err != nil {
			tk.finish(false)
			return nil, err
		}
	}
	return tk, nil
}

// finish ends the check: a failed one spends its tokens, a successful one
// gives them back. It may be called on a nil ticket.
func (tk *ticket) finish(failed bool) {
	if tk == nil {
		return
	}
	t := tk.t
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, b := range tk.buckets {
		b.pending--
		if failed {
			// Never refused (InfDuration): a bucket may go into debt, which
			// later attempts wait out.
			b.lim.ReserveN(now, 1)
		}
		if b.el == nil {
			continue // evicted meanwhile
		}
		if b.idle(now) {
			b.table.remove(b) // a success left it full: nothing to remember
		} else {
			b.table.touch(b)
		}
	}
	t.addrs.sweep(now)
	t.accounts.sweep(now)
}

// bucket is one key's budget.
type bucket struct {
	key     string
	lim     *rate.Limiter
	pending int // admitted checks not finished yet, each holding a token
	table   *table
	el      *list.Element
}

// wait is how long a new attempt must wait for a token of b: until the
// bucket holds one more token than the checks ahead of it hold.
func (b *bucket) wait(now time.Time) time.Duration {
	need := float64(b.pending) + 1 - b.lim.TokensAt(now)
	if need <= 0 {
		return 0
	}
	r := float64(b.lim.Limit())
	if r <= 0 || need/r > float64(math.MaxInt64/int64(time.Second)) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(math.Ceil(need / r * float64(time.Second)))
}

// idle reports that b is as good as a fresh bucket.
func (b *bucket) idle(now time.Time) bool {
	return b.pending == 0 && b.lim.TokensAt(now) >= float64(b.lim.Burst())
}

// table is the buckets of one kind of key, least recently used first.
type table struct {
	limit      rate.Limit
	burst      int
	maxEntries int
	m          map[string]*bucket
	order      list.List // of *bucket
}

func newTable(limit rate.Limit, burst, maxEntries int) table {
	return table{limit: limit, burst: burst, maxEntries: maxEntries, m: make(map[string]*bucket)}
}

func (tb *table) get(key string, now time.Time) *bucket {
	if b, ok := tb.m[key]; ok {
		tb.touch(b)
		return b
	}
	tb.sweep(now)
	for len(tb.m) >= tb.maxEntries && tb.order.Len() > 0 {
		tb.remove(tb.order.Front().Value.(*bucket))
	}
	b := &bucket{key: key, lim: rate.NewLimiter(tb.limit, tb.burst), table: tb}
	b.el = tb.order.PushBack(b)
	tb.m[key] = b
	return b
}

func (tb *table) touch(b *bucket) {
	if b.el != nil {
		tb.order.MoveToBack(b.el)
	}
}

// sweep drops idle buckets from the front of the list. They are in order
// of last use, which is close to the order they fill up again in, so it
// stops at the first one still in use (amortised O(1)).
func (tb *table) sweep(now time.Time) {
	for el := tb.order.Front(); el != nil; el = tb.order.Front() {
		b := el.Value.(*bucket)
		if !b.idle(now) {
			return
		}
		tb.remove(b)
	}
}

// remove forgets b. A check still holding b's token finishes on the
// orphan, which changes nothing any more.
func (tb *table) remove(b *bucket) {
	delete(tb.m, b.key)
	tb.order.Remove(b.el)
	b.el = nil
}

// Connect counts a new connection from client (a ClientKey) that has not
// authenticated yet. When client already has max of them it returns false
// and counts nothing. Otherwise the connection holds a slot until it
// authenticates or ends: release the slot then (ConnSlot.Release, safe
// more than once). A nil Throttle admits every connection.
func (t *Throttle) Connect(client string, max int) (*ConnSlot, bool) {
	if t == nil {
		return nil, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns[client] >= max {
		return nil, false
	}
	t.conns[client]++
	return &ConnSlot{t: t, key: client}, true
}

// A ConnSlot is one connection's place under its address's cap on
// connections that have not authenticated.
type ConnSlot struct {
	t    *Throttle
	key  string
	once sync.Once
}

// Release frees the slot. It may be called more than once, and on nil.
func (s *ConnSlot) Release() {
	if s == nil {
		return
	}
	s.once.Do(func() {
		t := s.t
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.conns[s.key] <= 1 {
			delete(t.conns, s.key)
		} else {
			t.conns[s.key]--
		}
	})
}

type slotKey struct{}

// WithConnSlot returns ctx carrying the connection's slot, for the code
// that authenticates it to release.
func WithConnSlot(ctx context.Context, s *ConnSlot) context.Context {
	return context.WithValue(ctx, slotKey{}, s)
}

// ConnSlotFrom returns the slot ctx carries, or nil.
func ConnSlotFrom(ctx context.Context) *ConnSlot {
	s, _ := ctx.Value(slotKey{}).(*ConnSlot)
	return s
}

// ClientKey names a client address for throttling: the IP address for
// IPv4, the /64 prefix for IPv6 (one host usually has all of it), the
// address's string for anything else (pipes in tests).
func ClientKey(a net.Addr) string {
	if a == nil {
		return ""
	}
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr()
		}
	}
	if !ip.IsValid() {
		return a.String()
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
