// Command xmppd is an XMPP server: `xmppd serve` runs it, and the other
// subcommands administer accounts and check the configuration.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version from the build info is shown.
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills the process the usual way.
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "xmppd: %v\n", err)
		os.Exit(1)
	}
}

// newRootCommand builds the whole command tree. Tests call it to run commands
// in-process.
func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "xmppd",
		Short: "An XMPP server",
		Long: "xmppd serves XMPP domains. Every command reads the config file given with --config,\n" +
			"else the one $" + configEnv + " names, else " + systemConfigPath + " if it exists;\n" +
			"without any it serves localhost with its data in ./xmppd-data.\n" +
			"`xmppd config example` prints every setting, commented, with its default.",
		Version:       buildVersion(),
		SilenceErrors: true, // main prints the error once
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			// Flags and arguments have been checked: from here on an error is
			// not a usage mistake, so don't print the usage text with it.
			cmd.SilenceUsage = true
		},
	}
	root.PersistentFlags().String("config", "", "TOML config `FILE` (default: $"+configEnv+", else "+systemConfigPath+" if it exists, else built-in defaults)")
	root.SetVersionTemplate(versionLine("{{.Version}}"))
	root.AddCommand(
		newServeCommand(),
		newUserCommand(),
		newConfigCommand(),
		newVersionCommand(),
	)
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprint(cmd.OutOrStdout(), versionLine(buildVersion()))
		},
	}
}

// versionLine is what `xmppd version` and `xmppd --version` print.
func versionLine(v string) string {
	return fmt.Sprintf("xmppd %s (%s %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
