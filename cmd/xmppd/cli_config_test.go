package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"
)

// The tests run as if neither XMPPD_CONFIG nor /etc/xmppd/xmppd.toml were
// there, whatever the machine has; tests of them set their own.
func init() {
	os.Unsetenv(configEnv)
	defaultConfigPath = filepath.Join(os.TempDir(), "xmppd-test-no-such-dir", "xmppd.toml")
}

// configKeys walks Config by reflection and returns every key a file may
// set, dotted ("c2s.queue_size"). The keys of an array of tables are listed
// under the array's name ("tls.certificates.cert"); a map is one key.
func configKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + tag
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			keys = append(keys, key)
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()) {
			keys = append(keys, configKeys(ft, key+".")...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

// commentedKey matches a commented-out key or table of the example, as
// opposed to a comment in prose.
var commentedKey = regexp.MustCompile(`^# ?(\[\[?[a-z0-9_.]+\]\]?\s*$|("[^"]*"|[a-z0-9_]+)\s*=\s*\S)`)

// uncomment returns the example with its commented-out keys and tables
// made real.
func uncomment(example string) string {
	lines := strings.Split(example, "\n")
	for i, l := range lines {
		if commentedKey.MatchString(l) {
			lines[i] = strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ")
		}
	}
	return strings.Join(lines, "\n")
}

// TestExampleConfigKeys holds the example config to the code: every key of
// Config is in it (commented out or not) with its default value, and no key
// in it, commented out or not, is unknown.
func TestExampleConfigKeys(t *testing.T) {
	doc := uncomment(exampleConfig)
	got := DefaultConfig()
	md, err := toml.Decode(doc, &got)
	if err != nil {
		t.Fatalf("example with its keys uncommented: %v\n%s", err, doc)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Errorf("example has unknown keys: %v", u)
	}
	defined := make(map[string]bool)
	for _, k := range md.Keys() {
		defined[k.String()] = true
	}
	keys := configKeys(reflect.TypeFor[Config](), "")
	if len(keys) < 25 || !slices.Contains(keys, "offline.max_messages") || !slices.Contains(keys, "tls.certificates.key") {
		t.Fatalf("configKeys walked too little: %q", keys)
	}
	for _, k := range keys {
		if !defined[k] {
			t.Errorf("key %s is not in the example config", k)
		}
	}
	// The example's certificate and route are examples: there are none by
	// default. Every other value must be the default.
	if len(got.TLS.Certificates) != 1 || len(got.S2S.Routes) != 1 {
		t.Errorf("example certificate/route: %+v %+v", got.TLS.Certificates, got.S2S.Routes)
	}
	got.TLS.Certificates = nil
	got.S2S.Routes = map[string]string{}
	got.Domains = normalizeDomains(got.Domains)
	if want := DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("the example's values are not the defaults:\n got %+v\nwant %+v", got, want)
	}
	// The file as shipped (keys commented out) loads as the defaults too.
	if cfg, err := parseConfig([]byte(exampleConfig)); err != nil || !reflect.DeepEqual(cfg, DefaultConfig()) {
		t.Errorf("example as shipped: %v\n got %+v", err, cfg)
	}
}

func TestConfigExampleCommand(t *testing.T) {
	out, _, err := runCLI(t, "", "config", "example")
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(file) {
		t.Error("config example does not print " + examplePath)
	}
	// What it prints is a config a user can start from.
	path := filepath.Join(t.TempDir(), "xmppd.toml")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _, err := runCLI(t, "", "config", "check", path); err != nil || !strings.HasSuffix(out, ": OK (domains: localhost)\n") {
		t.Errorf("config check of the example: %q %v", out, err)
	}
}

// TestHelpPointsToExample: the help texts send a user of the binary to
// `xmppd config example`, never to a file of the source tree.
func TestHelpPointsToExample(t *testing.T) {
	root := newRootCommand()
	if !strings.Contains(root.Long, "xmppd config example") {
		t.Errorf("root help does not mention xmppd config example:\n%s", root.Long)
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		texts := []string{c.Short, c.Long, c.Example}
		for _, fs := range []interface {
			FlagUsages() string
		}{c.LocalFlags(), c.PersistentFlags()} {
			texts = append(texts, fs.FlagUsages())
		}
		for _, s := range texts {
			if strings.Contains(s, "testdata") {
				t.Errorf("help of %q mentions testdata: %q", c.CommandPath(), s)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func TestVersionFlag(t *testing.T) {
	want := versionLine(buildVersion())
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, _, err := runCLI(t, "", args...)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if out != want {
			t.Errorf("%q printed %q, want %q", args, out, want)
		}
	}
	if !strings.HasPrefix(want, "xmppd ") {
		t.Errorf("version line %q", want)
	}
}

// writeConfig writes a config serving domain with its data in a folder of
// its own, and returns the file and the data folder.
func writeConfig(t *testing.T, domain string) (path, dataDir string) {
	t.Helper()
	dir := t.TempDir()
	path, dataDir = filepath.Join(dir, "xmppd.toml"), filepath.Join(dir, "data")
	body := "domains = [\"" + domain + "\"]\ndata_dir = \"" + dataDir + "\"\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, dataDir
}

// TestConfigSource: every command reads --config, else $XMPPD_CONFIG, else
// the default path if it exists, else the built-in defaults; user commands
// say on stderr which config and data folder they use.
func TestConfigSource(t *testing.T) {
	flagPath, flagData := writeConfig(t, "flag.example")
	envPath, envData := writeConfig(t, "env.example")
	defPath, defData := writeConfig(t, "default.example")
	work := t.TempDir()
	t.Chdir(work)

	tests := []struct {
		name      string
		env       string // XMPPD_CONFIG
		def       string // defaultConfigPath
		args      []string
		jid       string // added, then listed
		wantFrom  string // the config: line
		wantData  string
		wantError string
	}{
		{"--config", envPath, defPath, []string{"--config", flagPath}, "a@flag.example", "config: " + flagPath + "\n", flagData, ""},
		{"XMPPD_CONFIG", envPath, defPath, nil, "a@env.example", "config: " + envPath + " (from XMPPD_CONFIG)\n", envData, ""},
		{"default path", "", defPath, nil, "a@default.example", "config: " + defPath + " (from default path)\n", defData, ""},
		{"built-in defaults", "", defaultConfigPath, nil, "a@localhost", "config: built-in defaults (no --config, XMPPD_CONFIG unset, no " + defaultConfigPath + ")\n", filepath.Join(work, "xmppd-data"), ""},
		{"--config empty is the defaults", envPath, defPath, []string{"--config", ""}, "b@localhost", "config: built-in defaults (--config \"\")\n", filepath.Join(work, "xmppd-data"), ""},
		{"XMPPD_CONFIG missing", filepath.Join(work, "nope.toml"), defPath, nil, "a@localhost", "", "", "nope.toml: no such file or directory (config file from XMPPD_CONFIG; use --config FILE to choose another)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(configEnv, tt.env)
			old := defaultConfigPath
			defaultConfigPath = tt.def
			t.Cleanup(func() { defaultConfigPath = old })

			args := append(slices.Clone(tt.args), "user", "add", tt.jid, "--password-stdin")
			out, stderr, err := runCLI(t, "pw\n", args...)
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("error %v, want %q", err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.wantFrom + "data folder: " + tt.wantData + "\n"; stderr != want {
				t.Errorf("stderr %q, want %q", stderr, want)
			}
			if out != "user "+tt.jid+" created\n" {
				t.Errorf("stdout %q", out)
			}
			if _, err := os.Stat(filepath.Join(tt.wantData, "xmppd.db")); err != nil {
				t.Errorf("database not in %s: %v", tt.wantData, err)
			}
		})
	}
}

// TestServeReadsConfigSource: serve finds its config the same way (a broken
// file named by XMPPD_CONFIG or at the default path stops it before it
// listens).
func TestServeReadsConfigSource(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("[c2s]\nqueue_size = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("XMPPD_CONFIG", func(t *testing.T) {
		t.Setenv(configEnv, bad)
		_, _, err := runCLI(t, "", "serve")
		if err == nil || !strings.Contains(err.Error(), bad+": c2s.queue_size: 1 is below the minimum 8") {
			t.Fatalf("serve: %v", err)
		}
	})
	t.Run("default path", func(t *testing.T) {
		old := defaultConfigPath
		defaultConfigPath = bad
		t.Cleanup(func() { defaultConfigPath = old })
		_, _, err := runCLI(t, "", "serve")
		if err == nil || !strings.Contains(err.Error(), bad+": c2s.queue_size: 1 is below the minimum 8") || !strings.Contains(err.Error(), "from default path") {
			t.Fatalf("serve: %v", err)
		}
	})
}

// TestUserRefusesUnservedDomain: a JID of a domain the config does not serve
// is refused, naming the served domains and the config in use; nothing is
// created.
func TestUserRefusesUnservedDomain(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	for _, args := range [][]string{
		{"user", "add", "alice@example.org", "--password-stdin"},
		{"user", "passwd", "alice@example.org", "--password-stdin"},
		{"user", "del", "alice@example.org"},
		{"user", "list", "example.org"},
	} {
		_, _, err := runCLI(t, "pw\n", args...)
		for _, want := range []string{
			`domain "example.org" is not served by this server (domains: localhost)`,
			"config: built-in defaults", "--config FILE or XMPPD_CONFIG",
		} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%q: error %v, want it to contain %q", args, err, want)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(work, "xmppd-data")); !os.IsNotExist(err) {
		t.Errorf("a data folder was made: %v", err)
	}
}

// TestUserNoDatabase: list, passwd and del do not create a database where
// there is none (a wrong config or folder); they say so.
func TestUserNoDatabase(t *testing.T) {
	path, data := writeConfig(t, "example.org")
	out, stderr, err := runCLI(t, "", "--config", path, "user", "list")
	if err != nil || out != "" || !strings.Contains(stderr, "note: no database at "+filepath.Join(data, "xmppd.db")+" yet") {
		t.Errorf("list: %q %q %v", out, stderr, err)
	}
	_, _, err = runCLI(t, "", "--config", path, "user", "del", "bob@example.org")
	if err == nil || !strings.Contains(err.Error(), "user bob@example.org does not exist: no database at ") {
		t.Errorf("del: %v", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("data folder made: %v", err)
	}
}

// TestConfigCheckFiles: config check finds a data folder xmppd serve could
// not write and certificate files it could not read.
func TestConfigCheckFiles(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := writeSelfSigned(dir, certPath, keyPath, []string{"example.org"}); err != nil {
		t.Fatal(err)
	}
	aFile := filepath.Join(dir, "file")
	if err := os.WriteFile(aFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	certs := "[[tls.certificates]]\ncert = \"" + certPath + "\"\nkey = \"" + keyPath + "\"\n"
	tests := []struct {
		name       string
		body       string
		wantErr    []string
		wantStderr string
	}{
		{"data folder exists", "data_dir = \"" + dir + "\"\n" + certs, nil, ""},
		{"data folder made by serve", "data_dir = \"" + filepath.Join(dir, "new", "data") + "\"\n" + certs, nil,
			"note: data folder " + filepath.Join(dir, "new", "data") + " does not exist yet; xmppd serve creates it"},
		{"data folder is a file", "data_dir = \"" + aFile + "\"\n", []string{"data_dir: " + aFile + " is not a folder"}, ""},
		{"data folder under a file", "data_dir = \"" + filepath.Join(aFile, "data") + "\"\n",
			[]string{"data_dir: " + filepath.Join(aFile, "data") + " does not exist and cannot be created: " + aFile + " is not a folder"}, ""},
		{"certificate is a folder, key missing", "data_dir = \"" + dir + "\"\n[[tls.certificates]]\ncert = \"" + dir + "\"\nkey = \"" + filepath.Join(dir, "none.pem") + "\"\n",
			[]string{"2 problems:", "tls.certificates[0].cert: cannot read " + dir + ": is a directory", "tls.certificates[0].key: cannot read " + filepath.Join(dir, "none.pem") + ": no such file or directory"}, ""},
		{"ca_file missing", "data_dir = \"" + dir + "\"\n[s2s]\nca_file = \"" + filepath.Join(dir, "ca.pem") + "\"\n",
			[]string{"s2s.ca_file: cannot read " + filepath.Join(dir, "ca.pem") + ": no such file or directory"}, ""},
		{"ca_file not PEM", "data_dir = \"" + dir + "\"\n[s2s]\nca_file = \"" + aFile + "\"\n", []string{"s2s.ca_file: " + aFile + " holds no PEM certificate"}, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "c"+string(rune('a'+i))+".toml")
			if err := os.WriteFile(path, []byte("domains = [\"example.org\"]\n"+tt.body), 0o644); err != nil {
				t.Fatal(err)
			}
			out, stderr, err := runCLI(t, "", "config", "check", path)
			if tt.wantErr == nil {
				if err != nil || out != path+": OK (domains: example.org)\n" {
					t.Fatalf("%q %v", out, err)
				}
				if !strings.Contains(stderr, tt.wantStderr) {
					t.Errorf("stderr %q, want %q", stderr, tt.wantStderr)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	t.Run("not writable", func(t *testing.T) {
		if os.Getuid() == 0 {
			t.Skip("root may write anywhere")
		}
		ro := filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{ro, filepath.Join(ro, "data")} {
			path := filepath.Join(t.TempDir(), "x.toml")
			if err := os.WriteFile(path, []byte("data_dir = \""+d+"\"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := runCLI(t, "", "config", "check", path)
			if err == nil || !strings.Contains(err.Error(), ro+" is not writable by this user") {
				t.Errorf("%s: %v", d, err)
			}
		}
	})
}
