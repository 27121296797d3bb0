package s2s

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLimitedKeys bounds the peers a logLimiter remembers: beyond it, new
// peers share one limit, so a flood from many addresses costs no memory.
const maxLimitedKeys = 1024

// logLimiter thins out a log line that a peer can provoke at will (a forged
// 'from'), so that a flood cannot fill the log or slow the server down: one
// line per key (the peer's address) per interval; the next line allowed
// carries how many were left out in between. The zero value is not ready:
// set every.
type logLimiter struct {
	every time.Duration

	mu     sync.Mutex
	keys   map[string]*limited
	pruned time.Time // the last prune: none sooner than every after it
}

type limited struct {
	lim        *rate.Limiter
	suppressed int
}

// allow reports whether a line for key may be logged at now and, if so,
// how many lines for key were suppressed since the last one logged.
func (l *logLimiter) allow(key string, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = map[string]*limited{}
	}
	e := l.keys[key]
	if e == nil {
		if len(l.keys) >= maxLimitedKeys && now.Sub(l.pruned) >= l.every {
			// Keys become prunable only as time passes: scanning all of them
			// for every new address of a flood would cost the most when it hurts.
			l.prune(now)
		}
		if len(l.keys) >= maxLimitedKeys {
			key = "" // the shared limit of the overflow
			e = l.keys[key]
		}
		if e == nil {
			e = &limited{lim: rate.NewLimiter(rate.Every(l.every), 1)}
			l.keys[key] = e
		}
	}
	if !e.lim.AllowN(now, 1) {
		e.suppressed++
		return false, 0
	}
	suppressed, e.suppressed = e.suppressed, 0
	return true, suppressed
}

// prune forgets the keys that would be allowed a line anyway and owe no
// count of suppressed ones: forgetting them changes nothing.
func (l *logLimiter) prune(now time.Time) {
	l.pruned = now
	for k, e := range l.keys {
		if e.suppressed == 0 && e.lim.TokensAt(now) >= 1 {
			delete(l.keys, k)
		}
	}
}
