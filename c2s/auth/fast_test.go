package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
	"mellium.im/sasl"
)

// fastEnv is a real database with alice@example.com (password "pencil") and
// a TLS 1.3 connection, with a clock the test moves.
type fastEnv struct {
	t   *testing.T
	db  *storage.DB
	p   tlsPair
	now time.Time
}

func newFastEnv(t *testing.T) *fastEnv {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "x.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.CreateUser(context.Background(), testDomain, "alice", testStore(t).users["alice@"+testDomain]); err != nil {
		t.Fatal(err)
	}
	return &fastEnv{t: t, db: db, p: newTLSPair(t, tls.VersionTLS13), now: time.Unix(1_800_000_000, 0)}
}

func (e *fastEnv) config(clientID string, invalidate bool) Config {
	c := e.p.config(e.db, true)
	c.Fast = &FastConfig{Store: e.db, ClientID: clientID, Invalidate: invalidate, Now: func() time.Time { return e.now }}
	return c
}

// passwordLogin logs in with SCRAM-SHA-256 asking for a token for mech.
func (e *fastEnv) passwordLogin(clientID, mech string) *storage.FastToken {
	e.t.Helper()
	srv, err := NewServer(context.Background(), "SCRAM-SHA-256", e.config(clientID, false))
	if err != nil {
		e.t.Fatal(err)
	}
	client := sasl.NewClient(sasl.ScramSha256, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte("alice"), []byte("pencil"), nil
	}))
	if err := runMellium(client, srv); err != nil {
		e.t.Fatal(err)
	}
	tok, err := srv.FinishFast(mech)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// clientCB is the channel-binding data the client side computes for mech,
// independently of the server's code.
func (e *fastEnv) clientCB(mech string) []byte {
	switch mech {
	case mechHTExpr:
		b, err := e.p.client.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		if err != nil {
			e.t.Fatal(err)
		}
		return b
	case mechHTEndp:
		h := sha256.Sum256(e.p.certDER) // the test certificate is ECDSA with SHA-256
		return h[:]
	}
	return nil
}

func mac(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// tokenLogin logs in with secret; it returns the server, the step's error
// and checks the server's proof on success.
func (e *fastEnv) tokenLogin(user, clientID, mech, secret string, invalidate bool) (*Server, error) {
	e.t.Helper()
	srv, err := NewServer(context.Background(), mech, e.config(clientID, invalidate))
	if err != nil {
		return nil, err
	}
	cb := e.clientCB(mech)
	msg := append([]byte(user+"\x00"), mac([]byte(secret), append([]byte("Initiator"), cb...))...)
	out, done, err := srv.Step(msg)
	if err != nil {
		return srv, err
	}
	if !done {
		e.t.Fatal("token login not done after one step")
	}
	if want := mac([]byte(secret), append([]byte("Responder"), cb...)); !hmac.Equal(out, want) {
		e.t.Errorf("server's proof %x, want %x", out, want)
	}
	return srv, nil
}

func (e *fastEnv) tokens(clientID string) storage.FastTokens {
	e.t.Helper()
	ts, err := e.db.FastTokens(context.Background(), testDomain, "alice", clientID)
	if err != nil {
		e.t.Fatal(err)
	}
	return ts
}

func secretOf(t *storage.FastToken) string {
	if t == nil {
		return ""
	}
	return t.Secret
}

func TestFastMechanisms(t *testing.T) {
	p13, p12 := newTLSPair(t, tls.VersionTLS13), newTLSPair(t, tls.VersionTLS12)
	tests := []struct {
		name  string
		state *tls.ConnectionState
		cert  []byte
		want  []string
	}{
		{"TLS 1.3", &p13.server, p13.certDER, []string{mechHTExpr, mechHTEndp, mechHTNone}},
		{"TLS 1.2", &p12.server, p12.certDER, []string{mechHTUniq, mechHTEndp, mechHTNone}},
		{"no certificate to bind to", &p13.server, nil, []string{mechHTExpr, mechHTNone}},
		{"no TLS", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FastMechanisms(tt.state, tt.cert); !slices.Equal(got, tt.want) {
				t.Errorf("FastMechanisms = %v, want %v", got, tt.want)
			}
		})
	}
	for _, m := range Mechanisms(&p13.server, p13.certDER, true) {
		if IsFastMechanism(m) {
			t.Errorf("%s is offered as a plain SASL mechanism", m)
		}
	}
}

