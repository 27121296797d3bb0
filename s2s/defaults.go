package s2s

import "time"

// Defaults New gives a zero field of Config. cmd/xmppd's DefaultConfig uses
// them too, so each is written once.
const (
	DefaultMaxStanzaSize     = 512 << 10 // bytes, once authenticated (Limits.MaxStanza)
	DefaultPreAuthStanzaSize = 64 << 10  // bytes, before
	DefaultConnectTimeout    = 10 * time.Second
	DefaultAuthTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 10 * time.Minute
	DefaultWriteTimeout      = 30 * time.Second
	// DefaultQueueSize is the stanzas queued per remote domain while its
	// stream is set up, and per stream: a burst of presence to one big
	// remote domain (a server restart, a popular user) must fit.
	DefaultQueueSize = 1024
)
