package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"unicode/utf8"

	"github.com/xmppd/xmppd/storage"
	"golang.org/x/text/secure/precis"
	"mellium.im/sasl"
)

// serverNonceLen is the number of random bytes we append to the client's
// nonce (base64-encoded).
const serverNonceLen = 24

// scramServer is our SCRAM server (RFC 5802, RFC 7677) working from stored
// StoredKey/ServerKey, never from the password or SaltedPassword.
type scramServer struct {
	srv      *Server
	h        func() hash.Hash
	hashName string
	plus     bool

	step            int
	gs2Header       []byte // "p=tls-exporter,a=...," exactly as received
	cbData          []byte // channel-binding data expected after gs2Header in c=
	clientFirstBare []byte
	serverFirst     []byte
	nonce           []byte // client nonce + server nonce
	authzid         string
	username        string
	keys            storage.Keys
	known           bool

	// newNonce is replaceable so tests can replay RFC transcripts.
	newNonce func() ([]byte, error)
}

func newScramServer(s *Server, h func() hash.Hash, hashName string, plus bool) *scramServer {
	return &scramServer{srv: s, h: h, hashName: hashName, plus: plus, newNonce: randomNonce}
}

func randomNonce() ([]byte, error) {
	b := make([]byte, serverNonceLen)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("server nonce: %w", err)
	}
	out := make([]byte, base64.StdEncoding.EncodedLen(len(b)))
	base64.StdEncoding.Encode(out, b)
	return out, nil
}

// mechanism adapts the server to mellium's framework so PLAIN and SCRAM are
// driven by the same Negotiator.
func (sc *scramServer) mechanism(name string) sasl.Mechanism {
	return sasl.Mechanism{
		Name: name,
		Start: func(*sasl.Negotiator) (bool, []byte, any, error) {
			// Only clients start; sasl.NewServer begins at Next.
			return false, nil, nil, failure("malformed-request", "")
		},
		Next: func(_ *sasl.Negotiator, in []byte, _ any) (bool, []byte, any, error) {
			more, out, err := sc.next(in)
			if err != nil {
				// A typed nil *Failure must not escape as a non-nil error.
				return false, nil, nil, err
			}
			return more, out, nil, nil
		},
	}
}

func (sc *scramServer) next(in []byte) (bool, []byte, error) {
	sc.step++
	switch sc.step {
	case 1:
		out, f := sc.clientFirst(in)
		if f != nil {
			return false, nil, f
		}
		return true, out, nil
	case 2:
		out, f := sc.clientFinal(in)
		if f != nil {
			return false, nil, f
		}
		return false, out, nil
	default:
		return false, nil, failure("malformed-request", "too many steps")
	}
}

func malformed(text string) *Failure { return failure("malformed-request", text) }

// clientFirst handles
//
//	gs2-cbind-flag "," [ "a=" saslname ] "," [reserved-mext ","] "n=" saslname "," "r=" c-nonce ["," extensions]
//
// and returns server-first-message.
func (sc *scramServer) clientFirst(in []byte) ([]byte, *Failure) {
	if !utf8.Valid(in) {
		return nil, malformed("invalid UTF-8")
	}
	flag, rest, ok := bytes.Cut(in, []byte{','})
	if !ok {
		return nil, malformed("missing gs2 header")
	}
	az, bare, ok := bytes.Cut(rest, []byte{','})
	if !ok {
		return nil, malformed("missing gs2 header")
	}
	sc.gs2Header = in[:len(flag)+1+len(az)+1]
	sc.clientFirstBare = bare

	var cbType string
	switch {
	case len(flag) == 1 && (flag[0] == 'n' || flag[0] == 'y'):
	case len(flag) > 2 && flag[0] == 'p' && flag[1] == '=':
		cbType = string(flag[2:])
		if !validCBName(cbType) {
			return nil, malformed("invalid channel binding name")
		}
	default:
		return nil, malformed("invalid gs2 flag")
	}

	if len(az) > 0 {
		if !bytes.HasPrefix(az, []byte("a=")) {
			return nil, malformed("invalid authzid")
		}
		v, err := unescapeSaslname(az[2:])
		if err != nil {
			return nil, malformed("invalid authzid")
		}
		sc.authzid = string(v)
	}

	attrs, f := splitAttrs(bare)
	if f != nil {
		return nil, f
	}
	if len(attrs) < 2 || attrs[0].name != 'n' || attrs[1].name != 'r' {
		return nil, malformed("expected n= and r=")
	}
	user, err := unescapeSaslname(attrs[0].value)
	if err != nil {
		return nil, malformed("invalid username encoding")
	}
	cnonce := attrs[1].value
	if !validNonce(cnonce) {
		return nil, malformed("invalid nonce")
	}

	if f := sc.checkChannelBinding(flag[0], cbType); f != nil {
		return nil, f
	}

	// An invalid username cannot name an account, so refusing it early
	// tells the client nothing about which accounts exist.
	local, err := precis.UsernameCaseMapped.String(string(user))
	if err != nil || local == "" {
		return nil, errAuth()
	}
	sc.username = local

	creds, known, lf := sc.srv.lookup(local)
	if lf != nil {
		return nil, lf
	}
	keys, ok := creds.KeysFor(sc.hashName)
	if !ok {
		// No keys for this hash (e.g. an account imported with SHA-1 only):
		// indistinguishable from an unknown user.
		known = false
		creds = dummyCredentials(sc.srv.cfg.Domain, local)
		keys, _ = creds.KeysFor(sc.hashName)
	}
	sc.keys, sc.known = keys, known

	snonce, err := sc.newNonce()
	if err != nil {
		return nil, failure("temporary-auth-failure", "")
	}
	sc.nonce = append(append([]byte{}, cnonce...), snonce...)
	sc.serverFirst = fmt.Appendf(nil, "r=%s,s=%s,i=%d",
		sc.nonce, base64.StdEncoding.EncodeToString(creds.Salt), creds.Iterations)
	return sc.serverFirst, nil
}

