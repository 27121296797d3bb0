package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
	"mellium.im/sasl"
)

const testDomain = "example.com"

// memStore is an in-memory CredentialStore.
type memStore struct {
	mu    sync.Mutex
	users map[string]storage.Credentials
	err   error // returned for every lookup when set
}

func (m *memStore) UserCredentials(_ context.Context, domain, local string) (storage.Credentials, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return storage.Credentials{}, m.err
	}
	c, ok := m.users[local+"@"+domain]
	if !ok {
		return storage.Credentials{}, fmt.Errorf("lookup: %w", storage.ErrNoSuchUser)
	}
	return c, nil
}

var (
	credsOnce sync.Once
	credsVal  storage.Credentials
)

// testStore has alice@example.com with password "pencil" (derived once:
// PBKDF2 is deliberately slow).
func testStore(t testing.TB) *memStore {
	t.Helper()
	credsOnce.Do(func() {
		var err error
		credsVal, err = storage.DeriveCredentials("pencil", 0)
		if err != nil {
			panic(err)
		}
	})
	return &memStore{users: map[string]storage.Credentials{"alice@" + testDomain: credsVal}}
}

// genCert makes a self-signed certificate for "localhost".
func genCert(t testing.TB, key any) tls.Certificate {
	t.Helper()
	var pub any
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		pub = k.Public()
	case ed25519.PrivateKey:
		pub = k.Public()
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func ecKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// tlsPair is both ends of a real TLS connection over loopback, so that
// tls-exporter and tls-unique use genuine keying material.
type tlsPair struct {
	server, client tls.ConnectionState
	certDER        []byte
}

func newTLSPair(t testing.TB, version uint16) tlsPair {
	t.Helper()
	cert := genCert(t, ecKey(t, elliptic.P256()))
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	type result struct {
		conn *tls.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- result{err: err}
			return
		}
		sc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: version, MaxVersion: version})
		ch <- result{sc, sc.HandshakeContext(ctx)}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: version, MaxVersion: version})
	if err := cc.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { cc.Close(); r.conn.Close() })
	p := tlsPair{server: r.conn.ConnectionState(), client: cc.ConnectionState(), certDER: cert.Certificate[0]}
	if p.server.Version != version {
		t.Fatalf("negotiated %x, want %x", p.server.Version, version)
	}
	return p
}

func (p tlsPair) config(store CredentialStore, allowPlain bool) Config {
	return Config{Domain: testDomain, Store: store, TLS: &p.server, ServerCertDER: p.certDER, AllowPlain: allowPlain}
}

// runMellium drives a full exchange between mellium's client and our server.
func runMellium(client *sasl.Negotiator, srv *Server) error {
	more, resp, err := client.Step(nil)
	if err != nil {
		return fmt.Errorf("client start: %w", err)
	}
	for {
		out, done, err := srv.Step(resp)
		if err != nil {
			return err
		}
		if done {
			if more {
				// The client verifies the server signature (v=).
				if _, _, err := client.Step(out); err != nil {
					return fmt.Errorf("client rejected server-final %q: %w", out, err)
				}
			}
			return nil
		}
		more, resp, err = client.Step(out)
		if err != nil {
			return fmt.Errorf("client step: %w", err)
		}
	}
}

// scramClient is a hand-written SCRAM client for what mellium's client
// cannot do (tls-server-end-point) or will not do (malformed or hostile
// messages).
type scramClient struct {
	h          func() hash.Hash
	user, pass string
	gs2        string // whole gs2 header, e.g. "n,," or "p=tls-server-end-point,,"
	cbData     []byte
	nonce      string
	bare       string
	verifier   []byte
}

func newScramClient(h func() hash.Hash, user, pass, gs2 string, cbData []byte) *scramClient {
	return &scramClient{h: h, user: user, pass: pass, gs2: gs2, cbData: cbData, nonce: "clientnonce123"}
}

func (c *scramClient) first() []byte {
	u := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(c.user)
	c.bare = "n=" + u + ",r=" + c.nonce
	return []byte(c.gs2 + c.bare)
}

// final computes client-final from server-first; override, if non-nil,
// rewrites the message without proof before the proof is computed.
func (c *scramClient) final(serverFirst []byte, override func(string) string) ([]byte, error) {
	var nonce, salt string
	iters := 0
	for a := range strings.SplitSeq(string(serverFirst), ",") {
		switch {
		case strings.HasPrefix(a, "r="):
			nonce = a[2:]
		case strings.HasPrefix(a, "s="):
			salt = a[2:]
		case strings.HasPrefix(a, "i="):
			fmt.Sscanf(a[2:], "%d", &iters)
		}
	}
	if !strings.HasPrefix(nonce, c.nonce) || len(nonce) == len(c.nonce) {
		return nil, errors.New("bad server nonce")
	}
	s, err := base64.StdEncoding.DecodeString(salt)
	if err != nil {
		return nil, err
	}
	cb := base64.StdEncoding.EncodeToString(append([]byte(c.gs2), c.cbData...))
	without := "c=" + cb + ",r=" + nonce
	if override != nil {
		without = override(without)
	}
	keys, err := storage.DeriveKeys(c.h, c.pass, s, iters)
	if err != nil {
		return nil, err
	}
	// Recover ClientKey the long way round, as a client would from the
	// password: ClientKey = HMAC(SaltedPassword, "Client Key"); we only have
	// StoredKey from DeriveKeys, so recompute SaltedPassword here.
	saltedClientKey := clientKeyFromPassword(c.h, c.pass, s, iters)
	authMessage := c.bare + "," + string(serverFirst) + "," + without
	sig := hmacSum(c.h, keys.StoredKey, []byte(authMessage))
	proof := make([]byte, len(sig))
	for i := range sig {
		proof[i] = sig[i] ^ saltedClientKey[i]
	}
	c.verifier = hmacSum(c.h, keys.ServerKey, []byte(authMessage))
	return []byte(without + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

func clientKeyFromPassword(h func() hash.Hash, pass string, salt []byte, iters int) []byte {
	// PBKDF2 with a single output block, written out to keep the test client
	// independent of the code under test.
	mac := hmac.New(h, []byte(pass))
	mac.Write(salt)
	mac.Write([]byte{0, 0, 0, 1})
	u := mac.Sum(nil)
	out := append([]byte(nil), u...)
	for i := 1; i < iters; i++ {
		mac.Reset()
		mac.Write(u)
		u = mac.Sum(u[:0])
		for j := range out {
			out[j] ^= u[j]
		}
	}
	return hmacSum(h, out, []byte("Client Key"))
}

func (c *scramClient) checkServerFinal(out []byte) error {
	want := "v=" + base64.StdEncoding.EncodeToString(c.verifier)
	if string(out) != want {
		return fmt.Errorf("server-final %q, want %q", out, want)
	}
	return nil
}

// hashFor maps a mechanism name to its hash.
func hashFor(mech string) func() hash.Hash {
	if strings.HasPrefix(mech, "SCRAM-SHA-1") {
		return sha1.New
	}
	return sha256.New
}

func wantFailure(t *testing.T, err error, cond string) *Failure {
	t.Helper()
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("err = %v (%T), want *Failure %s", err, err, cond)
	}
	if f.Condition != cond {
		t.Fatalf("failure %q (%s), want %q", f.Condition, f.Text, cond)
	}
	return f
}
