package c2s

import "time"

// Defaults New gives a zero field of Config. cmd/xmppd's DefaultConfig uses
// them too, so each is written once.
const (
	DefaultMaxStanzaSize     = 256 << 10 // bytes, once authenticated (Limits.MaxStanza; Prosody's 256 KiB)
	DefaultPreAuthStanzaSize = 16 << 10  // bytes, before authentication: plenty for SASL
	DefaultAuthTimeout       = 30 * time.Second
	DefaultMaxAuthFailures   = 3
	DefaultQueueSize         = 256 // stanzas per session
	DefaultWriteTimeout      = 30 * time.Second
	DefaultResumeTimeout     = time.Hour // XEP-0198 hibernation; Monal's users need this long
	DefaultMaxUnacked        = 1000      // stanzas sent and not acknowledged, per session
)
