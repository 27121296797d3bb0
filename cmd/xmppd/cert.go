package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	selfSignedCertFile = "cert.pem"
	selfSignedKeyFile  = "key.pem"
	selfSignedValidity = 365 * 24 * time.Hour
	// renewBefore regenerates the self-signed certificate a little before it
	// expires, so a running server is not caught out by it.
	renewBefore = 7 * 24 * time.Hour
)

// LoadTLS returns the server's tls.Config: TLS 1.2 at least, the certificate
// chosen by SNI among the loaded ones by their SANs, falling back to the
// first. The leaf certificates are in Certificates[i].Leaf.
//
// With no configured certificates it uses DataDir/cert.pem and key.pem, a
// self-signed ECDSA P-256 certificate for all domains, and (re)creates them
// when they are missing, unreadable, expire within a week or do not cover
// every configured domain.
func LoadTLS(cfg Config, log *slog.Logger) (*tls.Config, error) {
	var certs []tls.Certificate
	if len(cfg.TLS.Certificates) == 0 {
		c, err := selfSignedCertificate(cfg.DataDir, cfg.Domains, log)
		if err != nil {
			return nil, err
		}
		certs = []tls.Certificate{c}
	} else {
		var err error
		if certs, err = loadCertificates(cfg.TLS.Certificates); err != nil {
			return nil, err
		}
		for _, d := range uncoveredDomains(cfg.Domains, certs) {
			log.Warn("no configured certificate covers domain; clients will see the first certificate", "domain", d)
		}
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		Certificates:   certs,
		GetCertificate: sniSelector(certs),
	}, nil
}

// sniSelector picks the first certificate whose SANs match the requested
// server name, or the first certificate when none does or no SNI was sent.
func sniSelector(certs []tls.Certificate) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if name := strings.TrimSuffix(hello.ServerName, "."); name != "" {
			for i := range certs {
				if certs[i].Leaf != nil && certs[i].Leaf.VerifyHostname(name) == nil {
					return &certs[i], nil
				}
			}
		}
		return &certs[0], nil
	}
}

// loadCertificates loads the configured PEM pairs, with Leaf set.
func loadCertificates(list []CertConfig) ([]tls.Certificate, error) {
	certs := make([]tls.Certificate, 0, len(list))
	for i, cc := range list {
		c, err := tls.LoadX509KeyPair(cc.Cert, cc.Key)
		if err != nil {
			return nil, fmt.Errorf("tls.certificates[%d]: %w", i, err)
		}
		if c.Leaf == nil {
			if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
				return nil, fmt.Errorf("tls.certificates[%d]: %s: %w", i, cc.Cert, err)
			}
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// uncoveredDomains returns the domains no certificate's SANs cover.
func uncoveredDomains(domains []string, certs []tls.Certificate) []string {
	var out []string
	for _, d := range domains {
		if !covered(d, certs) {
			out = append(out, d)
		}
	}
	return out
}

func covered(domain string, certs []tls.Certificate) bool {
	for _, c := range certs {
		if c.Leaf != nil && c.Leaf.VerifyHostname(domain) == nil {
			return true
		}
	}
	return false
}

// selfSignedCertificate loads the generated certificate from dir, or
// generates a new one when it is missing, unusable, about to expire or does
// not cover every domain.
func selfSignedCertificate(dir string, domains []string, log *slog.Logger) (tls.Certificate, error) {
	certPath := filepath.Join(dir, selfSignedCertFile)
	keyPath := filepath.Join(dir, selfSignedKeyFile)

	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		log.Info("generating a self-signed certificate", "cert", certPath, "domains", domains)
	case err != nil:
		log.Warn("replacing the unreadable self-signed certificate", "cert", certPath, "err", err)
	default:
		if c.Leaf == nil {
			c.Leaf, err = x509.ParseCertificate(c.Certificate[0])
		}
		switch missing := uncoveredDomains(domains, []tls.Certificate{c}); {
		case err != nil:
			log.Warn("replacing the unreadable self-signed certificate", "cert", certPath, "err", err)
		case time.Now().Add(renewBefore).After(c.Leaf.NotAfter):
			log.Info("renewing the self-signed certificate", "cert", certPath, "not_after", c.Leaf.NotAfter)
		case len(missing) > 0:
			log.Info("regenerating the self-signed certificate for new domains", "cert", certPath, "missing", missing)
		default:
			return c, nil
		}
	}
	if err := writeSelfSigned(dir, certPath, keyPath, domains); err != nil {
		return tls.Certificate{}, err
	}
	c, err = tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load generated certificate: %w", err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("load generated certificate: %w", err)
		}
	}
	return c, nil
}

// writeSelfSigned creates an ECDSA P-256 self-signed certificate for domains,
// valid for a year, and writes it as PEM (key file 0600).
func writeSelfSigned(dir, certPath, keyPath string, domains []string) error {
	if len(domains) == 0 {
		return errors.New("self-signed certificate: no domains")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("self-signed certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("self-signed certificate: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return fmt.Errorf("self-signed certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: domains[0], Organization: []string{"xmppd self-signed"}},
		NotBefore:             now.Add(-time.Hour), // tolerate small clock skew
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	for _, d := range domains {
		if ip := net.ParseIP(d); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, d)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("self-signed certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("self-signed certificate: %w", err)
	}
	// Key first: a certificate file never points at a key that isn't there.
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("self-signed certificate: %w", err)
	}
	if err := writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("self-signed certificate: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file with perm and renames it
// over path, so a reader never sees half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
