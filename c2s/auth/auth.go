// Package auth is the server side of SASL for client-to-server streams:
// SCRAM-SHA-1, SCRAM-SHA-256, their -PLUS (channel binding) variants,
// PLAIN, and FAST's token mechanisms HT-SHA-256-* (fast.go).
//
// mellium.im/sasl supplies the Mechanism/Negotiator framework and the PLAIN
// message parsing. Its SCRAM server is not used: it needs the SaltedPassword
// (password-equivalent for SCRAM) and its -PLUS server panics. Our SCRAM
// server verifies against the stored StoredKey/ServerKey only and supports
// tls-exporter, tls-unique and tls-server-end-point channel bindings.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" // #nosec G505 -- SCRAM-SHA-1 is required for interop.
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"hash"
	"slices"
	"strings"

	"github.com/xmppd/xmppd/storage"
	"golang.org/x/text/secure/precis"
	"mellium.im/sasl"
)

// CredentialStore looks up an account's SCRAM credentials. It must return an
// error wrapping storage.ErrNoSuchUser for unknown accounts; any other error
// is reported to the client as temporary-auth-failure.
type CredentialStore interface {
	UserCredentials(ctx context.Context, domain, local string) (storage.Credentials, error)
}

// Failure is a SASL failure condition (RFC 6120 §6.5), e.g. "not-authorized",
// "malformed-request", "invalid-authzid", "invalid-mechanism",
// "temporary-auth-failure". Text is optional human-readable detail that is
// safe to send to the client.
type Failure struct {
	Condition, Text string
	// ChannelBindingMismatch marks a -PLUS attempt with a binding type this
	// connection does not offer: a negotiation mismatch, not a wrong password.
	ChannelBindingMismatch bool
}

func (f *Failure) Error() string {
	if f.Text == "" {
		return "sasl: " + f.Condition
	}
	return "sasl: " + f.Condition + ": " + f.Text
}

func failure(cond, text string) *Failure { return &Failure{Condition: cond, Text: text} }

// errAuth is the single failure for a wrong password and for an unknown
// user: the client must not be able to tell them apart.
func errAuth() *Failure { return failure("not-authorized", "") }

const (
	mechScramSHA256Plus = "SCRAM-SHA-256-PLUS"
	mechScramSHA1Plus   = "SCRAM-SHA-1-PLUS"
	mechScramSHA256     = "SCRAM-SHA-256"
	mechScramSHA1       = "SCRAM-SHA-1"
	mechPlain           = "PLAIN"

	cbExporter       = "tls-exporter"
	cbUnique         = "tls-unique"
	cbServerEndPoint = "tls-server-end-point"

	// maxMessage bounds one client SASL message. The longest legitimate one
	// is a client-first with a 1023-byte username escaped (×3) plus an
	// authzid; the stream layer enforces its own, looser, element limit.
	maxMessage = 8192
)

// ChannelBindings lists the channel-binding types this TLS connection
// supports, best first, for the XEP-0440 advertisement. tls-exporter is only
// offered on TLS 1.3 because on TLS 1.2 it is safe only with Extended Master
// Secret, which crypto/tls does not report; tls-unique only on TLS ≤ 1.2
// (it is undefined for 1.3 and Go leaves TLSUnique nil there).
func ChannelBindings(state *tls.ConnectionState) []string {
	if state == nil || !state.HandshakeComplete {
		return nil
	}
	var out []string
	if state.Version >= tls.VersionTLS13 {
		out = append(out, cbExporter)
	} else if len(state.TLSUnique) > 0 {
		out = append(out, cbUnique)
	}
	return append(out, cbServerEndPoint)
}

// plusOffered reports whether -PLUS mechanisms are advertised. It is the
// condition for refusing the 'y' gs2 flag (RFC 5802 §6 downgrade detection),
// so Mechanisms and the SCRAM server must agree on it.
func plusOffered(state *tls.ConnectionState, serverCertDER []byte) bool {
	return len(ChannelBindings(state)) > 0 && serverCertDER != nil
}

