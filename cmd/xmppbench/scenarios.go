package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

// config is one run: the target, the accounts, the scenario's sizes.
type config struct {
	Scenario     string
	Addr         string
	Domain       string
	DirectTLS    bool
	Mech         string
	SASL2        bool // SASL2 (XEP-0388) with an inline bind (XEP-0386) where the server offers it
	Fast         bool // with SASL2: FAST tokens (XEP-0484), see fastWarmup
	Sources      []net.IP
	Prefix       string
	Password     string
	First        int // number of the first account: prefix+First
	Users        int // accounts available (login cycles over them); 0 = as many as needed
	Concurrency  int
	Timeout      time.Duration
	ServerPID    int
	N            int           // login: logins; idle: sessions; presence: users
	Duration     time.Duration // idle hold; chat sending time
	Pairs        int
	Rate         float64 // chat: messages/s per sender, 0 = as fast as possible
	Window       int     // chat: unacknowledged messages per sender, 0 = unbounded
	Contacts     int     // presence: roster contacts per user
	UpdateRounds int     // presence: rounds of the update phase
	Drain        time.Duration
	Setup        time.Duration // presence: how long the subscriptions may take to set up
	Settle       time.Duration // idle: pause after connecting, before reading the server's RSS
	SM           bool          // XEP-0198 stream management with resumption on every session
	SMEvery      int           // with SM: <r/> after this many stanzas sent
	Senders      int           // resume, hibernate: clients that send to the cut sessions
	Cut          cutMode       // resume, hibernate: how the connections are lost
	Before       int           // resume, hibernate: messages to each session before the cut
	During       int           // resume, hibernate: messages to each session while it is cut
	Archive      archiveConfig // archive: sizes
	Progress     io.Writer     // nil: no progress line
}

// bench is a run in progress.
type bench struct {
	cfg    config
	d      *dialer
	r      *report
	done   atomic.Int64 // logins finished (ok or failed) in the current phase
	ok     atomic.Int64
	failed atomic.Int64
	live   atomic.Int64 // sessions currently connected
}

func (b *bench) user(i int) string {
	if b.cfg.Users > 0 {
		i %= b.cfg.Users
	}
	return b.cfg.Prefix + strconv.Itoa(b.cfg.First+i)
}

func (b *bench) jid(i int) string { return b.user(i) + "@" + b.cfg.Domain }

// connectAll logs in the accounts idxs with at most Concurrency logins in
// flight. With keep, each login's goroutine becomes the client's reader and
// the clients are returned (nil where the login failed); otherwise each
// session is closed right after login. Login times go into lat.
func (b *bench) connectAll(ctx context.Context, idxs []int, h handler, keep bool, lat *hist, prepare func(c *client)) ([]*client, *sync.WaitGroup) {
	b.done.Store(0)
	b.ok.Store(0)
	b.failed.Store(0)
	clients := make([]*client, len(idxs))
	readers := &sync.WaitGroup{}
	var logins sync.WaitGroup
	sem := make(chan struct{}, max(1, b.cfg.Concurrency))
loop:
	for pos, i := range idxs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		logins.Add(1)
		go func() {
			c, err := b.d.login(ctx, i, b.user(i), b.cfg.Password, h)
			<-sem
			b.done.Add(1)
			if err != nil {
				b.failed.Add(1)
				b.r.addError(err)
				logins.Done()
				return
			}
			b.ok.Add(1)
			lat.record(c.loggedIn)
			if !keep {
				c.close()
				logins.Done()
				return
			}
			if prepare != nil {
				prepare(c)
			}
			clients[pos] = c
			b.live.Add(1)
			readers.Add(1)
			logins.Done()
			c.readLoop()
			b.live.Add(-1)
			readers.Done()
		}()
	}
	logins.Wait()
	return clients, readers
}

// closeAll ends every session and waits for the readers.
func closeAll(clients []*client, readers *sync.WaitGroup) {
	for _, c := range clients {
		if c != nil {
			c.close()
		}
	}
	readers.Wait()
}

