package c2s_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/c2s"
	"github.com/xmppd/xmppd/c2s/auth"
	"github.com/xmppd/xmppd/stanza"
	"golang.org/x/time/rate"
)

// guessBudget is the throttle of these tests: 5 checks per address, and
// then none for the rest of the test (one token an hour): every count below
// is exact, however slow the machine.
func guessBudget() *auth.Throttle {
	return auth.NewThrottle(auth.ThrottleConfig{
		AddrRate: rate.Every(time.Hour), AddrBurst: 5,
		AccountRate: rate.Every(time.Hour), AccountBurst: 100,
		MaxWait: time.Second,
	})
}

// guess logs in over a fresh connection with wrong passwords for distinct
// accounts until the server closes the stream, and returns the outcomes.
func guess(t *testing.T, addr string, conn int) (notAuthorized, throttled int) {
	c := dialAuth(t, addr, true)
	if f := c.open(); !f.Is(stanza.NSStream, "features") {
		t.Errorf("got %s, want the features", f)
		return
	}
	for i := 0; ; i++ {
		c.send(fmt.Sprintf("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>", stanza.NSSASL, b64(fmt.Sprintf("\x00user%d-%d\x00guess", conn, i))))
		c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		el, err := c.dec.Next()
		if err != nil {
			t.Errorf("connection %d: %v", conn, err)
			return
		}
		switch {
		case el.Child(stanza.NSSASL, "not-authorized") != nil:
			notAuthorized++
		case el.Child(stanza.NSSASL, "temporary-auth-failure") != nil:
			throttled++
		case el.Is(stanza.NSStream, "error"):
			return // too many failures on this stream
		default:
			t.Errorf("connection %d: unexpected %s", conn, el)
			return
		}
	}
}

// TestGuessingInParallelIsNoFaster: the guesses one address gets answered
// before its budget refills are the budget, whether they come over one
// connection after another or over many at once. (Before, each connection
// had its own delay: 48 connections got 48 times the guesses.)
func TestGuessingInParallelIsNoFaster(t *testing.T) {
	for _, parallel := range []int{1, 16} {
		t.Run(fmt.Sprint(parallel, " at once"), func(t *testing.T) {
			addr, _ := startAuthServer(t, c2s.Config{Throttle: guessBudget(), MaxAuthFailures: 3}, true)
			var mu sync.Mutex
			answered, throttled := 0, 0
			var wg sync.WaitGroup
			for conn := range 16 {
				run := func() {
					n, th := guess(t, addr, conn)
					mu.Lock()
					answered, throttled = answered+n, throttled+th
					mu.Unlock()
				}
				if parallel == 1 {
					run()
				} else {
					wg.Go(run)
				}
			}
			wg.Wait()
			if answered != 5 {
				t.Errorf("%d guesses answered, want the budget, 5", answered)
			}
			if want := 16*3 - 5; throttled != want {
				t.Errorf("%d attempts refused, want %d", throttled, want)
			}
		})
	}
}

// TestSuccessfulLoginsCostNoBudget: logins that succeed are not slowed and
// leave the budget of the address and the account as it was.
func TestSuccessfulLoginsCostNoBudget(t *testing.T) {
	addr, _ := startAuthServer(t, c2s.Config{Throttle: guessBudget(), MaxAuthFailures: 3}, true)
	for i := range 20 { // 4 times the budget
		c := dialAuth(t, addr, true)
		c.open()
		ex := &exchange{c: c, mech: "PLAIN"}
		if got := ex.run(stanza.NSSASL, []message{encoded("\x00alice\x00pencil")}); got != "success" {
			t.Fatalf("login %d: %s", i, got)
		}
	}
	if n, _ := guess(t, addr, 0); n != 3 {
		t.Errorf("%d guesses answered after the logins, want 3 (the stream's limit; the budget of 5 untouched)", n)
	}
}

// TestPreAuthConnectionCap: an address may hold MaxPreAuthConns connections
// that have not authenticated; one more gets a policy-violation stream
// error. Authenticating, or closing, frees the place.
func TestPreAuthConnectionCap(t *testing.T) {
	addr, _ := startAuthServer(t, c2s.Config{Throttle: guessBudget(), MaxPreAuthConns: 3}, false)
	var open []*authClient
	for i := range 3 {
		c := dialAuth(t, addr, false)
		if f := c.open(); !f.Is(stanza.NSStream, "features") {
			t.Fatalf("connection %d: got %s, want the features", i, f)
		}
		open = append(open, c)
	}
	refused := func() bool {
		c := dialAuth(t, addr, false)
		el := c.open()
		if el.Is(stanza.NSStream, "features") {
			return false
		}
		if !el.Is(stanza.NSStream, "error") || el.Child(stanza.NSStreams, "policy-violation") == nil ||
			el.Child(stanza.NSStreams, "text") == nil {
			t.Fatalf("got %s, want a policy-violation stream error with a text", el)
		}
		return true
	}
	if !refused() {
		t.Fatal("a 4th unauthenticated connection was accepted")
	}

	// The first one authenticates: its place is free when it has heard so.
	ex := &exchange{c: open[0], mech: "SCRAM-SHA-256"}
	if got := ex.run(stanza.NSSASL, []message{scramFirst("alice"), scramFinal("pencil", nil)}); got != "success" {
		t.Fatalf("login: %s", got)
	}
	if refused() {
		t.Fatal("refused after one of the connections authenticated")
	}
	if !refused() {
		t.Fatal("the cap was not kept once a place was taken again")
	}

	// The second one closes: its place is free once the server has seen it.
	open[1].conn.Close()
	deadline := time.Now().Add(30 * time.Second)
	for refused() {
		if time.Now().After(deadline) {
			t.Fatal("the place of a closed connection was never freed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
