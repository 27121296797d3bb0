package push

import (
	"fmt"
	"time"
)

// Defaults of the [push] section.
const (
	DefaultTimeout     = "30s"
	DefaultMinInterval = "5s"
	DefaultMaxFailures = 3
)

// Config is the module's section of the server's config file ([push]).
type Config struct {
	// IncludeSender puts the last message's sender (bare JID) in the
	// notification's summary. Off by default: the app server and the
	// platform's push service would learn who writes to whom.
	IncludeSender bool `toml:"include_sender"`
	// IncludeBody puts the last message's body (at most 512 bytes) in the
	// summary. Off by default, for the same reason.
	IncludeBody bool `toml:"include_body"`
	// MaxFailures is how many errors or timeouts in a row from an app
	// server remove the registration.
	MaxFailures int `toml:"max_failures"`
	// Timeout is how long an app server has to answer a notification, as
	// a Go duration ("30s").
	Timeout string `toml:"timeout"`
	// MinInterval is the least time between two notifications to one
	// registration ("5s"): messages in between are counted into the next.
	MinInterval string `toml:"min_interval"`
}

// DefaultConfig is the module's configuration when the file says nothing.
func DefaultConfig() Config {
	return Config{MaxFailures: DefaultMaxFailures, Timeout: DefaultTimeout, MinInterval: DefaultMinInterval}
}

// durations parses Timeout and MinInterval.
func (c Config) durations() (timeout, interval time.Duration, err error) {
	timeout, err = time.ParseDuration(c.Timeout)
	if err != nil {
		return 0, 0, fmt.Errorf("timeout: %q is not a duration such as \"30s\"", c.Timeout)
	}
	if timeout < time.Second || timeout > 10*time.Minute {
		return 0, 0, fmt.Errorf("timeout: %s is outside 1s..10m", timeout)
	}
	interval, err = time.ParseDuration(c.MinInterval)
	if err != nil {
		return 0, 0, fmt.Errorf("min_interval: %q is not a duration such as \"5s\"", c.MinInterval)
	}
	if interval < 0 || interval > time.Hour {
		return 0, 0, fmt.Errorf("min_interval: %s is outside 0s..1h", interval)
	}
	return timeout, interval, nil
}

// Validate checks the section; messages name the key as written in it.
func (c Config) Validate() error {
	if c.MaxFailures < 1 || c.MaxFailures > 100 {
		return fmt.Errorf("max_failures: %d is outside 1..100", c.MaxFailures)
	}
	_, _, err := c.durations()
	return err
}
