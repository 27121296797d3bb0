package s2s

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	l := &logLimiter{every: 5 * time.Second}
	type step struct {
		key        string
		at         time.Duration // after t0
		ok         bool
		suppressed int
	}
	for i, s := range []step{
		{"a", 0, true, 0},
		{"a", time.Second, false, 0},
		{"b", time.Second, true, 0}, // another peer has its own limit
		{"a", 2 * time.Second, false, 0},
		{"a", 3 * time.Second, false, 0},
		{"a", 5 * time.Second, true, 3}, // the next line counts the three left out
		{"a", 6 * time.Second, false, 0},
		{"a", 20 * time.Second, true, 1},
		{"a", 40 * time.Second, true, 0},
	} {
		ok, n := l.allow(s.key, t0.Add(s.at))
		if ok != s.ok || n != s.suppressed {
			t.Fatalf("step %d (%s at %v): allow = %v, %d; want %v, %d", i, s.key, s.at, ok, n, s.ok, s.suppressed)
		}
	}
}

// TestLogLimiterBounded: a flood from ever new addresses keeps at most
// maxLimitedKeys (+ the shared overflow key), and still logs only a few lines.
func TestLogLimiterBounded(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	l := &logLimiter{every: time.Hour}
	logged := 0
	for i := range 3 * maxLimitedKeys {
		if ok, _ := l.allow(fmt.Sprint("10.0.", i/256, ".", i%256), t0); ok {
			logged++
		}
	}
	if len(l.keys) > maxLimitedKeys+1 {
		t.Fatalf("%d keys remembered, want at most %d", len(l.keys), maxLimitedKeys+1)
	}
	if logged != maxLimitedKeys+1 {
		t.Fatalf("%d lines allowed, want %d (one per remembered key, one for the overflow)", logged, maxLimitedKeys+1)
	}
	// Once the interval has passed, the quiet keys are forgotten: a new
	// address has its own limit again.
	later := t0.Add(2 * time.Hour)
	l.allow("192.0.2.1", later)
	if _, own := l.keys["192.0.2.1"]; !own || len(l.keys) > 2 {
		t.Fatalf("after the interval: own key %v, %d keys; want the new key alone with the overflow's", own, len(l.keys))
	}
}

// TestForgedFromLogged: a stanza whose 'from' the stream did not
// authenticate is refused with invalid-from and logged at warn with the
// peer's authenticated domains, its address and the claimed 'from'; a peer
// that keeps doing it, on new streams, is logged only once per interval.
func TestForgedFromLogged(t *testing.T) {
	ca := newCA(t)
	var log *logBuf
	d := startServer(t, &staticResolver{}, "d.test", issue(t, ca, "d.test"), ca.pool, func(cfg *Config) { log = captureLog(cfg) })
	d.forgedLog.every = time.Hour // the whole test within one interval, however slow the machine
	cert := issue(t, ca, "c.test")

	w := externalRaw(t, d, cert)
	w.send(`<message from='eve@e.test/x' to='bob@d.test'><body>spoof</body></message>`)
	w.expectStreamError("invalid-from")
	line := log.expectLine(t, "level=WARN", "claimed_from=eve@e.test/x")
	for _, want := range []string{"authenticated=[c.test]", "addr=127.0.0.1:", "remote_domain=c.test", "direction=in"} {
		if !strings.Contains(line, want) {
			t.Errorf("warning %q lacks %q", line, want)
		}
	}

	// The flood: the same peer, again and again on new streams.
	for range 10 {
		w := externalRaw(t, d, cert)
		w.send(`<message from='mallory@e.test' to='bob@d.test'><body>spoof</body></message>`)
		w.expectStreamError("invalid-from")
	}
	if got := log.lines("level=WARN", "claimed_from="); len(got) != 1 {
		t.Fatalf("%d warnings for 11 forged stanzas within the interval, want 1:\n%s", len(got), strings.Join(got, "\n"))
	}
}
