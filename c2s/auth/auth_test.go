package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/storage"
	"mellium.im/sasl"
)

func TestChannelBindingsAndMechanisms(t *testing.T) {
	tls13 := newTLSPair(t, tls.VersionTLS13)
	tls12 := newTLSPair(t, tls.VersionTLS12)
	all := []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"}
	tests := []struct {
		name     string
		state    *tls.ConnectionState
		cert     []byte
		plain    bool
		wantCB   []string
		wantMech []string
	}{
		{"no TLS", nil, nil, false, nil, all[2:4]},
		{"TLS 1.3", &tls13.server, tls13.certDER, true, []string{"tls-exporter", "tls-server-end-point"}, all},
		{"TLS 1.3 no plain", &tls13.server, tls13.certDER, false, []string{"tls-exporter", "tls-server-end-point"}, all[:4]},
		{"TLS 1.3 no cert", &tls13.server, nil, true, []string{"tls-exporter", "tls-server-end-point"}, all[2:]},
		{"TLS 1.2", &tls12.server, tls12.certDER, true, []string{"tls-unique", "tls-server-end-point"}, all},
		{"handshake incomplete", &tls.ConnectionState{}, tls13.certDER, false, nil, all[2:4]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ChannelBindings(tt.state); !reflect.DeepEqual(got, tt.wantCB) {
				t.Errorf("ChannelBindings = %q, want %q", got, tt.wantCB)
			}
			if got := Mechanisms(tt.state, tt.cert, tt.plain); !reflect.DeepEqual(got, tt.wantMech) {
				t.Errorf("Mechanisms = %q, want %q", got, tt.wantMech)
			}
		})
	}
}

func TestNewServerInvalidMechanism(t *testing.T) {
	p := newTLSPair(t, tls.VersionTLS13)
	store := testStore(t)
	tests := []struct {
		name string
		mech string
		cfg  Config
	}{
		{"unknown", "DIGEST-MD5", p.config(store, true)},
		{"lowercase", "scram-sha-256", p.config(store, true)},
		{"plain not allowed", "PLAIN", p.config(store, false)},
		{"plus without TLS", "SCRAM-SHA-256-PLUS", Config{Domain: testDomain, Store: store}},
		{"plus without cert", "SCRAM-SHA-1-PLUS", Config{Domain: testDomain, Store: store, TLS: &p.server}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewServer(context.Background(), tt.mech, tt.cfg)
			wantFailure(t, err, "invalid-mechanism")
		})
	}
}

