package main

import (
	_ "embed"
	"io"

	"github.com/spf13/cobra"
)

// exampleConfig is the fully commented example config: every key with its
// default (TestExampleConfigKeys holds it to DefaultConfig).
//
//go:embed xmppd.example.toml
var exampleConfig string

func newConfigExampleCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "example",
		Short: "Print the example config: every setting, explained, with its default",
		Long: "Example prints a config file with every setting, commented out at its default\n" +
			"value, and what it does. Start a config file with it:\n\n" +
			"  xmppd config example > xmppd.toml",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := io.WriteString(cmd.OutOrStdout(), exampleConfig)
			return err
		},
	}
}