// checkChannelBinding applies RFC 5802 §6 to the gs2 flag and, for -PLUS,
// computes the channel-binding data this connection expects.
func (sc *scramServer) checkChannelBinding(flag byte, cbType string) *Failure {
	cfg := sc.srv.cfg
	if !sc.plus {
		switch flag {
		case 'p':
			return failure("not-authorized", "channel binding requires a -PLUS mechanism")
		case 'y':
			// The client could bind but believes we cannot. If we did
			// offer -PLUS, an attacker stripped it from the feature list.
			if plusOffered(cfg.TLS, cfg.ServerCertDER) && !cfg.ClientTriedPlus {
				return failure("not-authorized", "channel binding downgrade detected")
			}
		}
		return nil
	}
	if flag != 'p' {
		return failure("not-authorized", "-PLUS mechanism requires channel binding")
	}
	supported := false
	for _, t := range ChannelBindings(cfg.TLS) {
		supported = supported || t == cbType
	}
	if !supported {
		f := failure("not-authorized", "unsupported channel binding type "+strconv.Quote(cbType))
		f.ChannelBindingMismatch = true
		return f
	}
	data, err := channelBindingData(cbType, cfg.TLS, cfg.ServerCertDER)
	if err != nil || len(data) == 0 {
		f := failure("not-authorized", "channel binding type "+strconv.Quote(cbType)+" unavailable on this connection")
		f.ChannelBindingMismatch = true
		return f
	}
	sc.cbData = data
	return nil
}

// channelBindingData returns the data a client binding with typ must send.
func channelBindingData(typ string, state *tls.ConnectionState, serverCertDER []byte) ([]byte, error) {
	if state == nil {
		return nil, errors.New("no TLS")
	}
	switch typ {
	case cbExporter:
		// RFC 9266; TLS 1.3 only, see ChannelBindings.
		if state.Version < tls.VersionTLS13 {
			return nil, errors.New("tls-exporter needs TLS 1.3")
		}
		return state.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	case cbUnique:
		if state.Version >= tls.VersionTLS13 {
			return nil, errors.New("tls-unique is undefined for TLS 1.3")
		}
		return bytes.Clone(state.TLSUnique), nil
	case cbServerEndPoint:
		return ServerEndPoint(serverCertDER)
	}
	return nil, fmt.Errorf("unknown channel binding type %q", typ)
}

// ServerEndPoint computes tls-server-end-point channel-binding data (RFC 5929
// §4.1): the certificate hashed with its signature's hash function, SHA-256
// when that is MD5 or SHA-1. Certificates whose signature uses no single
// hash (e.g. Ed25519) have no defined binding and yield an error.
func ServerEndPoint(certDER []byte) ([]byte, error) {
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("tls-server-end-point: %w", err)
	}
	var h hash.Hash
	switch cert.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1,
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.DSAWithSHA256, x509.ECDSAWithSHA256:
		h = sha256.New()
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		h = sha512.New384()
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		h = sha512.New()
	default:
		return nil, fmt.Errorf("tls-server-end-point undefined for signature algorithm %v", cert.SignatureAlgorithm)
	}
	h.Write(certDER)
	return h.Sum(nil), nil
}