// TestMelliumClient runs complete exchanges with mellium's client over real
// TLS 1.3 (tls-exporter) and TLS 1.2 (tls-unique) connections.
func TestMelliumClient(t *testing.T) {
	pairs := map[string]tlsPair{
		"TLS1.3": newTLSPair(t, tls.VersionTLS13),
		"TLS1.2": newTLSPair(t, tls.VersionTLS12),
	}
	mechs := map[string]sasl.Mechanism{
		"SCRAM-SHA-256-PLUS": sasl.ScramSha256Plus,
		"SCRAM-SHA-1-PLUS":   sasl.ScramSha1Plus,
		"SCRAM-SHA-256":      sasl.ScramSha256,
		"SCRAM-SHA-1":        sasl.ScramSha1,
		"PLAIN":              sasl.Plain,
	}
	tests := []struct {
		name          string
		user, pass    string
		authzid       string
		wantCondition string // "" for success
	}{
		{"ok", "alice", "pencil", "", ""},
		{"case-mapped username", "ALICE", "pencil", "", ""},
		{"authzid self", "alice", "pencil", "Alice@Example.COM", ""},
		{"wrong password", "alice", "crayon", "", "not-authorized"},
		{"unknown user", "mallory", "pencil", "", "not-authorized"},
		{"authzid other user", "alice", "pencil", "bob@example.com", "invalid-authzid"},
		{"authzid other domain", "alice", "pencil", "alice@example.org", "invalid-authzid"},
		{"authzid full JID", "alice", "pencil", "alice@example.com/res", "invalid-authzid"},
	}
	store := testStore(t)
	for pname, p := range pairs {
		for mname, m := range mechs {
			for _, tt := range tests {
				t.Run(pname+"/"+mname+"/"+tt.name, func(t *testing.T) {
					srv, err := NewServer(context.Background(), mname, p.config(store, true))
					if err != nil {
						t.Fatal(err)
					}
					client := sasl.NewClient(m,
						sasl.Credentials(func() ([]byte, []byte, []byte) {
							return []byte(tt.user), []byte(tt.pass), []byte(tt.authzid)
						}),
						sasl.TLSState(p.client),
						sasl.RemoteMechanisms(Mechanisms(&p.server, p.certDER, true)...),
					)
					err = runMellium(client, srv)
					if tt.wantCondition == "" {
						if err != nil {
							t.Fatal(err)
						}
						if srv.Username() != "alice" {
							t.Errorf("Username() = %q", srv.Username())
						}
						// Make sure -PLUS really bound to the expected type.
						if strings.HasSuffix(mname, "-PLUS") {
							want := map[string]string{"TLS1.3": "p=tls-exporter,", "TLS1.2": "p=tls-unique,"}[pname]
							if got := string(srv.scram.gs2Header); !strings.HasPrefix(got, want) {
								t.Errorf("gs2 header %q, want prefix %q", got, want)
							}
						}
						return
					}
					wantFailure(t, err, tt.wantCondition)
					if srv.Username() != "" {
						t.Errorf("Username() after failure = %q", srv.Username())
					}
				})
			}
		}
	}
}

