package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"mellium.im/xmpp/jid"
)

// The user commands work the same whether the server runs (they go through
// its admin socket) or not (they open the database); see admin.go.

func newUserCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage accounts (add, passwd, del, list, archive purge)",
		Long: "Manage accounts. While xmppd serve runs, these commands talk to it over the admin\n" +
			"socket in the data folder; when it is stopped they open the database directly.\n" +
			"They use the config file xmppd serve uses (--config, $" + configEnv + " or " + systemConfigPath + ")\n" +
			"and print on standard error which one and which data folder.",
	}
	cmd.AddCommand(newUserAddCommand(), newUserPasswdCommand(), newUserDelCommand(), newUserListCommand(), newUserArchiveCommand())
	return cmd
}

func newUserAddCommand() *cobra.Command {
	return newUserPasswordCommand(opAdd, "add JID", "Create an account", "user %s created\n")
}

func newUserPasswdCommand() *cobra.Command {
	return newUserPasswordCommand(opPasswd, "passwd JID", "Set an account's password", "password of %s changed\n")
}

// newUserPasswordCommand builds add and passwd, which differ only in the
// operation and the message.
func newUserPasswordCommand(op, use, short, done string) *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + ". The password is prompted for twice on the terminal,\n" +
			"or read as one line from standard input with --password-stdin.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, src, err := loadUserConfig(cmd)
			if err != nil {
				return err
			}
			// Check the JID before asking for a password.
			j, err := parseUserJID(args[0], cfg.Domains)
			if err != nil {
				return withConfigHint(err, src)
			}
			password, err := readPassword(cmd, j, fromStdin)
			if err != nil {
				return err
			}
			req := adminRequest{Op: op, JID: j.String(), Password: password}
			if _, err := runAdmin(cmd.Context(), cfg, req); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), done, j)
			return nil
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password as one line from standard input")
	return cmd
}

func newUserDelCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "del JID",
		Short: "Delete an account and its data; a running server closes its sessions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, src, err := loadUserConfig(cmd)
			if err != nil {
				return err
			}
			j, err := parseUserJID(args[0], cfg.Domains)
			if err != nil {
				return withConfigHint(err, src)
			}
			if _, err := runAdmin(cmd.Context(), cfg, adminRequest{Op: opDel, JID: j.String()}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s deleted\n", j)
			return nil
		},
	}
}

func newUserListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list [DOMAIN]",
		Short: "List accounts, one bare JID a line, of one domain or all",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, src, err := loadUserConfig(cmd)
			if err != nil {
				return err
			}
			req := adminRequest{Op: opList}
			if len(args) == 1 {
				if req.Domain, err = servedDomain(args[0], cfg.Domains); err != nil {
					return withConfigHint(err, src)
				}
			}
			resp, err := runAdmin(cmd.Context(), cfg, req)
			if _, ok := errors.AsType[*noDatabaseError](err); ok {
				// Nothing to list; say why, in case it is the wrong folder.
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %v\n", err)
				return nil
			}
			if err != nil {
				return err
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			for _, u := range resp.Users {
				fmt.Fprintln(w, u)
			}
			return w.Flush()
		},
	}
}

// loadUserConfig loads the config like every command, and says on standard
// error which file and which data folder the user command works on: without
// them, `xmppd user add` run in the wrong folder would quietly make a new
// database there.
func loadUserConfig(cmd *cobra.Command) (Config, configSource, error) {
	cfg, src, err := loadConfigSource(cmd)
	if err != nil {
		return cfg, src, err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "config: %s\ndata folder: %s\n", src, absPath(cfg.DataDir))
	return cfg, src, nil
}

// withConfigHint adds to a domain the config does not serve which config that
// is and how to choose another.
func withConfigHint(err error, src configSource) error {
	if _, ok := errors.AsType[*notServedError](err); ok {
		return fmt.Errorf("%w\n%s", err, src.hint())
	}
	return err
}

// readPassword reads one line from standard input with --password-stdin, or
// prompts twice on the terminal without echo.
func readPassword(cmd *cobra.Command, j jid.JID, fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			if errors.Is(err, io.EOF) {
				return "", errEmptyPassword
			}
			return "", fmt.Errorf("read password from standard input: %w", err)
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			return "", errEmptyPassword
		}
		return line, nil
	}

	f, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("standard input is not a terminal; use --password-stdin to read the password from it")
	}
	fd := int(f.Fd())
	prompt := cmd.ErrOrStderr()
	first, err := readNoEcho(fd, prompt, fmt.Sprintf("Password for %s: ", j))
	if err != nil {
		return "", err
	}
	if first == "" {
		return "", errEmptyPassword
	}
	second, err := readNoEcho(fd, prompt, "Repeat the password: ")
	if err != nil {
		return "", err
	}
	if first != second {
		return "", errors.New("the passwords do not match")
	}
	return first, nil
}

// readNoEcho prompts and reads one line with echo off. An interrupt while
// waiting restores the terminal before exiting, so the shell is not left
// without echo.
func readNoEcho(fd int, prompt io.Writer, msg string) (string, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	defer func() {
		signal.Stop(sig)
		close(done)
	}()
	go func() {
		select {
		case <-sig:
			_ = term.Restore(fd, state)
			fmt.Fprintln(prompt)
			os.Exit(130)
		case <-done:
		}
	}()

	fmt.Fprint(prompt, msg)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(prompt)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return string(b), nil
}
