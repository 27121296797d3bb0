package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"
	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/c2s"
	"github.com/xmppd/xmppd/c2s/auth"
	"github.com/xmppd/xmppd/s2s"
	"github.com/xmppd/xmppd/xeps/blocking"
	"github.com/xmppd/xmppd/xeps/csi"
	"github.com/xmppd/xmppd/xeps/mam"
	"github.com/xmppd/xmppd/xeps/offline"
	"github.com/xmppd/xmppd/xeps/private"
	"github.com/xmppd/xmppd/xeps/push"
	"github.com/xmppd/xmppd/xeps/vcard"
)

// Config is the whole server configuration, decoded from one TOML file.
// DefaultConfig holds every default; LoadConfig decodes a file over it, so a
// key absent from the file keeps its default. A module with settings owns
// its section's type (defaults and Validate in its package), embedded here
// under the module's name.
type Config struct {
	Domains []string  `toml:"domains"`  // served domains, normalised (PRECIS/IDNA) by LoadConfig
	DataDir string    `toml:"data_dir"` // bbolt file, generated certificate, admin socket
	Log     LogConfig `toml:"log"`
	TLS     TLSConfig `toml:"tls"`
	C2S     C2SConfig `toml:"c2s"`
	S2S     S2SConfig `toml:"s2s"`

	// The modules' sections, one per module that has settings.
	Offline  offline.Config  `toml:"offline"`
	Blocking blocking.Config `toml:"blocking"`
	Archive  mam.Config      `toml:"archive"`
	VCard    vcard.Config    `toml:"vcard"`
	Private  private.Config  `toml:"private"`
	Push     push.Config     `toml:"push"`
	CSI      csi.Config      `toml:"csi"`
}

// moduleSection is a module's config section as Validate sees it.
type moduleSection struct {
	name string // the section's key, the module's name
	cfg  interface{ Validate() error }
}

// moduleSections lists the modules' sections, in the order of the file.
func (c Config) moduleSections() []moduleSection {
	return []moduleSection{
		{"offline", c.Offline},
		{"blocking", c.Blocking},
		{"archive", c.Archive},
		{"vcard", c.VCard},
		{"private", c.Private},
		{"push", c.Push},
		{"csi", c.CSI},
	}
}

// S2SConfig configures federation with other XMPP domains.
type S2SConfig struct {
	Listen           []string          `toml:"listen"`             // inbound STARTTLS listeners; empty with direct_tls empty disables inbound s2s
	DirectTLS        []string          `toml:"direct_tls"`         // inbound Direct TLS listeners (XEP-0368)
	CAFile           string            `toml:"ca_file"`            // PEM bundle trusted for peers' certificates, besides the system roots
	RequireValidCert bool              `toml:"require_valid_cert"` // refuse peers without a valid certificate (no dialback-only)
	DNSServer        string            `toml:"dns_server"`         // "host:port" of the DNS server for SRV/A lookups; "" = the system's
	Routes           map[string]string `toml:"routes"`             // domain → "host:port", overriding DNS
	MaxStanzaSize    int               `toml:"max_stanza_size"`    // bytes
	IdleTimeout      Duration          `toml:"idle_timeout"`       // close streams idle this long
	ConnectTimeout   Duration          `toml:"connect_timeout"`    // to set up an outgoing stream, TLS and authentication included
	QueueSize        int               `toml:"queue_size"`         // stanzas per remote domain waiting for a stream
}

// LogConfig selects the slog handler.
type LogConfig struct {
	Level  string `toml:"level"`  // debug|info|warn|error
	Format string `toml:"format"` // text|json
}

// TLSConfig lists the certificates the server presents. With none, LoadTLS
// generates a self-signed certificate in the data folder covering all domains.
type TLSConfig struct {
	Certificates []CertConfig `toml:"certificates"`
}

// CertConfig is one PEM certificate chain and its key. Which domains it serves
// comes from its SANs.
type CertConfig struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