// TestServerEndPoint uses a hand-written client for tls-server-end-point,
// which mellium's client lacks, computing the RFC 5929 hash independently.
func TestServerEndPoint(t *testing.T) {
	store := testStore(t)
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		p := newTLSPair(t, version)
		// ECDSA P-256 self-signed certificates are signed with SHA-256.
		sum := sha256.Sum256(p.certDER)
		for _, mech := range []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"} {
			t.Run(tls.VersionName(version)+"/"+mech, func(t *testing.T) {
				srv, err := NewServer(context.Background(), mech, p.config(store, false))
				if err != nil {
					t.Fatal(err)
				}
				c := newScramClient(hashFor(mech), "alice", "pencil", "p=tls-server-end-point,,", sum[:])
				sf, done, err := srv.Step(c.first())
				if err != nil || done {
					t.Fatalf("client-first: %v %v", done, err)
				}
				cf, err := c.final(sf, nil)
				if err != nil {
					t.Fatal(err)
				}
				out, done, err := srv.Step(cf)
				if err != nil || !done {
					t.Fatalf("client-final: %v %v", done, err)
				}
				if err := c.checkServerFinal(out); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestServerEndPointHash(t *testing.T) {
	tests := []struct {
		name string
		cert tls.Certificate
		hash func([]byte) []byte
	}{
		{"P-256", genCert(t, ecKey(t, elliptic.P256())), func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }},
		{"P-384", genCert(t, ecKey(t, elliptic.P384())), func(b []byte) []byte { s := sha512.Sum384(b); return s[:] }},
		{"P-521", genCert(t, ecKey(t, elliptic.P521())), func(b []byte) []byte { s := sha512.Sum512(b); return s[:] }},
		{"Ed25519 (undefined)", func() tls.Certificate {
			_, k, _ := ed25519.GenerateKey(rand.Reader)
			return genCert(t, k)
		}(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der := tt.cert.Certificate[0]
			got, err := ServerEndPoint(der)
			if tt.hash == nil {
				if err == nil {
					t.Fatal("want error")
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.hash(der)) {
				t.Fatalf("ServerEndPoint = %x, %v", got, err)
			}
		})
	}
	if _, err := ServerEndPoint([]byte("junk")); err == nil {
		t.Error("junk certificate accepted")
	}
}

// TestRFCTranscripts replays the RFC 5802 and RFC 7677 example exchanges
// byte for byte against our server.
func TestRFCTranscripts(t *testing.T) {
	tests := []struct {
		mech, salt, cnonce, snonce, clientFinal, serverFinal string
	}{
		{
			mech: "SCRAM-SHA-1", salt: "QSXCR+Q6sek8bf92",
			cnonce: "fyko+d2lbbFgONRv9qkxdawL", snonce: "3rfcNHYJY1ZVvWVs7j",
			clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
			serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
		},
		{
			mech: "SCRAM-SHA-256", salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
			cnonce: "rOprNGfwEbeRWgbNEkqO", snonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
			clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.mech, func(t *testing.T) {
			salt, _ := base64.StdEncoding.DecodeString(tt.salt)
			k1, _ := storage.DeriveKeys(sha1.New, "pencil", salt, 4096)
			k256, _ := storage.DeriveKeys(sha256.New, "pencil", salt, 4096)
			store := &memStore{users: map[string]storage.Credentials{
				"user@" + testDomain: {Salt: salt, Iterations: 4096, SHA1: k1, SHA256: k256},
			}}
			srv, err := NewServer(context.Background(), tt.mech, Config{Domain: testDomain, Store: store})
			if err != nil {
				t.Fatal(err)
			}
			srv.scram.newNonce = func() ([]byte, error) { return []byte(tt.snonce), nil }
			sf, _, err := srv.Step([]byte("n,,n=user,r=" + tt.cnonce))
			if err != nil {
				t.Fatal(err)
			}
			wantSF := "r=" + tt.cnonce + tt.snonce + ",s=" + tt.salt + ",i=4096"
			if string(sf) != wantSF {
				t.Fatalf("server-first %q, want %q", sf, wantSF)
			}
			out, done, err := srv.Step([]byte(tt.clientFinal))
			if err != nil || !done || string(out) != tt.serverFinal {
				t.Fatalf("server-final %q done=%v err=%v, want %q", out, done, err, tt.serverFinal)
			}
			if srv.Username() != "user" {
				t.Errorf("Username() = %q", srv.Username())
			}
		})
	}
}

// TestUnknownUserIndistinguishable checks that an unknown user gets a
// plausible, stable server-first and the very same failure as a wrong
// password.
func TestUnknownUserIndistinguishable(t *testing.T) {
	store := testStore(t)
	cfg := Config{Domain: testDomain, Store: store, AllowPlain: true}
	attempt := func(user, pass string) ([]byte, error) {
		srv, err := NewServer(context.Background(), "SCRAM-SHA-256", cfg)
		if err != nil {
			t.Fatal(err)
		}
		c := newScramClient(sha256.New, user, pass, "n,,", nil)
		sf, _, err := srv.Step(c.first())
		if err != nil {
			t.Fatal(err)
		}
		cf, err := c.final(sf, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = srv.Step(cf)
		return sf, err
	}
	saltIter := func(sf []byte) string { _, after, _ := strings.Cut(string(sf), ",s="); return after }

	sfKnown, errWrong := attempt("alice", "crayon")
	sfUnknown1, errUnknown := attempt("mallory", "crayon")
	sfUnknown2, _ := attempt("mallory", "pencil")
	if !reflect.DeepEqual(errWrong, errUnknown) {
		t.Errorf("wrong password: %#v; unknown user: %#v", errWrong, errUnknown)
	}
	if saltIter(sfUnknown1) != saltIter(sfUnknown2) {
		t.Errorf("unknown user's salt changes between attempts: %q vs %q", sfUnknown1, sfUnknown2)
	}
	if len(saltIter(sfKnown)) != len(saltIter(sfUnknown1)) {
		t.Errorf("salt/iterations shape differs: %q vs %q", sfKnown, sfUnknown1)
	}

	plain := func(user, pass string) error {
		srv, _ := NewServer(context.Background(), "PLAIN", cfg)
		_, _, err := srv.Step([]byte("\x00" + user + "\x00" + pass))
		return err
	}
	if e1, e2 := plain("alice", "crayon"), plain("mallory", "crayon"); !reflect.DeepEqual(e1, e2) || e1 == nil {
		t.Errorf("PLAIN wrong password: %#v; unknown user: %#v", e1, e2)
	}
}

func TestStoreError(t *testing.T) {
	store := &memStore{err: errors.New("disk on fire")}
	for _, mech := range []string{"SCRAM-SHA-1", "PLAIN"} {
		srv, _ := NewServer(context.Background(), mech, Config{Domain: testDomain, Store: store, AllowPlain: true})
		msg := "n,,n=alice,r=abc"
		if mech == "PLAIN" {
			msg = "\x00alice\x00pencil"
		}
		_, _, err := srv.Step([]byte(msg))
		f := wantFailure(t, err, "temporary-auth-failure")
		if strings.Contains(f.Error(), "fire") {
			t.Errorf("internal error leaked to client: %v", f)
		}
	}
}

// TestChannelBindingRules covers RFC 5802 §6 flag handling and the c=
// check, with a hand-written client.
func TestChannelBindingRules(t *testing.T) {
	p := newTLSPair(t, tls.VersionTLS13)
	p12 := newTLSPair(t, tls.VersionTLS12)
	store := testStore(t)
	exporter, err := p.client.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	sep := sha256.Sum256(p.certDER)
	noTLS := Config{Domain: testDomain, Store: store}
	tests := []struct {
		name     string
		mech     string
		cfg      Config
		gs2      string
		cbData   []byte
		override func(string) string
		wantCond string // "" = success
		atFirst  bool   // failure expected at client-first
	}{
		{"n over TLS ok", "SCRAM-SHA-256", p.config(store, false), "n,,", nil, nil, "", false},
		{"y without PLUS offered ok", "SCRAM-SHA-256", noTLS, "y,,", nil, nil, "", false},
		{"y with TLS but no cert ok", "SCRAM-SHA-256", Config{Domain: testDomain, Store: store, TLS: &p.server}, "y,,", nil, nil, "", false},
		{"y downgrade refused", "SCRAM-SHA-256", p.config(store, false), "y,,", nil, nil, "not-authorized", true},
		{"y downgrade refused SHA-1", "SCRAM-SHA-1", p.config(store, false), "y,,", nil, nil, "not-authorized", true},
		{"y after a failed -PLUS attempt ok (COMPAT slixmpp)", "SCRAM-SHA-256", triedPlus(p.config(store, false)), "y,,", nil, nil, "", false},
		{"p on non-PLUS refused", "SCRAM-SHA-256", p.config(store, false), "p=tls-exporter,,", exporter, nil, "not-authorized", true},
		{"n on PLUS refused", "SCRAM-SHA-256-PLUS", p.config(store, false), "n,,", nil, nil, "not-authorized", true},
		{"y on PLUS refused", "SCRAM-SHA-256-PLUS", p.config(store, false), "y,,", nil, nil, "not-authorized", true},
		{"exporter ok", "SCRAM-SHA-256-PLUS", p.config(store, false), "p=tls-exporter,,", exporter, nil, "", false},
		{"exporter with authzid ok", "SCRAM-SHA-256-PLUS", p.config(store, false), "p=tls-exporter,a=alice@example.com,", exporter, nil, "", false},
		{"tls-unique on TLS 1.3 refused", "SCRAM-SHA-256-PLUS", p.config(store, false), "p=tls-unique,,", nil, nil, "not-authorized", true},
		{"exporter on TLS 1.2 refused", "SCRAM-SHA-256-PLUS", p12.config(store, false), "p=tls-exporter,,", exporter, nil, "not-authorized", true},
		{"unknown cb type", "SCRAM-SHA-256-PLUS", p.config(store, false), "p=tls-foo,,", nil, nil, "not-authorized", true},
		{"wrong cb data", "SCRAM-SHA-256-PLUS", p.config(store, false), "p=tls-exporter,,", sep[:], nil, "not-authorized", false},
		{"cb data for other type", "SCRAM-SHA-256-PLUS", p.config(store, false), "p=tls-server-end-point,,", exporter, nil, "not-authorized", false},
		{"c= omits cb data", "SCRAM-SHA-256-PLUS", p.config(store, false), "p=tls-exporter,,", nil, nil, "not-authorized", false},
		{"c= with different gs2", "SCRAM-SHA-256", p.config(store, false), "n,,", nil,
			func(s string) string { return strings.Replace(s, "c=biws", "c=eSws", 1) }, "not-authorized", false},
		{"nonce mismatch", "SCRAM-SHA-256", p.config(store, false), "n,,", nil,
			func(s string) string { return s + "x" }, "not-authorized", false},
		{"unknown extension ignored", "SCRAM-SHA-256", p.config(store, false), "n,,", nil,
			func(s string) string { return s + ",x=foo" }, "", false},
		{"m extension refused", "SCRAM-SHA-256", p.config(store, false), "n,,", nil,
			func(s string) string { return s + ",m=foo" }, "malformed-request", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := NewServer(context.Background(), tt.mech, tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			c := newScramClient(hashFor(tt.mech), "alice", "pencil", tt.gs2, tt.cbData)
			sf, _, err := srv.Step(c.first())
			if tt.atFirst {
				wantFailure(t, err, tt.wantCond)
				return
			}
			if err != nil {
				t.Fatalf("client-first: %v", err)
			}
			cf, err := c.final(sf, tt.override)
			if err != nil {
				t.Fatal(err)
			}
			out, done, err := srv.Step(cf)
			if tt.wantCond != "" {
				wantFailure(t, err, tt.wantCond)
				return
			}
			if err != nil || !done {
				t.Fatalf("client-final: done=%v err=%v", done, err)
			}
			if err := c.checkServerFinal(out); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func triedPlus(c Config) Config {
	c.ClientTriedPlus = true
	return c
}

// TestChannelBindingMismatchMarked: only a binding-type mismatch is marked as
// such, so the session neither counts it as a guess nor refuses the 'y' retry.
func TestChannelBindingMismatchMarked(t *testing.T) {
	p := newTLSPair(t, tls.VersionTLS13)
	store := testStore(t)
	for _, tt := range []struct {
		gs2  string
		want bool
	}{{"p=tls-unique,,", true}, {"p=tls-foo,,", true}, {"n,,", false}} {
		srv, err := NewServer(context.Background(), "SCRAM-SHA-256-PLUS", p.config(store, false))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = srv.Step(newScramClient(hashFor("SCRAM-SHA-256-PLUS"), "alice", "pencil", tt.gs2, nil).first())
		var f *Failure
		if !errors.As(err, &f) || f.ChannelBindingMismatch != tt.want {
			t.Errorf("%s: err = %#v, want mismatch=%v", tt.gs2, err, tt.want)
		}
	}
}

// TestMalformed feeds broken messages; each must fail with the given
// condition and leave the server refusing further steps.
func TestMalformed(t *testing.T) {
	p := newTLSPair(t, tls.VersionTLS13)
	store := testStore(t)
	const mr, na = "malformed-request", "not-authorized"
	tests := []struct {
		name, mech string
		first      string // client-first (or PLAIN message)
		final      string // if set, sent after a successful first step
		want       string
	}{
		{"plain one part", "PLAIN", "alice", "", mr},
		{"plain two parts", "PLAIN", "alice\x00pencil", "", mr},
		{"plain four parts", "PLAIN", "\x00alice\x00pen\x00cil", "", mr},
		{"plain empty user", "PLAIN", "\x00\x00pencil", "", na},
		{"plain empty password", "PLAIN", "\x00alice\x00", "", na},
		{"plain bad utf8 user", "PLAIN", "\x00al\xffice\x00pencil", "", na},
		{"plain bad authzid", "PLAIN", "nobody\x00alice\x00pencil", "", "invalid-authzid"},
		{"no comma", "SCRAM-SHA-256", "n", "", mr},
		{"one comma", "SCRAM-SHA-256", "n,", "", mr},
		{"bad flag", "SCRAM-SHA-256", "x,,n=alice,r=abc", "", mr},
		{"empty flag", "SCRAM-SHA-256", ",,n=alice,r=abc", "", mr},
		{"p without name", "SCRAM-SHA-256-PLUS", "p=,,n=alice,r=abc", "", mr},
		{"bad cb name", "SCRAM-SHA-256-PLUS", "p=tls exporter,,n=alice,r=abc", "", mr},
		{"authzid without a=", "SCRAM-SHA-256", "n,x=alice,n=alice,r=abc", "", mr},
		{"authzid bad escape", "SCRAM-SHA-256", "n,a=al=ice,n=alice,r=abc", "", mr},
		{"missing n", "SCRAM-SHA-256", "n,,r=abc", "", mr},
		{"missing r", "SCRAM-SHA-256", "n,,n=alice", "", mr},
		{"swapped", "SCRAM-SHA-256", "n,,r=abc,n=alice", "", mr},
		{"empty username", "SCRAM-SHA-256", "n,,n=,r=abc", "", mr},
		{"bad escape", "SCRAM-SHA-256", "n,,n=al=2Xce,r=abc", "", mr},
		{"truncated escape", "SCRAM-SHA-256", "n,,n=alice=2,r=abc", "", mr},
		{"nul in username", "SCRAM-SHA-256", "n,,n=al\x00ice,r=abc", "", mr},
		{"empty nonce", "SCRAM-SHA-256", "n,,n=alice,r=", "", mr},
		{"nonce with space", "SCRAM-SHA-256", "n,,n=alice,r=a c", "", mr},
		{"mext", "SCRAM-SHA-256", "n,,m=foo,n=alice,r=abc", "", mr},
		{"bad utf8", "SCRAM-SHA-256", "n,,n=\xff,r=abc", "", mr},
		{"trailing comma", "SCRAM-SHA-256", "n,,n=alice,r=abc,", "", mr},
		{"username fails PRECIS", "SCRAM-SHA-256", "n,,n=al ice,r=abc", "", na},
		{"too long", "SCRAM-SHA-256", "n,,n=alice,r=" + strings.Repeat("a", maxMessage), "", mr},
		{"final empty", "SCRAM-SHA-256", "n,,n=alice,r=abc", "", ""},
		{"final no proof", "SCRAM-SHA-256", "n,,n=alice,r=abc", "c=biws,r=abc", mr},
		{"final bad proof b64", "SCRAM-SHA-256", "n,,n=alice,r=abc", "c=biws,r=abc,p=!!!", mr},
		{"final short proof", "SCRAM-SHA-256", "n,,n=alice,r=abc", "c=biws,r=abc,p=AAAA", mr},
		{"final bad c b64", "SCRAM-SHA-256", "n,,n=alice,r=abc", "c=b!ws,r=abc,p=AAAA", mr},
		{"final missing c", "SCRAM-SHA-256", "n,,n=alice,r=abc", "r=abc,p=AAAA", mr},
		{"final garbage", "SCRAM-SHA-256", "n,,n=alice,r=abc", "hello", mr},
		{"final proof only", "SCRAM-SHA-256", "n,,n=alice,r=abc", ",p=", mr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := NewServer(context.Background(), tt.mech, p.config(store, true))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = srv.Step([]byte(tt.first))
			last := err
			if tt.final != "" || tt.want == "" {
				if err != nil {
					t.Fatalf("client-first: %v", err)
				}
				final := tt.final
				if final == "" {
					// An empty message after the first step is not the
					// "no initial response" case.
					_, _, last = srv.Step(nil)
					wantFailure(t, last, mr)
					return
				}
				_, _, last = srv.Step([]byte(final))
			}
			f := wantFailure(t, last, tt.want)
			// The failure is final, even for a later valid-looking step.
			if _, _, err := srv.Step([]byte("n,,n=alice,r=abc")); !reflect.DeepEqual(err, error(f)) {
				t.Errorf("after failure: %v, want sticky %v", err, f)
			}
		})
	}
}

// TestNoInitialResponse: an absent initial response yields an empty
// challenge, then the exchange proceeds normally.
func TestNoInitialResponse(t *testing.T) {
	store := testStore(t)
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-1"} {
		t.Run(mech, func(t *testing.T) {
			srv, _ := NewServer(context.Background(), mech, Config{Domain: testDomain, Store: store, AllowPlain: true})
			out, done, err := srv.Step(nil)
			if err != nil || done || out == nil || len(out) != 0 {
				t.Fatalf("Step(nil) = %q, %v, %v; want empty challenge", out, done, err)
			}
			if mech == "PLAIN" {
				if _, done, err := srv.Step([]byte("\x00alice\x00pencil")); err != nil || !done {
					t.Fatalf("PLAIN: %v %v", done, err)
				}
				return
			}
			c := newScramClient(sha1.New, "alice", "pencil", "n,,", nil)
			sf, _, err := srv.Step(c.first())
			if err != nil {
				t.Fatal(err)
			}
			cf, _ := c.final(sf, nil)
			out, done, err = srv.Step(cf)
			if err != nil || !done || c.checkServerFinal(out) != nil {
				t.Fatalf("final: %q %v %v", out, done, err)
			}
			// Stepping a finished exchange is an error, not a panic.
			if _, _, err := srv.Step([]byte("x")); err == nil {
				t.Error("Step after done succeeded")
			}
		})
	}
}

func TestSCRAMEscapedUsername(t *testing.T) {
	salt := []byte("0123456789abcdef")
	k, _ := storage.DeriveKeys(sha256.New, "pencil", salt, 4096)
	store := &memStore{users: map[string]storage.Credentials{
		"a,b=c@" + testDomain: {Salt: salt, Iterations: 4096, SHA256: k},
	}}
	srv, _ := NewServer(context.Background(), "SCRAM-SHA-256", Config{Domain: testDomain, Store: store})
	c := newScramClient(sha256.New, "a,b=c", "pencil", "n,,", nil)
	sf, _, err := srv.Step(c.first())
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := c.final(sf, nil)
	if _, done, err := srv.Step(cf); err != nil || !done {
		t.Fatalf("%v %v", done, err)
	}
	if srv.Username() != "a,b=c" {
		t.Errorf("Username() = %q", srv.Username())
	}
	// Missing SHA-1 keys behave like an unknown user.
	srv, _ = NewServer(context.Background(), "SCRAM-SHA-1", Config{Domain: testDomain, Store: store})
	c = newScramClient(sha1.New, "a,b=c", "pencil", "n,,", nil)
	sf, _, _ = srv.Step(c.first())
	cf, _ = c.final(sf, nil)
	_, _, err = srv.Step(cf)
	wantFailure(t, err, "not-authorized")
}

func TestFailureError(t *testing.T) {
	if got := (&Failure{Condition: "aborted"}).Error(); got != "sasl: aborted" {
		t.Error(got)
	}
	if got := (&Failure{Condition: "not-authorized", Text: "bad"}).Error(); got != "sasl: not-authorized: bad" {
		t.Error(got)
	}
}
