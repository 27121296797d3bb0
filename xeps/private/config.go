package private

import "fmt"

// Config is the module's section of the server's config file ([private]).
type Config struct {
	// MaxBytes bounds the serialized fragments one user may store.
	MaxBytes int `toml:"max_bytes"`
}

// DefaultConfig is the module's configuration when the file says nothing.
func DefaultConfig() Config { return Config{MaxBytes: DefaultMaxBytes} }

// Validate checks the bounds; messages name the key as written in the section.
func (c Config) Validate() error {
	if c.MaxBytes < 1024 || c.MaxBytes > 64<<20 {
		return fmt.Errorf("max_bytes: %d is outside 1024..%d", c.MaxBytes, 64<<20)
	}
	return nil
}

// New returns the module configured by c (validated by the caller).
func New(c Config) Module { return Module(c) }
