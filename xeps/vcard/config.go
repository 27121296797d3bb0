package vcard

import "fmt"

// Config is the module's section of the server's config file ([vcard]).
type Config struct {
	// MaxSize is the largest vCard accepted, serialized, in bytes.
	MaxSize int `toml:"max_size"`
}

// DefaultConfig is the module's configuration when the file says nothing.
func DefaultConfig() Config { return Config{MaxSize: DefaultMaxSize} }

// Validate checks the bounds; messages name the key as written in the section.
func (c Config) Validate() error {
	if c.MaxSize < 1024 || c.MaxSize > 16<<20 {
		return fmt.Errorf("max_size: %d is outside 1024..%d", c.MaxSize, 16<<20)
	}
	return nil
}

// New returns the module configured by c (validated by the caller).
func New(c Config) Module { return Module(c) }