// C2SConfig configures client connections.
type C2SConfig struct {
	Listen            []string `toml:"listen"`              // STARTTLS listeners (RFC 6120 §5)
	DirectTLS         []string `toml:"direct_tls"`          // Direct TLS listeners (XEP-0368); empty disables
	RequireTLS        bool     `toml:"require_tls"`         // refuse SASL before TLS
	MaxStanzaSize     int      `toml:"max_stanza_size"`     // bytes, after authentication
	PreAuthStanzaSize int      `toml:"preauth_stanza_size"` // bytes, before authentication
	AuthTimeout       Duration `toml:"auth_timeout"`        // from connect to a bound resource
	MaxAuthFailures   int      `toml:"max_auth_failures"`   // failed SASL attempts before the stream is closed
	QueueSize         int      `toml:"queue_size"`          // per-session outbound queue, in stanzas
	FastTokenLifetime Duration `toml:"fast_token_lifetime"` // FAST tokens (XEP-0484) work this long; 0 disables FAST
	ResumeTimeout     Duration `toml:"resume_timeout"`      // XEP-0198: a dropped session waits this long for its client to resume
	MaxUnacked        int      `toml:"max_unacked"`         // XEP-0198: stanzas sent and not acknowledged before the session is closed
	// Password guessing and connection floods, counted per client address
	// (an IPv4 address, an IPv6 /64) across all its connections.
	MaxPreAuthConns  int `toml:"max_preauth_conns"`   // connections not yet authenticated
	AuthChecksBurst  int `toml:"auth_checks_burst"`   // password checks in a row, before the rate applies
	AuthChecksPerMin int `toml:"auth_checks_per_min"` // password checks a minute after the burst
}

// Duration is a time.Duration written in the config as a string ("30s").
// Convert with time.Duration(d) or d.D().
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as "30s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Go duration string such as "30s" or "1m30s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (use a string such as \"30s\")", b)
	}
	*d = Duration(v)
	return nil
}

// Bounds checked by Validate.
const (
	minStanzaSize   = 10000 // RFC 6120 §13.12: at least 10000 bytes
	maxStanzaSize   = 16 << 20
	minPreAuthSize  = 4096
	minAuthTimeout  = time.Second
	maxAuthTimeout  = 10 * time.Minute
	minAuthFailures = 1
	maxAuthFailures = 100
	minQueueSize    = 8
	maxQueueSize    = 65536
	minFastLifetime = time.Hour
	maxFastLifetime = 365 * 24 * time.Hour
)

// DefaultConfig returns the configuration `xmppd serve` runs with when no
// file is given. The values the c2s and s2s packages and the modules default
// to are theirs (c2s.Default..., s2s.Default..., offline.DefaultConfig), so
// each default is written once; the rest are written here.
func DefaultConfig() Config {
	return Config{
		Domains: []string{"localhost"},
		DataDir: "./xmppd-data",
		Log:     LogConfig{Level: "info", Format: "text"},
		C2S: C2SConfig{
			Listen:            []string{":5222"},
			DirectTLS:         []string{":5223"},
			RequireTLS:        true,
			MaxStanzaSize:     c2s.DefaultMaxStanzaSize,
			PreAuthStanzaSize: c2s.DefaultPreAuthStanzaSize,
			AuthTimeout:       Duration(c2s.DefaultAuthTimeout),
			MaxAuthFailures:   c2s.DefaultMaxAuthFailures,
			QueueSize:         c2s.DefaultQueueSize,
			FastTokenLifetime: Duration(auth.DefaultFastTTL),
			ResumeTimeout:     Duration(c2s.DefaultResumeTimeout),
			MaxUnacked:        c2s.DefaultMaxUnacked,
			MaxPreAuthConns:   auth.DefaultMaxPreAuthConns,
			AuthChecksBurst:   auth.DefaultAddrBurst,
			AuthChecksPerMin:  int(auth.DefaultAddrRate * 60),
		},
		S2S: S2SConfig{
			Listen:        []string{":5269"},
			Routes:        map[string]string{},
			DirectTLS:     []string{":5270"},
			MaxStanzaSize: s2s.DefaultMaxStanzaSize,
			IdleTimeout:   Duration(s2s.DefaultIdleTimeout),
			// connect_timeout bounds the whole setup of an outgoing stream,
			// which is s2s's AuthTimeout (serve.go).
			ConnectTimeout: Duration(s2s.DefaultAuthTimeout),
			QueueSize:      s2s.DefaultQueueSize,
		},
		Offline:  offline.DefaultConfig(),
		Blocking: blocking.DefaultConfig(),
		Archive:  mam.DefaultConfig(),
		VCard:    vcard.DefaultConfig(),
		Private:  private.DefaultConfig(),
		Push:     push.DefaultConfig(),
		CSI:      csi.DefaultConfig(),
	}
}

