package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xeps/mam"
)

// `xmppd user archive purge`: an operator removes an account's archived
// messages (XEP-0313), all of them or those older than a date, the way the
// other user commands work: through the running server's admin socket, or
// on the database when the server is stopped. Retention ([archive]
// expire_after) does the same for every account, in the background.

func newUserArchiveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "archive",
		Short: "Manage an account's message archive (purge)",
	}
	cmd.AddCommand(newUserArchivePurgeCommand())
	return cmd
}

func newUserArchivePurgeCommand() *cobra.Command {
	var before string
	var all bool
	cmd := &cobra.Command{
		Use:   "purge JID (--before DATE | --all)",
		Short: "Delete an account's archived messages: those older than DATE, or all",
		Long: "Delete an account's archived messages (XEP-0313) and their search index:\n" +
			"those older than DATE with --before, or all of them with --all. DATE is a\n" +
			"day (2025-01-31, midnight UTC) or an RFC 3339 time (2025-01-31T12:00:00+01:00).\n" +
			"The ids of later messages stay valid; new messages get new ones.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := adminRequest{Op: opPurge, All: all}
			switch {
			case all && before != "":
				return errors.New("give either --before DATE or --all, not both")
			case !all && before == "":
				return errors.New("say which messages to delete: --before DATE or --all")
			case before != "":
				t, err := parsePurgeDate(before)
				if err != nil {
					return err
				}
				req.Before = t.Format(time.RFC3339Nano)
			}
			cfg, src, err := loadUserConfig(cmd)
			if err != nil {
				return err
			}
			j, err := parseUserJID(args[0], cfg.Domains)
			if err != nil {
				return withConfigHint(err, src)
			}
			req.JID = j.String()
			resp, err := runAdmin(cmd.Context(), cfg, req)
			if err != nil {
				return err
			}
			what := "all archived messages"
			if !all {
				what = "archived messages older than " + req.Before
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d removed (%s)\n", j, resp.Removed, what)
			return nil
		},
	}
	cmd.Flags().StringVar(&before, "before", "", "delete the messages older than `DATE` (2025-01-31 or an RFC 3339 time)")
	cmd.Flags().BoolVar(&all, "all", false, "delete all of the account's archived messages")
	return cmd
}

// parsePurgeDate reads --before: a day (midnight UTC) or an RFC 3339 time.
func parsePurgeDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("invalid --before %q: want a day (2025-01-31) or an RFC 3339 time (2025-01-31T12:00:00Z)", s)
}

// purgeEverything is a time after every archived message's: ids carry 48
// bits of milliseconds.
var purgeEverything = time.UnixMilli(1 << 48)

// purgeArchive is the purge operation of doAdmin.
func purgeArchive(ctx context.Context, db *storage.DB, domains []string, req adminRequest) (adminResponse, error) {
	j, err := parseUserJID(req.JID, domains)
	if err != nil {
		return adminResponse{}, err
	}
	before := purgeEverything
	switch {
	case req.All && req.Before != "":
		return adminResponse{}, errors.New("purge: before and all both given")
	case req.All:
	case req.Before != "":
		if before, err = time.Parse(time.RFC3339Nano, req.Before); err != nil {
			return adminResponse{}, fmt.Errorf("purge: invalid time %q: %w", req.Before, err)
		}
	default:
		return adminResponse{}, errors.New("purge: neither before nor all given")
	}
	ok, err := db.UserExists(ctx, j.Domainpart(), j.Localpart())
	if err != nil {
		return adminResponse{}, err
	}
	if !ok {
		return adminResponse{}, fmt.Errorf("user %s does not exist", j)
	}
	// DeleteRange, not DeleteOwner, also for --all: the owner's newest id
	// stays, so that new messages never reuse an id a client has seen.
	n, err := db.Log(mam.LogName).DeleteRange(ctx, j.String(), before)
	if err != nil {
		return adminResponse{}, fmt.Errorf("purge of %s stopped after %d messages: %w", j, n, err)
	}
	return adminResponse{Removed: n}, nil
}