// countDropped counts sessions the server ended while we held them.
func (b *bench) countDropped(clients []*client) int {
	n := 0
	for _, c := range clients {
		if c != nil && c.dropped.Load() {
			n++
			b.r.addError(fmt.Errorf("session dropped: %v", c.dropErr))
		}
	}
	return n
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// --- login storm -------------------------------------------------------------

func (b *bench) runLogin(ctx context.Context) {
	n := b.cfg.N
	b.r.Params["logins"] = n
	b.r.Params["concurrency"] = b.cfg.Concurrency
	var lat hist
	p := startProgress(b.cfg.Progress, "login", func() string {
		return fmt.Sprintf("logins %d/%d ok %d failed %d", b.done.Load(), n, b.ok.Load(), b.failed.Load())
	})
	t0 := time.Now()
	b.connectAll(ctx, seq(n), nil, false, &lat, nil)
	el := time.Since(t0)
	p.end()
	b.r.add("logins_ok", "logins ok", float64(b.ok.Load()), "")
	b.r.add("logins_failed", "logins failed", float64(b.failed.Load()), "")
	b.r.add("logins_per_s", "logins/s", rate(b.ok.Load(), el), "1/s")
	b.r.addDur("login_p50_ms", "login time p50", lat.quantile(0.50))
	b.r.addDur("login_p99_ms", "login time p99", lat.quantile(0.99))
	b.r.addDur("login_max_ms", "login time max", lat.max())
	b.r.Anomalies += int(b.failed.Load())
}

// fastWarmup gives every account the scenario uses a FAST token, as
// returning clients have: a password login that asks for one, then a login
// with it (a token's first use is written to the server's database; later
// ones are not). Accounts that have a token in the cache already are left
// alone. It runs before the scenario's measurement starts.
func (b *bench) fastWarmup(ctx context.Context) {
	n := b.cfg.N
	if b.cfg.Scenario == "chat" {
		n = 2 * b.cfg.Pairs
	}
	if b.cfg.Users > 0 {
		n = min(n, b.cfg.Users)
	}
	var idxs []int
	for i := range n {
		if _, _, ok := b.d.cache.token(b.user(i)); !ok {
			idxs = append(idxs, i)
		}
	}
	if len(idxs) > 0 {
		var lat hist
		// One login first: a server that gives no token (no FAST, or no
		// SASL2) gets no warm-up, and the scenario logs in with passwords.
		b.connectAll(ctx, idxs[:1], nil, false, &lat, nil)
		if _, _, ok := b.d.cache.token(b.user(idxs[0])); !ok {
			b.r.Notes = append(b.r.Notes, "--fast: the server gave no FAST token; logins use the password")
			idxs = nil
		} else {
			b.connectAll(ctx, idxs[1:], nil, false, &lat, nil) // password: a token
			b.connectAll(ctx, idxs, nil, false, &lat, nil)     // its first use
		}
	}
	b.r.Params["fast_warmup_accounts"] = len(idxs)
	b.d.fastLogins.Store(0)
	b.d.fastRefused.Store(0)
	b.d.mechUsed.Clear() // the report names what the scenario used, and counts its PBKDF2 runs
	b.d.cache.hits.Store(0)
	b.d.cache.misses.Store(0)
}

// --- raw TLS handshakes -----------------------------------------------------------

// runTLS measures the machine's raw TLS handshake rate against the server's
// Direct TLS port: connect, handshake, close, nothing else. Issue 5 measures
// logins/s against it (a login is a handshake plus XMPP and SCRAM).
func (b *bench) runTLS(ctx context.Context) {
	if !b.cfg.DirectTLS {
		b.r.Notes = append(b.r.Notes, "tls needs --direct-tls (a port that speaks TLS from the first byte)")
		b.r.Anomalies++
		return
	}
	n := b.cfg.N
	b.r.Params["handshakes"] = n
	b.r.Params["concurrency"] = b.cfg.Concurrency
	var (
		lat      hist
		ok, fail atomic.Int64
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	p := startProgress(b.cfg.Progress, "tls", func() string {
		return fmt.Sprintf("handshakes %d/%d failed %d", ok.Load()+fail.Load(), n, fail.Load())
	})
	t0 := time.Now()
	for w := 0; w < b.cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				start := time.Now()
				hctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
				raw, err := b.d.dialTCP(hctx)
				if err == nil {
					tc := tls.Client(raw, b.d.tlsConf.Clone())
					err = tc.HandshakeContext(hctx)
					tc.Close()
				}
				cancel()
				if err != nil {
					fail.Add(1)
					continue
				}
				ok.Add(1)
				lat.record(time.Since(start))
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	p.end()
	b.r.add("handshakes_ok", "TLS handshakes ok", float64(ok.Load()), "")
	b.r.add("handshakes_failed", "TLS handshakes failed", float64(fail.Load()), "")
	b.r.add("handshakes_per_s", "TLS handshakes/s", rate(ok.Load(), el), "1/s")
	b.r.addDur("handshake_p50_ms", "handshake time p50", lat.quantile(0.50))
	b.r.addDur("handshake_p99_ms", "handshake time p99", lat.quantile(0.99))
	b.r.Anomalies += int(fail.Load())
}

// --- idle hold ----------------------------------------------------------------

func (b *bench) runIdle(ctx context.Context) {
	n := b.cfg.N
	b.r.Params["sessions"] = n
	b.r.Params["hold"] = b.cfg.Duration.String()
	b.r.Params["concurrency"] = b.cfg.Concurrency
	pid := b.cfg.ServerPID
	var rss0 int64
	if pid > 0 {
		rss0, _ = procStatus(pid, "VmRSS")
	}
	var lat hist
	phase := "connecting"
	var phaseMu sync.Mutex
	p := startProgress(b.cfg.Progress, "idle", func() string {
		phaseMu.Lock()
		defer phaseMu.Unlock()
		return fmt.Sprintf("%s: logins %d/%d failed %d, sessions live %d", phase, b.done.Load(), n, b.failed.Load(), b.live.Load())
	})
	t0 := time.Now()
	clients, readers := b.connectAll(ctx, seq(n), nil, true, &lat, nil)
	el := time.Since(t0)
	ok := b.ok.Load()
	phaseMu.Lock()
	phase = "holding"
	phaseMu.Unlock()
	sleepCtx(ctx, b.cfg.Settle)
	var rss1 int64
	if pid > 0 {
		rss1, _ = procStatus(pid, "VmRSS")
	}
	sleepCtx(ctx, b.cfg.Duration)
	var rss2 int64
	if pid > 0 {
		rss2, _ = procStatus(pid, "VmRSS")
	}
	live := b.live.Load()
	dropped := b.countDropped(clients)
	closeAll(clients, readers)
	p.end()
	b.r.add("sessions_ok", "sessions established", float64(ok), "")
	b.r.add("logins_failed", "logins failed", float64(b.failed.Load()), "")
	b.r.add("sessions_live_end", "sessions alive at the end of the hold", float64(live), "")
	b.r.add("sessions_dropped", "sessions dropped by the server", float64(dropped), "")
	b.r.add("logins_per_s", "logins/s while connecting", rate(ok, el), "1/s")
	b.r.addDur("login_p50_ms", "login time p50", lat.quantile(0.50))
	b.r.addDur("login_p99_ms", "login time p99", lat.quantile(0.99))
	if pid > 0 {
		b.r.add("server_rss_before", "server RSS before connecting", float64(rss0), "B")
		b.r.add("server_rss_connected", "server RSS after connecting (+settle)", float64(rss1), "B")
		b.r.add("server_rss_held", "server RSS at the end of the hold", float64(rss2), "B")
		if ok > 0 {
			b.r.add("server_rss_per_session", "server RSS per session", float64(rss2-rss0)/float64(ok), "B")
		}
	} else {
		b.r.Notes = append(b.r.Notes, "no --server-pid: server RSS per session not measured")
	}
	b.r.Anomalies += int(b.failed.Load()) + dropped
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// --- 1:1 chat -------------------------------------------------------------------

// chatState is one client's side of a pair. The send side is written by the
// client's sender goroutine, the receive side by its reader goroutine.
type chatState struct {
	partnerBare string
	peer        *chatState    // the partner's state
	sent        atomic.Uint64 // highest sequence number sent
	credit      chan struct{} // window: a token per unacknowledged message (nil = unbounded)
	// receive side (from the partner)
	seen     []uint64 // bitset of sequence numbers received
	last     uint64
	distinct atomic.Uint64
	dups     atomic.Uint64
	reorder  atomic.Uint64
	foreign  atomic.Uint64 // messages not from the partner, errors, bad bodies
}

type chatRun struct {
	runID    string // in every body, so messages of an earlier run (offline storage) are told apart
	stale    atomic.Int64
	lat      hist
	received atomic.Int64
	lastRecv atomic.Int64 // unix nanoseconds of the latest delivery
	foreign  atomic.Int64
}

const chatPrefix = "xb "

func (cr *chatRun) onMessage(c *client, el *stanza.Element) {
	now := time.Now()
	st := c.chat
	if st == nil || el.Local != "message" {
		return
	}
	body := el.Child(stanza.NSClient, "body").Text()
	from, _, _ := strings.Cut(el.Get("from"), "/")
	rest, ok := strings.CutPrefix(body, chatPrefix)
	if ok {
		var id string
		id, rest, _ = strings.Cut(rest, " ")
		if id != cr.runID {
			// Stored offline during an earlier run and delivered now:
			// not part of this measurement.
			cr.stale.Add(1)
			return
		}
	}
	if el.Get("type") == "error" || !ok || from != st.partnerBare {
		st.foreign.Add(1)
		cr.foreign.Add(1)
		return
	}
	seqS, tsS, _ := strings.Cut(rest, " ")
	sq, err1 := strconv.ParseUint(seqS, 10, 64)
	ts, err2 := strconv.ParseInt(tsS, 10, 64)
	if err1 != nil || err2 != nil || sq == 0 {
		st.foreign.Add(1)
		cr.foreign.Add(1)
		return
	}
	w, bit := sq/64, uint64(1)<<(sq%64)
	for uint64(len(st.seen)) <= w {
		st.seen = append(st.seen, 0)
	}
	if st.seen[w]&bit != 0 {
		st.dups.Add(1)
		return
	}
	st.seen[w] |= bit
	if sq < st.last {
		st.reorder.Add(1)
	} else {
		st.last = sq
	}
	st.distinct.Add(1)
	cr.received.Add(1)
	cr.lastRecv.Store(now.UnixNano())
	cr.lat.record(now.Sub(time.Unix(0, ts)))
	// Return the sender's window token.
	if pc := st.peer; pc.credit != nil {
		select {
		case <-pc.credit:
		default:
		}
	}
}

// escapeAttr escapes a value for a single-quoted XML attribute.
func escapeAttr(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", `"`, "&quot;").Replace(s)
}

func (b *bench) runChat(ctx context.Context) {
	pairs := b.cfg.Pairs
	n := 2 * pairs
	b.r.Params["pairs"] = pairs
	b.r.Params["duration"] = b.cfg.Duration.String()
	if b.cfg.Rate > 0 {
		b.r.Params["rate_per_sender"] = b.cfg.Rate
	} else {
		b.r.Params["rate_per_sender"] = "max"
	}
	b.r.Params["window"] = b.cfg.Window
	cr := chatRun{runID: randomID()}
	var lat hist
	var sentTotal atomic.Int64
	phase := "connecting"
	var phaseMu sync.Mutex
	var lastCount int64
	lastT := time.Now()
	p := startProgress(b.cfg.Progress, "chat", func() string {
		phaseMu.Lock()
		defer phaseMu.Unlock()
		if phase == "connecting" {
			return fmt.Sprintf("connecting: logins %d/%d failed %d", b.done.Load(), n, b.failed.Load())
		}
		got := cr.received.Load()
		now := time.Now()
		r := rate(got-lastCount, now.Sub(lastT))
		lastCount, lastT = got, now
		return fmt.Sprintf("%s: sent %d delivered %d (%.0f/s now) sessions %d", phase, sentTotal.Load(), got, r, b.live.Load())
	})
	defer p.end()

	// The states exist before any client does, so that each reader sees its
	// own from the start (set by prepare on the login goroutine).
	states := make([]*chatState, n)
	for i := range states {
		states[i] = &chatState{partnerBare: b.jid(i ^ 1)}
		if b.cfg.Window > 0 {
			states[i].credit = make(chan struct{}, b.cfg.Window)
		}
	}
	for i := range states {
		states[i].peer = states[i^1]
	}
	clients, readers := b.connectAll(ctx, seq(n), cr.onMessage, true, &lat, func(c *client) { c.chat = states[c.idx] })
	if b.failed.Load() > 0 {
		closeAll(clients, readers)
		p.end()
		b.r.add("logins_failed", "logins failed", float64(b.failed.Load()), "")
		b.r.Anomalies += int(b.failed.Load())
		b.r.Notes = append(b.r.Notes, "not all clients logged in; no messages sent")
		return
	}
	start := make(chan struct{})
	stop := make(chan struct{})
	var senders sync.WaitGroup
	var sendErrs atomic.Int64
	for _, c := range clients {
		senders.Add(1)
		go func() {
			defer senders.Done()
			<-start
			st := c.chat
			prefix := "<message type='chat' to='" + escapeAttr(st.partnerBare) + "'><body>" + chatPrefix + cr.runID + " "
			t0 := time.Now()
			var interval time.Duration
			if b.cfg.Rate > 0 {
				interval = time.Duration(float64(time.Second) / b.cfg.Rate)
				t0 = t0.Add(time.Duration(rand.Int64N(int64(interval) + 1))) // spread the senders
			}
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			appendMsg := func(buf []byte, sq uint64) []byte {
				buf = append(buf, prefix...)
				buf = strconv.AppendUint(buf, sq, 10)
				buf = append(buf, ' ')
				buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
				return append(buf, "</body></message>"...)
			}
			for sq := uint64(1); ; {
				n := uint64(1) // messages to write now
				if interval > 0 {
					// Sleep until the next message is due; when behind
					// schedule (the tool's goroutine was not run in time),
					// write every due message in one go (at most 64).
					now := time.Now()
					if d := t0.Add(time.Duration(sq-1) * interval).Sub(now); d > 0 {
						timer.Reset(d)
						select {
						case <-stop:
							return
						case <-timer.C:
						}
						now = time.Now()
					}
					due := uint64(now.Sub(t0)/interval) + 1
					n = min(max(due, sq)-sq+1, 64)
				}
				if st.credit != nil {
					n = 1
					select {
					case st.credit <- struct{}{}:
					case <-stop:
						return
					}
				}
				select {
				case <-stop:
					return
				default:
				}
				err := c.sendWith(int(n), func(buf []byte) []byte {
					for k := range n {
						buf = appendMsg(buf, sq+k)
					}
					return buf
				})
				if err != nil {
					sendErrs.Add(1)
					b.r.addError(fmt.Errorf("send: %w", err))
					return
				}
				sq += n
				st.sent.Store(sq - 1)
				sentTotal.Add(int64(n))
			}
		}()
	}
	phaseMu.Lock()
	phase = "sending"
	phaseMu.Unlock()
	cpu0, _ := procCPU(b.cfg.ServerPID)
	t0 := time.Now()
	close(start)
	sleepCtx(ctx, b.cfg.Duration)
	close(stop)
	senders.Wait()
	sendTime := time.Since(t0)
	phaseMu.Lock()
	phase = "draining"
	phaseMu.Unlock()
	// Drain: wait until every message sent arrived, or nothing arrived for Drain.
	lastProgress, lastSeen := time.Now(), cr.received.Load()
	for cr.received.Load() < sentTotal.Load() && time.Since(lastProgress) < b.cfg.Drain && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		if got := cr.received.Load(); got != lastSeen {
			lastSeen, lastProgress = got, time.Now()
		}
	}
	var chatCPU time.Duration
	if b.cfg.ServerPID > 0 {
		if cpu1, err := procCPU(b.cfg.ServerPID); err == nil {
			chatCPU = cpu1 - cpu0
		}
	}
	var sm smTotals
	if b.cfg.SM {
		sm = smSettle(ctx, clients)
	}
	dropped := b.countDropped(clients)
	closeAll(clients, readers)
	p.end()

	var lost, dups, reorder, foreign uint64
	for _, st := range states {
		got := st.peer.distinct.Load()
		if s := st.sent.Load(); s > got {
			lost += s - got
		}
		dups += st.dups.Load()
		reorder += st.reorder.Load()
		foreign += st.foreign.Load()
	}
	delivered := cr.received.Load()
	span := time.Duration(cr.lastRecv.Load() - t0.UnixNano())
	b.r.add("messages_sent", "messages sent", float64(sentTotal.Load()), "")
	b.r.add("messages_delivered", "messages delivered", float64(delivered), "")
	b.r.add("messages_per_s", "delivered messages/s", rate(delivered, span), "1/s")
	b.r.add("send_rate", "offered messages/s (sent / send time)", rate(sentTotal.Load(), sendTime), "1/s")
	b.r.addDur("latency_p50_ms", "latency p50", cr.lat.quantile(0.50))
	b.r.addDur("latency_p99_ms", "latency p99", cr.lat.quantile(0.99))
	b.r.addDur("latency_p999_ms", "latency p99.9", cr.lat.quantile(0.999))
	b.r.addDur("latency_max_ms", "latency max", cr.lat.max())
	b.r.add("lost", "messages lost", float64(lost), "")
	b.r.add("duplicated", "messages duplicated", float64(dups), "")
	b.r.add("reordered", "messages out of order", float64(reorder), "")
	b.r.add("unexpected", "unexpected/error messages received", float64(foreign), "")
	b.r.add("sessions_dropped", "sessions dropped by the server", float64(dropped), "")
	b.r.add("stale", "messages of earlier runs received (ignored)", float64(cr.stale.Load()), "")
	b.r.addDur("login_p50_ms", "login time p50", lat.quantile(0.50))
	if chatCPU > 0 && delivered > 0 {
		b.r.add("server_cpu_per_msg_us", "server CPU per delivered message (sending and draining)", float64(chatCPU.Microseconds())/float64(delivered), "µs")
	}
	if b.cfg.SM {
		b.r.Params["sm_ack_every"] = b.cfg.SMEvery
		sm.report(b.r)
	}
	b.r.Anomalies += int(lost+dups+reorder+foreign) + dropped + int(sendErrs.Load())
}

// --- presence storm ---------------------------------------------------------------

// presState is one user's view of its contacts' presence.
type presState struct {
	want     map[string]bool   // contact bare JIDs
	both     map[string]bool   // contacts with subscription both (setup phase)
	got      map[string]bool   // contacts whose available presence arrived (storm phase)
	upd      map[string]int    // contact → the last update round whose change arrived from it
	last     map[string]string // contact → last subscription state pushed (setup phase)
	reqs     map[string]int    // contact → subscription requests received (and approved)
	updGot   int               // contacts whose change arrived this round
	complete atomic.Bool
}

type presRun struct {
	storm      atomic.Bool
	deliveries atomic.Int64 // available presences from contacts, duplicates included
	distinct   atomic.Int64
	complete   atomic.Int64 // users with every contact's presence (or every subscription)
	fixedByGet atomic.Int64 // users whose roster pushes said incomplete but a roster get said complete
	pushes     atomic.Int64 // roster pushes received (setup phase)
	lastNew    atomic.Int64 // unix nanoseconds of the latest first-time delivery
	stormStart time.Time
	full       hist // per user: time from the storm's start until it saw all contacts
	init       func(c *client)

	// The update phase: everyone online already, each user changes its
	// status once; every contact's change must reach every user.
	update        atomic.Bool
	updRound      atomic.Int64 // the round under way, from 1
	updDeliveries atomic.Int64
	updDistinct   atomic.Int64
	updComplete   atomic.Int64 // users with every contact's change, this round
	updLastNew    atomic.Int64
	updStart      atomic.Int64 // unix nanoseconds: this round's start
	updFull       hist
}

// updateShows are the statuses the rounds change to, in turn: each round's
// change can be told from the one before.
var updateShows = []string{"away", "xa", "dnd", "chat"}

func updateShow(round int64) string { return updateShows[(round-1)%int64(len(updateShows))] }

func (pr *presRun) onStanza(c *client, el *stanza.Element) {
	if c.pres == nil {
		pr.init(c) // presence can arrive while the client is still logging in
	}
	st := c.pres
	from, _, _ := strings.Cut(el.Get("from"), "/")
	switch {
	case el.Local == "presence" && el.Get("type") == "subscribe":
		// Approve every request (the tool's own users ask each other).
		st.reqs[from]++
		_ = c.write([]byte("<presence type='subscribed' to='" + escapeAttr(from) + "'/>"))
	case el.Local == "iq": // roster push, or a roster we asked for (setup phase)
		isGet := el.Get("type") == "result"
		if !isGet {
			pr.pushes.Add(1)
		}
		for _, it := range el.Child(nsRoster, "query").Children() {
			j := it.Get("jid")
			if !st.want[j] {
				continue
			}
			st.last[j] = it.Get("subscription") + "/" + it.Get("ask")
			if it.Get("subscription") == "both" {
				st.both[j] = true
			} else {
				delete(st.both, j)
			}
		}
		if !pr.storm.Load() && len(st.both) == len(st.want) && !st.complete.Swap(true) {
			pr.complete.Add(1)
			if isGet {
				pr.fixedByGet.Add(1)
			}
		}
	case el.Local == "presence" && el.Get("type") == "" && pr.update.Load() && st.want[from]:
		round := pr.updRound.Load()
		if el.Child(el.Space, "show").Text() != updateShow(round) {
			return // a late storm presence, or a late change of the round before
		}
		pr.updDeliveries.Add(1)
		if st.upd[from] != int(round) {
			st.upd[from] = int(round)
			pr.updDistinct.Add(1)
			now := time.Now()
			pr.updLastNew.Store(now.UnixNano())
			st.updGot++
			if st.updGot == len(st.want) {
				st.updGot = 0
				pr.updComplete.Add(1)
				pr.updFull.record(now.Sub(time.Unix(0, pr.updStart.Load())))
			}
		}
	case el.Local == "presence" && el.Get("type") == "" && pr.storm.Load() && st.want[from]:
		pr.deliveries.Add(1)
		if !st.got[from] {
			st.got[from] = true
			pr.distinct.Add(1)
			now := time.Now()
			pr.lastNew.Store(now.UnixNano())
			if len(st.got) == len(st.want) && !st.complete.Swap(true) {
				pr.complete.Add(1)
				pr.full.record(now.Sub(pr.stormStart))
			}
		}
	}
}

// contactsOf returns the ring neighbours of user i: i±1 … i±r/2.
func contactsOf(i, users, r int) []int {
	var out []int
	for d := 1; d <= r/2; d++ {
		out = append(out, (i+d)%users, (i-d+users)%users)
	}
	return out
}

func (b *bench) runPresence(ctx context.Context) {
	users, r := b.cfg.N, b.cfg.Contacts
	b.r.Params["users"] = users
	b.r.Params["contacts"] = r
	b.r.Params["concurrency"] = b.cfg.Concurrency
	if r%2 != 0 || r < 2 || r >= users {
		b.r.addError(fmt.Errorf("--contacts must be even, at least 2 and below --n (ring neighbours on both sides); got %d with %d users", r, users))
		b.r.Anomalies++
		return
	}
	var pr presRun
	pr.init = func(c *client) {
		c.pres = &presState{want: map[string]bool{}, both: map[string]bool{}, got: map[string]bool{}, upd: map[string]int{}, last: map[string]string{}, reqs: map[string]int{}}
		for _, j := range contactsOf(c.idx, users, r) {
			c.pres.want[b.jid(j)] = true
		}
		for _, j := range c.both {
			if c.pres.want[j] {
				c.pres.both[j] = true
			}
		}
	}
	prepare := func(c *client) {
		if c.pres == nil {
			pr.init(c)
		}
	}
	phase := "setup: connecting"
	var phaseMu sync.Mutex
	setPhase := func(s string) { phaseMu.Lock(); phase = s; phaseMu.Unlock() }
	p := startProgress(b.cfg.Progress, "presence", func() string {
		phaseMu.Lock()
		defer phaseMu.Unlock()
		return fmt.Sprintf("%s: logins %d/%d failed %d, users complete %d/%d, deliveries %d",
			phase, b.done.Load(), users, b.failed.Load(), pr.complete.Load(), users, pr.deliveries.Load())
	})
	defer p.end()

	// Setup: everyone online; each asks for a subscription to each contact
	// not yet 'both' in its roster and approves every request it receives.
	var setupLat hist
	t0 := time.Now()
	clients, readers := b.connectAll(ctx, seq(users), pr.onStanza, true, &setupLat, prepare)
	if b.failed.Load() > 0 {
		closeAll(clients, readers)
		b.r.add("logins_failed", "logins failed (setup)", float64(b.failed.Load()), "")
		b.r.Anomalies += int(b.failed.Load())
		return
	}
	setPhase("setup: subscribing")
	// Decide every request before sending any, so that no reader is changing
	// the state read here.
	type ask struct {
		c  *client
		to string
	}
	var asks []ask
	for _, c := range clients {
		if len(c.pres.both) == len(c.pres.want) {
			if !c.pres.complete.Swap(true) {
				pr.complete.Add(1)
			}
			continue
		}
		for j := range c.pres.want {
			if !c.pres.both[j] {
				asks = append(asks, ask{c, j})
			}
		}
	}
	for _, a := range asks {
		_ = a.c.write([]byte("<presence type='subscribe' to='" + escapeAttr(a.to) + "'/>"))
	}
	asked := len(asks)
	// Wait for the roster pushes. When they stop coming for a second with
	// users still incomplete, ask those users' rosters once: the stored
	// roster is authoritative (pushes delivered out of order would leave a
	// stale state here, which is counted and reported).
	deadline := time.Now().Add(b.cfg.Setup)
	last, lastChange, asked2 := pr.pushes.Load(), time.Now(), false
	for pr.complete.Load() < int64(users) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		if n := pr.pushes.Load(); n != last {
			last, lastChange = n, time.Now()
		}
		if !asked2 && time.Since(lastChange) > time.Second {
			asked2 = true
			for _, c := range clients {
				if !c.pres.complete.Load() {
					_ = c.write([]byte("<iq type='get' id='rr'><query xmlns='" + nsRoster + "'/></iq>"))
				}
			}
		}
	}
	setupDone := pr.complete.Load()
	setupTime := time.Since(t0)
	closeAll(clients, readers) // after this, the readers are done with the state
	if setupDone < int64(users) {
		var missing []string
		for _, c := range clients {
			for j := range c.pres.want {
				if !c.pres.both[j] && len(missing) < 10 {
					missing = append(missing, fmt.Sprintf("%s→%s (last roster push: subscription/ask %q; subscribe requests received from it and approved: %d)",
						c.local, j, c.pres.last[j], c.pres.reqs[j]))
				}
			}
		}
		b.r.addError(fmt.Errorf("setup: only %d of %d users have every contact subscribed 'both' after %v; missing: %s",
			setupDone, users, setupTime.Round(time.Millisecond), strings.Join(missing, ", ")))
		b.r.Anomalies++
		return
	}
	// Let the server finish the logouts (unavailable broadcasts) before the storm.
	sleepCtx(ctx, time.Second)

	// The storm: everyone logs in again at once.
	setPhase("storm")
	pr.complete.Store(0)
	pr.storm.Store(true)
	var lat hist
	pr.stormStart = time.Now()
	clients, readers = b.connectAll(ctx, seq(users), pr.onStanza, true, &lat, prepare)
	loginTime := time.Since(pr.stormStart)
	deadline = time.Now().Add(b.cfg.Drain)
	for pr.complete.Load() < b.ok.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	stormComplete := pr.complete.Load()

	// The update phase: with everyone online and every presence known,
	// each user changes its status once. No login is in the way: this is
	// the server's broadcast alone, users × contacts deliveries.
	var updCPU, updSpan time.Duration
	updRounds := 0
	if stormComplete == int64(users) && b.cfg.UpdateRounds > 0 && ctx.Err() == nil {
		setPhase("update")
		sleepCtx(ctx, 500*time.Millisecond) // let the storm's last writes settle
		pr.update.Store(true)
		pr.storm.Store(false)
		for round := int64(1); round <= int64(b.cfg.UpdateRounds) && ctx.Err() == nil; round++ {
			// Between rounds nothing is in flight: every change of the last
			// one arrived (or the round timed out and the phase ends).
			cpu0, _ := procCPU(b.cfg.ServerPID)
			pr.updComplete.Store(0)
			pr.updRound.Store(round)
			start := time.Now()
			pr.updStart.Store(start.UnixNano())
			for _, c := range clients {
				_ = c.write([]byte("<presence><show>" + updateShow(round) + "</show><status>update</status></presence>"))
			}
			deadline = time.Now().Add(b.cfg.Drain)
			for pr.updComplete.Load() < int64(users) && time.Now().Before(deadline) && ctx.Err() == nil {
				time.Sleep(2 * time.Millisecond)
			}
			updSpan += time.Duration(pr.updLastNew.Load() - start.UnixNano())
			if b.cfg.ServerPID > 0 {
				if cpu1, err := procCPU(b.cfg.ServerPID); err == nil {
					updCPU += cpu1 - cpu0
				}
			}
			updRounds++
			if pr.updComplete.Load() < int64(users) {
				break
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
	}
	dropped := b.countDropped(clients)
	closeAll(clients, readers)
	p.end()

	expected := int64(users * r)
	span := time.Duration(pr.lastNew.Load() - pr.stormStart.UnixNano())
	b.r.add("setup_subscriptions", "subscription requests sent in setup", float64(asked), "")
	b.r.add("setup_s", "setup time", setupTime.Seconds(), "s")
	b.r.add("setup_stale_pushes", "users whose roster pushes ended stale (a roster get said 'both')", float64(pr.fixedByGet.Load()), "")
	b.r.add("logins_ok", "logins in the storm", float64(b.ok.Load()), "")
	b.r.add("logins_failed", "logins failed", float64(b.failed.Load()), "")
	b.r.add("logins_per_s", "storm logins/s", rate(b.ok.Load(), loginTime), "1/s")
	b.r.addDur("login_p50_ms", "login time p50", lat.quantile(0.50))
	b.r.addDur("login_p99_ms", "login time p99", lat.quantile(0.99))
	b.r.add("presence_expected", "contact presences expected (users × contacts)", float64(expected), "")
	b.r.add("presence_distinct", "contact presences received (distinct)", float64(pr.distinct.Load()), "")
	b.r.add("presence_deliveries", "contact presences received (all)", float64(pr.deliveries.Load()), "")
	b.r.add("presence_per_s", "presence deliveries/s", rate(pr.deliveries.Load(), span), "1/s")
	b.r.addDur("full_presence_p50_ms", "time to all contacts' presence p50", pr.full.quantile(0.5))
	b.r.addDur("full_presence_p99_ms", "time to all contacts' presence p99", pr.full.quantile(0.99))
	if pr.update.Load() {
		b.r.Params["update_rounds"] = updRounds
		b.r.add("update_distinct", "status changes received (distinct)", float64(pr.updDistinct.Load()), "")
		b.r.add("update_deliveries", "status changes received (all)", float64(pr.updDeliveries.Load()), "")
		b.r.add("update_per_s", "status-change deliveries/s, everyone online", rate(pr.updDeliveries.Load(), updSpan), "1/s")
		b.r.addDur("update_full_p99_ms", "time to all contacts' status change p99", pr.updFull.quantile(0.99))
		if n := pr.updDistinct.Load(); n > 0 && updCPU > 0 {
			b.r.add("update_cpu_us", "server CPU per status-change delivery", float64(updCPU.Microseconds())/float64(n), "µs")
		}
		expected := int64(users * r * updRounds)
		b.r.Anomalies += int(max(expected-pr.updDistinct.Load(), 0))
	}
	b.r.add("sessions_dropped", "sessions dropped by the server", float64(dropped), "")
	missing := expected - pr.distinct.Load()
	b.r.Anomalies += int(b.failed.Load()) + int(max(missing, 0)) + dropped
}
