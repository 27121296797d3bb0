package auth

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/storage"
)

// FuzzServerStep feeds arbitrary client messages to every mechanism over a
// real TLS 1.3 connection state. The server must never panic, must only
// return *Failure errors, and must never report success for a user it
// cannot have authenticated.
func FuzzServerStep(f *testing.F) {
	p := newTLSPair(f, tls.VersionTLS13)
	store := testStore(f)
	seeds := [][2]string{
		{"n,,n=alice,r=abc", "c=biws,r=abc,p=AAAA"},
		{"y,,n=alice,r=abc", "c=eSws,r=abcdef,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="},
		{"p=tls-exporter,,n=alice,r=abc", "c=cD10bHMtZXhwb3J0ZXIsLA==,r=abc,p=AAAA"},
		{"p=tls-server-end-point,a=alice@example.com,n=alice,r=abc", "c=,r=,p="},
		{"p=tls-unique,,n=alice,r=abc", ",p="},
		{"n,a=a=2C=3D,n=a=2Cb,r=x,ext=1", "c=biws,r=x,m=1,p=AAAA"},
		{"n,,m=x,n=alice,r=abc", ""},
		{"\x00alice\x00pencil", ""},
		{"alice@example.com\x00alice\x00pencil", "extra"},
		{"\x00\x00", "\x00"},
		{"", ""},
		{"n,,n=\xff\xfe,r=\x00", "c=\xff"},
		{"n,,n==,r=a", "p="},
		{"n,,n=alice=", "c=biws"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	mechs := Mechanisms(&p.server, p.certDER, true)
	f.Fuzz(func(t *testing.T, first, final string) {
		for _, mech := range mechs {
			srv, err := NewServer(context.Background(), mech, p.config(store, true))
			if err != nil {
				t.Fatal(err)
			}
			for _, msg := range []string{first, final, final} {
				_, done, err := srv.Step([]byte(msg))
				if err != nil {
					if f, ok := errors.AsType[*Failure](err); !ok || f.Condition == "" {
						t.Fatalf("%s: non-Failure error %T %v", mech, err, err)
					}
					break
				}
				if done {
					// Only PLAIN with the right password can succeed
					// without knowing a fresh server nonce.
					if mech != "PLAIN" || srv.Username() != "alice" {
						t.Fatalf("%s: unexpected success for %q / %q (user %q)", mech, first, final, srv.Username())
					}
					break
				}
			}
		}
	})
}

// FuzzFastStep feeds arbitrary messages to the HT-SHA-256-* mechanisms
// against a real database holding one token. The server must never panic,
// must only return *Failure errors, and may only succeed for a message that
// carries the token's proof.
func FuzzFastStep(f *testing.F) {
	db, err := storage.Open(filepath.Join(f.TempDir(), "x.db"), storage.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	creds := testStore(f).users["alice@"+testDomain]
	if err := db.CreateUser(context.Background(), testDomain, "alice", creds); err != nil {
		f.Fatal(err)
	}
	err = db.UpdateFastTokens(context.Background(), testDomain, "alice", "c1", creds.Tag(), func(t *storage.FastTokens) {
		t.Next = &storage.FastToken{Secret: "sekrit", Mechanism: mechHTNone, Expires: 1 << 40}
	})
	if err != nil {
		f.Fatal(err)
	}
	p := newTLSPair(f, tls.VersionTLS13)
	good := append([]byte("alice\x00"), htProof("sekrit", "Initiator", nil)...)
	for _, s := range []string{"", "\x00", "alice", "alice\x00", "\x00\x00\x00", "ALICE\x00x", "\xff\x00" + strings.Repeat("a", 32), string(good)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		for _, mech := range FastMechanisms(&p.server, p.certDER) {
			cfg := p.config(db, true)
			cfg.Fast = &FastConfig{Store: db, ClientID: "c1"}
			srv, err := NewServer(context.Background(), mech, cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, done, err := srv.Step([]byte(msg))
			if err != nil {
				if f, ok := errors.AsType[*Failure](err); !ok || f.Condition == "" {
					t.Fatalf("%s: non-Failure error %T %v", mech, err, err)
				}
				continue
			}
			if done && (mech != mechHTNone || !bytes.HasSuffix([]byte(msg), good[len("alice\x00"):])) {
				t.Fatalf("%s: success for %q", mech, msg)
			}
		}
	})
}
