// Command xmppbench is a load tool that speaks real XMPP (RFC 6120/6121) over
// TLS to any server — xmppd, Prosody, ejabberd — and measures it:
//
//	xmppbench login    --n 2000 --concurrency 50    logins/s, p50/p99 login time
//	xmppbench idle     --n 2000 --hold 10s          server RSS per session (--server-pid)
//	xmppbench chat     --pairs 200 --duration 10s   delivered messages/s, p50/p99/p999 latency, losses
//	xmppbench presence --n 500 --contacts 10        presence deliveries/s after a login storm, then
//	                                                 with everyone online, 5 rounds of status changes
//	xmppbench resume   --n 1000 --senders 10        XEP-0198: sessions cut at once, messages sent meanwhile,
//	                                                 every session resumed: resumed/failed, lost, duplicated,
//	                                                 resume time p50/p99, server CPU per resumption
//	xmppbench hibernate --n 2000 --hold 10s         server RSS per hibernated (cut, resumable) session
//	xmppbench archive  --fill 10000                 XEP-0313: fill rate of one chat with the archive on,
//	                                                 then page and full-text query times p50/p99
//	xmppbench users    --server xmppd --count 2000  create the accounts with the server's own tools
//
// Every client connects (STARTTLS, or Direct TLS with --direct-tls),
// authenticates with SCRAM-SHA-256 (SCRAM-SHA-1 if that is all the server
// has; PLAIN only with --mech PLAIN), binds, fetches its roster and sends
// initial presence before the scenario starts. Accounts are
// PREFIX<first>..PREFIX<first+count-1> with one password. Run any command
// with -h for its flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"regexp"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var reAddr = regexp.MustCompile(`(\[[0-9a-f:]+\]|\d+\.\d+\.\d+\.\d+)(:\d+)?`)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usageText = `usage: xmppbench login|idle|chat|presence|tls|resume|hibernate|archive [flags]
       xmppbench users --server xmppd|prosody|ejabberd [flags]
