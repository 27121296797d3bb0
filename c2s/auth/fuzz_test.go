package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
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