// Mechanisms lists the mechanisms to advertise, strongest first. PLAIN is
// included only when allowPlain (the caller passes true only over TLS).
func Mechanisms(state *tls.ConnectionState, serverCertDER []byte, allowPlain bool) []string {
	var out []string
	if plusOffered(state, serverCertDER) {
		out = append(out, mechScramSHA256Plus, mechScramSHA1Plus)
	}
	out = append(out, mechScramSHA256, mechScramSHA1)
	if allowPlain {
		out = append(out, mechPlain)
	}
	return out
}

// Config describes the connection an exchange runs on.
type Config struct {
	Domain        string // the stream's domain; usernames are local parts of it
	Store         CredentialStore
	TLS           *tls.ConnectionState // nil without TLS
	ServerCertDER []byte               // leaf cert we presented, for tls-server-end-point
	AllowPlain    bool
	// Fast, when set, offers FAST token authentication (XEP-0484) in this
	// SASL2 exchange: the HT-* mechanisms, and tokens issued on request.
	Fast *FastConfig
	// ClientTriedPlus says the client already attempted a -PLUS mechanism on
	// this connection with a binding type we do not offer. COMPAT: clients
	// that only know tls-unique (slixmpp 1.8, poezio) do that on TLS 1.3 and
	// then retry with gs2 flag 'y'. Their failed -PLUS attempt proves they saw
	// our -PLUS mechanisms, so that 'y' is not the stripped-feature downgrade
	// RFC 5802 §6 guards against, and it is accepted.
	ClientTriedPlus bool
	// Throttle, when set, limits the proof checks of this exchange with the
	// budgets of Client (a ClientKey) and of the account tried (throttle.go).
	Throttle *Throttle
	Client   string
}

// Server is one authentication exchange. It is not safe for concurrent use.
type Server struct {
	ctx       context.Context
	cfg       Config
	mech      string
	neg       *sasl.Negotiator
	scram     *scramServer // nil for PLAIN
	started   bool
	done      bool
	failed    *Failure // sticky: mellium's Negotiator panics if stepped after an error
	pending   *Failure // set by the PLAIN permissions callback
	username  string
	attempted string // the normalised localpart the client tried, for per-account throttling
	// The credentials the client proved, for a FAST token it may ask for
	// (fast.go): the account's record after a password login (its tag is
	// computed only if a token is issued), the token's tag after a token login.
	creds    *storage.Credentials
	credsTag []byte
	ht       *htServer // set for the HT-* mechanisms (fast.go)
}

// NewServer starts one authentication exchange. An unknown or
// non-advertised mechanism yields *Failure{Condition: "invalid-mechanism"}.
func NewServer(ctx context.Context, mechanism string, cfg Config) (*Server, error) {
	if cfg.Fast != nil && slices.Contains(FastMechanisms(cfg.TLS, cfg.ServerCertDER), mechanism) {
		return newHTServer(ctx, mechanism, cfg)
	}
	if !slices.Contains(Mechanisms(cfg.TLS, cfg.ServerCertDER, cfg.AllowPlain), mechanism) {
		return nil, failure("invalid-mechanism", "")
	}
	if cfg.Store == nil || cfg.Domain == "" {
		return nil, failure("temporary-auth-failure", "")
	}
	s := &Server{ctx: ctx, cfg: cfg, mech: mechanism}
	var m sasl.Mechanism
	switch mechanism {
	case mechPlain:
		m = sasl.Plain
	case mechScramSHA256, mechScramSHA256Plus:
		s.scram = newScramServer(s, sha256.New, "SHA-256", mechanism == mechScramSHA256Plus)
		m = s.scram.mechanism(mechanism)
	case mechScramSHA1, mechScramSHA1Plus:
		s.scram = newScramServer(s, sha1.New, "SHA-1", mechanism == mechScramSHA1Plus)
		m = s.scram.mechanism(mechanism)
	}
	s.neg = sasl.NewServer(m, s.plainPermissions)
	return s, nil
}

