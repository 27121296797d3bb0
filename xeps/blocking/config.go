package blocking

import "fmt"

// Config is the module's section of the server's config file ([blocking]).
type Config struct {
	// MaxItems bounds one user's blocklist.
	MaxItems int `toml:"max_items"`
	// CacheSize is how many users' blocklists are kept in memory.
	CacheSize int `toml:"cache_size"`
}

// DefaultConfig is the module's configuration when the file says nothing.
func DefaultConfig() Config { return Config{MaxItems: DefaultMaxItems, CacheSize: DefaultCacheSize} }

// Validate checks the bounds; messages name the key as written in the section.
func (c Config) Validate() error {
	if c.MaxItems < 1 || c.MaxItems > 100000 {
		return fmt.Errorf("max_items: %d is outside 1..100000", c.MaxItems)
	}
	if c.CacheSize < 1 || c.CacheSize > 10000000 {
		return fmt.Errorf("cache_size: %d is outside 1..10000000", c.CacheSize)
	}
	return nil
}

// New returns the module configured by c (validated by the caller).
func New(c Config) Module { return Module{MaxItems: c.MaxItems, CacheSize: c.CacheSize} }