// LoadConfig reads the TOML file at path over DefaultConfig, rejects unknown
// keys, normalises the domains and validates. path "" means DefaultConfig().
// Errors name the file.
func LoadConfig(path string) (Config, error) {
	if path == "" {
		return DefaultConfig(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err // *PathError already names the file
	}
	c, err := parseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// parseConfig decodes and validates one config document.
func parseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&c)
	if err != nil {
		return Config{}, err
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		return Config{}, unknownKeysError(data, undecoded)
	}
	// Validate before normalising so that messages quote the file's spelling.
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	c.Domains = normalizeDomains(c.Domains)
	return c, nil
}

// unknownKeysError lists the unknown keys with the line each is on. A key
// inside an unknown table is not listed again.
func unknownKeysError(data []byte, keys []toml.Key) error {
	lines := keyLines(data)
	seen := make(map[string]bool)
	var parts []string
	for _, k := range keys {
		name := k.String()
		if seen[name] {
			continue
		}
		seen[name] = true
		if len(k) > 1 && seen[toml.Key(k[:len(k)-1]).String()] {
			continue // inside an unknown table already listed
		}
		if n, ok := lines[name]; ok {
			parts = append(parts, fmt.Sprintf("%q (line %d)", name, n))
		} else {
			parts = append(parts, strconv.Quote(name))
		}
	}
	word := "key"
	if len(parts) > 1 {
		word = "keys"
	}
	return fmt.Errorf("unknown %s %s", word, strings.Join(parts, ", "))
}

var (
	tableLine = regexp.MustCompile(`^\s*\[\[?\s*([A-Za-z0-9_.\- ]+?)\s*\]\]?\s*(#.*)?$`)
	keyLine   = regexp.MustCompile(`^\s*([A-Za-z0-9_\-]+(?:\s*\.\s*[A-Za-z0-9_\-]+)*)\s*=`)
)

// keyLines maps dotted key names to the first line defining them. It is a
// best-effort scan for error messages (bare keys only); the decoder has
// already checked the syntax.
func keyLines(data []byte) map[string]int {
	out := make(map[string]int)
	var table []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := tableLine.FindStringSubmatch(line); m != nil {
			table = splitDotted(m[1])
			name := strings.Join(table, ".")
			if _, ok := out[name]; !ok {
				out[name] = n
			}
			continue
		}
		if m := keyLine.FindStringSubmatch(line); m != nil {
			parts := append(append([]string(nil), table...), splitDotted(m[1])...)
			// Each dotted prefix is an implicit table defined here too.
			for i := len(table) + 1; i <= len(parts); i++ {
				name := strings.Join(parts[:i], ".")
				if _, ok := out[name]; !ok {
					out[name] = n
				}
			}
		}
	}
	return out
}

func splitDotted(s string) []string {
	parts := strings.Split(s, ".")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// normalizeDomains returns the domains in their canonical form (jid.Parse
// applies the IDNA/PRECIS rules). Invalid ones are kept as written for
// Validate to report.
func normalizeDomains(domains []string) []string {
	out := make([]string, 0, len(domains))
	for _, d := range domains {
		if n, err := parseDomain(d); err == nil {
			d = n
		}
		out = append(out, d)
	}
	return out
}

// parseDomain checks that s is a domain-only JID and returns it normalised.
func parseDomain(s string) (string, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("invalid domain %q: %w", s, err)
	}
	if j.Localpart() != "" || j.Resourcepart() != "" {
		return "", fmt.Errorf("invalid domain %q: no localpart@ or /resource allowed", s)
	}
	return j.Domainpart(), nil
}

