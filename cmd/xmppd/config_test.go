package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const examplePath = "xmppd.example.toml"

func TestExampleConfig(t *testing.T) {
	cfg, err := LoadConfig(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	// The example documents the defaults: it must say exactly what the code does.
	if want := DefaultConfig(); !reflect.DeepEqual(cfg, want) {
		t.Errorf("example config differs from DefaultConfig:\n got %+v\nwant %+v", cfg, want)
	}
}

func TestDefaultConfigValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DBPath() != filepath.Join("xmppd-data", "xmppd.db") || cfg.AdminSocket() != filepath.Join("xmppd-data", "admin.sock") {
		t.Errorf("paths: %s %s", cfg.DBPath(), cfg.AdminSocket())
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name  string
		toml  string
		check func(t *testing.T, c Config)
	}{
		{"empty file is the defaults", "", func(t *testing.T, c Config) {
			if !reflect.DeepEqual(c, DefaultConfig()) {
				t.Errorf("got %+v", c)
			}
		}},
		{"domains normalised", `domains = ["Example.ORG", "bücher.example"]`, func(t *testing.T, c Config) {
			if want := []string{"example.org", "bücher.example"}; !reflect.DeepEqual(c.Domains, want) {
				t.Errorf("domains = %q, want %q", c.Domains, want)
			}
		}},
		{"require_tls false", "[c2s]\nrequire_tls = false", func(t *testing.T, c Config) {
			if c.C2S.RequireTLS {
				t.Error("require_tls still true")
			}
		}},
		{"require_tls absent stays true", "[c2s]\nqueue_size = 100", func(t *testing.T, c Config) {
			if !c.C2S.RequireTLS || c.C2S.QueueSize != 100 {
				t.Errorf("got %+v", c.C2S)
			}
		}},
		{"direct_tls disabled", "[c2s]\ndirect_tls = []", func(t *testing.T, c Config) {
			if len(c.C2S.DirectTLS) != 0 || !reflect.DeepEqual(c.C2S.Listen, []string{":5222"}) {
				t.Errorf("got %+v", c.C2S)
			}
		}},
		{"FAST off", "[c2s]\nfast_token_lifetime = \"0s\"", func(t *testing.T, c Config) {
			if c.C2S.FastTokenLifetime != 0 {
				t.Errorf("fast_token_lifetime = %v", c.C2S.FastTokenLifetime)
			}
		}},
		{"duration", "[c2s]\nauth_timeout = \"1m30s\"", func(t *testing.T, c Config) {
			if c.C2S.AuthTimeout.D() != 90*time.Second {
				t.Errorf("auth_timeout = %v", c.C2S.AuthTimeout)
			}
		}},
		{"certificates", "[[tls.certificates]]\ncert = \"a.pem\"\nkey = \"a.key\"\n[[tls.certificates]]\ncert = \"b.pem\"\nkey = \"b.key\"", func(t *testing.T, c Config) {
			want := []CertConfig{{"a.pem", "a.key"}, {"b.pem", "b.key"}}
			if !reflect.DeepEqual(c.TLS.Certificates, want) {
				t.Errorf("got %+v", c.TLS.Certificates)
			}
		}},
		{"offline limit", "[offline]\nmax_messages = 5", func(t *testing.T, c Config) {
			if c.Offline.MaxMessages != 5 {
				t.Errorf("max_messages = %d", c.Offline.MaxMessages)
			}
		}},
		{"offline storage off", "[offline]\nmax_messages = 0", func(t *testing.T, c Config) {
			if c.Offline.MaxMessages != 0 {
				t.Errorf("max_messages = %d", c.Offline.MaxMessages)
			}
		}},
		{"json log", "[log]\nlevel = \"debug\"\nformat = \"json\"", func(t *testing.T, c Config) {
			var buf bytes.Buffer
			c.Logger(&buf).Debug("hello", "k", 1)
			if !strings.Contains(buf.String(), `"msg":"hello"`) {
				t.Errorf("log output %q", buf.String())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig([]byte(tt.toml))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string // substrings of the error; "!x": x must not occur
	}{
		{"unknown top-level key", "domain = [\"x\"]", []string{`unknown key "domain" (line 1)`}},
		{"unknown nested key", "[c2s]\nlisten = [\":5222\"]\nlisen = [\":1\"]", []string{`unknown key "c2s.lisen" (line 3)`}},
		{"unknown table listed once", "[modules]\nping = true\n[log]\nlevel = \"info\"\ncolour = 1", []string{`unknown keys "modules" (line 1), "log.colour" (line 5)`}},
		{"unknown dotted key", "c2s.foo = 1", []string{`unknown key "c2s.foo" (line 1)`}},
		{"bad duration", "[c2s]\nauth_timeout = \"30\"", []string{"auth_timeout", `invalid duration "30"`}},
		{"duration as number", "[c2s]\nauth_timeout = 30", []string{"auth_timeout"}},
		{"wrong type", "[c2s]\nmax_stanza_size = \"big\"", []string{"max_stanza_size"}},
		{"syntax error", "domains = [", []string{"line 1"}},
		{"bad domain", `domains = ["exa mple.org"]`, []string{`domains: invalid domain "exa mple.org"`}},
		{"domain with localpart", `domains = ["alice@example.org"]`, []string{`domains: invalid domain "alice@example.org": no localpart@ or /resource allowed`}},
		{"domain with resource", `domains = ["example.org/r"]`, []string{`domains: invalid domain "example.org/r"`}},
		{"duplicate domain", `domains = ["example.org", "EXAMPLE.org"]`, []string{`domains: "example.org" is listed twice (as "example.org" and "EXAMPLE.org")`}},
		{"no domains", `domains = []`, []string{"domains: at least one domain is required"}},
		{"empty data_dir", `data_dir = ""`, []string{"data_dir: must not be empty"}},
		{"bad log level", "[log]\nlevel = \"verbose\"", []string{`log.level: "verbose" is not one of debug, info, warn, error`}},
		{"bad log format", "[log]\nformat = \"xml\"", []string{`log.format: "xml" is not one of text, json`}},
		{"stanza size too small", "[c2s]\nmax_stanza_size = 500", []string{"c2s.max_stanza_size: 500 is below the minimum 10000", "!preauth"}},
		{"stanza size too large", "[c2s]\nmax_stanza_size = 16777217", []string{"c2s.max_stanza_size: 16777217 is above the maximum 16777216"}},
		{"preauth above max", "[c2s]\nmax_stanza_size = 10000\npreauth_stanza_size = 20000", []string{"c2s.preauth_stanza_size: 20000 is above the maximum 10000"}},
		{"auth_timeout too short", "[c2s]\nauth_timeout = \"10ms\"", []string{"c2s.auth_timeout: 10ms is below the minimum 1s"}},
		{"fast_token_lifetime too short", "[c2s]\nfast_token_lifetime = \"10m\"", []string{"c2s.fast_token_lifetime: 10m0s is outside 1h0m0s to 8760h0m0s"}},
		{"negative queue", "[c2s]\nqueue_size = -1", []string{"c2s.queue_size: -1 is below the minimum 8"}},
		{"max_auth_failures zero", "[c2s]\nmax_auth_failures = 0", []string{"c2s.max_auth_failures: 0 is below the minimum 1"}},
		{"negative offline limit", "[offline]\nmax_messages = -1", []string{"offline.max_messages: -1 is below the minimum 0"}},
		{"offline limit too large", "[offline]\nmax_messages = 100001", []string{"offline.max_messages: 100001 is above the maximum 100000"}},
		{"empty blocklists", "[blocking]\nmax_items = 0", []string{"blocking.max_items: 0 is outside 1..100000"}},
		{"no blocklist cache", "[blocking]\ncache_size = 0", []string{"blocking.cache_size: 0 is outside 1..10000000"}},
		{"tiny vCards", "[vcard]\nmax_size = 10", []string{"vcard.max_size: 10 is outside 1024..16777216"}},
		{"huge private storage", "[private]\nmax_bytes = 1000000000", []string{"private.max_bytes: 1000000000 is outside 1024..67108864"}},
		{"no unauthenticated connections", "[c2s]\nmax_preauth_conns = 0", []string{"c2s.max_preauth_conns: 0 is below the minimum 1"}},
		{"unknown offline key", "[offline]\nmax = 1", []string{`unknown key "offline.max" (line 2)`}},
		{"s2s route without port", "[s2s.routes]\n\"a.test\" = \"127.0.0.2\"", []string{`s2s.routes."a.test": invalid address "127.0.0.2"`}},
		{"s2s route to a bad domain", "[s2s.routes]\n\"a@b\" = \"127.0.0.2:5269\"", []string{`s2s.routes: invalid domain "a@b"`}},
		{"s2s dns server port 0", "[s2s]\ndns_server = \"127.0.0.1:0\"", []string{`s2s.dns_server: invalid address "127.0.0.1:0"`}},
		{"s2s listener clash", "[s2s]\nlisten = [\":5222\"]", []string{`s2s.listen: ":5222" is already used by c2s.listen`}},
		{"s2s idle timeout", "[s2s]\nidle_timeout = \"0s\"", []string{"s2s.idle_timeout: 0s is outside 1s..24h"}},
		{"bad listen address", "[c2s]\nlisten = [\"5222\"]", []string{`c2s.listen: invalid address "5222"`}},
		{"bad port", "[c2s]\nlisten = [\":http\"]", []string{"port must be a number"}},
		{"address used twice", "[c2s]\nlisten = [\":5222\"]\ndirect_tls = [\":5222\"]", []string{`c2s.direct_tls: ":5222" is already used by c2s.listen`}},
		{"no listeners", "[c2s]\nlisten = []\ndirect_tls = []", []string{"both empty"}},
		{"certificate without key", "[[tls.certificates]]\ncert = \"a.pem\"", []string{"tls.certificates[0].key: must not be empty"}},
		{"several errors at once", "[log]\nlevel = \"x\"\nformat = \"y\"", []string{"2 problems:\n  log.level", "\n  log.format"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tt.toml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if not, ok := strings.CutPrefix(w, "!"); ok {
					if strings.Contains(err.Error(), not) {
						t.Errorf("error %q contains %q", err, not)
					}
					continue
				}
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadConfigNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.toml")
	if err := os.WriteFile(path, []byte("[c2s]\nmax_stanza_size = 500\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+": ") {
		t.Fatalf("error %v does not start with the file name", err)
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Fatalf("missing file: %v", err)
	}
}

func FuzzConfig(f *testing.F) {
	example, err := os.ReadFile(examplePath)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(example),
		"",
		`domains = ["a.example", "b.example"]`,
		"[c2s]\nauth_timeout = \"-5s\"\nmax_stanza_size = 9223372036854775807",
		"[[tls.certificates]]\ncert = \"\"\n[[tls.certificates]]",
		"c2s = 1",
		"[c2s.listen]\nx = 1",
		"domains = [\"\\u0000\", \"\"]",
		"\"quoted.key\" = 1\n[\"a\".b]\nc.d = 2",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfig(data)
		if err != nil {
			return
		}
		// Whatever is accepted must validate and be stable: its domains are
		// already normalised.
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config does not validate: %v", err)
		}
		if got := normalizeDomains(c.Domains); !reflect.DeepEqual(got, c.Domains) {
			t.Fatalf("domains not normalised: %q -> %q", c.Domains, got)
		}
		_ = c.Logger(&bytes.Buffer{})
	})
}

func TestConfigCheckCommand(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := writeSelfSigned(dir, certPath, keyPath, []string{"example.org"}); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.toml", "domains = [\"Example.org\", \"other.example\"]\n[[tls.certificates]]\ncert = \""+certPath+"\"\nkey = \""+keyPath+"\"\n")
	missingCert := write("nocert.toml", "[[tls.certificates]]\ncert = \""+filepath.Join(dir, "nope.pem")+"\"\nkey = \""+keyPath+"\"\n")
	bad := write("bad.toml", "[c2s]\nmax_stanza_size = 500\n")

	tests := []struct {
		name               string
		args               []string
		wantOut, wantErr   string
		wantStderrContains string
	}{
		{"example", []string{"config", "check", examplePath}, examplePath + ": OK (domains: localhost)\n", "", ""},
		{"certificates loaded", []string{"config", "check", good}, good + ": OK (domains: example.org, other.example)\n", "", `no configured certificate covers "other.example"`},
		{"--config used without FILE", []string{"--config", good, "config", "check"}, good + ": OK (domains: example.org, other.example)\n", "", ""},
		{"missing certificate", []string{"config", "check", missingCert}, "", "tls.certificates[0].cert: cannot read " + filepath.Join(dir, "nope.pem") + ": no such file or directory", ""},
		{"invalid", []string{"config", "check", bad}, "", bad + ": c2s.max_stanza_size: 500 is below the minimum 10000", ""},
		{"no file", []string{"config", "check"}, "", "no file given", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, err := runCLI(t, "", tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out != tt.wantOut {
				t.Errorf("stdout = %q, want %q", out, tt.wantOut)
			}
			if !strings.Contains(stderr, tt.wantStderrContains) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantStderrContains)
			}
		})
	}
}

// runCLI runs the xmppd command tree in-process with stdin as standard input.
func runCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCommand()
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}