// Step consumes the client's (already base64-decoded) data and returns the
// challenge to send or, once done, the additional data for <success/>. Every
// error is a *Failure; after one, the exchange is over.
func (s *Server) Step(in []byte) (out []byte, done bool, err error) {
	if s.failed != nil {
		return nil, false, s.failed
	}
	if s.done {
		return nil, false, s.fail(failure("malformed-request", "exchange already complete"))
	}
	if !s.started {
		s.started = true
		// No (or an empty) initial response: both mechanisms are
		// client-first, so ask for the first message with an empty
		// challenge (RFC 6120 §6.4.2).
		if len(in) == 0 {
			return []byte{}, false, nil
		}
	}
	if len(in) > maxMessage {
		return nil, false, s.fail(failure("malformed-request", "message too long"))
	}
	if s.ht != nil {
		out, f := s.ht.step(in)
		if f != nil {
			return nil, false, s.fail(f)
		}
		s.done = true
		return out, true, nil
	}
	more, resp, err := s.neg.Step(in)
	if err != nil {
		return nil, false, s.fail(s.toFailure(err))
	}
	if !more {
		s.done = true
	}
	return resp, !more, nil
}

// Username is the authenticated localpart (UsernameCaseMapped); valid only
// after Step reported done.
func (s *Server) Username() string {
	if !s.done {
		return ""
	}
	return s.username
}

// AttemptedUsername is the localpart the client tried to authenticate as, once
// the exchange got that far ("" before). Callers throttle failures per account with it.
func (s *Server) AttemptedUsername() string { return s.attempted }

func (s *Server) fail(f *Failure) *Failure {
	s.failed = f
	return f
}

func (s *Server) toFailure(err error) *Failure {
	if f, ok := errors.AsType[*Failure](err); ok {
		return f
	}
	switch {
	case errors.Is(err, sasl.ErrAuthn):
		if s.pending != nil {
			return s.pending
		}
		return errAuth()
	default:
		// sasl.ErrInvalidChallenge (PLAIN without exactly two NULs) and
		// anything else the framework complains about is a bad message.
		return failure("malformed-request", "")
	}
}

// plainPermissions is mellium's PLAIN callback: it receives the split
// message and decides. The reason for a refusal travels back via s.pending
// because the callback can only return a bool.
func (s *Server) plainPermissions(n *sasl.Negotiator) bool {
	user, pass, authzid := n.Credentials()
	username, err := precis.UsernameCaseMapped.Bytes(user)
	if err != nil || len(username) == 0 {
		s.pending = errAuth()
		return false
	}
	password, err := precis.OpaqueString.Bytes(pass)
	if err != nil || len(password) == 0 {
		s.pending = errAuth()
		return false
	}
	local := string(username)
	tk, f := s.admit(local)
	if f != nil {
		s.pending = f
		return false
	}
	ok, f := s.checkPlain(local, string(password))
	tk.finish(!ok && f == nil) // a store error is no wrong guess
	if f != nil {
		s.pending = f
		return false
	}
	if !ok {
		s.pending = errAuth()
		return false
	}
	if f := s.checkAuthzid(string(authzid), local); f != nil {
		s.pending = f
		return false
	}
	s.username = local
	return true
}

