package s2s

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"strings"
	"time"

	"golang.org/x/net/idna"
)

// Certificate checks for server-to-server streams: RFC 6120 §13.7.1.2 and
// RFC 6125 §6. Chain validation is crypto/x509's; the name check is ours,
// because Go knows nothing of the XMPP identifiers carried as otherName in
// the subjectAltName (SRV-ID, RFC 4985, and xmppAddr, RFC 6120 §13.7.1.4).

var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidXMPPAddr       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5} // id-on-xmppAddr
	oidDNSSRV         = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7} // id-on-dnsSRV
)

var errNoCertificate = errors.New("s2s: the peer presented no certificate")

// verifyChain checks the peer's chain (leaf first) against roots (nil: the
// system roots). A peer's certificate is accepted with either the serverAuth
// or the clientAuth extended key usage, whichever side of TLS it is on: public
// CAs no longer issue clientAuth, and every XMPP server presents its server
// certificate as a client too.
func verifyChain(certs []*x509.Certificate, roots *x509.CertPool, now time.Time) error {
	if len(certs) == 0 {
		return errNoCertificate
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	return err
}

// certNames are the reference identifiers a certificate presents.
type certNames struct {
	dns     []string // dNSName, as in the certificate
	srv     []string // SRV-ID values, "_service.domain"
	xmpp    []string // xmppAddr values
	cn      string
	haveSAN bool // any DNS-ID, SRV-ID or xmppAddr: then the CN is never used
}

func namesOf(cert *x509.Certificate) certNames {
	n := certNames{dns: cert.DNSNames, cn: cert.Subject.CommonName}
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(oidSubjectAltName) {
			srv, xmpp, err := parseOtherNames(ext.Value)
			if err == nil {
				n.srv = append(n.srv, srv...)
				n.xmpp = append(n.xmpp, xmpp...)
			}
		}
	}
	n.haveSAN = len(n.dns)+len(n.srv)+len(n.xmpp) > 0
	return n
}

// parseOtherNames reads the otherName entries of a subjectAltName extension
// (RFC 5280 §4.2.1.6) with the two XMPP type-ids; other names are skipped.
func parseOtherNames(der []byte) (srv, xmpp []string, err error) {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(der, &seq)
	if err != nil {
		return nil, nil, err
	}
	if len(rest) > 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil, nil, errors.New("s2s: malformed subjectAltName")
	}
	for b := seq.Bytes; len(b) > 0; {
		var gn asn1.RawValue
		if b, err = asn1.Unmarshal(b, &gn); err != nil {
			return nil, nil, err
		}
		if gn.Class != asn1.ClassContextSpecific || gn.Tag != 0 || !gn.IsCompound {
			continue // not an otherName
		}
		// OtherName ::= SEQUENCE { type-id OBJECT IDENTIFIER, value [0] EXPLICIT ANY }
		var oid asn1.ObjectIdentifier
		inner, err := asn1.Unmarshal(gn.Bytes, &oid)
		if err != nil {
			continue
		}
		var explicit asn1.RawValue
		if _, err := asn1.Unmarshal(inner, &explicit); err != nil || explicit.Class != asn1.ClassContextSpecific || explicit.Tag != 0 {
			continue
		}
		var str asn1.RawValue
		if _, err := asn1.Unmarshal(explicit.Bytes, &str); err != nil || str.Class != asn1.ClassUniversal {
			continue
		}
		switch {
		case oid.Equal(oidXMPPAddr) && str.Tag == asn1.TagUTF8String:
			xmpp = append(xmpp, string(str.Bytes))
		case oid.Equal(oidDNSSRV) && str.Tag == asn1.TagIA5String:
			srv = append(srv, string(str.Bytes))
		}
	}
	return srv, xmpp, nil
}

// toASCII turns a domain into its lower-case A-label form without a trailing
// dot, or "" when it is not a valid domain name.
func toASCII(domain string) string {
	domain = strings.TrimSuffix(domain, ".")
	if domain == "" {
		return ""
	}
	a, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		return ""
	}
	return strings.ToLower(a)
}

// certMatches reports whether cert identifies domain (RFC 6125 §6.4, RFC 6120
// §13.7.1.2): a DNS-ID equal to the domain or a wildcard in its left-most
// label only ("*.example.com" matches "a.example.com", never
// "example.com", "a.b.example.com" or "x*.example.com"); an SRV-ID
// "_xmpp-server.domain" (or "_xmpps-server.domain", XEP-0368), no wildcard;
// an xmppAddr equal to the domain; the subject CN only when the certificate
// has none of these.
func certMatches(cert *x509.Certificate, domain string) bool {
	return namesOf(cert).match(domain)
}

func (n certNames) match(domain string) bool {
	want := toASCII(domain)
	if want == "" || strings.ContainsAny(want, "*@/") {
		return false
	}
	for _, d := range n.dns {
		if matchDNS(d, want) {
			return true
		}
	}
	for _, s := range n.srv {
		service, name, ok := strings.Cut(s, ".")
		if !ok || !strings.EqualFold(service, "_xmpp-server") && !strings.EqualFold(service, "_xmpps-server") {
			continue
		}
		if strings.Contains(name, "*") {
			continue
		}
		if a := toASCII(name); a != "" && a == want {
			return true
		}
	}
	for _, x := range n.xmpp {
		if strings.ContainsAny(x, "*@/") {
			continue // a server is identified by a bare domain
		}
		if a := toASCII(x); a != "" && a == want {
			return true
		}
	}
	if !n.haveSAN && n.cn != "" {
		return matchDNS(n.cn, want)
	}
	return false
}

// matchDNS compares a presented DNS-ID with the A-label reference domain.
func matchDNS(presented, want string) bool {
	p := strings.ToLower(strings.TrimSuffix(presented, "."))
	if p == "" {
		return false
	}
	if !strings.Contains(p, "*") {
		if strings.HasPrefix(p, "xn--") || strings.Contains(p, ".xn--") || isASCII(p) {
			return p == want
		}
		return toASCII(p) == want // a U-label in a certificate is wrong, but unambiguous
	}
	// Only "*" as the whole left-most label, followed by at least two labels.
	rest, ok := strings.CutPrefix(p, "*.")
	if !ok || strings.Contains(rest, "*") || strings.Count(rest, ".") < 1 {
		return false
	}
	label, tail, ok := strings.Cut(want, ".")
	if !ok || label == "" {
		return false
	}
	// A wildcard never matches an IDN's A-label (RFC 6125 §6.4.3 leaves it to
	// the application; browsers refuse it, so do we).
	if strings.HasPrefix(label, "xn--") {
		return false
	}
	return tail == rest
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