// Validate checks every value against its bounds. Messages name the key.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(c.Domains) == 0 {
		add("domains: at least one domain is required")
	}
	seen := make(map[string]string)
	for _, d := range c.Domains {
		n, err := parseDomain(d)
		if err != nil {
			add("domains: %w", err)
			continue
		}
		if prev, ok := seen[n]; ok {
			add("domains: %q is listed twice (as %q and %q)", n, prev, d)
			continue
		}
		seen[n] = d
	}
	if c.DataDir == "" {
		add("data_dir: must not be empty")
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format: %q is not one of text, json", c.Log.Format)
	}

	for i, cc := range c.TLS.Certificates {
		if cc.Cert == "" {
			add("tls.certificates[%d].cert: must not be empty", i)
		}
		if cc.Key == "" {
			add("tls.certificates[%d].key: must not be empty", i)
		}
	}

	addrs := make(map[string]string)
	checkAddrs := func(key string, list []string) {
		for _, a := range list {
			if err := checkListenAddr(a); err != nil {
				add("%s: %v", key, err)
				continue
			}
			if strings.HasSuffix(a, ":0") {
				continue // port 0: the system picks a free port for each
			}
			if prev, ok := addrs[a]; ok {
				add("%s: %q is already used by %s", key, a, prev)
				continue
			}
			addrs[a] = key
		}
	}
	checkAddrs("c2s.listen", c.C2S.Listen)
	checkAddrs("c2s.direct_tls", c.C2S.DirectTLS)
	if len(c.C2S.Listen) == 0 && len(c.C2S.DirectTLS) == 0 {
		add("c2s: c2s.listen and c2s.direct_tls are both empty; clients could not connect")
	}

	checkRange := func(key string, v, lo, hi int) {
		if v < lo {
			add("%s: %d is below the minimum %d", key, v, lo)
		} else if v > hi {
			add("%s: %d is above the maximum %d", key, v, hi)
		}
	}
	checkRange("c2s.max_stanza_size", c.C2S.MaxStanzaSize, minStanzaSize, maxStanzaSize)
	preAuthMax := maxStanzaSize
	if c.C2S.MaxStanzaSize >= minStanzaSize && c.C2S.MaxStanzaSize <= maxStanzaSize {
		preAuthMax = c.C2S.MaxStanzaSize
	}
	checkRange("c2s.preauth_stanza_size", c.C2S.PreAuthStanzaSize, minPreAuthSize, preAuthMax)
	checkRange("c2s.max_auth_failures", c.C2S.MaxAuthFailures, minAuthFailures, maxAuthFailures)
	checkRange("c2s.queue_size", c.C2S.QueueSize, minQueueSize, maxQueueSize)
	checkRange("c2s.max_unacked", c.C2S.MaxUnacked, 16, 100000)
	if d := c.C2S.ResumeTimeout.D(); d < time.Second || d > 7*24*time.Hour {
		add("c2s.resume_timeout: %s is outside 1s..168h", d)
	}
	checkRange("c2s.max_preauth_conns", c.C2S.MaxPreAuthConns, 1, 100000)
	checkRange("c2s.auth_checks_burst", c.C2S.AuthChecksBurst, 1, 100000)
	checkRange("c2s.auth_checks_per_min", c.C2S.AuthChecksPerMin, 1, 600000)

	checkAddrs("s2s.listen", c.S2S.Listen)
	checkAddrs("s2s.direct_tls", c.S2S.DirectTLS)
	checkRange("s2s.max_stanza_size", c.S2S.MaxStanzaSize, minStanzaSize, maxStanzaSize)
	checkRange("s2s.queue_size", c.S2S.QueueSize, minQueueSize, maxQueueSize)
	if d := c.S2S.IdleTimeout.D(); d < time.Second || d > 24*time.Hour {
		add("s2s.idle_timeout: %s is outside 1s..24h", d)
	}
	if d := c.S2S.ConnectTimeout.D(); d < time.Second || d > 5*time.Minute {
		add("s2s.connect_timeout: %s is outside 1s..5m", d)
	}
	if c.S2S.DNSServer != "" {
		if err := checkHostPort(c.S2S.DNSServer); err != nil {
			add("s2s.dns_server: %v", err)
		}
	}
	for domain, route := range c.S2S.Routes {
		if _, err := parseDomain(domain); err != nil {
			add("s2s.routes: %w", err)
		}
		if err := checkHostPort(route); err != nil {
			add("s2s.routes.%q: %v", domain, err)
		}
	}
	if d := c.C2S.AuthTimeout.D(); d < minAuthTimeout {
		add("c2s.auth_timeout: %s is below the minimum %s", d, minAuthTimeout)
	} else if d > maxAuthTimeout {
		add("c2s.auth_timeout: %s is above the maximum %s", d, maxAuthTimeout)
	}
	if d := c.C2S.FastTokenLifetime.D(); d != 0 && (d < minFastLifetime || d > maxFastLifetime) {
		add("c2s.fast_token_lifetime: %s is outside %s to %s (or \"0s\" to turn FAST off)", d, minFastLifetime, maxFastLifetime)
	}
	for _, m := range c.moduleSections() {
		if err := m.cfg.Validate(); err != nil {
			add("%s.%w", m.name, err)
		}
	}
	return joinProblems(errs)
}