// checkPlain reports whether password is local's: false for a wrong password
// and for an unknown user alike.
func (s *Server) checkPlain(local, password string) (ok bool, f *Failure) {
	creds, known, f := s.lookup(local)
	if f != nil {
		return false, f
	}
	h, hashName := sha256.New, "SHA-256"
	keys, ok := creds.KeysFor(hashName)
	if !ok {
		h, hashName = sha1.New, "SHA-1"
		keys, ok = creds.KeysFor(hashName)
	}
	if !ok {
		// Credentials without usable keys: behave exactly like an unknown
		// user, including the PBKDF2 cost.
		known = false
		h, hashName = sha256.New, "SHA-256"
		creds = dummyCredentials(s.cfg.Domain, local)
		keys, _ = creds.KeysFor(hashName)
	}
	// Recompute from the presented password; PBKDF2 runs for unknown users
	// too so that the response time does not reveal whether they exist.
	got, err := storage.DeriveKeys(h, password, creds.Salt, creds.Iterations)
	if err != nil {
		return false, failure("temporary-auth-failure", "")
	}
	return hmac.Equal(got.StoredKey, keys.StoredKey) && known, nil
}

// admit waits for the throttle's leave to check a proof for local (see
// Throttle). The ticket must be finished once the check is done; a
// *Failure means the attempt is refused unchecked.
func (s *Server) admit(local string) (*ticket, *Failure) {
	account := ""
	if local != "" {
		account = local + "@" + s.cfg.Domain
	}
	tk, err := s.cfg.Throttle.admit(s.ctx, s.cfg.Client, account)
	if f, ok := errors.AsType[*Failure](err); ok {
		return nil, f
	}
	if err != nil {
		// The session ended while the attempt waited.
		return nil, failure("temporary-auth-failure", "")
	}
	return tk, nil
}

// lookup fetches credentials. An unknown user is not an error here: the
// caller continues with dummy credentials (known == false) so that the rest
// of the exchange looks and costs the same.
func (s *Server) lookup(local string) (creds storage.Credentials, known bool, f *Failure) {
	s.attempted = local
	creds, err := s.cfg.Store.UserCredentials(s.ctx, s.cfg.Domain, local)
	switch {
	case errors.Is(err, storage.ErrNoSuchUser):
		return dummyCredentials(s.cfg.Domain, local), false, nil
	case err != nil:
		return storage.Credentials{}, false, failure("temporary-auth-failure", "")
	}
	s.creds = &creds
	return creds, true, nil
}

// checkAuthzid allows an empty authzid or the authenticated user's own bare
// JID: we do not support acting as someone else.
func (s *Server) checkAuthzid(authzid, local string) *Failure {
	if authzid == "" {
		return nil
	}
	at := strings.IndexByte(authzid, '@')
	if at <= 0 || strings.ContainsRune(authzid, '/') {
		return failure("invalid-authzid", "")
	}
	l, err := precis.UsernameCaseMapped.String(authzid[:at])
	if err != nil || l != local {
		return failure("invalid-authzid", "")
	}
	d := strings.TrimSuffix(strings.ToLower(authzid[at+1:]), ".")
	if d != strings.ToLower(s.cfg.Domain) {
		return failure("invalid-authzid", "")
	}
	return nil
}

// processSecret keys the dummy credentials for unknown users. Deriving them
// from the name (instead of fresh randomness per attempt) keeps the salt an
// unknown user gets stable, as a real user's is; a per-process secret keeps
// them unpredictable.
var processSecret = func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail on supported platforms.
	return b
}()

func dummyCredentials(domain, local string) storage.Credentials {
	mac := func(label string, n int) []byte {
		m := hmac.New(sha256.New, processSecret)
		m.Write([]byte(label + "\x00" + local + "@" + domain))
		return m.Sum(nil)[:n]
	}
	return storage.Credentials{
		Salt:       mac("salt", 16),
		Iterations: storage.DefaultIterations,
		SHA1:       storage.Keys{StoredKey: mac("sha1-stored", sha1.Size), ServerKey: mac("sha1-server", sha1.Size)},
		SHA256:     storage.Keys{StoredKey: mac("sha256-stored", sha256.Size), ServerKey: mac("sha256-server", sha256.Size)},
	}
}

func hmacSum(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}