// TestFastLifecycle follows one client's token from its issue to its end.
func TestFastLifecycle(t *testing.T) {
	for _, mech := range []string{mechHTNone, mechHTExpr, mechHTEndp} {
		t.Run(mech, func(t *testing.T) {
			e := newFastEnv(t)
			const id = "d4565fa7-4d72-4749-b3d3-740edbf87770"
			tok := e.passwordLogin(id, mech)
			if tok == nil || tok.Mechanism != mech || len(tok.Secret) < 40 {
				t.Fatalf("issued %+v", tok)
			}
			if tok.Expires-tok.Issued != int64(DefaultFastTTL/time.Second) {
				t.Errorf("token lifetime %d s", tok.Expires-tok.Issued)
			}
			if ts := e.tokens(id); secretOf(ts.Next) != tok.Secret || ts.Current != nil {
				t.Fatalf("after issue: %+v", ts)
			}

			// First use: Next becomes Current, nothing new is issued.
			srv, err := e.tokenLogin("alice", id, mech, tok.Secret, false)
			if err != nil {
				t.Fatal(err)
			}
			if srv.Username() != "alice" {
				t.Errorf("Username() = %q", srv.Username())
			}
			if again, err := srv.FinishFast(""); err != nil || again != nil {
				t.Fatalf("FinishFast = %v, %v", again, err)
			}
			if ts := e.tokens(id); secretOf(ts.Current) != tok.Secret || ts.Next != nil {
				t.Fatalf("after first use: %+v", ts)
			}

			// Due for rotation: a new token; the old one works until the new one is used.
			e.now = e.now.Add(DefaultFastRotate + time.Minute)
			srv, err = e.tokenLogin("ALICE", id, mech, tok.Secret, false)
			if err != nil {
				t.Fatal(err)
			}
			rotated, err := srv.FinishFast("")
			if err != nil || rotated == nil || rotated.Secret == tok.Secret || rotated.Mechanism != mech {
				t.Fatalf("rotation: %+v, %v", rotated, err)
			}
			if _, err := e.tokenLogin("alice", id, mech, tok.Secret, false); err != nil {
				t.Fatalf("old token before the new one was used: %v", err)
			}
			srv, err = e.tokenLogin("alice", id, mech, rotated.Secret, false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := srv.FinishFast(""); err != nil {
				t.Fatal(err)
			}
			_, err = e.tokenLogin("alice", id, mech, tok.Secret, false)
			wantFailure(t, err, "not-authorized")

			// Invalidate: the token used is gone.
			srv, err = e.tokenLogin("alice", id, mech, rotated.Secret, true)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := srv.FinishFast(""); err != nil {
				t.Fatal(err)
			}
			if ts := e.tokens(id); ts.Current != nil || ts.Next != nil {
				t.Fatalf("after invalidate: %+v", ts)
			}
			_, err = e.tokenLogin("alice", id, mech, rotated.Secret, false)
			wantFailure(t, err, "not-authorized")
		})
	}
}

func TestFastRefused(t *testing.T) {
	e := newFastEnv(t)
	const id = "client-1"
	tok := e.passwordLogin(id, mechHTNone)
	tests := []struct {
		name, user, clientID, mech, secret string
		at                                 time.Duration // after issue
		want                               string
	}{
		{"wrong token", "alice", id, mechHTNone, "guess", 0, "not-authorized"},
		{"unknown user", "mallory", id, mechHTNone, tok.Secret, 0, "not-authorized"},
		{"another client's id", "alice", "client-2", mechHTNone, tok.Secret, 0, "not-authorized"},
		{"other mechanism than issued for", "alice", id, mechHTExpr, tok.Secret, 0, "not-authorized"},
		{"expired", "alice", id, mechHTNone, tok.Secret, DefaultFastTTL, "credentials-expired"},
		{"invalid username", "al\u0000ice", id, mechHTNone, tok.Secret, 0, "not-authorized"},
	}
	start := e.now
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.now = start.Add(tt.at)
			srv, err := e.tokenLogin(tt.user, tt.clientID, tt.mech, tt.secret, false)
			wantFailure(t, err, tt.want)
			if srv.Username() != "" {
				t.Errorf("Username() = %q after a failure", srv.Username())
			}
		})
	}
	e.now = start

	t.Run("no client id", func(t *testing.T) {
		_, err := NewServer(context.Background(), mechHTNone, e.config("", false))
		wantFailure(t, err, "malformed-request")
	})
	t.Run("no <fast/> config", func(t *testing.T) {
		_, err := NewServer(context.Background(), mechHTNone, e.p.config(e.db, true))
		wantFailure(t, err, "invalid-mechanism")
	})
	t.Run("not username NUL proof", func(t *testing.T) {
		srv, err := NewServer(context.Background(), mechHTNone, e.config(id, false))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = srv.Step([]byte("alice"))
		wantFailure(t, err, "malformed-request")
	})
	t.Run("unknown mechanism asked for", func(t *testing.T) {
		if got := e.passwordLogin(id, "HT-SHA-512-NONE"); got != nil {
			t.Errorf("issued %+v for a mechanism not offered", got)
		}
	})
	t.Run("password change ends the tokens", func(t *testing.T) {
		if _, err := e.tokenLogin("alice", id, mechHTNone, tok.Secret, false); err != nil {
			t.Fatalf("before the change: %v", err)
		}
		creds, err := storage.DeriveCredentials("crayon", 0)
		if err != nil {
			t.Fatal(err)
		}
		old := testStore(t).users["alice@"+testDomain].Tag()
		if err := e.db.SetCredentials(context.Background(), testDomain, "alice", creds); err != nil {
			t.Fatal(err)
		}
		_, err = e.tokenLogin("alice", id, mechHTNone, tok.Secret, false)
		wantFailure(t, err, "not-authorized")
		// A login that proved the old password while it changed gets no token.
		err = e.db.UpdateFastTokens(context.Background(), testDomain, "alice", id, old, func(t *storage.FastTokens) {
			t.Next = &storage.FastToken{Secret: "x", Mechanism: mechHTNone, Expires: 1 << 40}
		})
		if !errors.Is(err, storage.ErrCredentialsChanged) {
			t.Errorf("issue under the old password: %v, want ErrCredentialsChanged", err)
		}
	})
}