// joinProblems returns nil, the one error, or a list of them one a line.
func joinProblems(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return fmt.Errorf("%d problems:\n  %s", len(errs), strings.Join(msgs, "\n  "))
}

// checkHostPort accepts "host:port" with a host and a port 1-65535.
func checkHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("invalid address %q: %w", a, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || host == "" {
		return fmt.Errorf("invalid address %q: want host:port with a port 1-65535", a)
	}
	return nil
}

// checkListenAddr accepts "host:port" or ":port" with a numeric port.
func checkListenAddr(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("invalid address %q: %w", a, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("invalid address %q: port must be a number 0-65535", a)
	}
	return nil
}

// DBPath is the bbolt database file.
func (c Config) DBPath() string { return filepath.Join(c.DataDir, "xmppd.db") }

// AdminSocket is the Unix socket the running server answers user
// administration on.
func (c Config) AdminSocket() string { return filepath.Join(c.DataDir, "admin.sock") }

// Logger builds the one logger main passes down, writing to w.
func (c Config) Logger(w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Log.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check the configuration, or print the example config",
	}
	cmd.AddCommand(newConfigCheckCommand(), newConfigExampleCommand())
	return cmd
}

func newConfigCheckCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a config file, its certificates and data folder, without starting",
		Long: "Check loads FILE (or the file xmppd serve would use: --config, $" + configEnv + ", or\n" +
			systemConfigPath + " if it exists), validates every value, reads and loads the\n" +
			"configured certificates and checks that the data folder can be written (or\n" +
			"created). Run it as the user xmppd serve runs as. It does not generate the\n" +
			"self-signed certificate. `xmppd config example` prints every setting.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var src configSource
			if len(args) == 1 {
				src = configSource{Path: args[0], From: "--config"} // named on the command line
			} else {
				var err error
				if src, err = resolveConfigSource(cmd); err != nil {
					return err
				}
			}
			if src.Path == "" {
				return fmt.Errorf("config check: no file given (config check FILE, --config FILE or %s; %s does not exist)", configEnv, defaultConfigPath)
			}
			path := src.Path
			cfg, err := LoadConfig(path)
			if err != nil {
				if src.From != "--config" {
					err = fmt.Errorf("%w (config file from %s)", err, src.From)
				}
				return err
			}
			stderr := cmd.ErrOrStderr()
			if src.From != "--config" {
				fmt.Fprintf(stderr, "config: %s\n", src)
			}
			notes, errs := checkFiles(cfg)
			if len(errs) > 0 {
				return fmt.Errorf("%s: %w", path, joinProblems(errs))
			}
			for _, n := range notes {
				fmt.Fprintf(stderr, "%s: note: %s\n", path, n)
			}
			certs, err := loadCertificates(cfg.TLS.Certificates)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if len(certs) == 0 {
				fmt.Fprintf(stderr, "%s: note: no certificates configured; xmppd serve uses a self-signed one in %s\n", path, cfg.DataDir)
			} else {
				for _, d := range uncoveredDomains(cfg.Domains, certs) {
					fmt.Fprintf(stderr, "%s: warning: no configured certificate covers %q\n", path, d)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: OK (domains: %s)\n", path, strings.Join(cfg.Domains, ", "))
			return nil
		},
	}
}
