package main

// The admin socket: bbolt lets one process open the database, so while the
// server runs, `xmppd user ...` sends its request to the server over a Unix
// socket in the data folder (Prosody mod_admin_socket). When the server is
// stopped the CLI opens the database itself. Both paths run doAdmin, so the
// output is the same either way.
//
// Protocol: one JSON request per connection, answered by one JSON line.
//
//	{"op":"add|passwd|del|list","jid":"...","domain":"...","password":"..."}
//	{"op":"purge","jid":"...","before":"RFC 3339 time"}  or  {..., "all":true}
//	{"ok":true,"users":[...],"removed":n}  or  {"error":"..."}

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
)

const (
	adminConnTimeout   = 10 * time.Second // server side, per connection
	adminClientTimeout = 30 * time.Second // client side, whole request
	adminMaxRequest    = 64 << 10
	// A purge of years of archive runs in many short transactions and
	// may take minutes; it gets its own bound on both sides.
	adminPurgeTimeout = time.Hour
	cliDBTimeout      = 500 * time.Millisecond
)

// Admin operations.
const (
	opAdd    = "add"
	opPasswd = "passwd"
	opDel    = "del"
	opList   = "list"
	opPurge  = "purge" // a user's message archive, all or older than Before
)

type adminRequest struct {
	Op       string `json:"op"`
	JID      string `json:"jid,omitempty"`
	Domain   string `json:"domain,omitempty"`
	Password string `json:"password,omitempty"`
	Before   string `json:"before,omitempty"` // purge: RFC 3339
	All      bool   `json:"all,omitempty"`    // purge: everything
}

type adminResponse struct {
	OK      bool     `json:"ok,omitempty"`
	Users   []string `json:"users,omitempty"`
	Removed int      `json:"removed,omitempty"` // purge: messages removed
	Error   string   `json:"error,omitempty"`
}

// AdminServer serves user administration on a Unix socket in the data
// folder. OnUserDeleted (optional) is called after a successful del so the
// server can close that user's sessions and the modules drop what they keep
// for the user; OnUserCreated (optional) after a successful add.
type AdminServer struct {
	DB            *storage.DB
	Domains       []string
	Log           *slog.Logger
	OnUserDeleted func(domain, local string)
	OnUserCreated func(domain, local string)
}

// ListenAndServe listens on the Unix socket at path (mode 0600, in a folder
// created 0700 if missing), answers requests until ctx is done, then removes
// the socket and returns nil once in-flight requests have finished. A socket
// file left by a dead server is removed first; one a live server answers on
// is an error.
func (a *AdminServer) ListenAndServe(ctx context.Context, path string) error {
	log := a.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if err := removeStaleSocket(path); err != nil {
		return err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	// Listen then chmod: the data folder is 0700, so nobody else can reach the
	// socket in between whatever the umask is.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("admin socket: %w", err)
	}
	log.Info("admin socket listening", "path", path)

	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close() // also unlinks the socket file

	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("admin socket: %w", err)
			}
			log.Warn("admin socket accept failed", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.serveConn(ctx, conn, log)
		}()
	}
}

// removeStaleSocket removes a socket file nothing answers on.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("admin socket: %s exists and is not a socket", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("admin socket: another xmppd is answering on %s", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("admin socket: remove stale %s: %w", path, err)
	}
	return nil
}

func (a *AdminServer) serveConn(ctx context.Context, conn *net.UnixConn, log *slog.Logger) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(adminConnTimeout))

	var resp adminResponse
	var req adminRequest
	dec := json.NewDecoder(io.LimitReader(conn, adminMaxRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		resp.Error = fmt.Sprintf("bad request: %v", err)
		log.Warn("admin request rejected", "err", err)
	} else {
		// Let a request that has started finish even if the server is
		// shutting down; ListenAndServe waits for it.
		timeout := adminConnTimeout
		if req.Op == opPurge {
			timeout = adminPurgeTimeout
			_ = conn.SetDeadline(time.Now().Add(timeout))
		}
		opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		result, err := doAdmin(opCtx, a.DB, a.Domains, req)
		cancel()
		if err != nil {
			resp.Error = err.Error()
			log.Info("admin request failed", "op", req.Op, "jid", req.JID, "domain", req.Domain, "err", err)
		} else {
			resp, resp.OK = result, true
			log.Info("admin request done", "op", req.Op, "jid", req.JID, "domain", req.Domain)
			if j, err := jid.Parse(req.JID); err == nil {
				switch {
				case req.Op == opDel && a.OnUserDeleted != nil:
					a.OnUserDeleted(j.Domainpart(), j.Localpart())
				case req.Op == opAdd && a.OnUserCreated != nil:
					a.OnUserCreated(j.Domainpart(), j.Localpart())
				}
			}
		}
	}
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		log.Warn("admin response not sent", "err", err)
	}
}