Run "xmppbench COMMAND -h" for the flags of a command.
`

// run is main without the process: tests call it. It returns the exit status:
// 0 ok, 1 anomalies or errors during the run, 2 bad usage or setup failure.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	switch args[0] {
	case "users":
		return runUsers(ctx, args[1:], stdout, stderr)
	case "login", "idle", "chat", "presence", "tls", "resume", "hibernate", "archive":
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usageText)
		return 0
	default:
		fmt.Fprintf(stderr, "xmppbench: unknown command %q\n%s", args[0], usageText)
		return 2
	}
	cfg, opts, err := parseFlags(args[0], args[1:], stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "xmppbench: %v\n", err)
		return 2
	}
	if opts.cpuProfile != "" {
		f, err := os.Create(opts.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "xmppbench: %v\n", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "xmppbench: %v\n", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	r, err := runScenario(ctx, cfg, opts.scramCache)
	if err != nil {
		fmt.Fprintf(stderr, "xmppbench: %v\n", err)
		return 2
	}
	if opts.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
	} else {
		r.writeTable(stdout)
	}
	if r.Anomalies > 0 || r.errorCount() > 0 {
		return 1
	}
	return 0
}

type runOpts struct {
	json       bool
	cpuProfile string
	scramCache string
}

func parseFlags(scenario string, args []string, stderr io.Writer) (config, runOpts, error) {
	var cfg config
	var o runOpts
	fs := flag.NewFlagSet("xmppbench "+scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:5222", "server `host:port` (the STARTTLS port, or the Direct TLS one with --direct-tls)")
	fs.StringVar(&cfg.Domain, "domain", "localhost", "XMPP domain of the accounts (also the TLS server name)")
	fs.BoolVar(&cfg.DirectTLS, "direct-tls", false, "connect with TLS directly (XEP-0368) instead of STARTTLS")
	fs.StringVar(&cfg.Mech, "mech", "auto", "SASL mechanism: auto (SCRAM-SHA-256, else SCRAM-SHA-1), SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN")
	fs.BoolVar(&cfg.SASL2, "sasl2", false, "log in with SASL2 (XEP-0388) and bind inline (XEP-0386) where the server offers them: two round trips fewer; "+
		"otherwise (and with servers that lack them) RFC 6120's SASL, stream restart and bind")
	fs.BoolVar(&cfg.Fast, "fast", false, "with --sasl2: log in with FAST tokens (XEP-0484) where the server offers them, as a returning client does: "+
		"accounts without a token first log in with the password to get one, and once with it, before the scenario (not measured); "+
		"tokens are kept in --scram-cache")
	fs.StringVar(&cfg.Prefix, "prefix", "u", "account names are PREFIX<number>")
	fs.StringVar(&cfg.Password, "password", "p", "password of every account")
	fs.IntVar(&cfg.First, "first", 1, "number of the first account")
	fs.IntVar(&cfg.Users, "users", 0, "accounts that exist (login cycles over them); 0 = as many as the scenario needs")
	fs.IntVar(&cfg.Concurrency, "concurrency", 50, "logins in flight at once")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "time limit of one login")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "pid of the server process, for its CPU time and RSS (/proc)")
	sources := fs.String("sources", "auto", "client source addresses: a range 127.0.0.10-127.0.0.250, a comma list, \"\" for the kernel's choice, "+
		"or auto (127.0.0.10-127.0.0.250 when the server is on loopback)")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON instead of a table")
	progress := fs.Bool("progress", true, "show a progress line on stderr")
	fs.StringVar(&o.scramCache, "scram-cache", "", "file that keeps SCRAM salted passwords between runs, so a login costs the tool no PBKDF2 "+
		"(as real clients cache them); mode 0600")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the tool's own CPU profile to this file (to check it is not the bottleneck)")
	fs.DurationVar(&cfg.Drain, "drain", 10*time.Second, "after sending, wait this long without progress before counting the missing as lost")
	cut := "silent"
	smFlags := func(def bool) {
		fs.BoolVar(&cfg.SM, "sm", def, "enable XEP-0198 stream management with resumption on every session: count handled stanzas, "+
			"answer the server's <r/>, ask for acks every --sm-ack-every stanzas sent")
		fs.IntVar(&cfg.SMEvery, "sm-ack-every", 10, "with --sm: send <r/> after this many stanzas (as Conversations does after a burst; 0: never on our own)")
	}
	resumeFlags := func(n int, cutDef string, before, during int) {
		fs.IntVar(&cfg.N, "n", n, "sessions with stream management that are cut and resumed")
		fs.IntVar(&cfg.Senders, "senders", 10, "further clients (accounts after the sessions') that send to the sessions, each to its share")
		fs.StringVar(&cut, "cut", cutDef, "how the connections are lost: silent (the client stops reading and answering and never closes until "+
			"after the resumption: a phone out of coverage, no FIN or RST reaches the server) or rst (an abortive close: the server learns at once)")
		fs.IntVar(&cfg.Before, "before", before, "messages to each session (and as many from it) before the cut")
		fs.IntVar(&cfg.During, "during", during, "messages to each session while it is cut")
		fs.DurationVar(&cfg.Settle, "settle", time.Second, "pause before reading the server's RSS")
	}
	switch scenario {
	case "tls":
		fs.IntVar(&cfg.N, "n", 1000, "TLS handshakes (each connection is closed right after): the machine's raw rate, the yardstick for logins/s")
	case "login":
		fs.IntVar(&cfg.N, "n", 1000, "logins (each session is closed right after its login)")
	case "idle":
		fs.IntVar(&cfg.N, "n", 1000, "sessions to hold")
		fs.DurationVar(&cfg.Duration, "hold", 10*time.Second, "how long to hold them")
		fs.DurationVar(&cfg.Settle, "settle", time.Second, "pause after connecting before the first RSS reading")
	case "chat":
		smFlags(false)
		fs.IntVar(&cfg.Pairs, "pairs", 100, "pairs of clients; each client sends to its partner")
		fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to send")
		fs.Float64Var(&cfg.Rate, "rate", 0, "messages/s each client sends; 0 = as fast as possible")
		fs.IntVar(&cfg.Window, "window", -1, "messages a client may have sent but not yet seen delivered; 0 = unbounded (open loop: XMPP has no flow control, "+
			"so a server that cannot keep up queues or drops); default 100 with --rate 0, unbounded with a rate")
	case "resume":
		smFlags(true)
		resumeFlags(1000, "silent", 3, 5)
		fs.DurationVar(&cfg.Duration, "offline", 2*time.Second, "how long the sessions stay cut (after the messages to them are sent)")
	case "hibernate":
		smFlags(true)
		resumeFlags(2000, "rst", 1, 0)
		fs.DurationVar(&cfg.Duration, "hold", 10*time.Second, "how long the sessions stay hibernated before the RSS reading")
	case "archive":
		smFlags(false)
		archiveFlags(fs, &cfg.Archive)
	case "presence":
		fs.IntVar(&cfg.N, "n", 200, "users")
		fs.IntVar(&cfg.Contacts, "contacts", 10, "roster contacts of each user (even: ring neighbours on both sides)")
		fs.IntVar(&cfg.UpdateRounds, "update-rounds", 5, "rounds of the update phase after the storm: in each, every user changes its status once "+
			"(more rounds: steadier figures, and a profile of the broadcast alone); 0 skips the phase")
		fs.DurationVar(&cfg.Setup, "setup", 2*time.Minute, "how long the subscriptions may take to set up before the storm "+
			"(a server that rewrites a roster file per change needs a while)")
	}
	if err := fs.Parse(args); err != nil {
		return cfg, o, err
	}
	if fs.NArg() > 0 {
		return cfg, o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.Scenario = scenario
	if cfg.Window < 0 {
		cfg.Window = 0
		if cfg.Rate == 0 {
			cfg.Window = 100
		}
	}
	if *progress {
		cfg.Progress = stderr
	}
	switch cfg.Mech {
	case "auto", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN":
	default:
		return cfg, o, fmt.Errorf("--mech %q: want auto, SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN", cfg.Mech)
	}
	var err error
	if cfg.Cut, err = parseCut(cut); err != nil {
		return cfg, o, err
	}
	if cfg.Senders < 1 && (scenario == "resume" || scenario == "hibernate") {
		return cfg, o, errors.New("--senders must be at least 1")
	}
	if cfg.Before < 0 || cfg.During < 0 || cfg.SMEvery < 0 {
		return cfg, o, errors.New("sizes must be positive")
	}
	if scenario == "archive" {
		if err := cfg.Archive.check(); err != nil {
			return cfg, o, err
		}
	}
	if cfg.Sources, err = parseSources(*sources, cfg.Addr); err != nil {
		return cfg, o, err
	}
	if cfg.N < 0 || cfg.Pairs < 0 || cfg.Concurrency < 1 {
		return cfg, o, errors.New("sizes must be positive")
	}
	return cfg, o, nil
}

// parseSources turns the --sources flag into addresses.
func parseSources(s, addr string) ([]net.IP, error) {
	if s == "auto" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("--addr %q: %w", addr, err)
		}
		ip := net.ParseIP(host)
		if host == "localhost" {
			ip = net.IPv4(127, 0, 0, 1)
		}
		if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
			return nil, nil
		}
		s = "127.0.0.10-127.0.0.250"
	}
	if s == "" {
		return nil, nil
	}
	var out []net.IP
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a := net.ParseIP(lo).To4()
		if a == nil {
			return nil, fmt.Errorf("--sources: %q is not an IPv4 address", lo)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		z := net.ParseIP(hi).To4()
		if z == nil || a[0] != z[0] || a[1] != z[1] || a[2] != z[2] || z[3] < a[3] {
			return nil, fmt.Errorf("--sources: bad range %q (the last byte varies: 127.0.0.10-127.0.0.250)", part)
		}
		for x := int(a[3]); x <= int(z[3]); x++ {
			out = append(out, net.IPv4(a[0], a[1], a[2], byte(x)).To4())
		}
	}
	return out, nil
}

// runScenario runs cfg.Scenario and returns its report.
func runScenario(ctx context.Context, cfg config, cacheFile string) (*report, error) {
	limit, lerr := raiseNoFile()
	need := cfg.N
	if cfg.Scenario == "chat" {
		need = 2 * cfg.Pairs
	}
	if cfg.Scenario == "login" {
		need = cfg.Concurrency
	}
	if cfg.Scenario == "resume" || cfg.Scenario == "hibernate" {
		need = 2*cfg.N + cfg.Senders // the cut connections stay open until the resumed ones are done
	}
	if lerr == nil && uint64(need)+64 > limit {
		return nil, fmt.Errorf("%d connections need more file descriptors than RLIMIT_NOFILE allows (%d); raise the hard limit (ulimit -Hn)", need, limit)
	}
	d := newDialer(cfg.Addr, cfg.Domain, cfg.DirectTLS, cfg.Mech, cfg.Mech == "PLAIN", cfg.Sources, cfg.Timeout)
	d.sasl2 = cfg.SASL2
	d.fast = cfg.Fast && cfg.SASL2
	d.sm = cfg.SM
	d.smEvery = cfg.SMEvery
	if cacheFile != "" {
		if err := d.cache.load(cacheFile); err != nil {
			return nil, err
		}
	}
	r := &report{Scenario: cfg.Scenario, Server: cfg.Addr, Domain: cfg.Domain, TLS: "starttls", Params: map[string]any{}, Started: time.Now()}
	if cfg.DirectTLS {
		r.TLS = "direct-tls"
	}
	if len(cfg.Sources) > 0 {
		r.Params["source_addrs"] = len(cfg.Sources)
	}
	b := &bench{cfg: cfg, d: d, r: r}
	if d.fast {
		b.fastWarmup(ctx)
	}
	u := startUsage(cfg.ServerPID)
	switch cfg.Scenario {
	case "tls":
		b.runTLS(ctx)
	case "login":
		b.runLogin(ctx)
	case "idle":
		b.runIdle(ctx)
	case "chat":
		b.runChat(ctx)
	case "presence":
		b.runPresence(ctx)
	case "resume":
		b.runResume(ctx, false)
	case "hibernate":
		b.runResume(ctx, true)
	case "archive":
		b.runArchive(ctx)
	}
	u.finish(r, d.cache)
	if d.fast {
		r.add("fast_logins", "logins with a FAST token", float64(d.fastLogins.Load()), "")
		r.add("fast_refused", "FAST tokens refused", float64(d.fastRefused.Load()), "")
	}
	d.mechUsed.Range(func(k, _ any) bool { r.Mechs = append(r.Mechs, k.(string)); return true })
	sort.Strings(r.Mechs)
	if ctx.Err() != nil {
		r.Notes = append(r.Notes, "interrupted")
	}
	if cacheFile != "" {
		if err := d.cache.save(cacheFile); err != nil {
			r.Notes = append(r.Notes, "scram cache not saved: "+err.Error())
		}
	}
	r.Params["nofile_limit"] = strconv.FormatUint(limit, 10)
	return r, nil
}
