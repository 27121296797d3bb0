package offline

import "fmt"

// MaxMaxMessages is the largest MaxMessages Validate accepts.
const MaxMaxMessages = 100000

// Config is the module's section of the server's config file ([offline]).
type Config struct {
	// MaxMessages is the most messages stored per user; 0 turns offline
	// storage off.
	MaxMessages int `toml:"max_messages"`
}

// DefaultConfig is the module's configuration when the file says nothing.
func DefaultConfig() Config {
	return Config{MaxMessages: DefaultMaxMessages}
}

// Validate checks the bounds. Messages name the key as written in the
// module's section; the caller adds the section's name.
func (c Config) Validate() error {
	switch {
	case c.MaxMessages < 0:
		return fmt.Errorf("max_messages: %d is below the minimum 0", c.MaxMessages)
	case c.MaxMessages > MaxMaxMessages:
		return fmt.Errorf("max_messages: %d is above the maximum %d", c.MaxMessages, MaxMaxMessages)
	}
	return nil
}

// New returns the module configured by c (validated by the caller).
func New(c Config) Module {
	return Module{MaxMessages: c.MaxMessages}
}
