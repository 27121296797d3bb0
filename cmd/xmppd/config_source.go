package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// Where the config file comes from, first match wins: --config FILE, then
// $XMPPD_CONFIG, then defaultConfigPath if that file exists, else the
// built-in defaults. --config "" asks for the built-in defaults.
const configEnv = "XMPPD_CONFIG"

// systemConfigPath is the config file used when neither --config nor
// XMPPD_CONFIG is given and it exists.
const systemConfigPath = "/etc/xmppd/xmppd.toml"

// defaultConfigPath is systemConfigPath, a variable for tests.
var defaultConfigPath = systemConfigPath

// configSource is the config file a command uses and what named it.
type configSource struct {
	Path string // "" for the built-in defaults
	From string // "--config", configEnv, "default path"; "" with Path ""
}

func (s configSource) String() string {
	switch {
	case s.Path == "" && s.From == "--config":
		return `built-in defaults (--config "")`
	case s.Path == "":
		return fmt.Sprintf("built-in defaults (no --config, %s unset, no %s)", configEnv, defaultConfigPath)
	case s.From == "--config":
		return s.Path
	}
	return fmt.Sprintf("%s (from %s)", s.Path, s.From)
}

// hint is what to say after an error about the source.
func (s configSource) hint() string {
	return fmt.Sprintf("  (config: %s; choose another file with --config FILE or %s)", s, configEnv)
}

// resolveConfigSource finds the config file for cmd.
func resolveConfigSource(cmd *cobra.Command) (configSource, error) {
	if f := cmd.Flags().Lookup("config"); f != nil && f.Changed {
		return configSource{Path: f.Value.String(), From: "--config"}, nil
	}
	if p := os.Getenv(configEnv); p != "" {
		return configSource{Path: p, From: configEnv}, nil
	}
	_, err := os.Stat(defaultConfigPath)
	switch {
	case err == nil:
		return configSource{Path: defaultConfigPath, From: "default path"}, nil
	case errors.Is(err, fs.ErrNotExist):
		return configSource{}, nil
	}
	return configSource{}, fmt.Errorf("default config file: %w (use --config FILE or %s to choose one)", err, configEnv)
}

// loadConfigSource resolves and loads the config for cmd.
func loadConfigSource(cmd *cobra.Command) (Config, configSource, error) {
	src, err := resolveConfigSource(cmd)
	if err != nil {
		return Config{}, src, err
	}
	cfg, err := LoadConfig(src.Path)
	if err != nil {
		if src.From != "--config" && src.From != "" {
			err = fmt.Errorf("%w (config file from %s; use --config FILE to choose another)", err, src.From)
		}
		return Config{}, src, err
	}
	return cfg, src, nil
}

// absPath is p made absolute for messages (p itself if that fails).
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