// clientFinal handles
//
//	"c=" base64 "," "r=" nonce ["," extensions] "," "p=" base64
//
// and returns server-final-message ("v=...").
func (sc *scramServer) clientFinal(in []byte) ([]byte, *Failure) {
	if !utf8.Valid(in) {
		return nil, malformed("invalid UTF-8")
	}
	i := bytes.LastIndex(in, []byte(",p="))
	if i < 0 {
		return nil, malformed("missing proof")
	}
	withoutProof, proofB64 := in[:i], in[i+3:]
	attrs, f := splitAttrs(withoutProof)
	if f != nil {
		return nil, f
	}
	if len(attrs) < 2 || attrs[0].name != 'c' || attrs[1].name != 'r' {
		return nil, malformed("expected c= and r=")
	}
	cb, err := base64.StdEncoding.Strict().DecodeString(string(attrs[0].value))
	if err != nil {
		return nil, malformed("invalid channel binding encoding")
	}
	proof, err := base64.StdEncoding.Strict().DecodeString(string(proofB64))
	if err != nil || len(proof) != sc.h().Size() {
		return nil, malformed("invalid proof")
	}
	want := append(bytes.Clone(sc.gs2Header), sc.cbData...)
	if !hmac.Equal(cb, want) {
		return nil, failure("not-authorized", "channel binding mismatch")
	}
	if !bytes.Equal(attrs[1].value, sc.nonce) {
		return nil, failure("not-authorized", "nonce mismatch")
	}

	authMessage := make([]byte, 0, len(sc.clientFirstBare)+len(sc.serverFirst)+len(withoutProof)+2)
	authMessage = append(authMessage, sc.clientFirstBare...)
	authMessage = append(authMessage, ',')
	authMessage = append(authMessage, sc.serverFirst...)
	authMessage = append(authMessage, ',')
	authMessage = append(authMessage, withoutProof...)

	// The proof is checked only with the throttle's leave (throttle.go).
	tk, f := sc.srv.admit(sc.username)
	if f != nil {
		return nil, f
	}
	// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the client
	// knew the password iff H(ClientKey) == StoredKey. Unknown users run the
	// same computation against dummy keys.
	clientKey := hmacSum(sc.h, sc.keys.StoredKey, authMessage)
	subtle.XORBytes(clientKey, clientKey, proof)
	hh := sc.h()
	hh.Write(clientKey)
	ok := hmac.Equal(hh.Sum(nil), sc.keys.StoredKey) && sc.known
	tk.finish(!ok)
	if !ok {
		return nil, errAuth()
	}
	if f := sc.srv.checkAuthzid(sc.authzid, sc.username); f != nil {
		return nil, f
	}
	sc.srv.username = sc.username
	sig := hmacSum(sc.h, sc.keys.ServerKey, authMessage)
	return append([]byte("v="), base64.StdEncoding.EncodeToString(sig)...), nil
}

type attr struct {
	name  byte
	value []byte
}

// splitAttrs splits "x=...,y=..." and rejects the reserved m= extension
// (RFC 5802 §5.1: its presence MUST cause authentication failure). Other
// unknown extensions are allowed by the grammar and ignored by callers.
func splitAttrs(b []byte) ([]attr, *Failure) {
	var out []attr
	for part := range bytes.SplitSeq(b, []byte{','}) {
		if len(part) < 2 || part[1] != '=' || !isAlpha(part[0]) {
			return nil, malformed("invalid attribute")
		}
		if part[0] == 'm' {
			return nil, malformed("unsupported mandatory extension")
		}
		out = append(out, attr{name: part[0], value: part[2:]})
	}
	return out, nil
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// validNonce: printable ASCII except ',' (RFC 5802 §7).
func validNonce(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// validCBName: 1*(ALPHA / DIGIT / "." / "-") (RFC 5802 §7).
func validCBName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && (c < '0' || c > '9') && c != '.' && c != '-' {
			return false
		}
	}
	return s != ""
}

// unescapeSaslname decodes "=2C" and "=3D"; any other '=' (or an empty
// name, or NUL) is invalid (RFC 5802 §5.1).
func unescapeSaslname(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, errors.New("empty saslname")
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '=':
			if i+3 > len(b) {
				return nil, errors.New("truncated escape")
			}
			switch string(b[i+1 : i+3]) {
			case "2C":
				out = append(out, ',')
			case "3D":
				out = append(out, '=')
			default:
				return nil, errors.New("invalid escape")
			}
			i += 2
		case 0:
			return nil, errors.New("NUL in saslname")
		default:
			out = append(out, c)
		}
	}
	return out, nil
}