// doAdmin performs one request on db; it is the only implementation of the
// user operations, used by the admin socket and by the CLI when the server is
// stopped. Its errors are the messages the user sees.
func doAdmin(ctx context.Context, db *storage.DB, domains []string, req adminRequest) (adminResponse, error) {
	switch req.Op {
	case opList:
		domain := ""
		if req.Domain != "" {
			var err error
			if domain, err = servedDomain(req.Domain, domains); err != nil {
				return adminResponse{}, err
			}
		}
		users, err := db.ListUsers(ctx, domain)
		if err != nil {
			return adminResponse{}, err
		}
		if users == nil {
			users = []string{}
		}
		return adminResponse{Users: users}, nil
	case opPurge:
		return purgeArchive(ctx, db, domains, req)
	case opAdd, opPasswd, opDel:
	default:
		return adminResponse{}, fmt.Errorf("unknown operation %q", req.Op)
	}

	j, err := parseUserJID(req.JID, domains)
	if err != nil {
		return adminResponse{}, err
	}
	bare := j.String()
	domain, local := j.Domainpart(), j.Localpart()
	switch req.Op {
	case opDel:
		err = db.DeleteUser(ctx, domain, local)
	default:
		if req.Password == "" {
			return adminResponse{}, errEmptyPassword
		}
		creds, derr := storage.DeriveCredentials(req.Password, storage.DefaultIterations)
		if derr != nil {
			return adminResponse{}, derr
		}
		if req.Op == opAdd {
			err = db.CreateUser(ctx, domain, local, creds)
		} else {
			err = db.SetCredentials(ctx, domain, local, creds)
		}
	}
	switch {
	case errors.Is(err, storage.ErrUserExists):
		return adminResponse{}, fmt.Errorf("user %s already exists", bare)
	case errors.Is(err, storage.ErrNoSuchUser):
		return adminResponse{}, fmt.Errorf("user %s does not exist", bare)
	case err != nil:
		return adminResponse{}, err
	}
	return adminResponse{}, nil
}

var errEmptyPassword = errors.New("empty password")

// parseUserJID parses an account's bare JID and checks its domain is served.
func parseUserJID(s string, domains []string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, fmt.Errorf("invalid JID %q: %w", s, err)
	}
	if j.Resourcepart() != "" {
		return jid.JID{}, fmt.Errorf("invalid JID %q: an account has no resource; use %s", s, j.Bare())
	}
	if j.Localpart() == "" {
		return jid.JID{}, fmt.Errorf("invalid JID %q: an account needs a localpart (user@%s)", s, j.Domainpart())
	}
	if _, err := servedDomain(j.Domainpart(), domains); err != nil {
		return jid.JID{}, err // *notServedError
	}
	return j, nil
}

// servedDomain normalises d and checks it is one of domains.
func servedDomain(d string, domains []string) (string, error) {
	n, err := parseDomain(d)
	if err != nil {
		return "", err
	}
	for _, s := range domains {
		if sn, err := parseDomain(s); err == nil && sn == n {
			return n, nil
		}
	}
	return "", &notServedError{Domain: n, Served: domains}
}

// notServedError is a domain the config does not list.
type notServedError struct {
	Domain string
	Served []string
}

func (e *notServedError) Error() string {
	return fmt.Sprintf("domain %q is not served by this server (domains: %s)", e.Domain, strings.Join(e.Served, ", "))
}

// errNoServer means no server answers on the admin socket: the CLI opens the
// database itself.
var errNoServer = errors.New("no server on the admin socket")

// runAdmin performs req through the running server's admin socket, or on the
// database directly when no server is running.
func runAdmin(ctx context.Context, cfg Config, req adminRequest) (adminResponse, error) {
	resp, err := callAdminSocket(ctx, cfg.AdminSocket(), req)
	if !errors.Is(err, errNoServer) {
		return resp, err
	}
	if req.Op != opAdd {
		if _, err := os.Stat(cfg.DBPath()); errors.Is(err, os.ErrNotExist) {
			return adminResponse{}, &noDatabaseError{path: absPath(cfg.DBPath()), user: req.JID}
		}
	}
	db, err := storage.Open(cfg.DBPath(), storage.Options{Timeout: cliDBTimeout})
	if errors.Is(err, storage.ErrLocked) {
		return adminResponse{}, fmt.Errorf("the database is locked by a running xmppd, but its admin socket at %s did not answer", cfg.AdminSocket())
	}
	if err != nil {
		return adminResponse{}, err
	}
	resp, err = doAdmin(ctx, db, cfg.Domains, req)
	if cerr := db.Close(); err == nil && cerr != nil {
		return adminResponse{}, cerr
	}
	return resp, err
}

// noDatabaseError means the data folder holds no database yet. Only add
// makes one, so that a user command run with the wrong config or in the
// wrong folder does not quietly start a new, empty database.
type noDatabaseError struct {
	path string // the database file
	user string // the account asked about, if any
}

func (e *noDatabaseError) Error() string {
	msg := fmt.Sprintf("no database at %s yet (xmppd serve or xmppd user add creates it)", e.path)
	if e.user != "" {
		msg = fmt.Sprintf("user %s does not exist: %s", e.user, msg)
	}
	return msg
}

// callAdminSocket sends req to the server at path. It returns errNoServer
// when the socket is absent or refuses connections.
func callAdminSocket(ctx context.Context, path string, req adminRequest) (adminResponse, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
		return adminResponse{}, errNoServer
	}
	if err != nil {
		return adminResponse{}, fmt.Errorf("admin socket: %w", err)
	}
	defer conn.Close()
	deadline := time.Now().Add(adminClientTimeout)
	if req.Op == opPurge {
		deadline = time.Now().Add(adminPurgeTimeout)
	}
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return adminResponse{}, fmt.Errorf("admin socket %s: send: %w", path, err)
	}
	var resp adminResponse
	if err := json.NewDecoder(io.LimitReader(conn, 16<<20)).Decode(&resp); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return adminResponse{}, fmt.Errorf("admin socket %s: no answer: %w", path, err)
	}
	if resp.Error != "" {
		return adminResponse{}, errors.New(resp.Error)
	}
	if !resp.OK {
		return adminResponse{}, fmt.Errorf("admin socket %s: malformed answer", path)
	}
	return resp, nil
}
