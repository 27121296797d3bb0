package mam

import (
	"fmt"
	"time"
)

// DefaultExpireAfter is how long an archived message is kept when the
// config says nothing: a year.
const DefaultExpireAfter = "8760h"

// minExpireAfter keeps a typo ("1h" for "1y") from wiping archives within
// the hour: nobody wants an archive shorter than a day.
const minExpireAfter = 24 * time.Hour

// Config is the module's section of the server's config file ([archive]).
type Config struct {
	// ExpireAfter is how long archived messages are kept, as a Go duration
	// ("8760h"), or "never".
	ExpireAfter string `toml:"expire_after"`
	// Default is the archiving policy of an account that has set no
	// preferences (XEP-0441): "always", "roster" or "never".
	Default string `toml:"default"`
}

// DefaultConfig is the module's configuration when the file says nothing.
func DefaultConfig() Config {
	return Config{ExpireAfter: DefaultExpireAfter, Default: PolicyAlways}
}

// Retention parses ExpireAfter: 0 for "never".
func (c Config) Retention() (time.Duration, error) {
	if c.ExpireAfter == "never" {
		return 0, nil
	}
	d, err := time.ParseDuration(c.ExpireAfter)
	if err != nil {
		return 0, fmt.Errorf("expire_after: %q is neither a duration such as \"8760h\" nor \"never\"", c.ExpireAfter)
	}
	if d < minExpireAfter {
		return 0, fmt.Errorf("expire_after: %s is below the minimum %s (use \"never\" to keep messages forever)", d, minExpireAfter)
	}
	return d, nil
}

// Validate checks the section; messages name the key as written in it.
func (c Config) Validate() error {
	if _, err := c.Retention(); err != nil {
		return err
	}
	switch c.Default {
	case PolicyAlways, PolicyRoster, PolicyNever:
	default:
		return fmt.Errorf("default: %q is not one of \"always\", \"roster\", \"never\"", c.Default)
	}
	return nil
}

// New returns the module configured by c (validated by the caller).
func New(c Config) *Module {
	ret, _ := c.Retention()
	return &Module{ExpireAfter: ret, Default: c.Default}
}
