package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// onlyLeaf returns the single certificate LoadTLS chose.
func onlyLeaf(t *testing.T, c *tls.Config) *x509.Certificate {
	t.Helper()
	if len(c.Certificates) != 1 || c.Certificates[0].Leaf == nil {
		t.Fatalf("want one certificate with its leaf, got %d", len(c.Certificates))
	}
	return c.Certificates[0].Leaf
}

func TestLoadTLSSelfSigned(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Domains = []string{"localhost", "example.org"}

	// Generated on first use.
	tc, err := LoadTLS(cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if tc.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x", tc.MinVersion)
	}
	first := onlyLeaf(t, tc)
	for _, d := range cfg.Domains {
		if err := first.VerifyHostname(d); err != nil {
			t.Errorf("generated certificate: %v", err)
		}
	}
	if v := first.NotAfter.Sub(first.NotBefore); v < 364*24*time.Hour || v > 366*24*time.Hour {
		t.Errorf("validity %v, want about a year", v)
	}
	if first.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm %v, want ECDSA", first.PublicKeyAlgorithm)
	}
	fi, err := os.Stat(filepath.Join(cfg.DataDir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key.pem mode %v, want 0600", fi.Mode().Perm())
	}
	if fi, err := os.Stat(cfg.DataDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir: %v %v, want 0700", fi.Mode().Perm(), err)
	}

	// Reused on the next start.
	tc, err = LoadTLS(cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if again := onlyLeaf(t, tc); again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("certificate regenerated although it still fits")
	}

	// Regenerated when a domain is added.
	cfg.Domains = append(cfg.Domains, "new.example")
	tc, err = LoadTLS(cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	third := onlyLeaf(t, tc)
	if third.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("certificate not regenerated for a new domain")
	}
	if err := third.VerifyHostname("new.example"); err != nil {
		t.Error(err)
	}

	// Regenerated when unreadable.
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "cert.pem"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	tc, err = LoadTLS(cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if onlyLeaf(t, tc).SerialNumber.Cmp(third.SerialNumber) == 0 {
		t.Fatal("garbage certificate not replaced")
	}
}

func TestLoadTLSConfiguredSNI(t *testing.T) {
	dir := t.TempDir()
	var certs []CertConfig
	for _, names := range [][]string{{"a.example"}, {"b.example", "c.example"}} {
		c := CertConfig{Cert: filepath.Join(dir, names[0]+".crt"), Key: filepath.Join(dir, names[0]+".key")}
		if err := writeSelfSigned(dir, c.Cert, c.Key, names); err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Domains = []string{"a.example", "b.example", "c.example"}
	cfg.TLS.Certificates = certs

	tc, err := LoadTLS(cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "cert.pem")); !os.IsNotExist(err) {
		t.Errorf("self-signed certificate generated although certificates are configured (%v)", err)
	}
	tests := []struct{ sni, want string }{
		{"a.example", "a.example"},
		{"b.example", "b.example"},
		{"c.example", "b.example"},
		{"C.Example.", "b.example"},
		{"unknown.example", "a.example"}, // fallback: the first
		{"", "a.example"},
	}
	for _, tt := range tests {
		t.Run(tt.sni, func(t *testing.T) {
			if got := handshakeCN(t, tc, tt.sni); got != tt.want {
				t.Errorf("SNI %q got certificate %q, want %q", tt.sni, got, tt.want)
			}
		})
	}
}

// handshakeCN does a real TLS handshake against srv and returns the common
// name of the certificate the server presented.
func handshakeCN(t *testing.T, srv *tls.Config, sni string) string {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	go func() {
		s := tls.Server(c2, srv)
		if s.Handshake() == nil {
			_, _ = io.Copy(io.Discard, s)
		}
	}()
	cl := tls.Client(c1, &tls.Config{ServerName: sni, InsecureSkipVerify: true}) // self-signed on purpose
	if err := cl.Handshake(); err != nil {
		t.Fatal(err)
	}
	return cl.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestLoadTLSConfiguredErrors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TLS.Certificates = []CertConfig{{Cert: filepath.Join(t.TempDir(), "none.pem"), Key: "none.key"}}
	if _, err := LoadTLS(cfg, discardLogger()); err == nil {
		t.Fatal("missing certificate accepted")
	}
}
