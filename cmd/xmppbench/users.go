package main

// `xmppbench users` creates the bench accounts in bulk with the target
// server's own tools:
//
//   - xmppd: its admin socket (data_dir/admin.sock, one JSON request per
//     connection, the protocol `xmppd user add` speaks), several requests in
//     parallel; or, with --xmppd-bin and no socket, `xmppd user add
//     --password-stdin` processes in parallel.
//   - Prosody: `prosodyctl --config CFG shell` fed user:create() lines in
//     batches (the server must be running with mod_admin_shell).
//   - ejabberd: its HTTP API (POST /api/register) in parallel, or with --ctl,
//     `ejabberdctl ... register` processes in parallel.
//
// An account that already exists counts as done, so the command can be rerun.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/BurntSushi/toml"
)

type usersCfg struct {
	server, domain, prefix, password string
	first, count, parallel           int
	config, adminSocket, xmppdBin    string
	prosodyctl, api, ctl             string
}

func runUsers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c usersCfg
	fs := flag.NewFlagSet("xmppbench users", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.server, "server", "xmppd", "xmppd, prosody or ejabberd")
	fs.IntVar(&c.count, "count", 100, "accounts to create")
	fs.IntVar(&c.first, "first", 1, "number of the first account")
	fs.StringVar(&c.prefix, "prefix", "u", "account names are PREFIX<number>")
	fs.StringVar(&c.password, "password", "p", "password of every account")
	fs.StringVar(&c.domain, "domain", "localhost", "XMPP domain")
	fs.IntVar(&c.parallel, "parallel", 8, "requests or processes in flight")
	fs.StringVar(&c.config, "config", "", "xmppd: its TOML config (for data_dir); prosody: its prosody.cfg.lua")
	fs.StringVar(&c.adminSocket, "admin-socket", "", "xmppd: path of admin.sock (default: data_dir/admin.sock from --config)")
	fs.StringVar(&c.xmppdBin, "xmppd-bin", "xmppd", "xmppd: the binary, used when no admin socket answers")
	fs.StringVar(&c.prosodyctl, "prosodyctl", "prosodyctl", "prosody: the prosodyctl command")
	fs.StringVar(&c.api, "api", "http://127.0.0.1:5280/api", "ejabberd: base URL of mod_http_api (loopback)")
	fs.StringVar(&c.ctl, "ctl", "", "ejabberd: use this ejabberdctl command line instead of the HTTP API, e.g. \"ejabberdctl --config-dir DIR\"")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if c.count < 1 || c.parallel < 1 {
		fmt.Fprintln(stderr, "xmppbench users: --count and --parallel must be positive")
		return 2
	}
	t0 := time.Now()
	var res *userResult
	var err error
	switch c.server {
	case "xmppd":
		res, err = usersXmppd(ctx, c)
	case "prosody":
		res, err = usersProsody(ctx, c)
	case "ejabberd":
		res, err = usersEjabberd(ctx, c)
	default:
		err = fmt.Errorf("--server %q: want xmppd, prosody or ejabberd", c.server)
	}
	if err != nil {
		fmt.Fprintf(stderr, "xmppbench users: %v\n", err)
		return 2
	}
	el := time.Since(t0)
	fmt.Fprintf(stdout, "%s: %d created, %d existed, %d failed, in %.1fs (%.0f/s) via %s\n",
		c.server, res.created.Load(), res.existed.Load(), res.failed.Load(), el.Seconds(),
		float64(res.created.Load()+res.existed.Load())/el.Seconds(), res.via)
	if res.firstErr != nil {
		fmt.Fprintf(stderr, "first error: %v\n", res.firstErr)
	}
	if res.failed.Load() > 0 {
		return 1
	}
	return 0
}

type userResult struct {
	via                      string
	created, existed, failed atomic.Int64
	mu                       sync.Mutex
	firstErr                 error
}

func (r *userResult) fail(err error) {
	r.failed.Add(1)
	r.mu.Lock()
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.mu.Unlock()
}

func (c usersCfg) name(i int) string { return c.prefix + strconv.Itoa(c.first+i) }

// parallel runs fn(i) for i in [0, count) with c.parallel workers.
func (c usersCfg) each(ctx context.Context, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range c.parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= c.count {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// --- xmppd ---------------------------------------------------------------------

// xmppdSocket finds admin.sock: --admin-socket, else data_dir from --config
// (a relative data_dir is tried from here and from the config's folder).
func xmppdSocket(c usersCfg) string {
	if c.adminSocket != "" {
		return c.adminSocket
	}
	dataDir := "./xmppd-data"
	if c.config != "" {
		var conf struct {
			DataDir string `toml:"data_dir"`
		}
		if _, err := toml.DecodeFile(c.config, &conf); err == nil && conf.DataDir != "" {
			dataDir = conf.DataDir
		}
	}
	cands := []string{filepath.Join(dataDir, "admin.sock")}
	if !filepath.IsAbs(dataDir) && c.config != "" {
		cands = append(cands, filepath.Join(filepath.Dir(c.config), dataDir, "admin.sock"))
	}
	for _, p := range cands {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Type() == os.ModeSocket {
			return p
		}
	}
	return ""
}

func usersXmppd(ctx context.Context, c usersCfg) (*userResult, error) {
	res := &userResult{}
	if sock := xmppdSocket(c); sock != "" {
		res.via = "admin socket " + sock
		c.each(ctx, func(i int) {
			jid := c.name(i) + "@" + c.domain
			err := xmppdAdminAdd(ctx, sock, jid, c.password)
			switch {
			case err == nil:
				res.created.Add(1)
			case strings.Contains(err.Error(), "already exists"):
				res.existed.Add(1)
			default:
				res.fail(fmt.Errorf("%s: %w", jid, err))
			}
		})
		return res, nil
	}
	bin, err := exec.LookPath(c.xmppdBin)
	if err != nil {
		return nil, fmt.Errorf("no admin socket found (is xmppd running? give --config or --admin-socket) and no xmppd binary: %w", err)
	}
	res.via = bin + " user add"
	c.each(ctx, func(i int) {
		jid := c.name(i) + "@" + c.domain
		args := []string{"user", "add", jid, "--password-stdin"}
		if c.config != "" {
			args = append([]string{"--config", c.config}, args...)
		}
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdin = strings.NewReader(c.password + "\n")
		out, err := cmd.CombinedOutput()
		switch {
		case err == nil:
			res.created.Add(1)
		case bytes.Contains(out, []byte("already exists")):
			res.existed.Add(1)
		default:
			res.fail(fmt.Errorf("%s: %v: %s", jid, err, bytes.TrimSpace(out)))
		}
	})
	return res, nil
}

// xmppdAdminAdd sends one add request on the admin socket: one JSON object
// per connection, answered by one JSON line ({"ok":true} or {"error":...}).
func xmppdAdminAdd(ctx context.Context, sock, jid, password string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	req := map[string]string{"op": "add", "jid": jid, "password": password}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return err
	}
	var resp struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(conn, 1<<20)).Decode(&resp); err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if !resp.OK {
		return errors.New(resp.Error)
	}
	return nil
}

// --- Prosody ---------------------------------------------------------------------

// luaQuote quotes s as a Lua string literal.
func luaQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\r", `\r`, "\x00", `\0`).Replace(s) + "'"
}

// usersProsody feeds user:create() lines to `prosodyctl shell` in batches of
// 500, c.parallel shells at once. The shell prints one result line per
// command: "OK: User created" or "! User exists" / "! <error>".
func usersProsody(ctx context.Context, c usersCfg) (*userResult, error) {
	if c.config == "" {
		return nil, errors.New("prosody: --config PATH/prosody.cfg.lua is needed")
	}
	res := &userResult{via: c.prosodyctl + " shell"}
	const batch = 500
	batches := (c.count + batch - 1) / batch
	bc := c
	bc.count = batches
	bc.parallel = min(c.parallel, 4)
	bc.each(ctx, func(k int) {
		lo, hi := k*batch, min((k+1)*batch, c.count)
		var in strings.Builder
		for i := lo; i < hi; i++ {
			fmt.Fprintf(&in, "user:create(%s, %s)\n", luaQuote(c.name(i)+"@"+c.domain), luaQuote(c.password))
		}
		cmd := exec.CommandContext(ctx, c.prosodyctl, "--config", c.config, "shell")
		cmd.Stdin = strings.NewReader(in.String())
		out, err := cmd.CombinedOutput()
		var created, existed int
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			l := sc.Text()
			switch {
			case strings.Contains(l, "User created"):
				created++
			case strings.Contains(l, "exists"):
				existed++
			}
		}
		res.created.Add(int64(created))
		res.existed.Add(int64(existed))
		if missing := (hi - lo) - created - existed; missing > 0 || err != nil {
			for range max(missing, 1) {
				res.fail(fmt.Errorf("prosodyctl shell (batch %d, err %v): %s", k, err, lastLines(out, 5)))
			}
		}
	})
	return res, nil
}

func lastLines(b []byte, n int) string {
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " | ")
}

// --- ejabberd ----------------------------------------------------------------------

func usersEjabberd(ctx context.Context, c usersCfg) (*userResult, error) {
	res := &userResult{}
	if c.ctl != "" {
		argv := strings.Fields(c.ctl)
		res.via = c.ctl + " register"
		c.each(ctx, func(i int) {
			args := append(append([]string{}, argv[1:]...), "register", c.name(i), c.domain, c.password)
			out, err := exec.CommandContext(ctx, argv[0], args...).CombinedOutput()
			switch {
			case err == nil:
				res.created.Add(1)
			case bytes.Contains(out, []byte("already registered")):
				res.existed.Add(1)
			default:
				res.fail(fmt.Errorf("%s: %v: %s", c.name(i), err, bytes.TrimSpace(out)))
			}
		})
		return res, nil
	}
	url := strings.TrimSuffix(c.api, "/") + "/register"
	res.via = "POST " + url
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: c.parallel}}
	c.each(ctx, func(i int) {
		body, _ := json.Marshal(map[string]string{"user": c.name(i), "host": c.domain, "password": c.password})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			res.fail(err)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			res.fail(err)
			return
		}
		out, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			res.created.Add(1)
		case bytes.Contains(out, []byte("already registered")):
			res.existed.Add(1)
		default:
			res.fail(fmt.Errorf("%s: HTTP %d: %s", c.name(i), resp.StatusCode, bytes.TrimSpace(out)))
		}
	})
	return res, nil
}
